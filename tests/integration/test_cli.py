"""``minikubelet get|describe|logs|events|version`` against a real agent, as a user runs them.

One agent serves the whole module: its pods (running, completed, crash-looping,
stuck in init) are read by the CLI as a subprocess, and by kubectl where the
two are compared. The pods do not interfere with one another.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from minikubelet.client import commands
from tests.integration.conftest import (
    ROOT,
    Agent,
    Kubectl,
    free_port,
    pod_manifest,
    sh,
    status_of,
)

# The TLS agent and its certificates, shared with the endpoint's own TLS tests.
from tests.integration.tls import TOKEN, Pki

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
    docker_api: docker.APIClient,
    busybox_image: str,
    pause_image: str,
) -> Iterator[Agent]:
    """An agent with a pod in each state ``get pods`` tells apart."""
    agent = Agent(tmp_path_factory.mktemp("cli-agent"), docker_api, infra_image=pause_image)
    try:
        agent.start()
        agent.write(
            "web.yaml",
            pod_manifest(
                "web",
                [
                    sh("app", "echo hello-from-app; echo line2; while true; do sleep 1; done"),
                    sh("side", "while true; do sleep 1; done"),
                ],
                restartPolicy="Always",
            )
            | {"metadata": {"name": "web", "labels": {"app": "web"}}},
        )
        agent.write(
            "once.yaml", pod_manifest("once", [sh("main", "echo done")], restartPolicy="Never")
        )
        agent.write("crash.yaml", pod_manifest("crash", [sh("main", "echo boom; exit 1")]))
        agent.write(
            "init.yaml",
            pod_manifest(
                "init",
                [sh("main", "while true; do sleep 1; done")],
                initContainers=[sh("wait", "while true; do sleep 1; done")],
            ),
        )
        # Generous deadlines: other suites may share the two cores.
        agent.wait_running("web", timeout=60)
        agent.wait_pod(
            "once", lambda p: p["status"]["phase"] == "Succeeded", timeout=60, what="once done"
        )
        agent.wait_pod(
            "init",
            lambda p: "running" in status_of(p, "wait")["state"],
            timeout=60,
            what="init's init container running",
        )
        yield agent
    finally:
        try:
            agent.stop(signal.SIGKILL)
        finally:
            agent.cleanup()


def cli(
    agent: Agent | None, *args: str, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    server = ["--server", f"http://127.0.0.1:{agent.port}"] if agent is not None else []
    done = subprocess.run(
        [sys.executable, "-m", "minikubelet", *args, *server],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        log = agent.log_tail() if agent is not None else ""
        raise AssertionError(
            f"minikubelet {' '.join(args)} exited {done.returncode}:\n{done.stderr}\n"
            f"--- agent log ---\n{log}"
        )
    return done


def table(text: str) -> dict[str, dict[str, str]]:
    """Rows of a printed table by NAME, each cell under its header (headers with a
    space are one cell: columns are cut at the header's start offsets)."""
    lines = text.splitlines()
    header = lines[0]
    starts = [0] + [m.end() for m in re.finditer(r"  +", header)]
    ends: list[int | None] = [*starts[1:], None]
    names = [header[a:b].strip() for a, b in zip(starts, ends, strict=True)]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, ends, strict=True)]
        row = dict(zip(names, cells, strict=True))
        rows[row["NAME"]] = row
    return rows


