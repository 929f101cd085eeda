"""Timestamps in the forms the Kubernetes API uses, and parsing of Docker's."""

from __future__ import annotations

import datetime


def rfc3339(ts: float) -> str:
    """Whole seconds in UTC, as API timestamps (``metav1.Time``) are serialised."""
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: float) -> str:
    """Microsecond precision (``metav1.MicroTime``), e.g. for lease renewals."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano_local(ts: float) -> str:
    """Local time with nanoseconds, the form of ``kubernetes.io/config.seen``."""
    dt = datetime.datetime.fromtimestamp(ts).astimezone()
    nanos = round((ts - int(ts)) * 1e9) % 1_000_000_000
    offset = dt.strftime("%z")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}" + f"{offset[:3]}:{offset[3:]}"


def parse_docker_time(value: str | None) -> float | None:
    """Docker's RFC 3339 nano timestamps; ``None`` for its zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.rstrip("Z")
    offset = "+00:00"
    for sign in ("+", "-"):
        idx = text.rfind(sign)
        if idx > 10:
            text, offset = text[:idx], text[idx:]
            break
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    dt = datetime.datetime.fromisoformat(text + offset)
    return dt.timestamp()


def human_duration(seconds: float) -> str:
    """An age as kubectl prints it (apimachinery's ``duration.HumanDuration``): exact
    seconds under two minutes, then coarser the older it is (``5m3s``, ``3h``, ``12d``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def go_duration(seconds: float) -> str:
    """A duration truncated to milliseconds, as Go's ``Duration.String`` prints it
    (``523ms``, ``1.234s``, ``2m3.5s``, ``1h0m0s``): the kubelet's image pull events."""
    ms = int(seconds * 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, frac = divmod(rest, 1000)
    text = f"{secs}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text
