"""What `make install` ships: the systemd unit and the commented config.yaml."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from minikubelet.settings import Settings, build_settings, config_keys

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "minikubelet.service"
CONFIG = ROOT / "packaging" / "config.yaml"
EXEC = "/opt/minikubelet/bin/minikubelet"

# Each gives the service a mount namespace of its own, from which the agent's
# tmpfs and bind mounts would not reach dockerd (systemd.exec(5)).
MOUNT_NAMESPACING = (
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "BindPaths",
    "BindReadOnlyPaths",
    "TemporaryFileSystem",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "MountFlags",
    "RestrictSUIDSGID",  # not a namespace: fsGroup emptyDirs are setgid
)


def _directives(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_unit_keeps_the_agents_mounts_visible_to_dockerd() -> None:
    directives = _directives(UNIT.read_text())
    assert directives["Type"] == "notify"
    assert directives["ExecStart"].startswith(EXEC + " run")
    assert "WatchdogSec" in directives
    assert directives["Restart"] == "on-failure"
    assert directives["ExecReload"] == "/bin/kill -HUP $MAINPID"
    forbidden = sorted(set(directives) & set(MOUNT_NAMESPACING))
    assert not forbidden, f"these would hide the agent's mounts from dockerd: {forbidden}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's command.
    command = Path(sys.executable).with_name("minikubelet")
    assert command.exists()
    unit = tmp_path / "minikubelet.service"
    unit.write_text(UNIT.read_text().replace(EXEC, str(command)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "minikubelet.service" not in done.stderr, done.stderr


def test_config_example_documents_every_setting_with_its_default(tmp_path: Path) -> None:
    text = CONFIG.read_text()
    documented = re.findall(r"^#(\w+): ", text, flags=re.MULTILINE)
    assert sorted(documented) == sorted(config_keys()), "config.yaml must list every key once"
    # As shipped, everything is commented out: the defaults apply.
    as_shipped = build_settings(config_file=CONFIG, overrides={"node_name": "n"})
    assert as_shipped == Settings(node_name="n")
    # Uncommented, the documented values are the defaults.
    uncommented = tmp_path / "config.yaml"
    uncommented.write_text(re.sub(r"^#(\w+: )", r"\1", text, flags=re.MULTILINE))
    settings = build_settings(config_file=uncommented, overrides={})
    defaults = build_settings(config_file=None, overrides={})
    for field in fields(Settings):
        assert getattr(settings, field.name) == getattr(defaults, field.name), field.name
