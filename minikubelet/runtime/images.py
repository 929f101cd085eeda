"""Images: presence checks with a cache, pulls per pull policy, and the sandbox image.

An image known present is not asked about again, so a pod's start costs no
image round trip after the first pod using that image. Concurrent asks for
the same image share one engine call. If a create later reports the image
gone, the caller drops it from the cache and asks again.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker

from minikubelet.errors import (
    ImageNeverPullError,
    ImagePullError,
    InvalidImageNameError,
    MinikubeletError,
    NotFoundError,
)
from minikubelet.model.spec import PullPolicy
from minikubelet.runtime.executor import DockerExecutor

log = logging.getLogger(__name__)

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
)

LOCAL_PAUSE_REPOSITORY = "localhost/minikubelet-pause"


def is_valid_reference(image: str) -> bool:
    return len(image) <= 255 + 128 + 80 and _REFERENCE.match(image) is not None


def split_reference(image: str) -> tuple[str, str | None]:
    """``repo[:tag][@digest]`` → (repository, tag or digest) as the pull API wants them."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    name_end = image.rfind("/")
    colon = image.rfind(":")
    if colon > name_end:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    id: str
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    user: str = ""
    # Bytes, as the engine reports them: the kubelet's "Image size" in its Pulled event.
    size: int = 0

    @property
    def status_id(self) -> str:
        """``imageID`` as cri-dockerd reports it."""
        if self.repo_digests:
            return f"docker-pullable://{self.repo_digests[0]}"
        return f"docker://{self.id}"

    @classmethod
    def from_inspect(cls, data: dict[str, Any]) -> ImageInfo:
        config = data.get("Config") or {}
        return cls(
            id=data.get("Id", ""),
            repo_tags=tuple(data.get("RepoTags") or ()),
            repo_digests=tuple(data.get("RepoDigests") or ()),
            user=config.get("User") or "",
            size=int(data.get("Size") or 0),
        )


def _inspect(client: docker.APIClient, ref: str) -> dict[str, Any]:
    result: dict[str, Any] = client.inspect_image(ref)  # type: ignore[no-untyped-call]
    return result


def _pull(client: docker.APIClient, ref: str) -> None:
    repo, tag = split_reference(ref)
    for message in client.pull(repo, tag=tag, stream=True, decode=True):
        if isinstance(message, dict) and message.get("error"):
            raise ImagePullError(str(message.get("error")))


def _import_pause(client: docker.APIClient, data: bytes, repository: str, tag: str) -> None:
    client.import_image_from_data(
        data, repository=repository, tag=tag, changes=['ENTRYPOINT ["/pause"]']
    )


class ImageStore:
    def __init__(self, executor: DockerExecutor, *, pull_timeout: float = 300.0) -> None:
        self._executor = executor
        self._pull_timeout = pull_timeout
        self._cache: dict[str, ImageInfo] = {}
        self._inflight: dict[str, asyncio.Future[ImageInfo | None]] = {}

    def cached(self, ref: str) -> ImageInfo | None:
        return self._cache.get(ref)

    def forget(self, ref: str) -> None:
        self._cache.pop(ref, None)

    async def inspect(self, ref: str) -> ImageInfo | None:
        """The image if present, from the cache when known; one engine call per ref at a time."""
        info = self._cache.get(ref)
        if info is not None:
            return info
        pending = self._inflight.get(ref)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ImageInfo | None] = asyncio.get_running_loop().create_future()
        self._inflight[ref] = future
        try:
            try:
                data = await self._executor.call(_inspect, ref)
            except NotFoundError:
                result = None
            else:
                result = ImageInfo.from_inspect(data)
                self._cache[ref] = result
            future.set_result(result)
            return result
        except BaseException as e:
            future.set_exception(e)
            # Consumed here so an unawaited future does not log a warning.
            future.exception()
            raise
        finally:
            del self._inflight[ref]

    async def pull(self, ref: str) -> ImageInfo:
        try:
            await asyncio.wait_for(self._executor.call_slow(_pull, ref), self._pull_timeout)
        except TimeoutError:
            raise ImagePullError(
                f'Failed to pull image "{ref}": timed out after {self._pull_timeout:.0f}s'
            ) from None
        except MinikubeletError as e:
            raise ImagePullError(f'Failed to pull image "{ref}": {e}') from None
        self.forget(ref)
        info = await self.inspect(ref)
        if info is None:
            raise ImagePullError(f'Failed to pull image "{ref}": not present after pull')
        return info

    async def ensure(
        self, ref: str, policy: PullPolicy, *, pulling: Callable[[], None] | None = None
    ) -> tuple[ImageInfo, bool]:
        """The image per pull policy; returns (image, whether it was pulled now).

        ``pulling`` is called just before a pull begins (the kubelet's Pulling event).
        """
        if not is_valid_reference(ref):
            raise InvalidImageNameError(
                f'Failed to apply default image tag "{ref}": '
                f'couldn\'t parse image reference "{ref}": invalid reference format'
            )
        if policy is not PullPolicy.ALWAYS:
            info = await self.inspect(ref)
            if info is not None:
                return info, False
            if policy is PullPolicy.NEVER:
                raise ImageNeverPullError(
                    f'Container image "{ref}" is not present with pull policy of Never'
                )
        if pulling is not None:
            pulling()
        return await self.pull(ref), True

    async def ensure_pause_image(self, ref: str, *, pull_timeout: float) -> str:
        """The sandbox image to use: ``ref`` if present or pullable, else one built here.

        The local image holds a static ``pause`` program generated by
        ``runtime.pause``: no registry and no compiler are needed.
        """
        if await self.inspect(ref) is not None:
            return ref
        try:
            await asyncio.wait_for(self._executor.call_slow(_pull, ref), pull_timeout)
        except (TimeoutError, MinikubeletError) as e:
            log.warning("sandbox image %s cannot be pulled (%s); using a locally built one", ref, e)
        else:
            self.forget(ref)
            if await self.inspect(ref) is not None:
                return ref
        from minikubelet.runtime import pause

        machine = platform.machine()
        local = f"{LOCAL_PAUSE_REPOSITORY}:{pause.PAUSE_VERSION}-{pause.normalize_machine(machine)}"
        if await self.inspect(local) is not None:
            return local
        repository, tag = local.rsplit(":", 1)
        await self._executor.call_slow(
            _import_pause, pause.pause_rootfs_tar(machine), repository, tag
        )
        self.forget(local)
        if await self.inspect(local) is None:
            raise ImagePullError(f"built sandbox image {local} is not present after import")
        log.info("built sandbox image %s", local)
        return local
