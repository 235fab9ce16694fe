"""The host link protocol: CRC, frame encoding, the streaming decoder and the device-side parser."""

import re
import zlib

import numpy as np
import pytest

from sqzhw import isa, protocol
from sqzhw.protocol import Command, Frame, FrameDecoder, RequestParser, Status


def test_crc_check_value_and_residue():
    assert protocol.crc16(b"123456789") == 0x29B1          # CRC-16/CCITT-FALSE check value
    assert protocol.crc16(b"") == protocol.CRC_INIT
    frame = protocol.encode_request(Command.WRITE_MEM, 9, b"\x00\x01\x02\x03abcd")
    assert protocol.crc16(frame[1:]) == 0                  # CRC over the frame including its CRC


def test_crc_matrix_is_the_update():
    rows = protocol.crc16_matrix()
    rng = np.random.default_rng(0)
    for crc, byte in zip(rng.integers(0, 1 << 16, 200), rng.integers(0, 256, 200)):
        crc, byte = int(crc), int(byte)
        by_matrix = sum((((bin(crc & cm).count("1") + bin(byte & bm).count("1")) & 1) << i)
                        for i, (cm, bm) in enumerate(rows))
        assert by_matrix == protocol.crc16_update(crc, byte)
    assert protocol.crc16(b"xyz") == protocol.crc16_update(
        protocol.crc16_update(protocol.crc16_update(protocol.CRC_INIT, ord("x")), ord("y")), ord("z"))


