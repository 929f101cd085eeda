"""``minikubelet get|describe|logs|events|version``: arguments, requests, printing.

Each command is kubectl's, with its words and exit codes: the output on
stdout, errors as one line on stderr and exit 1, Ctrl-C exit 130 with no
traceback. Tables come from the server (``as=Table``) as kubectl asks for
them; an agent that answers with plain objects, or lacks ``/api/v1`` (an older
agent), is printed on the client with kubectl's own rules instead.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from minikubelet import __version__
from minikubelet.client import describe as describing
from minikubelet.client import printing
from minikubelet.client.http import (
    DEFAULT_SERVER,
    TABLE_ACCEPT,
    ApiError,
    ClientError,
    Connection,
    read_token,
)
from minikubelet.client.tabwriter import table_text

Obj = Mapping[str, Any]

# Resource names kubectl takes for the kinds the agent serves: (plural, kind, namespaced).
RESOURCES: dict[str, tuple[str, str, bool]] = {}
for _names, _kind, _namespaced in (
    (("pods", "pod", "po"), "Pod", True),
    (("events", "event", "ev"), "Event", True),
    (("nodes", "node", "no"), "Node", False),
):
    for _name in _names:
        RESOURCES[_name] = (_names[0], _kind, _namespaced)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``30s``, ``5m``, ``1h30m``) in seconds; ValueError if it is none."""
    if text in ("0", ""):
        return 0.0
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 30s, 5m, 1h")
    return total


# --- arguments ---


