"""The .sqz program format: round trip, and clear ProgramErrors for damaged files."""

import struct
import zlib

import numpy as np
import pytest

from sqzhw.compiler.codegen import compile_graph
from sqzhw.compiler.testing import random_qgraph
from sqzhw.config import load_config
from sqzhw.program import FORMAT_VERSION, Preprocess, Program, ProgramError


@pytest.fixture(scope="module")
def program() -> Program:
    g = random_qgraph("fire", 6, 0.25, 10, seed=3, in_channels=8)
    p = compile_graph(g, load_config("tiny"), Preprocess(6, 6, "BGR", (1.0, 2.0, 3.0)))
    p.notes["labels"] = [f"c{i}" for i in range(10)]
    return p


def test_round_trip(program, tmp_path):
    path = tmp_path / "p.sqz"
    program.save(path)
    back = Program.load(path)
    assert back.config == program.config
    assert back.instructions == program.instructions
    assert back.image == program.image
    assert back.regions == program.regions
    assert back.input == program.input
    assert back.output == program.output
    assert back.tensors == program.tensors
    assert back.layers == program.layers
    assert back.notes == program.notes
    assert back.to_bytes() == program.to_bytes()


def test_truncated(program):
    raw = program.to_bytes()
    for cut in (0, 10, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ProgramError, match="truncated|too short"):
            Program.from_bytes(raw[:cut])


def test_trailing_data(program):
    with pytest.raises(ProgramError, match="trailing"):
        Program.from_bytes(program.to_bytes() + b"\0")


def test_corrupted(program):
    raw = bytearray(program.to_bytes())
    raw[-5] ^= 0x10
    with pytest.raises(ProgramError, match="checksum"):
        Program.from_bytes(bytes(raw))


def test_wrong_magic(program):
    raw = b"NOTSQZHW" + program.to_bytes()[8:]
    with pytest.raises(ProgramError, match="not a sqzhw program"):
        Program.from_bytes(raw)


def test_wrong_version(program):
    raw = bytearray(program.to_bytes())
    struct.pack_into("<I", raw, 8, FORMAT_VERSION + 1)
    with pytest.raises(ProgramError, match=f"version {FORMAT_VERSION + 1}"):
        Program.from_bytes(bytes(raw))


def test_malformed_header_with_valid_checksum(program):
    raw = program.to_bytes()
    body = b"{}" + raw[28 + struct.unpack_from("<I", raw, 12)[0]:]
    n_header = 2
    _, version, _, n_insns, n_image, _ = struct.unpack_from("<8sIIIII", raw)
    fixed = struct.pack("<8sIIIII", b"SQZHWPRG", version, n_header, n_insns, n_image, zlib.crc32(body))
    with pytest.raises(ProgramError, match="malformed program header"):
        Program.from_bytes(fixed + body)


def test_missing_file(tmp_path):
    with pytest.raises(ProgramError, match="cannot read"):
        Program.load(tmp_path / "absent.sqz")


def test_config_mismatch_refused(program):
    with pytest.raises(ProgramError, match="compiled for config 'tiny'"):
        program.check_config(load_config("default"))
    program.check_config(load_config("tiny"))


def test_placement_pack_unpack(program):
    t = program.tensors[-1]
    x = np.random.default_rng(0).integers(-128, 128, (t.channels, t.height, t.width)).astype(np.int8)
    np.testing.assert_array_equal(t.unpack(t.pack(x, 4), 4), x)
