"""`make install` / `make uninstall` into a temporary root (DESTDIR): no systemd,
no Docker. The package is a wheel of this checkout, installed without its
dependencies to stay fast; what is checked is where files go and what stays."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("minikubelet-*.whl")
    return built


def make(target: str, root: Path, wheel: Path) -> str:
    done = subprocess.run(
        [
            "make",
            "-C",
            str(ROOT),
            target,
            f"DESTDIR={root}",
            f"PACKAGE={wheel}",
            "PIP_INSTALL_ARGS=--no-deps",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


@pytest.mark.timeout(600)
def test_install_then_uninstall(tmp_path: Path, wheel: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    make("install", root, wheel)

    venv = root / "opt/minikubelet"
    link = root / "usr/local/bin/minikubelet"
    assert os.readlink(link) == "/opt/minikubelet/bin/minikubelet"
    # Staged under DESTDIR, but its paths are those of the final place.
    assert (venv / "bin/minikubelet").read_text().startswith("#!/opt/minikubelet/bin/python")
    # The package is in the venv (not this checkout: run from elsewhere).
    found = subprocess.run(
        [str(venv / "bin/python"), "-c", "import minikubelet; print(minikubelet.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert found.stdout.startswith(str(venv / "lib")), found.stdout
    unit = root / "usr/local/lib/systemd/system/minikubelet.service"
    assert unit.read_text() == (ROOT / "packaging/minikubelet.service").read_text()
    config = root / "etc/minikubelet/config.yaml"
    assert config.read_text() == (ROOT / "packaging/config.yaml").read_text()
    manifests = root / "etc/minikubelet/manifests"
    assert stat.S_IMODE(manifests.stat().st_mode) == 0o755

    # The user's config and manifests survive a reinstall and an uninstall.
    config.write_text("logLevel: DEBUG\n")
    (manifests / "web.yaml").write_text("kind: Pod\n")
    make("install", root, wheel)
    assert config.read_text() == "logLevel: DEBUG\n"
    out = make("uninstall", root, wheel)
    assert files_under(root) == [
        "etc/minikubelet/config.yaml",
        "etc/minikubelet/manifests/web.yaml",
    ]
    assert "kept" in out
    assert not venv.exists()

    # A config as shipped is not the user's: it goes; then the emptied directory too.
    config.write_text((ROOT / "packaging/config.yaml").read_text())
    make("uninstall", root, wheel)
    assert files_under(root) == ["etc/minikubelet/manifests/web.yaml"]
    (manifests / "web.yaml").unlink()
    make("uninstall", root, wheel)
    assert files_under(root) == []
    assert not (root / "etc/minikubelet").exists()
