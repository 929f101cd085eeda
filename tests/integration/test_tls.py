"""The status endpoint's authentication against the real agent process.

One agent serves TLS on 127.0.0.1 with a token and a client CA, shared by the
module's TLS tests (they only read). Certificates come from throwaway CAs
(``trustme``): a CA for the server and its clients, and a stranger CA whose
client certificate must get nowhere. Also: the plain loopback port with a
token (reads open, logs not), and the settings that must keep the agent
from starting at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import (
    Agent,
    free_port,
    pod_manifest,
    refused_start,
    sh,
    wait_until,
)
from tests.integration.tls import TOKEN, Pki, https_status

pytestmark = pytest.mark.docker


def test_the_token_is_needed_and_checked(tls_agent: Agent, pki: Pki) -> None:
    port, context = tls_agent.port, pki.context()
    for token in ("", "wrong"):
        code, body, challenge = https_status(port, "/pods", context, token=token)
        assert code == 401, token
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)
        assert challenge == "Bearer"
    code, body, _ = https_status(port, "/pods", context, token=TOKEN)
    assert code == 200
    assert body["kind"] == "PodList"
    # Events are no more open than pods over TLS; health is, for liveness checks.
    assert https_status(port, "/api/v1/events", context)[0] == 401
    assert https_status(port, "/healthz", context)[0] == 200


def test_a_client_certificate_from_the_client_ca_is_enough(tls_agent: Agent, pki: Pki) -> None:
    context = pki.context((pki.client_cert, pki.client_key))
    code, body, _ = https_status(tls_agent.port, "/pods", context)
    assert code == 200
    assert body["kind"] == "PodList"


def test_a_client_certificate_from_another_ca_is_refused(tls_agent: Agent, pki: Pki) -> None:
    # Refused in the handshake (server/tls.py says why not a 401), whatever else is sent.
    context = pki.context((pki.stranger_cert, pki.stranger_key))
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)) as raised:
        https_status(tls_agent.port, "/pods", context, token=TOKEN)
    assert not isinstance(raised.value, urllib.error.HTTPError)
    # The agent is unharmed.
    assert https_status(tls_agent.port, "/healthz", pki.context())[0] == 200


def test_plain_http_to_the_tls_port_gets_no_answer(tls_agent: Agent, pki: Pki) -> None:
    with socket.create_connection(("127.0.0.1", tls_agent.port), timeout=5) as sock:
        sock.sendall(b"GET /pods HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(65536):
                received += chunk
                if len(received) > 1 << 20:
                    break
    assert not received.startswith(b"HTTP/"), received[:200]
    assert https_status(tls_agent.port, "/healthz", pki.context())[0] == 200


def kubectl(binary: str, home: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(home / "kubeconfig"),
        "KUBECACHEDIR": str(home / "cache"),
    }
    return subprocess.run(
        [binary, "--server", f"https://127.0.0.1:{port}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_kubectl_with_the_ca_and_a_token_or_certificate(
    tls_agent: Agent, pki: Pki, kubectl_bin: str, tmp_path: Path
) -> None:
    ca = ("--certificate-authority", str(pki.ca_file))
    for credentials in (
        ("--token", TOKEN),
        ("--client-certificate", str(pki.client_cert), "--client-key", str(pki.client_key)),
    ):
        done = kubectl(
            kubectl_bin, tmp_path, tls_agent.port, *ca, *credentials, "get", "--raw", "/pods"
        )
        assert done.returncode == 0, f"{done.stderr}\n{tls_agent.log_tail()}"
        assert json.loads(done.stdout)["kind"] == "PodList"
        # Discovery and the pods API over TLS, as kubectl walks them.
        done = kubectl(
            kubectl_bin,
            tmp_path,
            tls_agent.port,
            *ca,
            *credentials,
            "get",
            "pods",
            "-A",
            "-o",
            "json",
        )
        assert done.returncode == 0, f"{done.stderr}\n{tls_agent.log_tail()}"
        assert json.loads(done.stdout)["items"] == []
    done = kubectl(
        kubectl_bin, tmp_path, tls_agent.port, *ca, "--token", "wrong", "get", "--raw", "/pods"
    )
    assert done.returncode != 0
    assert "Unauthorized" in done.stderr or "logged in" in done.stderr, done.stderr


def plain_get(agent: Agent, path: str, *, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{agent.port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return int(e.code), e.read()


def test_on_plain_loopback_reads_are_open_and_logs_need_the_token(
    make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    agent = make_agent("--auth-token-file", str(token))
    agent.write("talk.yaml", pod_manifest("talk", [sh("c", "echo said-it; sleep 3600")]))
    pod = agent.wait_running("talk")
    name = pod["metadata"]["name"]
    for path in ("/pods", "/api/v1/events", f"/api/v1/namespaces/default/pods/{name}"):
        assert plain_get(agent, path)[0] == 200, path
    for path in (
        f"/api/v1/namespaces/default/pods/{name}/log",
        f"/containerLogs/default/{name}/c",
    ):
        code, body = plain_get(agent, path)
        assert code == 401, path
        assert json.loads(body)["reason"] == "Unauthorized"
        assert plain_get(agent, path, token="wrong")[0] == 401, path

        def said(path: str = path) -> bool:
            code, body = plain_get(agent, path, token=TOKEN)
            assert code == 200, (path, code, body[:300])
            return b"said-it" in body

        wait_until(said, timeout=10, what=f"the container's output through {path}")


def assert_nothing_listens(port: int) -> None:
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass


def test_off_loopback_without_tls_and_token_it_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    done = refused_start(tmp_path, "--listen", f"0.0.0.0:{port}")
    for setting in ("tlsCertFile", "tlsPrivateKeyFile", "authTokenFile"):
        assert setting in done.stderr, done.stderr
    # Refused before anything: not even the state directory was made.
    assert not (tmp_path / "state").exists()
    assert_nothing_listens(port)

    token = tmp_path / "token"
    token.write_text(TOKEN)
    done = refused_start(tmp_path, "--listen", f"0.0.0.0:{port}", "--auth-token-file", str(token))
    assert "tlsCertFile" in done.stderr
    assert "authTokenFile" not in done.stderr.split("set ", 1)[1], done.stderr
    assert_nothing_listens(port)


def test_an_unreadable_certificate_refuses_the_start(tmp_path: Path, pki: Pki) -> None:
    port = free_port()
    missing = tmp_path / "missing.pem"
    done = refused_start(
        tmp_path,
        "--listen",
        f"127.0.0.1:{port}",
        "--tls-cert-file",
        str(missing),
        "--tls-private-key-file",
        str(pki.dir / "server-key.pem"),
        "--client-ca-file",
        str(pki.ca_file),
    )
    assert f"tlsCertFile: cannot read {missing}" in done.stderr, done.stderr
    assert_nothing_listens(port)
