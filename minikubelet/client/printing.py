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
from minikubelet.server.podprint import pod_cells
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


def pod_row(pod: Obj, *, now: float, wide: bool = False) -> list[str]:
    """kubectl's ``printPod``: NAME READY STATUS RESTARTS AGE [IP NODE NOMINATED NODE
    READINESS GATES], computed by the same code as the server's Table rows."""
    cells = pod_cells(pod, now)
    return cells if wide else cells[: len(POD_COLUMNS)]


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
