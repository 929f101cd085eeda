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
