"""``minikubelet validate``: a line (or a JSON record) per file, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minikubelet import cli
from minikubelet.config.file import load_manifest_file
from tests.corpus import good_manifest, hostile_manifests

# Each once printed a traceback, or was reported ok.
HOSTILE = hostile_manifests()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["validate", "--node-name", "node-1", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_good_files_keep_the_text_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(good_manifest(name="a"))
    (tmp_path / "b.yml").write_text(good_manifest(name="b"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    code, out, err = run(capsys, str(tmp_path))
    assert code == 0
    assert out.splitlines() == [
        f"{tmp_path / 'a.yaml'}: ok (pod default/a-node-1)",
        f"{tmp_path / 'b.yml'}: ok (pod default/b-node-1)",
    ]
    assert err == ""


def test_every_hostile_file_is_reported_by_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text in HOSTILE.items():
        (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = run(capsys, str(tmp_path))
    assert code == 1
    assert err == ""
    assert "Traceback" not in out
    lines = out.splitlines()
    by_file: dict[str, list[str]] = {}
    for line in lines:
        file, _, rest = line.partition(": ")
        by_file.setdefault(Path(file).name, []).append(rest)
    assert by_file["date.yaml"] == ["ok (pod default/date-node-1)"]
    assert by_file["resources.yaml"] == ["ok (pod default/resources-node-1)"]
    assert by_file["policies.yaml"] == ["ok (pod default/policies-node-1)"]
    assert by_file["bigint.yaml"] == [
        "spec.terminationGracePeriodSeconds: integer out of range: must fit in 64 bits"
    ]
    assert by_file["nullarg.yaml"] == ["spec.containers[0].args[1]: must not be null"]
    mixed = {m.split(": ")[0] for m in by_file["mixed.yaml"]}
    assert {
        "metadata.name",
        "metadata.uid",
        "spec.containers[0].securityContext.capabilities.add[0]",
        "spec.containers[1].name",
    } <= mixed
    assert by_file["newline.json"][0].startswith("metadata.name: must be a lowercase")
    [merge] = by_file["merge.yaml"]
    assert merge.startswith("l")
    assert "document expands to more than" in merge
    assert by_file["grace.yaml"] == ["ok (pod default/grace-node-1)"]
    assert [m.split(" (")[0] for m in by_file["binary.yaml"]] == ["not UTF-8 text"]
    assert by_file["list.yaml"][0].startswith("must be a mapping")


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(good_manifest(name="a"))
    (tmp_path / "bad.yaml").write_text(HOSTILE["nullarg.yaml"])
    (tmp_path / "dup.yaml").write_text(good_manifest(name="a"))
    code, out, _ = run(capsys, "-o", "json", str(tmp_path), str(tmp_path / "gone.yaml"))
    assert code == 1
    assert json.loads(out) == [
        {
            "file": str(tmp_path / "a.yaml"),
            "ok": True,
            "pod": "default/a-node-1",
            "errors": [],
        },
        {
            "file": str(tmp_path / "bad.yaml"),
            "ok": False,
            "pod": None,
            "errors": [{"field": "spec.containers[0].args[1]", "message": "must not be null"}],
        },
        {
            "file": str(tmp_path / "dup.yaml"),
            "ok": False,
            "pod": "default/a-node-1",
            "errors": [
                {
                    "field": "metadata.name",
                    "message": f"pod default/a-node-1 is already defined by {tmp_path / 'a.yaml'}",
                }
            ],
        },
        {
            "file": str(tmp_path / "gone.yaml"),
            "ok": False,
            "pod": None,
            "errors": [{"field": "", "message": "no such file"}],
        },
    ]


def test_json_output_when_all_is_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(good_manifest(name="a"))
    code, out, _ = run(capsys, "--output", "json", str(tmp_path / "a.yaml"))
    assert code == 0
    assert [r["ok"] for r in json.loads(out)] == [True]


def test_internal_error_is_one_line_and_the_rest_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def buggy(path: Path, **kwargs: object) -> object:
        if path.name == "bug.yaml":
            raise RecursionError("deep inside")
        return load_manifest_file(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "load_manifest_file", buggy)
    (tmp_path / "bug.yaml").write_text(good_manifest(name="bug"))
    (tmp_path / "fine.yaml").write_text(good_manifest(name="fine"))
    code, out, err = run(capsys, str(tmp_path))
    assert code == 1
    assert out.splitlines() == [
        f"{tmp_path / 'bug.yaml'}: internal error: RecursionError",
        f"{tmp_path / 'fine.yaml'}: ok (pod default/fine-node-1)",
    ]
    assert err == ""


def test_unprintable_file_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = os.fsencode(tmp_path) + b"/bad\xff\x1b.yaml"
    with open(raw, "w") as f:
        f.write("kind: [")
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 1
    assert out.startswith(f"{tmp_path}/bad\\xff\\x1b.yaml: invalid YAML")
    assert "\x1b" not in out
    assert "invalid YAML" in out


def test_a_directory_named_as_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.yaml").mkdir()
    code, out, _ = run(capsys, str(tmp_path / "d.yaml" / ".."), str(tmp_path / "x.yaml"))
    assert code == 1
    assert f"{tmp_path / 'x.yaml'}: no such file" in out.splitlines()


def test_an_empty_directory_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(tmp_path))
    assert (code, out) == (0, "")


def test_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    # More output than a pipe holds (64 KiB), so the writer must meet the closed end.
    for i in range(300):
        (tmp_path / f"{'x' * 200}{i}.yaml").write_text(good_manifest(name=f"p{i}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "minikubelet.cli", "validate", "--node-name", "n", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert b"Traceback" not in err, err
