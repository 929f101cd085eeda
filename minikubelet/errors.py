"""Error types shared by every layer.

Errors that end up in a pod's status carry the Kubernetes reason string in
``reason``; a worker turns ``reason`` and ``str(error)`` into a container's
``state.waiting`` or into an event, so the strings here are API strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class MinikubeletError(Exception):
    """Base of every error the agent raises on purpose."""

    reason: ClassVar[str] = "InternalError"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem at one field of a manifest, e.g. ``spec.containers[0].image``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ManifestError(MinikubeletError):
    """A manifest that cannot become a pod; names the file and every bad field."""

    reason = "FailedValidation"

    def __init__(self, origin: str, errors: list[FieldError]) -> None:
        self.origin = origin
        self.errors = list(errors)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(f"{self.origin}: {e}" for e in self.errors)


class ConfigError(MinikubeletError):
    """Bad agent configuration (flags or config file); fatal at start."""

    reason = "InvalidConfiguration"


# --- runtime errors: raised by runtime/, shown in container or pod status ---


class RuntimeUnavailableError(MinikubeletError):
    """The Docker engine does not answer."""

    reason = "RuntimeUnavailable"


class NotFoundError(MinikubeletError):
    reason = "NotFound"


class ConflictError(MinikubeletError):
    reason = "Conflict"


class RuntimeCallError(MinikubeletError):
    """Any other error answered by the engine."""

    reason = "RuntimeError"


class ImageNotFoundError(NotFoundError):
    reason = "ImageNotFound"


class ImagePullError(MinikubeletError):
    reason = "ErrImagePull"


class ImageNeverPullError(MinikubeletError):
    reason = "ErrImageNeverPull"


class InvalidImageNameError(MinikubeletError):
    reason = "InvalidImageName"


class CreateContainerConfigError(MinikubeletError):
    reason = "CreateContainerConfigError"


class CreateContainerError(MinikubeletError):
    reason = "CreateContainerError"


class RunContainerError(MinikubeletError):
    reason = "RunContainerError"


class MountError(MinikubeletError):
    """A volume could not be prepared; the pod waits in ContainerCreating."""

    reason = "FailedMount"


class SandboxError(MinikubeletError):
    reason = "FailedCreatePodSandBox"