def _connection_options() -> argparse.ArgumentParser:
    """The options every client command takes, as kubectl's global flags."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "-s",
        "--server",
        default=os.environ.get("MINIKUBELET_SERVER", DEFAULT_SERVER),
        help=f"the agent's address (default {DEFAULT_SERVER}, or $MINIKUBELET_SERVER)",
    )
    group.add_argument("--token", help="bearer token for the agent (see run --auth-token-file)")
    group.add_argument("--token-file", help="file holding the bearer token")
    group.add_argument(
        "--certificate-authority", help="CA certificate file to verify an https server with"
    )
    group.add_argument("--client-certificate", help="client certificate file for TLS")
    group.add_argument("--client-key", help="client key file for TLS")
    group.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        help="do not verify the server's certificate (insecure)",
    )
    group.add_argument(
        "--request-timeout",
        default="30s",
        help="how long to wait for an answer, e.g. 30s, 1m (default 30s; follows have none)",
    )
    return common


def _namespace_options(parser: argparse.ArgumentParser, *, all_namespaces: bool = True) -> None:
    parser.add_argument(
        "-n", "--namespace", default="default", help="the namespace (default: default)"
    )
    if all_namespaces:
        parser.add_argument(
            "-A",
            "--all-namespaces",
            action="store_true",
            help="every namespace (a NAMESPACE column is added)",
        )


class CommandParser(argparse.ArgumentParser):
    """``minikubelet``'s subcommand parser: ``kubectl_usage=True`` (the client commands)
    makes a usage error kubectl's two lines and exit 1; the agent's commands keep
    argparse's exit 2."""

    def __init__(self, *args: Any, kubectl_usage: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kubectl_usage = kubectl_usage

    def error(self, message: str) -> NoReturn:
        if not self.kubectl_usage:
            super().error(message)
        self.exit(1, f"error: {message}\nSee '{self.prog} --help' for usage.\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self.kubectl_usage:
            # Left to the top-level parser, an unknown option would be its error (exit 2).
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def add_parsers(sub: Any) -> None:
    """Register the client commands on ``minikubelet``'s subcommand parser, which must
    have been made with ``parser_class=CommandParser``."""
    add = functools.partial(sub.add_parser, kubectl_usage=True)
    common = _connection_options()
    fmt = argparse.RawDescriptionHelpFormatter

    get = add(
        "get",
        parents=[common],
        formatter_class=fmt,
        help="list pods (or events, nodes) as kubectl get does",
        description="List pods, events or nodes of the agent, as `kubectl get` does.",
        epilog="examples:\n  minikubelet get pods -A\n  minikubelet get pod web-node1 -o yaml\n"
        "  minikubelet get pods -l app=web -o wide",
    )
    get.add_argument("resource", help="pods (pod, po), events (ev) or nodes (no); or pod/NAME")
    get.add_argument("names", nargs="*", metavar="NAME", help="names to get (default: all)")
    _namespace_options(get)
    get.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    get.add_argument("--field-selector", help="field selector, e.g. status.phase=Running")
    get.add_argument(
        "-o",
        "--output",
        choices=("wide", "json", "yaml", "name"),
        help="wide (more columns), json, yaml or name (kind/name)",
    )
    get.add_argument("--no-headers", action="store_true", help="print no header line")
    get.add_argument("--show-labels", action="store_true", help="add a LABELS column")

    desc = add(
        "describe",
        parents=[common],
        formatter_class=fmt,
        help="show a pod in detail, with its events, as kubectl describe does",
        description="Show pods in detail (containers, conditions, volumes, events), "
        "as `kubectl describe pod` does.",
        epilog="examples:\n  minikubelet describe pod web-node1\n"
        "  minikubelet describe pods -l app=web",
    )
    desc.add_argument("resource", help="pods (pod, po), or pod/NAME")
    desc.add_argument("names", nargs="*", metavar="NAME", help="pod names (default: all)")
    _namespace_options(desc)
    desc.add_argument("-l", "--selector", help="label selector, when no name is given")
    desc.add_argument(
        "--show-events",
        default="true",
        choices=("true", "false"),
        help="show the pod's events (default true)",
    )

    logs = add(
        "logs",
        parents=[common],
        formatter_class=fmt,
        help="print a container's logs",
        description="Print the logs of a container of a pod, as `kubectl logs` does.",
        epilog="examples:\n  minikubelet logs web-node1\n  minikubelet logs web-node1 -c app -f\n"
        "  minikubelet logs web-node1 --previous --tail 20",
    )
    logs.add_argument("pod", help="pod name (or pod/NAME)")
    logs.add_argument("container_arg", nargs="?", metavar="CONTAINER", help="same as -c")
    _namespace_options(logs, all_namespaces=False)
    logs.add_argument(
        "-c", "--container", help="container name (default: the pod's only or default one)"
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="stream the logs until the container ends"
    )
    logs.add_argument(
        "--tail", type=int, default=-1, help="lines from the end to show (default -1: all)"
    )
    logs.add_argument(
        "-p",
        "--previous",
        action="store_true",
        help="the logs of the previous (dead) instance of the container",
    )
    logs.add_argument(
        "--timestamps", action="store_true", help="start each line with its RFC 3339 time"
    )
    logs.add_argument(
        "--since", help="only logs newer than this duration, e.g. 10s, 5m, 1h (whole seconds)"
    )
    logs.add_argument("--since-time", help="only logs after this RFC 3339 time")
    logs.add_argument("--limit-bytes", type=int, help="stop after this many bytes")

    events = add(
        "events",
        parents=[common],
        formatter_class=fmt,
        help="list events, as kubectl events does",
        description="List the events the agent recorded, oldest first, as `kubectl events` does.",
        epilog="examples:\n  minikubelet events -A\n  minikubelet events --for pod/web-node1 -w",
    )
    _namespace_options(events)
    events.add_argument("--for", dest="for_object", metavar="KIND/NAME", help="only this object's")
    events.add_argument(
        "--types", help="only these types, comma-separated: Normal, Warning (default all)"
    )
    events.add_argument(
        "-w", "--watch", action="store_true", help="after the list, print new events as they come"
    )
    events.add_argument("-o", "--output", choices=("json", "yaml"), help="json or yaml")
    events.add_argument("--no-headers", action="store_true", help="print no header line")

    version = add(
        "version",
        parents=[common],
        help="print the client's and the agent's versions",
        description="Print the client version and the version the agent reports at /version.",
    )
    version.add_argument("--client", action="store_true", help="the client's version only")
    version.add_argument("-o", "--output", choices=("json", "yaml"), help="json or yaml")


COMMANDS = ("get", "describe", "logs", "events", "version")


def run(args: argparse.Namespace) -> int:
    """Run a client command; one line on stderr and exit 1 on any failure, 130 on Ctrl-C."""
    handler: Callable[[Connection, argparse.Namespace], int] = {
        "get": _get,
        "describe": _describe,
        "logs": _logs,
        "events": _events,
        "version": _version,
    }[args.command]
    try:
        return handler(_connection(args), args)
    except ClientError as e:
        _flush_quietly()
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, without a second error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _flush_quietly() -> None:
    with contextlib.suppress(OSError):
        sys.stdout.flush()


def _connection(args: argparse.Namespace) -> Connection:
    server = str(args.server)
    if "://" not in server:
        server = "http://" + server
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ClientError(f"error: --server {args.server!r}: expected http(s)://HOST:PORT")
    try:
        timeout = parse_duration(args.request_timeout) or 30.0
    except ValueError as e:
        raise ClientError(f"error: --request-timeout: {e}") from None
    return Connection(
        server=server,
        token=read_token(args.token, args.token_file),
        certificate_authority=args.certificate_authority,
        client_certificate=args.client_certificate,
        client_key=args.client_key,
        insecure=args.insecure_skip_tls_verify,
        timeout=timeout,
    )


def _resource(text: str, names: Sequence[str]) -> tuple[str, str, bool, list[str]]:
    """``pods``/``pod/NAME`` and names into (plural, kind, namespaced, names)."""
    kind_text, slash, name = text.partition("/")
    found = RESOURCES.get(kind_text.lower())
    if found is None:
        raise ClientError(
            f'error: the server doesn\'t have a resource type "{kind_text}" '
            "(this agent serves pods, events and nodes)"
        )
    plural, kind, namespaced = found
    all_names = ([name] if slash else []) + list(names)
    if slash and not name:
        raise ClientError(
            "error: arguments in resource/name form must have a single resource and name"
        )
    return plural, kind, namespaced, all_names


def _collection_path(plural: str, namespaced: bool, namespace: str | None) -> str:
    if namespaced and namespace is not None:
        return f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/{plural}"
    return f"/api/v1/{plural}"


def _object_path(plural: str, namespaced: bool, namespace: str, name: str) -> str:
    base = _collection_path(plural, namespaced, namespace)
    return f"{base}/{urllib.parse.quote(name, safe='')}"


def _missing_api(error: ApiError) -> bool:
    """A 404 not in the API's words: the agent has no such path (an older agent)."""
    return error.code == 404 and not error.is_status


# --- pods without /api/v1: the agent's /pods list, filtered here ---


def _legacy_pods(conn: Connection, namespace: str | None, selector: str | None) -> list[Obj]:
    from minikubelet.server.errors import StatusError
    from minikubelet.server.selectors import matches_labels, parse_label_selector

    try:
        requirements = parse_label_selector(selector) if selector else []
    except StatusError as e:
        raise ClientError(f"error: --selector: {e.message}") from None
    body = conn.get_json("/pods")
    return [
        {"apiVersion": "v1", "kind": "Pod", **item}
        for item in body.get("items") or []
        if (namespace is None or (item.get("metadata") or {}).get("namespace") == namespace)
        and matches_labels(requirements, (item.get("metadata") or {}).get("labels") or {})
    ]


def _not_found(plural: str, name: str) -> ClientError:
    return ClientError(f'Error from server (NotFound): {plural} "{name}" not found')


# --- get ---


def _get(conn: Connection, args: argparse.Namespace) -> int:
    plural, kind, namespaced, names = _resource(args.resource, args.names)
    everywhere = args.all_namespaces and namespaced
    namespace = None if everywhere else args.namespace
    if names and everywhere:
        # kubectl allows it but finds nothing by name across namespaces; say so as it does.
        raise ClientError("error: a resource cannot be retrieved by name across all namespaces")
    query: dict[str, str] = {}
    if args.selector:
        query["labelSelector"] = args.selector
    if args.field_selector:
        query["fieldSelector"] = args.field_selector
    structured = args.output in ("json", "yaml", "name")
    objects: list[Obj] = []
    tables: list[Obj] = []
    errors: list[str] = []
    accept = "application/json" if structured else TABLE_ACCEPT
    targets = [_object_path(plural, namespaced, args.namespace, n) for n in names] or [
        _collection_path(plural, namespaced, namespace)
    ]
    wanted: list[str | None] = list(names) or [None]
    for name, path in zip(wanted, targets, strict=True):
        try:
            body = conn.get_json(path, None if name else query, accept=accept)
        except ApiError as e:
            if _missing_api(e) and plural == "pods":
                body = _legacy_get(conn, namespace, args.selector, name, args.field_selector)
                if body is None:
                    errors.append(str(_not_found(plural, name or "")))
                    continue
            elif name is not None and e.is_status:
                errors.append(str(e))
                continue
            else:
                raise
        if body.get("kind") == "Table":
            tables.append(body)
        elif name is not None:
            objects.append({"apiVersion": "v1", "kind": kind, **body})
        else:
            objects.extend(
                {"apiVersion": "v1", "kind": kind, **item} for item in body.get("items") or []
            )
    _print_get(
        args, plural=plural, kind=kind, single=len(names) == 1, objects=objects, tables=tables
    )
    count = len(objects) + sum(len(t.get("rows") or []) for t in tables)
    if count == 0 and not errors and not names:
        where = f" in {args.namespace} namespace" if namespace is not None and namespaced else ""
        print(f"No resources found{where}.", file=sys.stderr)
    for line in errors:
        print(line, file=sys.stderr)
    return 1 if errors else 0


def _legacy_get(
    conn: Connection,
    namespace: str | None,
    selector: str | None,
    name: str | None,
    field_selector: str | None,
) -> dict[str, Any] | None:
    if field_selector:
        raise ClientError(
            f"error: --field-selector needs /api/v1 on the agent, which {conn.host} lacks"
        )
    pods = _legacy_pods(conn, namespace, None if name else selector)
    if name is None:
        return {"kind": "PodList", "items": pods}
    for pod in pods:
        if (pod.get("metadata") or {}).get("name") == name:
            return dict(pod)
    return None


def _print_get(
    args: argparse.Namespace,
    *,
    plural: str,
    kind: str,
    single: bool,
    objects: list[Obj],
    tables: list[Obj],
) -> None:
    now = time.time()
    out = sys.stdout
    if args.output == "name":
        for obj in objects:
            out.write(f"{kind.lower()}/{(obj.get('metadata') or {}).get('name', '')}\n")
        return
    if args.output in ("json", "yaml"):
        if not objects and single:
            return
        shown: object = objects[0] if single else printing.as_list(objects)
        out.write(printing.dump_json(shown) if args.output == "json" else printing.dump_yaml(shown))
        return
    wide = args.output == "wide"
    everywhere = bool(args.all_namespaces)
    rows: list[list[str]] = []
    labels: list[Obj] = []
    for table in tables:
        part = printing.table_rows(table, wide=wide, all_namespaces=everywhere)
        rows.extend(part if not rows else part[1:])
        labels.extend(
            ((r.get("object") or {}).get("metadata") or {}).get("labels") or {}
            for r in table.get("rows") or []
        )
    if objects:
        if plural == "pods":
            part = printing.pod_rows(objects, now=now, wide=wide, all_namespaces=everywhere)
        elif plural == "events":
            part = printing.event_rows(objects, now=now, all_namespaces=everywhere)
        else:
            part = [["NAME"]] + [[str((o.get("metadata") or {}).get("name", ""))] for o in objects]
        rows.extend(part if not rows else part[1:])
        labels.extend((o.get("metadata") or {}).get("labels") or {} for o in objects)
    if len(rows) <= 1:
        return
    if args.show_labels:
        rows[0].append("LABELS")
        for row, row_labels in zip(rows[1:], labels, strict=False):
            text = ",".join(f"{k}={v}" for k, v in sorted(row_labels.items()))
            row.append(text or "<none>")
    if args.no_headers:
        rows = rows[1:]
    out.write(table_text(rows))


# --- describe ---


def _describe(conn: Connection, args: argparse.Namespace) -> int:
    plural, _, _, names = _resource(args.resource, args.names)
    if plural != "pods":
        raise ClientError(f"error: describe shows pods only; {plural} are listed by get")
    everywhere = args.all_namespaces
    pods: list[Obj] = []
    errors: list[str] = []
    if names:
        for name in names:
            try:
                pods.append(conn.get_json(_object_path("pods", True, args.namespace, name)))
            except ApiError as e:
                if not _missing_api(e):
                    errors.append(str(e))
                    continue
                found = _legacy_get(conn, args.namespace, None, name, None)
                if found is None:
                    errors.append(str(_not_found("pods", name)))
                else:
                    pods.append(found)
    else:
        namespace = None if everywhere else args.namespace
        query = {"labelSelector": args.selector} if args.selector else None
        try:
            body = conn.get_json(_collection_path("pods", True, namespace), query)
            pods.extend(body.get("items") or [])
        except ApiError as e:
            if not _missing_api(e):
                raise
            pods.extend(_legacy_pods(conn, namespace, args.selector))
        if not pods:
            where = "" if everywhere else f" in {args.namespace} namespace"
            print(f"No resources found{where}.", file=sys.stderr)
    now = time.time()
    for i, pod in enumerate(pods):
        events = _pod_events(conn, pod) if args.show_events == "true" else None
        text = describing.describe_pod(pod, events, now=now)
        sys.stdout.write(text if i == 0 else "\n\n" + text)
        sys.stdout.flush()
    for line in errors:
        print(line, file=sys.stderr)
    return 1 if errors else 0


def _pod_events(conn: Connection, pod: Obj) -> list[Obj] | None:
    """The pod's events, selected as kubectl selects them; None when they cannot be read."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    terms = {
        "involvedObject.name": meta.get("name"),
        "involvedObject.namespace": namespace,
        "involvedObject.uid": meta.get("uid"),
    }
    selector = ",".join(f"{k}={_escape(str(v))}" for k, v in terms.items() if v)
    try:
        body = conn.get_json(
            _collection_path("events", True, namespace), {"fieldSelector": selector}
        )
    except ApiError:
        return None
    items: list[Obj] = body.get("items") or []
    return items


def _escape(value: str) -> str:
    """A field selector value: backslash, comma and equals sign escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


# --- logs ---


def _default_container(conn: Connection, namespace: str, name: str) -> str | None:
    """The container kubectl picks when none is named: the only one, else the
    ``kubectl.kubernetes.io/default-container`` annotation's, else the first (said on stderr)."""
    try:
        pod = conn.get_json(_object_path("pods", True, namespace, name))
    except ApiError as e:
        if not _missing_api(e):
            raise
        found = _legacy_get(conn, namespace, None, name, None)
        if found is None:
            raise _not_found("pods", name) from None
        pod = found
    spec = pod.get("spec") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    if len(containers) <= 1:
        return None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    chosen = annotations.get("kubectl.kubernetes.io/default-container")
    if chosen:
        return str(chosen)
    names = [f"{c.get('name')} (init)" for c in spec.get("initContainers") or []] + containers
    print(f'Defaulted container "{containers[0]}" out of: {", ".join(names)}', file=sys.stderr)
    return containers[0]


def _logs(conn: Connection, args: argparse.Namespace) -> int:
    pod = args.pod
    if "/" in pod:
        kind, _, pod = pod.partition("/")
        if RESOURCES.get(kind.lower(), ("",))[0] != "pods" or not pod:
            raise ClientError(f"error: logs are read from pods: {args.pod!r} is not pod/NAME")
    container = args.container or args.container_arg
    if args.container and args.container_arg:
        raise ClientError("error: give the container with -c or as an argument, not both")
    query: dict[str, str] = {}
    if args.follow:
        query["follow"] = "true"
    if args.previous:
        query["previous"] = "true"
    if args.timestamps:
        query["timestamps"] = "true"
    if args.tail is not None and args.tail >= 0:
        query["tailLines"] = str(args.tail)
    if args.limit_bytes is not None:
        if args.limit_bytes <= 0:
            raise ClientError("error: --limit-bytes must be greater than 0")
        query["limitBytes"] = str(args.limit_bytes)
    if args.since and args.since_time:
        raise ClientError("error: at most one of --since or --since-time may be given")
    if args.since:
        try:
            seconds = parse_duration(args.since)
        except ValueError as e:
            raise ClientError(f"error: --since: {e}") from None
        if seconds <= 0:
            raise ClientError("error: --since must be greater than 0")
        query["sinceSeconds"] = str(max(1, int(seconds + 0.999)))
    if args.since_time:
        if printing.parse_time(args.since_time) is None:
            raise ClientError(f"error: --since-time: {args.since_time!r} is not an RFC 3339 time")
        query["sinceTime"] = args.since_time
    if container is None:
        container = _default_container(conn, args.namespace, pod)
    if container:
        query["container"] = container
    path = _object_path("pods", True, args.namespace, pod) + "/log"
    out = sys.stdout.buffer
    for chunk in conn.stream(path, query):
        out.write(chunk)
        out.flush()
    return 0


# --- events ---


def _events(conn: Connection, args: argparse.Namespace) -> int:
    terms: list[str] = []
    if args.for_object:
        kind_text, slash, name = args.for_object.partition("/")
        found = RESOURCES.get(kind_text.lower())
        if not slash or not name or found is None:
            raise ClientError(
                f"error: --for {args.for_object!r}: expected KIND/NAME, e.g. pod/web-node1"
            )
        terms += [f"involvedObject.kind={found[1]}", f"involvedObject.name={_escape(name)}"]
    types = [t.strip() for t in (args.types or "").split(",") if t.strip()]
    for t in types:
        if t.lower() not in ("normal", "warning"):
            raise ClientError(f"error: --types: {t!r} is neither Normal nor Warning")
    wanted = {t.capitalize() for t in types}
    namespace = None if args.all_namespaces else args.namespace
    path = _collection_path("events", True, namespace)
    query = {"fieldSelector": ",".join(terms)} if terms else {}
    body = conn.get_json(path, query)
    items = [
        {"apiVersion": "v1", "kind": "Event", **e}
        for e in body.get("items") or []
        if not wanted or e.get("type") in wanted
    ]
    everywhere = bool(args.all_namespaces)
    if args.output:
        shown = printing.as_list(sorted(items, key=printing.event_time))
        dump = printing.dump_json if args.output == "json" else printing.dump_yaml
        sys.stdout.write(dump(shown))
    elif items:
        rows = printing.event_rows(items, now=time.time(), all_namespaces=everywhere)
        sys.stdout.write(table_text(rows[1:] if args.no_headers else rows))
    elif not args.watch:
        where = "" if everywhere else f" in {args.namespace} namespace"
        print(f"No events found{where}.", file=sys.stderr)
    sys.stdout.flush()
    if args.watch:
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        _watch_events(conn, path, query, version, wanted=wanted, args=args, header=not items)
    return 0


def _watch_events(
    conn: Connection,
    path: str,
    query: Mapping[str, str],
    version: str,
    *,
    wanted: set[str],
    args: argparse.Namespace,
    header: bool,
) -> None:
    """Print events as the watch delivers them, each line aligned on its own, as kubectl's
    watch does (a table cannot be laid out before its rows are known)."""
    watch_query = {**query, "watch": "true", "allowWatchBookmarks": "true"}
    if version:
        watch_query["resourceVersion"] = version
    everywhere = bool(args.all_namespaces)
    header_row = (["NAMESPACE"] if everywhere else []) + printing.EVENT_HEADER
    for line in _watch_lines(conn, path, watch_query):
        kind = line.get("type")
        obj = line.get("object") or {}
        if kind == "ERROR":
            message = obj.get("message") or "the watch ended with an error"
            raise ClientError(f"Error from server ({obj.get('reason') or 'Unknown'}): {message}")
        if kind not in ("ADDED", "MODIFIED") or (wanted and obj.get("type") not in wanted):
            continue
        if args.output:
            obj = {"apiVersion": "v1", "kind": "Event", **obj}
            dump = printing.dump_json if args.output == "json" else printing.dump_yaml
            sys.stdout.write(dump(obj) if args.output == "json" else "---\n" + dump(obj))
        else:
            row = printing.event_row(obj, now=time.time(), all_namespaces=everywhere)
            rows = [header_row, row] if header and not args.no_headers else [row]
            header = False
            sys.stdout.write(table_text(rows))
        sys.stdout.flush()


def _watch_lines(conn: Connection, path: str, query: Mapping[str, str]) -> Iterator[Obj]:
    for raw in conn.lines(path, query):
        try:
            event = json.loads(raw)
        except ValueError:
            raise ClientError(
                f"error: the watch from {conn.host} sent a line that is not JSON"
            ) from None
        if isinstance(event, dict):
            yield event


# --- version ---


def _version(conn: Connection, args: argparse.Namespace) -> int:
    client = {
        "gitVersion": f"v{__version__}",
        "goVersion": f"python{platform.python_version()}",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }
    result: dict[str, Any] = {"clientVersion": client}
    error: ClientError | None = None
    if not args.client:
        try:
            result["serverVersion"] = conn.get_json("/version")
        except ClientError as e:
            error = e
    if args.output:
        dump = printing.dump_json if args.output == "json" else printing.dump_yaml
        sys.stdout.write(dump(result))
    else:
        print(f"Client Version: {client['gitVersion']}")
        if "serverVersion" in result:
            print(f"Server Version: {result['serverVersion'].get('gitVersion', '')}")
    if error is not None:
        raise error
    return 0
