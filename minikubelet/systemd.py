"""Telling systemd how the agent is doing: sd_notify, and the watchdog it asks for.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written ``@name``).
It is a dozen lines, and the kept Python bindings (``systemd-python``,
``cysystemd``) build against libsystemd's headers, which a plain ``pip
install`` cannot count on; so it is written here.

Nothing here may fail or block the agent: without ``$NOTIFY_SOCKET`` every
call does nothing, and a send that fails (no listener, a full queue) is
logged at DEBUG once and forgotten. systemd's own clients do the same.

The watchdog is petted from the event loop, so a loop that is wedged stops
petting by itself; it is also petted only while the agent's liveness checks
pass, so a part that is alive but stuck (its check failing) gets the agent
restarted too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

# Petting more often than half the interval buys nothing; less often risks a miss.
WATCHDOG_FRACTION = 0.5
# How often the STATUS= line is recomputed (sent only when its text changes).
STATUS_PERIOD = 2.0


def notify_address(env: Mapping[str, str]) -> str | bytes | None:
    """The address of ``$NOTIFY_SOCKET`` for ``sendto``, or None when absent or unusable."""
    value = env.get("NOTIFY_SOCKET", "")
    if value.startswith("@") and len(value) > 1:
        # Abstract namespace: a leading NUL instead of the '@'.
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return value
    return None


def watchdog_period(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds of ``$WATCHDOG_USEC`` when it is meant for process ``pid``, else None.

    systemd sets ``WATCHDOG_PID`` so that a child inheriting the environment
    does not take the watchdog for its own.
    """
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    return int(usec) / 1_000_000


def format_message(fields: Mapping[str, str | int]) -> bytes:
    """``KEY=value`` lines; a newline in a value would start a forged field, so it is a space."""
    lines = (f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items())
    return "\n".join(lines).encode("utf-8", "replace")


class Notifier:
    def __init__(self, address: str | bytes | None) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        return cls(notify_address(os.environ if env is None else env))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message; True if it left. Never raises, never blocks."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(format_message(fields), self._address)
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.debug("sd_notify to %r failed: %s (not logged again)", self._address, e)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# None when the agent is alive and well, else why not (a failed liveness check).
Liveness = Callable[[], Awaitable[str | None]]


class Watchdog:
    """Pets systemd's watchdog every half ``period`` while ``alive()`` says so."""

    def __init__(self, notifier: Notifier, *, period: float, alive: Liveness) -> None:
        self._notifier = notifier
        self._period = period
        self._alive = alive
        self._failing: str | None = None

    async def pet_once(self) -> bool:
        """One check and, if alive, one WATCHDOG=1; True if it petted.

        The check is bounded by the pet interval: a check that hangs is a
        wedged agent, so it counts as a failure rather than delaying the pet.
        """
        try:
            reason = await asyncio.wait_for(self._alive(), self._period * WATCHDOG_FRACTION)
        except TimeoutError:
            reason = "the liveness check did not answer in time"
        except Exception as e:
            reason = f"the liveness check raised {type(e).__name__}"
        if reason is not None:
            if reason != self._failing:
                log.error("not petting the systemd watchdog: %s", reason)
            self._failing = reason
            return False
        if self._failing is not None:
            log.info("liveness is back; petting the systemd watchdog again")
            self._failing = None
        return self._notifier.send(WATCHDOG=1)

    async def run(self) -> None:
        interval = self._period * WATCHDOG_FRACTION
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.pet_once()
            # A slow check must not stretch the interval past what systemd allows.
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))


async def report_status(notifier: Notifier, text: Callable[[], Awaitable[str]]) -> None:
    """Keep ``STATUS=`` current: recomputed every STATUS_PERIOD, sent when it changes."""
    last = ""
    while True:
        current = await text()
        if current != last:
            notifier.send(STATUS=current)
            last = current
        await asyncio.sleep(STATUS_PERIOD)
