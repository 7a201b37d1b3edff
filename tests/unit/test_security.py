"""Typed paths stay inside their root; uploads are judged by content and size."""

from __future__ import annotations

import os

import pytest

from backend.security import (
    UnsafePathError,
    UploadError,
    allowed_roots,
    check_upload,
    confine,
    confine_any,
    relative_to_roots,
)


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("/etc/passwd", "not an absolute one"),
        ("~/secrets", "not an absolute one"),
        ("../outside.jsonl", "'..' is not allowed"),
        ("data/../../x", "'..' is not allowed"),
        ("", "empty path"),
        ("a\x00b", "NUL"),
        ("link/file.jsonl", "symbolic link"),
    ],
)
def test_confine_refuses(tmp_path, typed, why):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("/etc", root / "link")
    with pytest.raises(UnsafePathError, match=why):
        confine(typed, root)


def test_confine_accepts_inside(tmp_path):
    assert confine("exports/a.jsonl", tmp_path) == (tmp_path / "exports" / "a.jsonl").resolve()


@pytest.mark.parametrize(
    ("data", "allowed", "why"),
    [
        (b"", {"jsonl"}, "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", {"jsonl", "csv"}, "looks like binary"),
        (b"PAR1....", {"jsonl"}, "looks like parquet"),
        (b"a,b\n1,2\n", {"jsonl"}, "looks like csv"),
        (b"\xff\xfe\xfd\xfc bad utf-8 " * 10, {"csv"}, "binary"),
        (b"{}\n" * 100, {"jsonl"}, "over the"),
    ],
)
def test_check_upload_refuses(data, allowed, why):
    with pytest.raises(UploadError, match=why):
        check_upload("up.bin", data, allowed, max_bytes=250)


def test_check_upload_accepts():
    assert check_upload("a.jsonl", b'{"messages": []}\n', {"jsonl"}) == "jsonl"
    assert check_upload("a.csv", b"prompt,completion\nhi,there\n", {"csv"}) == "csv"
    assert check_upload("a.parquet", b"PAR1" + b"\x00" * 10, {"parquet"}) == "parquet"


def test_model_folders_may_also_sit_beside_the_configured_local_model(tmp_path):
    from types import SimpleNamespace

    ws = SimpleNamespace(root=tmp_path / "ws")
    (tmp_path / "ws" / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "team-models" / "llama").mkdir(parents=True)
    cfg = SimpleNamespace(local_model_dir=tmp_path / "team-models" / "llama")
    assert allowed_roots(cfg, ws) == [(tmp_path / "ws").resolve()]
    roots = allowed_roots(cfg, ws, models=True)
    assert roots[1] == (tmp_path / "team-models").resolve()
    assert confine_any("llama", roots) == (tmp_path / "team-models" / "llama").resolve()
    assert confine_any("models/tiny", roots) == (tmp_path / "ws" / "models" / "tiny").resolve()
    assert confine_any("new/x", roots) == (tmp_path / "ws" / "new" / "x").resolve()
    assert relative_to_roots(cfg.local_model_dir, roots) == "llama"
    assert relative_to_roots(tmp_path / "ws" / "models" / "tiny", roots) == "models/tiny"
    for bad in ("/etc", "../team-models/llama", "llama/../../x"):
        with pytest.raises(UnsafePathError):
            confine_any(bad, roots)
