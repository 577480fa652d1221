import os

import pytest

from infomug.train import checksums
from infomug.train.checkpoint_folders import CheckpointError


def test_an_intact_file_is_hashed_once_and_again_when_it_changes(tmp_path, monkeypatch):
    (tmp_path / "weights.bin").write_bytes(b"x" * 1000)
    checksums.write_checksums(tmp_path, ["weights.bin"])
    hashed = []
    real = checksums.file_sha256
    monkeypatch.setattr(checksums, "file_sha256", lambda path: hashed.append(path) or real(path))
    checksums.verify_file(tmp_path, "weights.bin")
    checksums.verify_file(tmp_path, "weights.bin")  # a resume's second look: not hashed again
    assert len(hashed) == 1
    (tmp_path / "weights.bin").write_bytes(b"y" * 1000)  # same size, new bytes and mtime
    stat = (tmp_path / "weights.bin").stat()
    os.utime(tmp_path / "weights.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checksums.verify_file(tmp_path, "weights.bin")
    assert len(hashed) == 2
