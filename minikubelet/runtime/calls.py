"""The container and network calls of the runtime, one small function each over docker-py.

Each takes the ``APIClient`` that ``DockerExecutor.call`` (or ``call_slow``)
hands it in its lane's thread, and returns plain dicts and strings, so the
modules above never touch docker-py's types.
"""

from __future__ import annotations

from typing import Any

import docker


def list_containers(client: docker.APIClient, label: str) -> list[dict[str, Any]]:
    """Every container, running or not, carrying ``label`` (``key=value``)."""
    result: list[dict[str, Any]] = client.containers(all=True, filters={"label": label})
    return result


def inspect_container(client: docker.APIClient, container_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.inspect_container(container_id)
    return result


def create_container(client: docker.APIClient, body: dict[str, Any], name: str) -> str:
    result: dict[str, Any] = client.create_container_from_config(body, name=name)  # type: ignore[no-untyped-call]
    return str(result["Id"])


def start_container(client: docker.APIClient, container_id: str) -> None:
    client.start(container_id)


def stop_container(client: docker.APIClient, container_id: str, timeout: int) -> None:
    client.stop(container_id, timeout=timeout)


def remove_container(client: docker.APIClient, container_id: str) -> None:
    client.remove_container(container_id, force=True, v=False)


def logs_tail(client: docker.APIClient, container_id: str, lines: int) -> bytes:
    data: bytes = client.logs(container_id, stdout=True, stderr=True, tail=lines)
    return data


def find_network(client: docker.APIClient, name: str) -> list[dict[str, Any]]:
    """The network named exactly ``name`` (Docker's filter also matches prefixes)."""
    result: list[dict[str, Any]] = client.networks(names=[name])
    return [n for n in result if n.get("Name") == name]


def create_network(
    client: docker.APIClient, name: str, *, subnet: str, gateway: str, labels: dict[str, str]
) -> None:
    pool = docker.types.IPAMPool(subnet=subnet, gateway=gateway)
    client.create_network(
        name, driver="bridge", ipam=docker.types.IPAMConfig(pool_configs=[pool]), labels=labels
    )


def inspect_network(client: docker.APIClient, network_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.inspect_network(network_id)
    return result


def ping(client: docker.APIClient) -> bool:
    return bool(client.ping())


def engine_info(client: docker.APIClient) -> tuple[str, str]:
    """The engine's version and its root directory (the filesystem its images are on)."""
    version = str(client.version().get("Version", ""))
    root = str(client.info().get("DockerRootDir", ""))
    return version, root
