"""spectrotune.sources.archive: safe_extract refuses every way out of the destination and leaves nothing behind."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from archive_helpers import GTZAN_FILES, tar_bytes, tree
from spectrotune.errors import InputError
from spectrotune.sources.archive import safe_extract



def _tar_with(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    path = tmp_path / "archives" / "evil.tar"
    path.parent.mkdir(exist_ok=True)
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"evil") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


# Each case: the archive members, the member name the error must mention, and why it must be refused.
MALICIOUS_TARS = {
    "absolute path": (lambda out: [_file("genres/ok.au", b"ok"), _file(str(out / "abs_evil"))], "abs_evil"),
    "dot-dot": (lambda out: [_file("genres/ok.au", b"ok"), _file("../evil")], "../evil"),
    "dot-dot inside": (lambda out: [_file("genres/../../evil")], "genres/../../evil"),
    "symlink to absolute path": (lambda out: [_link("genres/link", str(out))], "genres/link"),
    "symlink escaping": (lambda out: [_link("genres/link", "../../outside")], "genres/link"),
    "write through symlink": (lambda out: [_link("link", ".."), _file("link/evil")], "link"),
    "symlink chain": (lambda out: [_link("a", "."), _link("b", "a/..")], "b"),
    "hardlink escaping": (lambda out: [_link("genres/hard", "../outside", tarfile.LNKTYPE)], "genres/hard"),
    "hardlink absolute": (lambda out: [_link("genres/hard", str(out / "victim"), tarfile.LNKTYPE)], "genres/hard"),
    "hardlink to nothing": (lambda out: [_link("genres/hard", "genres/missing", tarfile.LNKTYPE)], "genres/hard"),
    "character device": (lambda out: [_special("genres/dev", tarfile.CHRTYPE)], "genres/dev"),
    "block device": (lambda out: [_special("genres/blk", tarfile.BLKTYPE)], "genres/blk"),
    "fifo": (lambda out: [_special("genres/fifo", tarfile.FIFOTYPE)], "genres/fifo"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_TARS))
def test_malicious_tar_is_refused_and_nothing_is_written(tmp_path, case):
    outside = tmp_path / "work"
    dest = outside / "dest"
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_bytes(b"keep")
    (outside / "victim").write_bytes(b"victim")
    build, member = MALICIOUS_TARS[case]
    archive = _tar_with(tmp_path, build(outside))
    with pytest.raises(InputError, match="refusing") as err:
        safe_extract(archive, dest)
    assert repr(member) in str(err.value) or member in str(err.value)
    assert tree(outside) == ["dest", "dest/keep.txt", "victim"]
    assert (outside / "victim").read_bytes() == b"victim"
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def _zip_with(tmp_path: Path, members: list[tuple[str, bytes, int | None]]) -> Path:
    path = tmp_path / "archives" / "evil.zip"
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, unix_mode in members:
            info = zipfile.ZipInfo(name)
            if unix_mode is not None:
                info.external_attr = unix_mode << 16
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(("members", "member"), [
    ([("genres/ok.au", b"ok", None), ("../evil", b"evil", None)], "../evil"),
    ([("/abs_evil", b"evil", None)], "/abs_evil"),
    ([("genres\\..\\..\\evil", b"evil", None)], "genres\\..\\..\\evil"),
    ([("C:/evil", b"evil", None)], "C:/evil"),
    ([("genres/link", b"../../outside", stat.S_IFLNK | 0o777)], "genres/link"),
    ([("genres/fifo", b"", stat.S_IFIFO | 0o644)], "genres/fifo"),
], ids=["dot-dot", "absolute", "backslash dot-dot", "drive letter", "symlink escaping", "fifo"])
def test_malicious_zip_is_refused_and_nothing_is_written(tmp_path, members, member):
    outside = tmp_path / "work"
    dest = outside / "dest"
    archive = _zip_with(tmp_path, members)
    with pytest.raises(InputError, match="refusing") as err:
        safe_extract(archive, dest)
    assert member in str(err.value) or repr(member) in str(err.value)
    assert tree(outside) == []
    assert not (tmp_path / "evil").exists() and not Path("/abs_evil").exists()


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w:", "zip"])
def test_supported_formats_extract_identically(tmp_path, mode):
    path = tmp_path / "archive.bin"  # the type is read from the content, not the name
    if mode == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in GTZAN_FILES.items():
                zf.writestr(name, data)
    else:
        path.write_bytes(tar_bytes(GTZAN_FILES, mode))
    dest = tmp_path / "dest"
    written = safe_extract(path, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == sorted(GTZAN_FILES)
    assert all((dest / n).read_bytes() == d for n, d in GTZAN_FILES.items())


def test_inner_links_and_dot_prefixes_are_allowed(tmp_path):
    archive = _tar_with(tmp_path, [
        _file("./genres/blues/blues.00000.au", b"audio"),
        _link("genres/latest", "blues/blues.00000.au"),
        _link("genres/rock/same.au", "../blues/blues.00000.au"),
        _link("genres/copy.au", "genres/blues/blues.00000.au", tarfile.LNKTYPE),
    ])
    dest = tmp_path / "dest"
    written = safe_extract(archive, dest)
    assert [p.relative_to(dest).as_posix() for p in written] == [
        "genres/blues/blues.00000.au", "genres/latest", "genres/rock/same.au", "genres/copy.au"]
    assert (dest / "genres/latest").is_symlink() and (dest / "genres/latest").read_bytes() == b"audio"
    assert (dest / "genres/rock/same.au").read_bytes() == b"audio"
    copy = dest / "genres/copy.au"
    assert not copy.is_symlink() and copy.read_bytes() == b"audio"
    assert os.stat(copy).st_ino != os.stat(dest / "genres/blues/blues.00000.au").st_ino


def test_modes_are_sanitised(tmp_path):
    info, data = _file("genres/tool", b"#!/bin/sh\n")
    info.mode = 0o6777  # setuid, setgid, world-writable
    plain, plain_data = _file("genres/plain.au", b"a")
    plain.mode = 0o666
    safe_extract(_tar_with(tmp_path, [(info, data), (plain, plain_data)]), tmp_path / "dest")
    assert stat.S_IMODE(os.stat(tmp_path / "dest/genres/tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "dest/genres/plain.au").st_mode) == 0o644


def test_failure_while_writing_leaves_nothing_behind(tmp_path):
    # Passes the checks, fails on disk: "x" is a file, then a member needs "x" to be a folder.
    archive = _tar_with(tmp_path, [_file("genres/a.au", b"a"), _file("genres/x", b"x"), _file("genres/x/y", b"y")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InputError):
        safe_extract(archive, dest)
    assert tree(dest) == []


def test_existing_folders_are_merged(tmp_path):
    dest = tmp_path / "dest"
    (dest / "genres/blues").mkdir(parents=True)
    (dest / "genres/blues/mine.txt").write_bytes(b"mine")
    safe_extract(_tar_with(tmp_path, [_file("genres/blues/blues.00000.au", b"a")]), dest)
    assert (dest / "genres/blues/mine.txt").read_bytes() == b"mine"
    assert (dest / "genres/blues/blues.00000.au").read_bytes() == b"a"


@pytest.mark.parametrize("content", [b"", b"not an archive at all", b"PK\x03\x04 truncated zip",
                                     b"\x1f\x8b\x08 truncated gzip"])
def test_unreadable_archive_is_an_input_error(tmp_path, content):
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.tar.gz"):
        safe_extract(path, tmp_path / "dest")
    assert tree(tmp_path / "dest") == []
