"""Container logs: ``/api/v1/namespaces/{ns}/pods/{name}/log`` and the kubelet's
``/containerLogs/{ns}/{pod}/{container}``.

The first answers as the API server does for ``kubectl logs`` (its query
parameters, its refusals); the second as the kubelet's own endpoint, which
tools written against a kubelet call. Both choose the container instance
from the pod's status, as the kubelet does (``validateContainerLogStatus``):
the running instance, else the last terminated one, and for ``previous`` the
one in ``lastState``. The reading itself (Docker's log driver, bounded
pieces, its own thread pool and cap) is the runtime's (``runtime/logs.py``);
here each piece is written with a deadline (``stream.py``), and the next one
is read only once it is out, so a slow client holds one piece of its log.

The guard (``guard.py``) asks for the bearer token on these paths.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from aiohttp import web
from multidict import MultiDict, MultiMapping

from minikubelet.errors import MinikubeletError, NotFoundError, RuntimeUnavailableError
from minikubelet.model.spec import Pod
from minikubelet.runtime.logs import LogOptions, TooManyLogStreamsError
from minikubelet.server.deps import DEPS, LIMITS, LogStream
from minikubelet.server.errors import StatusError
from minikubelet.server.stream import BoundedStream
from minikubelet.status.types import PodStatus, StateRunning, StateTerminated, StateWaiting

log = logging.getLogger(__name__)

_INT64 = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT64_MAX = 2**63 - 1
# RFC 3339 as Go's time.Parse reads time.RFC3339: fractional seconds optional.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
GO_RFC3339 = "2006-01-02T15:04:05Z07:00"


def go_quote(value: str, limit: int = 64) -> str:
    """A client's value quoted as Go's %q would, bounded and in ASCII."""
    return json.dumps(value if len(value) <= limit else value[:limit] + "...")


@dataclass(frozen=True, slots=True)
class LogRequest:
    """A log request's parameters, parsed; ``container`` is "" when none was named."""

    container: str
    previous: bool
    options: LogOptions


def _bool(query: MultiMapping[str], name: str) -> bool:
    # As the API server converts a bool parameter: "0" and "false" are false, all else true.
    values = query.getall(name, [])
    if not values:
        return False
    return not (values[0] == "0" or values[0].casefold() == "false")


def _int64(query: MultiMapping[str], name: str) -> int | None:
    """As strconv.ParseInt(value, 10, 64), the first value counting; absent is None."""
    values = query.getall(name, [])
    if not values:
        return None
    raw = values[0]
    if not _INT64.fullmatch(raw):
        raise StatusError(400, f"{name}: strconv.ParseInt: parsing {go_quote(raw)}: invalid syntax")
    # Bounded before int(): a 4,000-digit value would cost CPU for nothing.
    digits = raw.lstrip("+-").lstrip("0")
    value = int(raw) if len(digits) <= 19 else _INT64_MAX + 2
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise StatusError(
            400, f"{name}: strconv.ParseInt: parsing {go_quote(raw)}: value out of range"
        )
    return value


def _time(query: MultiMapping[str], name: str) -> float | None:
    """As metav1.Time reads a query parameter: RFC 3339, "" and "null" meaning unset.

    The API's times are whole seconds, so a fraction is dropped, as the API
    server drops it when it passes the request on to the kubelet.
    """
    values = query.getall(name, [])
    if not values or values[0] in ("", "null"):
        return None
    raw = values[0]
    match = _RFC3339.fullmatch(raw)
    try:
        if match is None:
            raise ValueError
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        zone = match.group(8)
        tz = UTC
        if zone != "Z":
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:]))
            tz = timezone(-offset if zone[0] == "-" else offset)
        return datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp()
    except ValueError:
        raise StatusError(
            400,
            f"{name}: parsing time {go_quote(raw)} as {go_quote(GO_RFC3339)}: not an RFC 3339 time",
        ) from None