def test_crc32_matrix_is_the_update_and_zlib():
    """CHECKSUM_MEM's CRC-32: the GF(2) matrix the gateware's XOR tree is built from equals the
    bitwise update, and the register run from CRC32_INIT and complemented is zlib.crc32."""
    assert protocol.crc32(b"123456789") == 0xCBF43926                 # CRC-32/ISO-HDLC check value
    rows = protocol.crc32_matrix()
    assert len(rows) == 32
    rng = np.random.default_rng(1)
    for crc, byte in zip(rng.integers(0, 1 << 32, 300), rng.integers(0, 256, 300)):
        crc, byte = int(crc), int(byte)
        by_matrix = sum((((bin(crc & cm).count("1") + bin(byte & bm).count("1")) & 1) << i)
                        for i, (cm, bm) in enumerate(rows))
        assert by_matrix == protocol.crc32_update(crc, byte)
    for n in (0, 1, 7, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        reg = protocol.CRC32_INIT
        for b in data:
            reg = protocol.crc32_update(reg, b)
        assert reg ^ 0xFFFFFFFF == zlib.crc32(data) == protocol.crc32(data)
        assert protocol.crc32(data[n // 2:], protocol.crc32(data[:n // 2])) == zlib.crc32(data)


def test_checksum_payloads_and_timeout():
    a = protocol.decode_checksum_args(protocol.encode_checksum_args(0x1000, 0xFFFFFFF0))
    assert (a.addr, a.count) == (0x1000, 0xFFFFFFF0)
    assert len(protocol.encode_checksum_args(0, 0)) == 8
    assert protocol.decode_checksum(protocol.encode_checksum(0xCBF43926)) == 0xCBF43926
    with pytest.raises(protocol.ProtocolError, match="CHECKSUM_MEM"):
        protocol.decode_checksum(b"\x00" * 3)
    # The host's allowance grows with the count: SqueezeNet's 1.3 MB in well under 2 s.
    assert protocol.checksum_seconds(0) == 0
    assert 0.5 < protocol.checksum_seconds(1_300_000) < 2.0
    assert protocol.checksum_seconds(2 << 20) == 2 * protocol.checksum_seconds(1 << 20)


def test_docstring_table_lists_every_command():
    """The module docstring's command table names each Command once, in value order."""
    doc = protocol.__doc__.split("Commands and payloads", 1)[1]
    rows = doc.split("\n=")[2].split("\n=")[0]       # between the header's rule and the last one
    table = re.findall(r"^``([A-Z_]+)``\s", rows, re.MULTILINE)
    assert table == [c.name for c in sorted(Command, key=lambda c: c.value)]
    assert Command.CHECKSUM_MEM.value not in (c.value for c in Command if c is not Command.CHECKSUM_MEM)


def test_encode_layout():
    f = protocol.encode_request(Command.READ_MEM, 0x33, protocol.encode_read_args(0x1000, 64))
    assert f[0] == protocol.REQUEST_SYNC
    h = protocol.RequestHeader.from_bits(int.from_bytes(f[1:5], "little"))
    assert (h.command, h.seq, h.length) == (Command.READ_MEM.value, 0x33, 6)
    r = protocol.encode_response(Status.BUSY, Command.START, 7)
    assert r[0] == protocol.RESPONSE_SYNC
    h = protocol.ResponseHeader.from_bits(int.from_bytes(r[1:6], "little"))
    assert (h.status, h.command, h.seq, h.length) == (Status.BUSY.value, Command.START.value, 7, 0)
    with pytest.raises(protocol.ProtocolError, match="MAX_PAYLOAD"):
        protocol.encode_request(Command.WRITE_MEM, 0, bytes(protocol.MAX_PAYLOAD + 1))
    with pytest.raises(protocol.ProtocolError, match="seq"):
        protocol.encode_request(Command.INFO, 256)


def test_payload_roundtrips():
    info = protocol.decode_info(protocol.encode_info("4x4_tag", 4, 1 << 20, 512, window=5, features=0))
    assert info == {"version": protocol.PROTOCOL_VERSION, "ext_bytes": 4, "max_payload": 512,
                    "mem_bytes": 1 << 20, "window": 5, "features": 0, "tag": "4x4_tag"}
    info = protocol.decode_info(protocol.encode_info("t", 4, 64))
    assert info["window"] == protocol.DEFAULT_WINDOW and info["features"] == protocol.Feature.CHECKSUM_MEM
    with pytest.raises(protocol.ProtocolError, match="window"):
        protocol.encode_info("t", 4, 64, window=0)
    s = protocol.decode_status(protocol.encode_status(True, False, isa.ErrorCode.BUF_RANGE, 1234))
    assert s == {"busy": True, "done": False, "mem_starting": False, "mem_failed": False,
                 "error": isa.ErrorCode.BUF_RANGE, "error_pc": 1234}
    s = protocol.decode_status(protocol.encode_status(False, False, 0, 0, mem_starting=True))
    assert (s["mem_starting"], s["mem_failed"]) == (True, False)
    s = protocol.decode_status(protocol.encode_status(False, False, 0, 0, mem_failed=True))
    assert (s["mem_starting"], s["mem_failed"]) == (False, True)
    values = list(range(100, 100 + len(isa.Counter)))
    assert list(protocol.decode_counters(protocol.encode_counters(values)).values()) == values
    a = protocol.decode_start_args(protocol.encode_start_args(1, 2, 3, 4))
    assert (a.insn_addr, a.insn_count, a.wr_lo, a.wr_hi) == (1, 2, 3, 4)
    with pytest.raises(protocol.ProtocolError, match="READ_COUNTERS"):
        protocol.decode_counters(b"\x00" * 5)
    with pytest.raises(protocol.ProtocolError, match="STATUS"):
        protocol.decode_status(b"\x00")


def test_info_versions():
    """Version 2 added the window byte, version 3 the features byte; older replies still decode (no
    window: stop-and-wait; no features: no CHECKSUM_MEM), so the driver can talk to a version 2
    device and name a version it refuses."""
    assert protocol.PROTOCOL_VERSION == 3 and protocol.COMPATIBLE_VERSIONS == (2, 3)
    assert protocol.InfoHeader.as_shape().size // 8 == 10
    v1 = bytes([1, 4]) + (512).to_bytes(2, "little") + (4096).to_bytes(4, "little") + b"tag"
    assert protocol.decode_info(v1) == {"version": 1, "ext_bytes": 4, "max_payload": 512, "mem_bytes": 4096,
                                        "window": 1, "features": 0, "tag": "tag"}
    v2 = bytes([2, 4]) + (512).to_bytes(2, "little") + (4096).to_bytes(4, "little") + bytes([8]) + b"tag"
    assert protocol.decode_info(v2) == {"version": 2, "ext_bytes": 4, "max_payload": 512, "mem_bytes": 4096,
                                        "window": 8, "features": 0, "tag": "tag"}
    assert 1 < protocol.DEFAULT_WINDOW <= protocol.MAX_WINDOW < 256 // 8


def test_decoder_streaming_and_resync():
    frames = [protocol.encode_response(Status.OK, Command.READ_MEM, i, bytes([i]) * i) for i in range(1, 6)]
    garbage = bytes([0x5A, 0x00, 0x03, 0x01, 0xFF, 0x7F]) + b"noise"   # impossible length: skipped
    stream = garbage + frames[0] + frames[1] + b"\x00\x5a\x00\x00\x00\xff\xff" + frames[2]
    bad = bytearray(frames[3])
    bad[7] ^= 0x01
    stream += bytes(bad) + frames[4]
    dec = FrameDecoder(responses=True)
    got = []
    for i in range(0, len(stream), 3):        # arbitrary chunking
        got += dec.feed(stream[i:i + 3])
    assert [(f.seq, f.payload) for f in got] == [(i, bytes([i]) * i) for i in (1, 2, 3, 5)]
    assert all(f.status is Status.OK and f.command is Command.READ_MEM for f in got)
    assert dec.errors >= 1


def test_decoder_finds_frame_behind_truncated_one():
    good = protocol.encode_response(Status.OK, Command.STATUS, 4, bytes(6))
    cut = protocol.encode_response(Status.OK, Command.READ_MEM, 3, bytes(40))[:20]
    dec = FrameDecoder()
    assert list(dec.feed(cut + good)) == []      # the cut frame's length swallows the good one
    assert [f.seq for f in dec.resync()] == [4]  # after a timeout the decoder looks behind it


def test_request_parser_semantics():
    p = RequestParser(max_payload=16)

    def run(data):
        return [ev for ev in (p.feed(b) for b in data) if ev is not None]

    good = protocol.encode_request(Command.WRITE_MEM, 1, bytes(8))
    assert run(b"\x00\x11" + good) == [Frame(Command.WRITE_MEM, 1, bytes(8))]
    bad = bytearray(good)
    bad[-1] ^= 0x80
    assert run(bytes(bad)) == [(Status.BAD_CRC, Command.WRITE_MEM.value, 1)]
    too_long = protocol.encode_request(Command.WRITE_MEM, 2, bytes(17))
    assert run(too_long[:5]) == [(Status.BAD_LENGTH, Command.WRITE_MEM.value, 2)]
    unknown = protocol.encode_request(0x77, 3)
    assert run(unknown) == [Frame(0x77, 3, b"")]
    # a truncated frame stays open until the idle timeout
    assert run(good[:6]) == [] and p.in_frame
    p.idle()
    assert run(good) == [Frame(Command.WRITE_MEM, 1, bytes(8))]
