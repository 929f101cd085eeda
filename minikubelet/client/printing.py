"""What ``kubectl get`` and ``kubectl events`` print, from API objects; pure functions.

A server Table is printed as kubectl prints one (``printers.HumanReadablePrinter``):
upper-case headers, ``priority > 0`` columns only when wide, a NAMESPACE column
first for ``-A`` taken from each row's object. ``pod_row`` is kubectl's own
``printPod``, for a server that answers with plain objects instead of a Table.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from minikubelet.client.tabwriter import table_text
from minikubelet.util.timefmt import human_duration

Obj = Mapping[str, Any]

POD_COLUMNS = ("Name", "Ready", "Status", "Restarts", "Age")
POD_WIDE_COLUMNS = ("IP", "Node", "Nominated Node", "Readiness Gates")


def parse_time(value: object) -> float | None:
    """An API timestamp (RFC 3339, any precision) as epoch seconds; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, frac = text.partition(".")
        digits = "".join(c for c in frac if c.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{frac[len(digits) :]}"
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def since(value: object, now: float) -> str:
    """kubectl's ``translateTimestampSince``: ``<unknown>`` for a missing time."""
    ts = parse_time(value)
    return "<unknown>" if ts is None else human_duration(now - ts)


def _cell(value: object) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    # kubectl cuts a cell at its first line break, so one row stays one line.
    for i, c in enumerate(text):
        if c in "\r\n\f":
            return text[:i] + "..."
    return text


def table_rows(
    table: Obj, *, wide: bool, all_namespaces: bool, headers: bool = True
) -> list[list[str]]:
    """The rows (and header) kubectl prints for a server Table."""
    columns = list(table.get("columnDefinitions") or [])
    shown = [i for i, c in enumerate(columns) if wide or not int(c.get("priority") or 0)]
    out: list[list[str]] = []
    if headers:
        head = [str(columns[i].get("name", "")).upper() for i in shown]
        out.append((["NAMESPACE"] if all_namespaces else []) + head)
    for row in table.get("rows") or []:
        cells = list(row.get("cells") or [])
        line = [_cell(cells[i]) if i < len(cells) else "" for i in shown]
        if all_namespaces:
            meta = (row.get("object") or {}).get("metadata") or {}
            line.insert(0, str(meta.get("namespace") or ""))
        out.append(line)
    return out


def _terminated_at(status: Obj) -> float | None:
    last = ((status.get("lastState") or {}).get("terminated")) or {}
    return parse_time(last.get("finishedAt"))


def _restartable(container: Obj | None) -> bool:
    return bool(container) and (container or {}).get("restartPolicy") == "Always"


def pod_row(pod: Obj, *, now: float, wide: bool = False) -> list[str]:
    """kubectl's ``printPod``: NAME READY STATUS RESTARTS AGE [IP NODE NOMINATED NODE
    READINESS GATES], with its rules for the STATUS word."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(
        1 for c in init_specs.values() if _restartable(c)
    )
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        finished = _terminated_at(cs)
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished
        sidecar = _restartable(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            if finished is not None and (
                last_sidecar_restart is None or finished > last_sidecar_restart
            ):
                last_sidecar_restart = finished
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode')}"
        elif waiting is not None and waiting.get("reason") not in (None, "", "PodInitializing"):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions
    )
    if not initializing or initialized:
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            finished = _terminated_at(cs)
            if finished is not None and (last_restart is None or finished > last_restart):
                last_restart = finished
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode')}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_condition = any(c.get("type") == "Ready" for c in conditions)
            reason = "Running" if ready_condition else "NotReady"

    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    row = [
        str(meta.get("name") or ""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        since(meta.get("creationTimestamp"), now),
    ]
    if wide:
        ips = status.get("podIPs") or []
        gates = spec.get("readinessGates") or []
        gates_text = "<none>"
        if gates:
            true = 0
            for gate in gates:
                for cond in conditions:
                    if cond.get("type") == gate.get("conditionType"):
                        true += cond.get("status") == "True"
                        break
            gates_text = f"{true}/{len(gates)}"
        row += [
            (ips[0].get("ip") if ips else "") or "<none>",
            spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>",
            gates_text,
        ]
    return row


def pod_rows(
    pods: Sequence[Obj], *, now: float, wide: bool, all_namespaces: bool
) -> list[list[str]]:
    """Header and rows for pods printed on the client (when the server sends no Table)."""
    names = POD_COLUMNS + (POD_WIDE_COLUMNS if wide else ())
    out = [(["NAMESPACE"] if all_namespaces else []) + [n.upper() for n in names]]
    for pod in pods:
        row = pod_row(pod, now=now, wide=wide)
        if all_namespaces:
            row.insert(0, str((pod.get("metadata") or {}).get("namespace") or ""))
        out.append(row)
    return out


def as_list(items: Sequence[Obj]) -> dict[str, Any]:
    """Several objects as kubectl prints them with -o json|yaml: a v1 ``List``."""
    return {
        "apiVersion": "v1",
        "items": list(items),
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def dump_json(obj: object) -> str:
    """As kubectl's JSON printer: four-space indent, keys sorted (Go maps)."""
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


class _GoEmitter(yaml.emitter.Emitter):
    """go-yaml's choice of quotes: double where PyYAML would pick single."""

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


class _GoDumper(
    _GoEmitter,
    yaml.serializer.Serializer,
    yaml.representer.SafeRepresenter,
    yaml.resolver.Resolver,
):
    def __init__(self, stream: Any, **kwargs: Any) -> None:
        _GoEmitter.__init__(
            self, stream, width=kwargs.get("width"), allow_unicode=kwargs.get("allow_unicode")
        )
        yaml.serializer.Serializer.__init__(self)
        yaml.representer.SafeRepresenter.__init__(
            self,
            default_style=kwargs.get("default_style"),
            default_flow_style=kwargs.get("default_flow_style", False),
            sort_keys=kwargs.get("sort_keys", True),
        )
        yaml.resolver.Resolver.__init__(self)


def _represent_str(dumper: yaml.representer.SafeRepresenter, value: str) -> yaml.Node:
    # Multi-line text as a literal block (``|-``), as go-yaml writes it.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoDumper.add_representer(str, _represent_str)


def dump_yaml(obj: object) -> str:
    """As kubectl's YAML printer (sigs.k8s.io/yaml over go-yaml): keys sorted, block
    style, double quotes where quotes are needed, multi-line text as literal blocks,
    no line folding."""
    text: str = yaml.dump(
        obj,
        Dumper=_GoDumper,
        default_flow_style=False,
        sort_keys=True,
        allow_unicode=True,
        width=1 << 30,
    )
    return text


def event_interval(event: Obj, now: float) -> str:
    """The age of an event as kubectl prints it: ``5s``, or ``5s (x3 over 2m)``."""
    first = since(event.get("eventTime"), now)
    if not event.get("eventTime"):
        first = since(event.get("firstTimestamp"), now)
    series = event.get("series")
    if series:
        return f"{since(series.get('lastObservedTime'), now)} (x{series.get('count')} over {first})"
    count = int(event.get("count") or 0)
    if count > 1:
        return f"{since(event.get('lastTimestamp'), now)} (x{count} over {first})"
    return first


def event_time(event: Obj) -> float:
    """What kubectl sorts events by: the series' last time, the last time seen, else
    the event time."""
    series = event.get("series") or {}
    for value in (series.get("lastObservedTime"), event.get("lastTimestamp")):
        ts = parse_time(value)
        if ts is not None:
            return ts
    return parse_time(event.get("eventTime")) or 0.0


def event_row(event: Obj, *, now: float, all_namespaces: bool) -> list[str]:
    """A line of ``kubectl events``: LAST SEEN TYPE REASON OBJECT MESSAGE."""
    involved = event.get("involvedObject") or {}
    row = [
        event_interval(event, now),
        str(event.get("type") or ""),
        str(event.get("reason") or ""),
        f"{involved.get('kind', '')}/{involved.get('name', '')}",
        str(event.get("message") or "").strip(),
    ]
    if all_namespaces:
        row.insert(0, str((event.get("metadata") or {}).get("namespace") or ""))
    return row


EVENT_HEADER = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def event_rows(events: Sequence[Obj], *, now: float, all_namespaces: bool) -> list[list[str]]:
    header = (["NAMESPACE"] if all_namespaces else []) + EVENT_HEADER
    ordered = sorted(events, key=event_time)
    return [header] + [event_row(e, now=now, all_namespaces=all_namespaces) for e in ordered]


__all__ = [
    "as_list",
    "dump_json",
    "dump_yaml",
    "event_rows",
    "pod_row",
    "pod_rows",
    "table_rows",
    "table_text",
]