def parse_log_request(
    query: MultiMapping[str], *, pod_name: str, now: float, legacy_tail: bool = False
) -> LogRequest:
    """The parameters of a log request, refused as the API server refuses them.

    Values that cannot be read are 400 BadRequest; values that can but are
    out of bounds are 422 Invalid, naming every bad field at once, as
    ``ValidatePodLogOptions`` does. ``legacy_tail``: also take the kubelet's
    old ``tail`` parameter ("all" or a number).
    """
    try:
        container = query.getall("container", [""])[0]
        follow = _bool(query, "follow")
        previous = _bool(query, "previous")
        timestamps = _bool(query, "timestamps")
        # Accepted for the API's sake; the agent dials no backend to verify.
        _bool(query, "insecureSkipTLSVerifyBackend")
        tail_lines = _int64(query, "tailLines")
        legacy = query.getall("tail", []) if legacy_tail else []
        if legacy:
            # The kubelet's older spelling; "all" is the same as leaving it out.
            tail_lines = None if legacy[0] == "all" else _int64(MultiDict(tail=legacy[0]), "tail")
        since_seconds = _int64(query, "sinceSeconds")
        limit_bytes = _int64(query, "limitBytes")
        since_time = _time(query, "sinceTime")
    except UnicodeError:
        raise StatusError(400, "the query string cannot be decoded") from None
    problems: list[str] = []
    if tail_lines is not None and tail_lines < 0:
        problems.append(
            f"tailLines: Invalid value: {tail_lines}: must be greater than or equal to 0"
        )
    if limit_bytes is not None and limit_bytes < 1:
        problems.append(f"limitBytes: Invalid value: {limit_bytes}: must be greater than 0")
    if since_seconds is not None and since_time is not None:
        problems.append(
            ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        )
    elif since_seconds is not None and since_seconds < 1:
        problems.append(f"sinceSeconds: Invalid value: {since_seconds}: must be greater than 0")
    if problems:
        detail = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        raise StatusError(422, f"PodLogOptions {go_quote(pod_name)} is invalid: {detail}")
    since = since_time
    if since_seconds is not None:
        since = now - since_seconds
    if since is not None and since <= 0:
        since = None  # before 1970: everything
    return LogRequest(
        container=container,
        previous=previous,
        options=LogOptions(
            follow=follow,
            tail=tail_lines,
            since=since,
            timestamps=timestamps,
            limit_bytes=limit_bytes,
        ),
    )


def choose_container(pod: Pod, name: str) -> str:
    """The container a request means, refused as the API server refuses it."""
    spec = pod.spec
    if not name:
        if len(spec.containers) == 1:
            return spec.containers[0].name
        message = (
            f"a container name must be specified for pod {pod.name}, choose one of: "
            f"[{' '.join(c.name for c in spec.containers)}]"
        )
        if spec.init_containers:
            init = " ".join(c.name for c in spec.init_containers)
            message += f" or one of the init containers: [{init}]"
        raise StatusError(400, message)
    if spec.container(name) is None:
        raise StatusError(400, f"container {name} is not valid for pod {pod.name}")
    return name


def container_to_read(status: PodStatus | None, pod_name: str, name: str, previous: bool) -> str:
    """The Docker id of the instance whose log is read; the kubelet's choice and words.

    Running: that instance. Terminated: that one, or the one before if it has
    no id. Waiting with a terminated instance before it (a crash loop): that
    one. ``previous``: the one in ``lastState``.
    """
    found = status.container(name) if status is not None else None
    if found is None:
        raise StatusError(400, f'container "{name}" in pod "{pod_name}" is not available')
    last = found.last_state
    state = found.state
    if previous:
        if last is None or not last.container_id:
            raise StatusError(
                400, f'previous terminated container "{name}" in pod "{pod_name}" not found'
            )
        cid = last.container_id
    elif isinstance(state, StateRunning):
        cid = found.container_id
    elif isinstance(state, StateTerminated):
        cid = state.container_id or (last.container_id if last is not None else "")
        if not cid:
            raise StatusError(400, f'container "{name}" in pod "{pod_name}" is terminated')
    elif last is not None:
        cid = last.container_id
        if not cid:
            raise StatusError(400, f'container "{name}" in pod "{pod_name}" is terminated')
    elif isinstance(state, StateWaiting):
        why = {
            "ErrImagePull": "image can't be pulled",
            "ImagePullBackOff": "trying and failing to pull image",
        }.get(state.reason, state.reason)
        raise StatusError(400, f'container "{name}" in pod "{pod_name}" is waiting to start: {why}')
    else:
        raise StatusError(
            400, f'container "{name}" in pod "{pod_name}" is waiting to start - no logs yet'
        )
    if not cid:
        raise StatusError(
            400, f'container "{name}" in pod "{pod_name}" is waiting to start - no logs yet'
        )
    return cid.removeprefix("docker://")


