"""Command line: ``minikubelet run`` and ``minikubelet validate``; the client commands
(``get``, ``describe``, ``logs``, ``events``, ``version``) live in ``minikubelet.client``."""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from minikubelet import __version__
from minikubelet.client import commands as client_commands
from minikubelet.config.file import is_manifest_name, load_manifest_file
from minikubelet.errors import ConfigError, ManifestError
from minikubelet.logconfig import AgentLogging
from minikubelet.settings import DEFAULT_CONFIG, Settings, build_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minikubelet", description="Kubernetes static pods on the local Docker engine."
    )
    parser.add_argument("--version", action="version", version=f"minikubelet {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=client_commands.CommandParser
    )

    run = sub.add_parser("run", help="run the agent")
    run.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        help=f"config file (default {DEFAULT_CONFIG}, read if present; '' for none)",
    )
    run.add_argument(
        "--manifest-dir",
        type=Path,
        help="directory of Pod manifests (default /etc/minikubelet/manifests)",
    )
    run.add_argument("--node-name", help="node name (default: the hostname)")
    run.add_argument("--listen", help="status endpoint host:port (default 127.0.0.1:10255)")
    run.add_argument(
        "--state-dir", type=Path, help="state directory (default /var/lib/minikubelet)"
    )
    run.add_argument("--pod-infra-image", help="sandbox image (default registry.k8s.io/pause:3.10)")
    run.add_argument("--pod-cidr", help="subnet of the pod network, used when creating it")
    run.add_argument("--network-name", help="Docker network for pods (default minikubelet)")
    run.add_argument("--node-ip", help="this node's IP (default: the default route's address)")
    run.add_argument("--auth-token-file", help="bearer token required by the status endpoint")
    run.add_argument(
        "--tls-cert-file",
        help="PEM certificate chain of the status endpoint: it then serves HTTPS, and every "
        "request but /healthz must authenticate (needed off loopback)",
    )
    run.add_argument(
        "--tls-private-key-file", help="PEM private key of --tls-cert-file (unencrypted)"
    )
    run.add_argument(
        "--client-ca-file",
        help="PEM CA certificates: over TLS, a client certificate they sign authenticates "
        "its subject's CN",
    )
    run.add_argument(
        "--kubeconfig",
        help="cluster mode: register the node, its Lease and mirror pods on the API server "
        "of this kubeconfig (its current context)",
    )
    run.add_argument(
        "--stop-pods-on-exit",
        action="store_true",
        default=None,
        help="stop pods gracefully on exit",
    )
    run.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        help='"text" (default, for people) or "json" (an object per line, for journald '
        "and log collectors)",
    )
    run.add_argument(
        "--allow-insecure-manifest-dir",
        action="store_true",
        default=None,
        help="read manifests even from a directory or files that users other than root "
        "(or the agent's user) can write; refused by default, as sshd's StrictModes does",
    )

    validate = sub.add_parser("validate", help="check manifests offline; exit 1 on any error")
    validate.add_argument("paths", nargs="+", type=Path, help="manifest files or directories")
    validate.add_argument(
        "--node-name", default=None, help="node name used to name the pods (default: hostname)"
    )
    validate.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help='"text" (a line per problem) or "json" (a list of '
        '{"file", "ok", "pod", "errors": [{"field", "message"}]})',
    )
    client_commands.add_parsers(sub)
    return parser


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when present: its timers, sockets and transports cost a fraction of
    the standard loop's, which matters with a hundred probes a second."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _run(args: argparse.Namespace) -> int:
    from minikubelet.agent import Agent
    from minikubelet.supervisor import AgentFailure

    config_file = Path(args.config) if args.config else None

    def load() -> Settings:
        return build_settings(
            config_file=config_file,
            overrides={
                "manifest_dir": args.manifest_dir,
                "node_name": args.node_name,
                "listen": args.listen,
                "state_dir": args.state_dir,
                "pod_infra_image": args.pod_infra_image,
                "pod_cidr": args.pod_cidr,
                "network_name": args.network_name,
                "node_ip": args.node_ip,
                "auth_token_file": args.auth_token_file,
                "tls_cert_file": args.tls_cert_file,
                "tls_private_key_file": args.tls_private_key_file,
                "client_ca_file": args.client_ca_file,
                "kubeconfig": args.kubeconfig,
                "stop_pods_on_exit": args.stop_pods_on_exit,
                "log_level": args.log_level,
                "log_format": args.log_format,
                "allow_insecure_manifest_dir": args.allow_insecure_manifest_dir,
            },
        )

    try:
        settings = load()
    except ConfigError as e:
        print(f"minikubelet: {e}", file=sys.stderr)
        return 2
    logs = AgentLogging()
    logs.configure(level=settings.log_level, log_format=settings.log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        agent = Agent(settings, reload=load, logs=logs)
        loop.add_signal_handler(signal.SIGHUP, agent.request_reload)
        await agent.run(stop)

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    except ConfigError as e:
        logging.getLogger("minikubelet").error("%s", e)
        return 2
    except AgentFailure as e:
        # Already logged with its traceback where it happened; the exit code
        # is what makes the service manager restart the agent.
        logging.getLogger("minikubelet").critical("exiting: %s", e)
        return 1
    except OSError as e:
        logging.getLogger("minikubelet").error("cannot start: %s", e)
        return 1
    return 0


def _expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as named, and the manifests directly in named directories.

    A directory that cannot be listed stays in the list as itself, so that
    reading it reports why.
    """
    files: list[Path] = []
    for path in paths:
        try:
            if path.is_dir():
                files.extend(
                    sorted(p for p in path.iterdir() if is_manifest_name(p.name) and not p.is_dir())
                )
                continue
        except OSError:
            pass
        files.append(path)
    return files


def _validate(args: argparse.Namespace) -> int:
    """Check every file; a line per problem, or a JSON list. Never a traceback.

    Exits 1 if any file is not a pod, 0 otherwise.
    """
    import json
    import os

    def shown(path: Path) -> str:
        # File names need not be UTF-8 nor printable; printing them must neither
        # fail nor send escape sequences to the terminal.
        text = os.fsencode(path).decode("utf-8", "backslashreplace")
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)

    def check(path: Path, names: dict[str, str]) -> dict[str, Any]:
        file = shown(path)
        result: dict[str, Any] = {"file": file, "ok": False, "pod": None, "errors": []}
        try:
            _, pod = load_manifest_file(path, node_name=node, seen=lambda uid: "")
        except FileNotFoundError:
            result["errors"] = [{"field": "", "message": "no such file"}]
            return result
        except ManifestError as e:
            result["errors"] = [{"field": x.field, "message": x.message} for x in e.errors]
            return result
        except Exception as e:
            # A bug, not the file's fault: one line for it, and the other files are still checked.
            message = f"internal error: {type(e).__name__}"
            result["errors"] = [{"field": "", "message": message}]
            return result
        result["pod"] = pod.key
        if pod.key in names:
            message = f"pod {pod.key} is already defined by {names[pod.key]}"
            result["errors"] = [{"field": "metadata.name", "message": message}]
            return result
        names[pod.key] = file
        result["ok"] = True
        return result

    def lines(result: dict[str, Any]) -> list[str]:
        if result["ok"]:
            return [f"{result['file']}: ok (pod {result['pod']})"]
        return [
            f"{result['file']}: {e['field']}: {e['message']}"
            if e["field"]
            else f"{result['file']}: {e['message']}"
            for e in result["errors"]
        ]

    if isinstance(sys.stdout, io.TextIOWrapper):
        # Messages quote manifest text; a terminal that cannot show it gets escapes.
        sys.stdout.reconfigure(errors="backslashreplace")
    node = args.node_name or socket.gethostname()
    names: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    try:
        for path in _expand_paths(args.paths):
            result = check(path, names)
            results.append(result)
            if args.output == "text":
                for line in lines(result):
                    print(line)
        if args.output == "json":
            print(json.dumps(results, indent=2))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, without a second error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    return 0 if all(r["ok"] for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command in client_commands.COMMANDS:
        return client_commands.run(args)
    return _validate(args)


if __name__ == "__main__":
    raise SystemExit(main())