def wait_crash_loop(agent: Agent) -> None:
    agent.wait_pod(
        "crash",
        lambda p: (
            (status_of(p, "main")["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff"
        ),
        timeout=60,
        what="crash in CrashLoopBackOff",
    )


def test_get_pods_shows_each_pods_status(shared: Agent) -> None:
    wait_crash_loop(shared)
    rows = table(cli(shared, "get", "pods").stdout)
    node = shared.node
    assert {name: (row["READY"], row["STATUS"]) for name, row in rows.items()} == {
        f"web-{node}": ("2/2", "Running"),
        f"once-{node}": ("0/1", "Completed"),
        f"crash-{node}": ("0/1", "CrashLoopBackOff"),
        f"init-{node}": ("0/1", "Init:0/1"),
    }
    wide = table(cli(shared, "get", "pods", "-o", "wide").stdout)
    web = shared.pod("web")
    assert web is not None
    assert wide[f"web-{node}"]["IP"] == web["status"]["podIP"]
    assert wide[f"web-{node}"]["NODE"] == node
    selected = table(cli(shared, "get", "pods", "-l", "app=web", "-A").stdout)
    assert list(selected) == [f"web-{node}"]
    assert selected[f"web-{node}"]["NAMESPACE"] == "default"


def test_get_pods_json_lists_exactly_the_pods(shared: Agent) -> None:
    listed = json.loads(cli(shared, "get", "pods", "-A", "-o", "json").stdout)
    assert listed["kind"] == "List"
    expected = {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in shared.pod_list()["items"]
    }
    got = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in listed["items"]}
    assert got == expected
    assert len(got) == 4
    assert {p["kind"] for p in listed["items"]} == {"Pod"}
    one = json.loads(cli(shared, "get", "pod", f"web-{shared.node}", "-o", "json").stdout)
    assert one["metadata"]["uid"] == (shared.pod("web") or {})["metadata"]["uid"]


def test_get_a_missing_pod_is_the_servers_not_found(shared: Agent) -> None:
    done = cli(shared, "get", "pod", "nope", check=False)
    assert done.returncode == 1
    assert done.stderr == 'Error from server (NotFound): pods "nope" not found\n'


def test_get_pods_matches_kubectl_but_for_age(
    shared: Agent, kubectl_bin: str, tmp_path: Path
) -> None:
    kubectl = Kubectl(kubectl_bin, shared, tmp_path / "kubectl-home")
    for args in (["get", "pods"], ["get", "pods", "-o", "wide"], ["get", "pods", "-A"]):
        ours = table(cli(shared, *args).stdout)
        theirs = table(kubectl.run(*args))
        # The crash-looping pod may restart between the two calls; the others are settled.
        for rows in (ours, theirs):
            for row in rows.values():
                row.pop("AGE")
            rows.pop(f"crash-{shared.node}")
        assert ours == theirs, args


def test_describe_matches_kubectl_but_for_ages(
    shared: Agent, kubectl_bin: str, tmp_path: Path
) -> None:
    kubectl = Kubectl(kubectl_bin, shared, tmp_path / "kubectl-home")
    name = f"web-{shared.node}"
    shared.wait_event(name="web", reason="Started")
    ours = cli(shared, "describe", "pod", name).stdout
    theirs = kubectl.run("describe", "pod", name)
    # Ages in the events table move between the two calls; all else is the same text.
    cut = "\nEvents:"
    assert ours.split(cut)[0] == theirs.split(cut)[0]
    assert ours.split(cut)[1].split()[:5] == theirs.split(cut)[1].split()[:5]


def test_describe_shows_conditions_and_events(shared: Agent) -> None:
    name = f"web-{shared.node}"
    shared.wait_event(name="web", reason="Started")
    out = cli(shared, "describe", "pod", name).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["Name:", name]
    conditions = lines[lines.index("Conditions:") + 1 :]
    assert conditions[0].split() == ["Type", "Status"]
    found: dict[str, str] = {}
    for line in conditions[1:]:
        if not line.startswith("  "):
            break
        kind, status = line.split()
        found[kind] = status
    assert found["Ready"] == "True"
    assert found["Initialized"] == "True"
    events = lines[lines.index("Events:") + 1 :]
    assert events[0].split() == ["Type", "Reason", "Age", "From", "Message"]
    reasons = {line.split()[1] for line in events[2:]}
    assert {"Created", "Started"} <= reasons
    assert "  app:" in lines
    assert "  side:" in lines


def test_logs_print_a_containers_output(shared: Agent) -> None:
    name = f"web-{shared.node}"
    done = cli(shared, "logs", name, "-c", "app")
    assert done.stdout == "hello-from-app\nline2\n"
    defaulted = cli(shared, "logs", name, "--tail", "1")
    assert defaulted.stdout == "line2\n"
    assert defaulted.stderr == 'Defaulted container "app" out of: app, side\n'
    stamped = cli(shared, "logs", name, "-c", "app", "--timestamps", "--tail", "1").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line2\n", stamped), stamped
    missing = cli(shared, "logs", name, "-c", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error from server (BadRequest): container nope ")
    assert missing.stderr.count("\n") == 1


def test_logs_previous_is_the_dead_instance(shared: Agent) -> None:
    wait_crash_loop(shared)
    assert cli(shared, "logs", f"crash-{shared.node}", "--previous").stdout == "boom\n"


def test_logs_follow_ends_with_the_container(shared: Agent) -> None:
    shared.write(
        "count.yaml",
        pod_manifest(
            "count",
            [sh("main", "for i in 1 2 3; do echo n$i; sleep 1; done")],
            restartPolicy="Never",
        ),
    )
    shared.wait_pod(
        "count",
        lambda p: (
            "running" in status_of(p, "main")["state"]
            or "terminated" in status_of(p, "main")["state"]
        ),
        timeout=60,
        what="count started",
    )
    # The follow must return by itself when the container ends (3 s of output):
    # the subprocess deadline fails the test if it does not.
    done = cli(shared, "logs", f"count-{shared.node}", "-f", timeout=60)
    assert done.stdout == "n1\nn2\nn3\n"
    shared.remove("count.yaml")


def test_events_list_the_pods_events(shared: Agent) -> None:
    name = f"web-{shared.node}"
    shared.wait_event(name="web", reason="Started")
    out = cli(shared, "events", "--for", f"pod/{name}").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    reasons = {line.split()[2] for line in lines[1:] if "(x" not in line}
    assert {"Created", "Started"} <= reasons
    assert all(f"Pod/{name}" in line for line in lines[1:])
    everywhere = cli(shared, "events", "-A").stdout.splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE"
    assert len(everywhere) >= len(lines)


def interruptible(*args: str) -> subprocess.Popen[str]:
    """The CLI as a terminal starts it, with SIGINT at its default. A test run started in
    the background of a non-interactive shell ignores SIGINT, and a child would inherit
    that and never see the Ctrl-C these tests send; an installed handler is not inherited
    (exec resets it to the default), so one is set while the child is made."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "minikubelet", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupt(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C, then the command's stderr once it ended; killed if it does not end."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the command did not end within 10 s of Ctrl-C") from None
    return err


def test_events_watch_sees_a_new_pods_events(shared: Agent) -> None:
    name = f"later-{shared.node}"
    args = ["events", "--for", f"pod/{name}", "-w", "--server", f"http://127.0.0.1:{shared.port}"]
    proc = interruptible(*args)
    # A reader thread, so that waiting for a line is bounded by the deadline.
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        shared.write("later.yaml", pod_manifest("later", [sh("main", "sleep 3600 & wait")]))
        deadline = time.monotonic() + 60
        while not any(" Started " in x for x in seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no Started event printed; got {seen}"
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=remaining))
        assert seen[0].split()[:3] == ["LAST", "SEEN", "TYPE"], seen
        assert all(f"Pod/{name}" in x for x in seen[1:]), seen
    finally:
        err = interrupt(proc)
        shared.remove("later.yaml")
    assert proc.returncode == 130, err
    assert err == ""


def test_version_prints_both_versions(shared: Agent) -> None:
    lines = cli(shared, "version").stdout.splitlines()
    assert lines[0] == f"Client Version: v{__import__('minikubelet').__version__}"
    assert lines[1] == f"Server Version: {shared.get('/version')['gitVersion']}"


@pytest.mark.parametrize("command", commands.COMMANDS)
def test_help_of_every_command(command: str) -> None:
    done = cli(None, command, "--help")
    for option in ("--server", "--token", "--token-file", "--certificate-authority"):
        assert option in done.stdout


def test_a_stopped_server_is_one_line_and_exit_1() -> None:
    port = free_port()
    for args in (["get", "pods"], ["logs", "x", "-f"], ["describe", "pod", "x"], ["events"]):
        done = subprocess.run(
            [sys.executable, "-m", "minikubelet", *args, "--server", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 1, args
        assert done.stdout == ""
        assert done.stderr == (
            f"The connection to the server 127.0.0.1:{port} was refused - "
            "did you specify the right host or port?\n"
        )


def test_ctrl_c_on_a_follow_exits_130_quietly(shared: Agent) -> None:
    proc = interruptible(
        "logs",
        f"web-{shared.node}",
        "-c",
        "app",
        "-f",
        "--server",
        f"http://127.0.0.1:{shared.port}",
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        interrupt(proc)
        raise AssertionError("logs -f printed nothing within 30 s")
    assert proc.stdout.readline() == "hello-from-app\n"
    err = interrupt(proc)
    assert proc.returncode == 130
    assert err == ""


def test_https_with_a_ca_and_a_token_or_a_client_certificate(
    tls_agent: Agent,
    pki: Pki,
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    base = [
        sys.executable,
        "-m",
        "minikubelet",
        "get",
        "pods",
        "--server",
        f"https://127.0.0.1:{tls_agent.port}",
    ]
    ca = ["--certificate-authority", str(pki.ca_file)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )

    for args in (
        [*ca, "--token-file", str(token)],
        [*ca, "--token", TOKEN],
        [*ca, "--client-certificate", str(pki.client_cert), "--client-key", str(pki.client_key)],
    ):
        done = run(*args)
        assert (done.returncode, done.stdout) == (0, ""), (args, done.stderr)
        assert done.stderr == "No resources found in default namespace.\n"
    refused = run(*ca, "--token", "wrong")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: You must be logged in to the server (")
    assert refused.stderr.count("\n") == 1
    unknown_ca = run("--token", TOKEN)
    assert unknown_ca.returncode == 1
    assert unknown_ca.stderr.startswith(
        f"Unable to connect to the server 127.0.0.1:{tls_agent.port}: certificate verify failed"
    ), unknown_ca.stderr
    assert unknown_ca.stderr.count("\n") == 1