def find_pod(request: web.Request, namespace: str, name: str) -> tuple[Pod, PodStatus] | None:
    for pod, status in request.app[DEPS].status.pods():
        if pod.namespace == namespace and pod.name == name:
            return pod, status
    return None


async def pod_log(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/namespaces/{namespace}/pods/{name}/log``, as the API server answers it."""
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    found = find_pod(request, namespace, name)
    if found is None:
        raise StatusError(404, f"pods {go_quote(name)} not found")
    pod, status = found
    wanted = parse_log_request(request.query, pod_name=name, now=_now(request))
    container = choose_container(pod, wanted.container)
    return await _serve(request, pod, status, container, wanted)


async def container_logs(request: web.Request) -> web.StreamResponse:
    """``GET /containerLogs/{namespace}/{pod}/{container}``, as the kubelet answers it."""
    namespace, name = request.match_info["namespace"], request.match_info["pod"]
    container = request.match_info["container"]
    wanted = parse_log_request(request.query, pod_name=name, now=_now(request), legacy_tail=True)
    found = find_pod(request, namespace, name)
    if found is None:
        raise StatusError(404, f"pod {go_quote(name)} does not exist")
    pod, status = found
    if pod.spec.container(container) is None:
        raise StatusError(404, f"container {go_quote(container)} not found in pod {go_quote(name)}")
    return await _serve(request, pod, status, container, wanted)


def _now(request: web.Request) -> float:
    return time.time()


async def _serve(
    request: web.Request, pod: Pod, status: PodStatus, container: str, wanted: LogRequest
) -> web.StreamResponse:
    source = request.app[DEPS].logs
    if source is None:
        raise StatusError(404, "container logs are not served by this agent")
    cid = container_to_read(status, pod.name, container, wanted.previous)
    if request.method == "HEAD":
        return web.Response(headers={"Content-Type": "text/plain"})
    try:
        stream = source.open_log(cid, wanted.options)
    except TooManyLogStreamsError as e:
        raise StatusError(429, f"{e}; retry later", retry_after=1) from None
    try:
        await _start(stream, pod, container)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        out = BoundedStream(request, response, request.app[LIMITS].write_timeout)
        if not await out.prepare():
            return response
        while piece := await _read(stream):
            if not await out.write(piece):
                return response
        await out.finish()
        return response
    finally:
        stream.close()


async def _start(stream: LogStream, pod: Pod, container: str) -> None:
    try:
        await stream.start()
    except NotFoundError:
        # The status named an instance the engine no longer has (removed since).
        raise StatusError(
            400, f'container "{container}" in pod "{pod.name}": that instance no longer exists'
        ) from None
    except RuntimeUnavailableError as e:
        raise StatusError(503, f"the Docker engine is unreachable: {e}") from None
    except MinikubeletError as e:
        raise StatusError(500, f"reading the log failed: {e}") from None


async def _read(stream: LogStream) -> bytes:
    # Once the answer has begun, an engine error can only end it.
    try:
        return await stream.read()
    except MinikubeletError as e:
        log.info("reading a container log ended early: %s", e)
        return b""


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
