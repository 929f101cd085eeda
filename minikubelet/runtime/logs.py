"""Container logs from Docker's log driver, streamed in bounded pieces.

The engine does the selecting (``tail``, ``since``, ``follow``,
``timestamps``); this module reads its answer a piece at a time, takes the
stream framing off (``LogDecoder``), writes timestamps as the kubelet prints
them and cuts the output at ``limit_bytes``. Nothing holds more than one
piece of a log, whatever its size.

A followed log can block for hours waiting for the next line, so reads run
in a pool of their own (``LogReader``), never in the executor's lanes that
pod work needs. The pool has one thread per stream allowed
(``max_streams``); past that ``open`` refuses. Each stream reads only when
its consumer asks for the next piece, so a client that reads slowly slows
the engine's stream instead of filling the agent's memory. Closing a stream
shuts its socket down, which frees a thread blocked in a read at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import select
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import docker
import requests

from minikubelet.errors import MinikubeletError, NotFoundError, RuntimeCallError
from minikubelet.runtime.executor import DockerExecutor, translate

log = logging.getLogger(__name__)

# Bytes asked of the engine per read, and so the most one stream holds at once.
PIECE = 64 * 1024
# Streams open at once: followers hold a thread each while they wait for lines.
MAX_STREAMS = 128
# Seconds to connect to the engine, and for a read of a log that is not followed.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# An error answer from the engine is read up to this many bytes.
ERROR_BODY_LIMIT = 16 * 1024

# Docker's multiplexed framing: stream type (1 byte), 3 zero bytes, payload length (big-endian).
_HEADER = struct.Struct(">BxxxL")
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
# A timestamp prefix is "2006-01-02T15:04:05.000000000Z07:00 "; longer is not one.
_STAMP_MAX = 48


class TooManyLogStreamsError(MinikubeletError):
    """Every log stream slot is taken; the client should retry later."""

    reason = "TooManyRequests"

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many log streams: {limit} are open, the most this agent serves")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class LogOptions:
    """What to read of a container's log, as the kubelet's PodLogOptions say it.

    ``since`` is a Unix time in seconds; ``tail`` a number of lines from the
    end (None: all); ``limit_bytes`` the most bytes of output (None: all).
    """

    follow: bool = False
    tail: int | None = None
    since: float | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


def kubelet_timestamp(stamp: bytes) -> bytes:
    """Docker's fixed nine fraction digits as Go's RFC3339Nano, which the kubelet prints:
    trailing zeros dropped, and the dot too when nothing is left."""
    dot = stamp.find(b".")
    if dot < 0:
        return stamp
    end = dot + 1
    while end < len(stamp) and 0x30 <= stamp[end] <= 0x39:
        end += 1
    digits = stamp[dot + 1 : end].rstrip(b"0")
    return stamp[:dot] + (b"." + digits if digits else b"") + stamp[end:]


class LogDecoder:
    """Turns the engine's log stream into what ``kubectl logs`` prints. Pure.

    ``multiplexed``: the stream is framed (a container without a TTY), each
    frame one log message; otherwise it is raw (TTY) and messages end at
    newlines. With ``timestamps`` each message starts with one, rewritten by
    ``kubelet_timestamp``. Output stops after ``limit_bytes``; ``done`` says so.
    """

    def __init__(
        self, *, multiplexed: bool, timestamps: bool, limit_bytes: int | None = None
    ) -> None:
        self._multiplexed = multiplexed
        self._timestamps = timestamps
        self._room = limit_bytes
        self._header = bytearray()
        self._left = 0  # payload bytes still to come in the current frame
        self._at_start = True  # the next payload byte begins a message
        self._stamp = bytearray()  # a timestamp prefix read in part

    @property
    def done(self) -> bool:
        return self._room == 0

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        if not self._multiplexed:
            self._payload(data, out)
            return bytes(out)
        pos, size = 0, len(data)
        while pos < size and self._room != 0:
            if self._left:
                take = min(self._left, size - pos)
                self._payload(data[pos : pos + take], out)
                pos += take
                self._left -= take
                continue
            if not self._header and pos + _HEADER.size <= size:
                # The usual case, a whole header in hand: no copy into the header buffer.
                _, self._left = _HEADER.unpack_from(data, pos)
                pos += _HEADER.size
            else:
                need = _HEADER.size - len(self._header)
                self._header += data[pos : pos + need]
                pos += need
                if len(self._header) < _HEADER.size:
                    break
                _, self._left = _HEADER.unpack(self._header)
                self._header.clear()
            if self._stamp:
                # The last message ended inside what looked like a timestamp: it was text.
                self._emit(bytes(self._stamp), out)
                self._stamp.clear()
            self._at_start = True
        return bytes(out)

    def _payload(self, data: bytes, out: bytearray) -> None:
        if not self._timestamps:
            self._emit(data, out)
            return
        pos, size = 0, len(data)
        while pos < size and self._room != 0:
            if self._at_start:
                space = data.find(b" ", pos)
                end = size if space < 0 else space + 1
                self._stamp += data[pos:end]
                pos = end
                if space >= 0:
                    self._emit(kubelet_timestamp(bytes(self._stamp[:-1])) + b" ", out)
                    self._stamp.clear()
                    self._at_start = False
                elif len(self._stamp) > _STAMP_MAX:
                    self._emit(bytes(self._stamp), out)
                    self._stamp.clear()
                    self._at_start = False
                continue
            if self._multiplexed:
                self._emit(data[pos:] if pos else data, out)
                return
            newline = data.find(b"\n", pos)
            end = size if newline < 0 else newline + 1
            self._emit(data[pos:end], out)
            pos = end
            self._at_start = newline >= 0

    def _emit(self, piece: bytes, out: bytearray) -> None:
        if self._room is None:
            out += piece
            return
        piece = piece[: self._room]
        out += piece
        self._room -= len(piece)


class ContainerLog:
    """One container's log being read. ``read`` gives the next piece, b"" at the end.

    ``close`` may come at any time (the client went away): it shuts the
    engine's socket, so a read blocked in the pool returns at once, and the
    stream's slot is freed as soon as that thread is.
    """

    def __init__(
        self,
        reader: LogReader,
        container_id: str,
        options: LogOptions,
    ) -> None:
        self._reader = reader
        self._container_id = container_id
        self._options = options
        self._lock = threading.Lock()
        self._closed = False
        self._released = False
        self._client: docker.APIClient | None = None
        self._response: requests.Response | None = None
        self._decoder: LogDecoder | None = None
        self._inflight: concurrent.futures.Future[Any] | None = None
        self._eof = False

    async def start(self) -> None:
        """Ask the engine; raises NotFoundError for a container it does not have."""
        await self._run(self._open)

    async def read(self) -> bytes:
        if self._closed:
            return b""
        data: bytes = await self._run(self._next)
        return data

    async def _run(self, fn: Any) -> Any:
        future = self._reader._pool.submit(fn)
        self._inflight = future
        try:
            return await asyncio.wrap_future(future)
        except MinikubeletError:
            raise
        except Exception as e:
            if self._closed:
                return b""
            raise translate(e) from e

    def close(self) -> None:
        """Stop reading and free the slot; safe to call more than once, from the loop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            response = self._response
        if response is not None:
            # Wakes a read blocked in the pool; no socket any more: nothing to interrupt.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                response.raw.shutdown()
        future = self._inflight
        if future is None or future.cancel() or future.done():
            self._release()
        else:
            future.add_done_callback(lambda _: self._release())

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
            response, self._response = self._response, None
            client, self._client = self._client, None
        for closing in (response, client):
            if closing is not None:
                try:
                    closing.close()
                except Exception:
                    log.debug("closing a log stream failed", exc_info=True)
        self._reader._release_slot()

    # --- in the pool's threads ---

    def _open(self) -> None:
        client = self._reader._executor.new_stream_client()
        with self._lock:
            self._client = client
            if self._closed:
                return
        cid = self._container_id
        tty = bool(client.inspect_container(cid)["Config"].get("Tty"))
        options = self._options
        params: dict[str, str] = {
            "stdout": "1",
            "stderr": "1",
            "follow": "1" if options.follow else "0",
            "timestamps": "1" if options.timestamps else "0",
            "tail": "all" if options.tail is None else str(options.tail),
        }
        if options.since is not None:
            params["since"] = f"{options.since:.9f}"
        url = f"{client.base_url}/v{client.api_version}/containers/{quote(cid, safe='')}/logs"
        response = client.get(
            url, params=params, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
        )
        with self._lock:
            self._response = response
            closed = self._closed
        if closed:
            return
        if response.status_code != 200:
            raise _engine_error(response, cid)
        if options.follow:
            # The engine answered; now a follow waits for lines as long as the container
            # runs, so reads get no timeout (close() is what ends them early).
            sock = getattr(response.raw.connection, "sock", None)
            if sock is not None:
                sock.settimeout(None)
        multiplexed = not tty or response.headers.get("Content-Type", "") == MULTIPLEXED
        self._decoder = LogDecoder(
            multiplexed=multiplexed,
            timestamps=options.timestamps,
            limit_bytes=options.limit_bytes,
        )

    def _next(self) -> bytes:
        """Up to about ``PIECE`` bytes of output: as much as is there, at least one byte.

        Log messages come one small frame at a time; a thread hop per frame
        would cap a large log at a few MB/s, so pieces are gathered while the
        engine has more to give. A followed log returns what it has as soon
        as the engine pauses, not when the piece is full.
        """
        response, decoder = self._response, self._decoder
        if response is None or decoder is None:
            return b""
        raw = response.raw
        out = bytearray()
        while not (self._eof or decoder.done or self._closed) and len(out) < PIECE:
            if out and self._options.follow and not _readable(raw):
                break
            data = raw.read1(PIECE) if self._options.follow else raw.read(PIECE)
            if not data:
                self._eof = True
                break
            out += decoder.feed(data)
        return bytes(out)


