"""Agent settings: flags win over the config file, which wins over the defaults.

The config file is YAML with camelCase keys, like a KubeletConfiguration;
an unknown key is an error naming the key, not something silently ignored.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from minikubelet.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/minikubelet/config.yaml")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class Settings:
    # Name of this node; static pods are named <metadata.name>-<node name>. Default: hostname.
    node_name: str = ""
    # Directory of Pod manifests (*.yaml, *.yml, *.json directly in it).
    manifest_dir: Path = Path("/etc/minikubelet/manifests")
    # host:port of the status endpoint. Off loopback it needs TLS (tlsCertFile and
    # tlsPrivateKeyFile) and authTokenFile.
    listen: str = "127.0.0.1:10255"
    # Where pod directories (emptyDir data, hosts files, termination logs) live.
    state_dir: Path = Path("/var/lib/minikubelet")
    # Sandbox image; built locally when it is absent and cannot be pulled.
    pod_infra_image: str = "registry.k8s.io/pause:3.10"
    # The Docker bridge network pods attach to, and its subnet (used when it is created).
    network_name: str = "minikubelet"
    pod_cidr: str = "10.217.0.0/16"
    # Docker engine address; default: DOCKER_HOST or the local socket.
    docker_host: str = ""
    # This node's IP (status.hostIP); default: the address of the default route.
    node_ip: str = ""
    # Seconds between full rescans of the manifest directory (kubelet: 20).
    file_check_frequency: float = 20.0
    # Largest manifest file read, in bytes (kubelet: 10 MiB).
    max_manifest_bytes: int = 10 * 1024 * 1024
    # Seconds to wait for the sandbox image pull before building one locally.
    infra_pull_timeout: float = 30.0
    # Terminate pods gracefully when the agent stops (default: leave them running).
    stop_pods_on_exit: bool = False
    # File holding a bearer token required by the status endpoint; required off loopback.
    auth_token_file: str = ""
    # PEM certificate chain (leaf first) and its unencrypted key: the status endpoint
    # serves HTTPS (TLS >= 1.2) and every request but /healthz must authenticate.
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    # PEM CA certificates; over TLS a client certificate they sign authenticates its
    # subject's CN, as the kubelet's --client-ca-file.
    client_ca_file: str = ""
    # Cluster mode: a kubeconfig naming a Kubernetes API server (its current context).
    # The node registers there with a Lease, and each static pod gets a mirror pod.
    kubeconfig: str = ""
    log_level: str = "INFO"
    # "text" (a line per record, for people) or "json" (an object per line, for journald
    # and log collectors).
    log_format: str = "text"
    # Read manifests from a directory or files that users other than root (or the agent's
    # own user) can write, which sshd's StrictModes refuses too. Default: refused.
    allow_insecure_manifest_dir: bool = False

    @property
    def listen_host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return split_listen(self.listen)[1]


_KEYS = {
    "nodeName": "node_name",
    "manifestDir": "manifest_dir",
    "listen": "listen",
    "stateDir": "state_dir",
    "podInfraImage": "pod_infra_image",
    "networkName": "network_name",
    "podCIDR": "pod_cidr",
    "dockerHost": "docker_host",
    "nodeIP": "node_ip",
    "fileCheckFrequency": "file_check_frequency",
    "maxManifestBytes": "max_manifest_bytes",
    "infraPullTimeout": "infra_pull_timeout",
    "stopPodsOnExit": "stop_pods_on_exit",
    "authTokenFile": "auth_token_file",
    "tlsCertFile": "tls_cert_file",
    "tlsPrivateKeyFile": "tls_private_key_file",
    "clientCAFile": "client_ca_file",
    "kubeconfig": "kubeconfig",
    "logLevel": "log_level",
    "logFormat": "log_format",
    "allowInsecureManifestDir": "allow_insecure_manifest_dir",
}
_TYPES = {f.name: f.type for f in fields(Settings)}


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen: {value!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _coerce(name: str, value: Any, origin: str, key: str) -> Any:
    kind = _TYPES[name]
    if kind in ("Path", Path):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{origin}: {key}: must be a path")
        return Path(value)
    if kind in ("bool", bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{origin}: {key}: must be true or false")
        return value
    if kind in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{origin}: {key}: must be a positive integer")
        return value
    if kind in ("float", float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{origin}: {key}: must be a positive number")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {key}: must be a string")
    return value


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = _KEYS.get(str(key))
        if name is None:
            raise ConfigError(f"{path}: {key}: unknown setting (known: {', '.join(sorted(_KEYS))})")
        out[name] = _coerce(name, value, str(path), str(key))
    return out


def build_settings(*, config_file: Path | None, overrides: dict[str, Any]) -> Settings:
    """Defaults, then the config file (if present), then flags (``overrides``, None = not given)."""
    values: dict[str, Any] = {}
    if config_file is not None and (config_file != DEFAULT_CONFIG or config_file.exists()):
        values.update(load_config_file(config_file))
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = replace(Settings(), **values)
    if not settings.node_name:
        settings = replace(settings, node_name=socket.gethostname())
    validate_settings(settings)
    return settings


def validate_settings(settings: Settings) -> None:
    from minikubelet.model.validation import is_dns1123_subdomain

    if not is_dns1123_subdomain(settings.node_name.lower()):
        raise ConfigError(
            f"nodeName: {settings.node_name!r} is not a valid node name (RFC 1123 subdomain)"
        )
    _validate_tls(settings)
    try:
        network = ipaddress.IPv4Network(settings.pod_cidr)
    except ValueError:
        raise ConfigError(f"podCIDR: {settings.pod_cidr!r} is not an IPv4 network") from None
    if network.num_addresses < 8:
        raise ConfigError(f"podCIDR: {settings.pod_cidr} is too small")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"logLevel: {settings.log_level!r} must be DEBUG, INFO, WARNING or ERROR")
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(f"logFormat: {settings.log_format!r} must be text or json")


def _validate_tls(settings: Settings) -> None:
    """What the status endpoint's listen, TLS and authentication settings allow together.

    Files are read at start (``server/tls.py``); this only checks the combination.
    """
    host, _ = split_listen(settings.listen)
    cert, key = settings.tls_cert_file, settings.tls_private_key_file
    if bool(cert) != bool(key):
        given, other = (
            ("tlsCertFile", "tlsPrivateKeyFile / --tls-private-key-file")
            if cert
            else ("tlsPrivateKeyFile", "tlsCertFile / --tls-cert-file")
        )
        raise ConfigError(f"{given} is set without its pair: set {other} too")
    if settings.client_ca_file and not cert:
        raise ConfigError(
            "clientCAFile: client certificates need TLS: set tlsCertFile and tlsPrivateKeyFile "
            "(--tls-cert-file, --tls-private-key-file)"
        )
    if not is_loopback(host):
        missing = [
            name
            for name, value in (
                ("tlsCertFile / --tls-cert-file", cert),
                ("tlsPrivateKeyFile / --tls-private-key-file", key),
                ("authTokenFile / --auth-token-file", settings.auth_token_file),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"listen: {settings.listen} is not loopback; the status endpoint must then "
                f"serve TLS and require the token: set {', '.join(missing)}"
            )
    if cert and not settings.auth_token_file and not settings.client_ca_file:
        raise ConfigError(
            "tlsCertFile: over TLS every request must authenticate, but nothing could: "
            "set authTokenFile (--auth-token-file) or clientCAFile (--client-ca-file)"
        )


def config_key(name: str) -> str:
    """The config-file key of a Settings field (``log_level`` -> ``logLevel``)."""
    for key, field_name in _KEYS.items():
        if field_name == name:
            return key
    raise KeyError(name)


def config_keys() -> dict[str, str]:
    """Config-file key -> Settings field, for every setting."""
    return dict(_KEYS)


def changed_fields(old: Settings, new: Settings) -> list[str]:
    """Names of the fields whose values differ, in declaration order."""
    return [f.name for f in fields(Settings) if getattr(old, f.name) != getattr(new, f.name)]
