"""sim/memimage.py: $readmemh/$writememh files <-> bytes (fast, no simulator)."""

import random

import pytest

from sim.memimage import MemImageError, read_memh, to_memh, words_needed, write_memh


@pytest.mark.parametrize("ext_bytes", [1, 2, 4, 8, 16, 64])
def test_round_trip(tmp_path, ext_bytes):
    data = random.Random(ext_bytes).randbytes(1000 + ext_bytes // 2)
    n = write_memh(tmp_path / "m.hex", data, ext_bytes)
    assert n == words_needed(len(data), ext_bytes)
    back = read_memh(tmp_path / "m.hex", ext_bytes)
    assert back[:len(data)] == data
    assert back[len(data):] == bytes(len(back) - len(data))   # zero padding to a whole word


def test_little_endian_words():
    # byte 0 is bits 7:0: the hex of word 0 ends with byte 0
    assert to_memh(bytes([1, 2, 3, 4, 5, 6, 7, 8]), 4) == "04030201\n08070605\n"


def test_comments_addresses_and_short_words(tmp_path):
    (tmp_path / "m.hex").write_text("// dumped by a simulator\n0201 // word 0\n@3\nff\n")
    assert read_memh(tmp_path / "m.hex", 2) == bytearray([1, 2, 0, 0, 0, 0, 0xFF, 0])


def test_bad_files_name_the_problem(tmp_path):
    (tmp_path / "wide.hex").write_text("0102030405\n")
    with pytest.raises(MemImageError, match="word 0 has 10 hex digits"):
        read_memh(tmp_path / "wide.hex", 2)
    (tmp_path / "x.hex").write_text("00\nxx\n")
    with pytest.raises(MemImageError, match="word 1 is not hex"):
        read_memh(tmp_path / "x.hex", 1)
    (tmp_path / "short.hex").write_text("00\n")
    with pytest.raises(MemImageError, match="expected at least 4"):
        read_memh(tmp_path / "short.hex", 1, 4)
    with pytest.raises(MemImageError, match="cannot read"):
        read_memh(tmp_path / "missing.hex", 1)