def _readable(raw: Any) -> bool:
    """More of the engine's answer can be read without waiting.

    Data already buffered by http.client is not seen here; a False then
    only ends a piece early, and the next read returns the buffered bytes.
    """
    connection = getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)


def _engine_error(response: requests.Response, container_id: str) -> MinikubeletError:
    body = response.raw.read(ERROR_BODY_LIMIT)
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")
    message = message or f"HTTP {response.status_code}"
    if response.status_code == 404:
        return NotFoundError(message)
    return RuntimeCallError(f"reading the log of {container_id}: {message}")


class LogReader:
    """The pool that log streams read in, and the cap on how many are open."""

    def __init__(self, executor: DockerExecutor, *, max_streams: int = MAX_STREAMS) -> None:
        self._executor = executor
        self.max_streams = max_streams
        self._pool = ThreadPoolExecutor(max_workers=max_streams, thread_name_prefix="docker-logs")
        self._lock = threading.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        """Streams open, counting closed ones whose thread is not free yet."""
        return self._active

    def open(self, container_id: str, options: LogOptions) -> ContainerLog:
        """A stream of ``container_id``'s log (call ``start``, then ``read``, then ``close``).

        Raises TooManyLogStreamsError when ``max_streams`` are open.
        """
        with self._lock:
            if self._active >= self.max_streams:
                raise TooManyLogStreamsError(self.max_streams)
            self._active += 1
        return ContainerLog(self, container_id, options)

    def _release_slot(self) -> None:
        with self._lock:
            self._active -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
