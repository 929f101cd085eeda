"""The agent's own log: its format (text or JSON), its level, and both changed on SIGHUP.

Text is for people: ``time LEVEL logger: message``. JSON is an object per
line (``time``, ``level``, ``logger``, ``message``, ``exc_info``), written by
python-json-logger, for journald and log collectors.

Under journald (``$JOURNAL_STREAM`` names our stderr) each line starts with
the syslog priority, ``<3>`` for an error, which journald strips and keeps as
the entry's priority (so ``journalctl -p warning`` works); the text format then
leaves the time out, since journald stamps every entry itself.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

# sd-daemon(3)'s SD_ERR ... SD_DEBUG.
_PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def syslog_priority(levelno: int) -> int:
    for level in sorted(_PRIORITIES, reverse=True):
        if levelno >= level:
            return _PRIORITIES[level]
    return 7


class _JournalPrefix(logging.Formatter):
    """Wraps a formatter and puts ``<priority>`` before every line it formats."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        # A traceback spans lines; journald takes each line as an entry of its own.
        return "\n".join(prefix + line for line in self._inner.format(record).split("\n"))


def stream_is_journal(stream: TextIO, env: dict[str, str] | None = None) -> bool:
    """True when ``stream`` is the journald stream systemd connected (``$JOURNAL_STREAM``)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return st.st_dev == int(device) and st.st_ino == int(inode)


def make_formatter(log_format: str, *, journal: bool) -> logging.Formatter:
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    else:
        formatter = logging.Formatter(JOURNAL_TEXT_FORMAT if journal else TEXT_FORMAT)
    return _JournalPrefix(formatter) if journal else formatter


class AgentLogging:
    """The root logger's one handler, kept so that SIGHUP can change format and level."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._journal = stream_is_journal(self._stream)
        self.handler = logging.StreamHandler(self._stream)

    def configure(self, *, level: str, log_format: str) -> None:
        self.handler.setFormatter(make_formatter(log_format, journal=self._journal))
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        root.setLevel(level.upper())
