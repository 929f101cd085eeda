"""A directory of a few hundred fuzzed manifests: the agent stays healthy and runs the valid ones.

The files are made by a seeded mutator (reproducible, no Docker needed to
make them): valid pods with values swapped for other types, nulls, huge and
unicode values, deep nesting, unknown keys, cut or corrupted text. What each
file should become is decided in this process by the agent's own loader;
the running agent must agree: every file that loads is a pod in ``/pods``,
every other file is an error naming it, ``/healthz`` stays ok, and a good
file written afterwards still starts.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from minikubelet.config.file import load_manifest_file
from minikubelet.errors import ManifestError
from tests.corpus import value_paths
from tests.integration.conftest import Agent, pod_manifest, sh, wait_until

pytestmark = pytest.mark.docker

FILES = 250
SEED = 20261130
# Valid fuzzed pods name an image that is never pulled: each costs a sandbox,
# not a running app, so a few hundred files stay cheap for the engine.
ABSENT_IMAGE = "localhost/minikubelet/absent:fuzz"


def _base(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"f{i}", "labels": {"app": "fuzz"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": ABSENT_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "1"],
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"limits": {"memory": "64Mi"}},
                    "ports": [{"containerPort": 80, "name": "http"}],
                }
            ],
        },
    }


def _random_value(rng: random.Random) -> Any:
    choice = rng.randrange(10)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([0, -1, 2**31, 10**40, 1])
    if choice == 2:
        return rng.choice(["", "x" * 5000, "ünïcødé ☃", "web\n", "../../etc", "2024-02-30"])
    if choice == 3:
        return [None, 1, "a"]
    if choice == 4:
        return {"unknown": {"deeper": [1, {"x": None}]}}
    if choice == 5:
        return rng.choice([True, False])
    if choice == 6:
        return 1.5
    if choice == 7:
        nested: Any = "leaf"
        for _ in range(rng.randrange(10, 80)):
            nested = [nested]
        return nested
    if choice == 8:
        return {}
    return []


def _mutate(doc: dict[str, Any], rng: random.Random) -> None:
    # The name is left alone so that every file's pod is told apart by it.
    for _ in range(rng.randrange(1, 4)):
        paths = [
            p
            for p in value_paths(doc)
            if p and p[:2] != ("metadata", "name") and p != ("metadata",)
        ]
        path = rng.choice(paths)
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        op = rng.randrange(3)
        if op == 0:
            parent[path[-1]] = _random_value(rng)
        elif op == 1 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[f"unknownField{rng.randrange(100)}"] = _random_value(rng)


def _render(doc: dict[str, Any], rng: random.Random) -> tuple[str, bytes]:
    kind = rng.randrange(10)
    if kind < 6:
        return "yaml", yaml.safe_dump(doc, allow_unicode=True).encode()
    if kind < 8:
        return "json", json.dumps(doc).encode()
    text = yaml.safe_dump(doc).encode()
    if kind == 8:
        return "yaml", text[: rng.randrange(1, len(text))]
    spot = rng.randrange(len(text))
    return "yaml", text[:spot] + bytes([rng.randrange(256)]) * 3 + text[spot:]


def write_fuzzed(directory: Path, count: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        doc = _base(i)
        if i % 10:  # every tenth file stays valid
            _mutate(doc, rng)
        suffix, data = _render(doc, rng) if i % 10 else ("yaml", yaml.safe_dump(doc).encode())
        path = directory / f"f{i:03d}.{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_fuzzed_directory_keeps_the_agent_healthy(agent: Agent) -> None:
    staging = agent.manifests.parent / "staging"
    staging.mkdir()
    files = write_fuzzed(staging, FILES, SEED)
    expected: dict[str, str] = {}  # file name -> pod name, as the agent's own loader sees it
    for path in files:
        try:
            _, pod = load_manifest_file(
                path, node_name=agent.node, seen=lambda uid: "", max_bytes=10 * 1024 * 1024
            )
        except ManifestError:
            continue
        expected[path.name] = pod.name
    assert FILES // 10 <= len(expected) < FILES, "the mutator should make both kinds"
    for path in files:
        os.replace(path, agent.manifests / path.name)

    def settled() -> dict[str, Any] | None:
        listing: dict[str, Any] = agent.pod_list()
        names = {p["metadata"]["name"] for p in listing["items"] or []}
        files_with_errors = {os.path.basename(e["file"]) for e in listing["errors"]}
        missing = set(expected.values()) - names
        unaccounted = {p.name for p in files} - set(expected) - files_with_errors
        return listing if not missing and not unaccounted else None

    listing = wait_until(settled, timeout=90, what="every fuzzed file to be a pod or an error")
    for error in listing["errors"]:
        assert os.path.basename(error["file"]) in {p.name for p in files}
        assert error["message"]
    assert agent.get_status("/healthz") == 200, agent.healthz()
    assert agent.proc is not None
    assert agent.proc.poll() is None
    # Still responsive to the next change, and it runs.
    agent.write("later.yaml", pod_manifest("later", [sh("c", "sleep 3600")]))
    agent.wait_running("later", timeout=60)
