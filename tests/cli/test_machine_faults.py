"""Faults of the machine (a full disk, a file where a folder should be, a folder that cannot be written) end in one
line naming the path and the cause, a non-zero exit, and no partial output."""

import errno
import os

import numpy as np
import PIL.Image
import pytest

from cod_diffc import image_files
from cod_diffc.cli import EXIT_USER_ERROR, main


FAST = ["--steps", "4", "--coder", "plain", "--chunk-bits", "6", "--no-progress", "--backbone", "gaussian"]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def full_disk(monkeypatch):
    def no_space(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(image_files.os, "fsync", no_space)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_compress_to_a_full_disk(photo, tmp_path, monkeypatch, capsys):
    full_disk(monkeypatch)
    out = tmp_path / "out" / "photo.cdc"
    assert main(["compress", str(photo), "--stop-step", "2", "-o", str(out), *FAST]) == EXIT_USER_ERROR
    assert f"cannot write {out}: No space left on device" in one_line_error(capsys)
    assert not list((tmp_path / "out").iterdir())  # neither the file nor a temporary one


def test_decompress_to_a_full_disk(photo, tmp_path, monkeypatch, capsys):
    stream = tmp_path / "photo.cdc"
    assert main(["compress", str(photo), "--stop-step", "2", "-o", str(stream), *FAST]) == 0
    full_disk(monkeypatch)
    out = tmp_path / "decoded" / "photo.png"
    assert main(["decompress", str(stream), "-o", str(out), "--no-progress"]) == EXIT_USER_ERROR
    assert f"cannot write {out}: No space left on device" in one_line_error(capsys)
    assert not list((tmp_path / "decoded").iterdir())


def test_an_output_under_a_file(photo, tmp_path, capsys):
    out = photo / "x.cdc"  # photo.png is a file
    assert main(["compress", str(photo), "--stop-step", "2", "-o", str(out), *FAST]) == EXIT_USER_ERROR
    assert f"cannot write {out}: {photo} is a file, not a folder" in one_line_error(capsys)


def test_a_folder_that_cannot_be_written(photo, tmp_path, monkeypatch, capsys):
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(image_files.tempfile, "mkstemp", refused)  # as root, chmod would not stop the write
    out = tmp_path / "photo.cdc"
    assert main(["compress", str(photo), "--stop-step", "2", "-o", str(out), *FAST]) == EXIT_USER_ERROR
    assert f"cannot write {out}: Permission denied" in one_line_error(capsys)
    assert not out.exists()
