"""The driver against the in-process device model (LoopbackTransport): commands, retries under
injected corruption/drops, errors the caller sees; end-to-end inference when the compiler and the
runtime are present."""

import os
import zlib

import numpy as np
import pytest

from sqzhw import isa, protocol
from sqzhw.compiler.testing import copy_program
from sqzhw.config import load_config
from sqzhw.driver import (Accelerator, ConfigMismatchError, DeviceModel, DeviceTimeout, DriverError,
                          EngineError, FaultInjector, LinkError, LoopbackTransport, MemoryFault)

TINY = load_config("tiny")


def make(faults_in=None, faults_out=None, config=TINY, mem=1 << 16, chunk=0, **kw):
    device = DeviceModel(config, mem, max_payload=kw.pop("max_payload", protocol.MAX_PAYLOAD),
                         busy_polls=kw.pop("busy_polls", 0),
                         memory_startup_polls=kw.pop("memory_startup_polls", 0),
                         memory_failed=kw.pop("memory_failed", False))
    transport = LoopbackTransport(device, faults_in, faults_out, chunk=chunk)
    return Accelerator(transport, config, **kw), device


def test_info_and_config_check():
    acc, _ = make()
    info = acc.info()
    assert (info.tag, info.ext_bytes, info.mem_bytes, info.version) == (TINY.tag, 4, 1 << 16,
                                                                        protocol.PROTOCOL_VERSION)
    other = Accelerator(LoopbackTransport(DeviceModel(load_config("small"), 4096)), TINY)
    with pytest.raises(ConfigMismatchError, match="small|2x2"):
        other.info()


def test_write_read_any_alignment():
    acc, device = make(max_payload=64)
    data = os.urandom(301)
    acc.write(7, data)
    assert bytes(device.memory[7:308]) == data
    assert device.memory[:7] == bytes(7)
    assert acc.read(7, 301) == data
    assert acc.read(9, 3) == data[2:5]
    with pytest.raises(DriverError, match="outside"):
        acc.write((1 << 16) - 2, b"abc")


def test_execute_status_counters_and_busy_polling():
    acc, device = make(busy_polls=3)
    src, dst = 0x400, 0x800
    payload = os.urandom(32)
    acc.write(0, isa.pack_program(copy_program(src, dst, 2, 4)))
    acc.write(src, payload)
    s = acc.execute(0, 4, dst, dst + 32)
    assert s.done and not s.busy
    assert acc.read(dst, 32) == payload
    counters = acc.counters()
    assert set(counters) == set(isa.Counter)
    assert counters[isa.Counter.CYCLES] > 0
    assert device.starts == 1
    acc.reset()
    assert not acc.status().done


def test_engine_error_carries_code_and_pc():
    acc, _ = make()
    words = copy_program(0x400, 0x800, 2, 4)
    acc.write(0, isa.pack_program(words))
    # the STORE writes outside the window [0x900, 0x940): DRAM_RANGE at instruction 2
    with pytest.raises(EngineError) as info:
        acc.execute(0, 4, 0x900, 0x940)
    assert info.value.code is isa.ErrorCode.DRAM_RANGE and info.value.error_pc == 2
    # running past the instruction count without END
    with pytest.raises(EngineError) as info:
        acc.execute(0, 3, 0x800, 0x840)
    assert info.value.code is isa.ErrorCode.FETCH_RANGE


@pytest.mark.parametrize("seed", range(4))
def test_retries_under_corruption_never_wrong(seed):
    rates = dict(corrupt=2e-3, drop=1e-3, insert=1e-3)
    acc, device = make(FaultInjector(seed=seed, **rates), FaultInjector(seed=100 + seed, **rates),
                       chunk=5, retries=10, max_payload=128)
    src, dst = 0x400, 0x800
    payload = os.urandom(32)
    acc.write(0, isa.pack_program(copy_program(src, dst, 2, 4)))
    acc.write(src, payload)
    acc.execute(0, 4, dst, dst + 32)
    assert acc.read(dst, 32) == payload
    big = os.urandom(2000)
    acc.write(0x1000, big)
    assert bytes(device.memory[0x1000:0x1000 + 2000]) == big
    assert acc.read(0x1000, 2000) == big
    assert device.starts == 1, "a retried START ran the engine again"
    events = acc.transport.to_device.events["corrupt"] + acc.transport.from_device.events["corrupt"]
    assert events > 0 and acc.stats.retries > 0


def test_hopeless_link_raises_link_error():
    acc, device = make(FaultInjector(corrupt=0.9, seed=1), retries=3)
    with pytest.raises((LinkError, DeviceTimeout), match="INFO"):
        acc.info()
    assert device.executed == []
    acc, device = make(None, FaultInjector(corrupt=0.9, seed=2), retries=3)
    with pytest.raises(LinkError):
        acc.info()


def test_silent_device_times_out():
    acc, _ = make(FaultInjector(drop=1.0), retries=2)
    with pytest.raises(DeviceTimeout, match="no response"):
        acc.info()


def test_busy_and_bad_requests_are_errors():
    acc, device = make(busy_polls=5)
    acc.write(0, isa.pack_program(copy_program(0x400, 0x800, 2, 4)))
    acc.start(0, 4, 0x800, 0x820)
    from sqzhw.driver import DeviceBusyError
    with pytest.raises(DeviceBusyError):
        acc.write(0x400, bytes(4))
    with pytest.raises(DriverError, match="BAD_ADDRESS"):
        acc.request(protocol.Command.READ_MEM, protocol.encode_read_args(2, 4))
    with pytest.raises(DriverError, match="no program loaded"):
        acc.infer(np.zeros((3, 8, 8), np.float32))


def test_load_waits_for_the_memory_and_names_a_failed_one():
    """A DDR3 board's memory starts for a while after configuration: load() polls STATUS until it
    is up and only then writes; a memory that failed to start is a MemoryFault, with nothing written."""
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    program = compile_graph(random_qgraph("fire", input_size=6, width_mult=0.25, num_classes=8, seed=3), TINY,
                            Preprocess(height=6, width=6))
    acc, device = make(memory_startup_polls=3, mem=max(1 << 16, program.memory_size))
    acc.load(program)
    statuses = [f.command for f in device.executed].count(protocol.Command.STATUS)
    assert statuses == 4 and device.memory_startup_polls == 0
    first_write = next(i for i, f in enumerate(device.executed) if f.command == protocol.Command.WRITE_MEM)
    last_status = max(i for i, f in enumerate(device.executed) if f.command == protocol.Command.STATUS)
    assert last_status < first_write, "wrote to the memory before it was up"
    acc, device = make(memory_failed=True, mem=max(1 << 16, program.memory_size))
    with pytest.raises(MemoryFault, match="DDR3 read calibration"):
        acc.load(program)
    assert not any(f.command == protocol.Command.WRITE_MEM for f in device.executed)
    acc, device = make(memory_startup_polls=10**9)
    with pytest.raises(DeviceTimeout, match="still starting"):
        acc.wait_memory(timeout=0.05)


def test_infer_matches_golden():
    """Compile a small random network, run it through the driver and compare with the golden model."""
    runtime = pytest.importorskip("sqzhw.runtime", reason="sqzhw.runtime has not landed yet")
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    qgraph = random_qgraph("fire", input_size=12, width_mult=0.25, num_classes=8, seed=3)
    program = compile_graph(qgraph, TINY, Preprocess(height=12, width=12))
    acc, device = make(FaultInjector(corrupt=5e-4, drop=2e-4, seed=5), mem=max(1 << 16, program.memory_size))
    acc.load(program)
    x = np.random.default_rng(0).standard_normal((program.input.channels, 12, 12)).astype(np.float32)
    logits = acc.infer(x)
    golden = runtime.run_golden(program, x)
    np.testing.assert_array_equal(acc.last.sums, golden.sums)
    np.testing.assert_array_equal(logits, golden.logits)
    other = load_config("small")
    with pytest.raises(ConfigMismatchError):
        acc.load(type(program)(**{**program.__dict__, "config": other}))


# -- windowed writes ------------------------------------------------------------------------------------

class CountingTransport(LoopbackTransport):
    """A loopback that records the request frames in flight: sent and not yet read back."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.unread = 0
        self.most_unread = 0
        self.seqs_in_flight: list[list[int]] = []
        self._seqs: list[int] = []

    def write(self, data: bytes) -> None:
        self.unread += 1
        self.most_unread = max(self.most_unread, self.unread)
        self._seqs.append(data[2])
        self.seqs_in_flight.append(list(self._seqs))
        super().write(data)

    def read(self, timeout: float) -> bytes:
        out = super().read(timeout)
        if out:
            self.unread = 0
            self._seqs = []
        return out


def windowed(window=None, device_window=protocol.DEFAULT_WINDOW, to=None, back=None, **kw):
    device = DeviceModel(TINY, 1 << 16, max_payload=kw.pop("max_payload", 128), window=device_window,
                         busy_polls=kw.pop("busy_polls", 0))
    transport = CountingTransport(device, to, back)
    return Accelerator(transport, TINY, window=window, **kw), device, transport


def test_windowed_write_keeps_frames_in_flight_and_lands_bit_exact():
    acc, device, transport = windowed()
    assert acc.info().window == protocol.DEFAULT_WINDOW and acc.write_window == protocol.DEFAULT_WINDOW
    data = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    seen = []
    acc.progress = lambda done, total, what: seen.append((done, total, what))
    acc.write(0x100, data)
    np.testing.assert_array_equal(np.frombuffer(device.memory[0x100:0x100 + 3000], np.uint8),
                                  np.frombuffer(data, np.uint8))
    frames = -(-3000 // acc._chunk())
    assert transport.most_unread == protocol.DEFAULT_WINDOW   # the window filled before the first read
    assert acc.stats.requests == frames + 1 and acc.stats.retries == 0     # + INFO
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen) and seen[-1] == (3000, 3000, "write")
    # seq: a new one per frame, never one still in flight
    assert all(len(s) == len(set(s)) for s in transport.seqs_in_flight)


@pytest.mark.parametrize("window,device_window,expect", [(1, 8, 1), (None, 1, 1), (3, 8, 3), (None, 200, 16),
                                                          (16, 4, 4)])
def test_window_is_the_smaller_of_device_and_caller(window, device_window, expect):
    acc, device, transport = windowed(window, device_window)
    assert acc.write_window == expect
    data = os.urandom(2000)
    acc.write(0, data)
    assert bytes(device.memory[:2000]) == data
    assert transport.most_unread == expect      # window = 1 is stop-and-wait: one frame, then its answer
    with pytest.raises(ValueError, match="window"):
        Accelerator(transport, TINY, window=0)
    with pytest.raises(ValueError, match="window"):
        Accelerator(transport, TINY, window=protocol.MAX_WINDOW + 1)


def test_seq_skips_the_ones_in_flight():
    acc, _, _ = windowed()
    acc._seq = 253
    assert acc._next_seq({254, 255, 0}) == 1 and acc._next_seq() == 2


@pytest.mark.parametrize("window", [1, 4, 8])
@pytest.mark.parametrize("seed", range(3))
def test_windowed_write_under_faults_both_ways(window, seed):
    """Bytes corrupted, dropped and inserted in both directions (a dropped byte makes a frame swallow
    the head of the next one): the memory still ends up bit-exact, and the retries show it."""
    rates = dict(corrupt=1e-3, drop=1e-3, insert=5e-4)
    back = FaultInjector(seed=50 + seed, corrupt=5e-3, drop=3e-3, insert=3e-3)
    acc, device, _ = windowed(window, to=FaultInjector(seed=seed, **rates), back=back, retries=10)
    data = np.random.default_rng(seed).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    acc.write(0x400, data)
    np.testing.assert_array_equal(np.frombuffer(device.memory[0x400:0x400 + len(data)], np.uint8),
                                  np.frombuffer(data, np.uint8))
    s = acc.stats
    faults = acc.transport.to_device.events, acc.transport.from_device.events
    acc.transport.to_device = acc.transport.from_device = None
    assert acc.read(0x400, len(data)) == data
    assert sum(faults[0].values()) > 0 and sum(faults[1].values()) > 0
    assert s.retries > 0 and s.requests > s.retries
    assert s.naks_bad_crc + s.timeouts + s.bad_frames > 0


def test_lost_answer_is_resent_without_a_timeout():
    """The device answers in order: the OK of a later frame shows the earlier frame's answer was lost,
    and the frame goes again at once (no quiet link needed)."""
    calls = []

    def lose_second_answer(reply: bytes) -> bytes:
        calls.append(reply)
        return b"" if len(calls) == 3 else reply      # 1: INFO, 2: frame 1, 3: frame 2's answer
    acc, device, _ = windowed(4, back=lose_second_answer)
    acc.info()
    data = os.urandom(600)
    acc.write(0, data)
    assert bytes(device.memory[:600]) == data
    assert (acc.stats.retries, acc.stats.timeouts) == (1, 0)
    writes = [f for f in device.executed if f.command == protocol.Command.WRITE_MEM]
    assert len(writes) == -(-600 // acc._chunk()) + 1 and writes[-1].seq == writes[1].seq


def test_windowed_write_gives_up_naming_the_address():
    acc, device, transport = windowed(retries=2)
    acc.info()
    transport.to_device = FaultInjector(drop=1.0)
    with pytest.raises(DeviceTimeout, match=r"WRITE_MEM at 0x200: no response from the device after 3 "
                                            r"attempts"):
        acc.write(0x200, bytes(1000))
    acc, device, transport = windowed(retries=2)
    acc.info()
    transport.to_device = FaultInjector(corrupt=0.2, seed=3)
    with pytest.raises(LinkError, match=r"WRITE_MEM at 0x[0-9a-f]+: no good response after 3 attempts "
                                        r"\(.*CRC"):
        acc.write(0x200, bytes(1000))
    assert acc.stats.retries >= 2 and acc.stats.naks_bad_crc > 0


def test_windowed_write_naks_are_errors():
    from dataclasses import replace

    from sqzhw.driver import DeviceBusyError

    acc, device, _ = windowed(busy_polls=5)
    acc.write(0, isa.pack_program(copy_program(0x400, 0x800, 2, 4)))
    acc.start(0, 4, 0x800, 0x820)
    with pytest.raises(DeviceBusyError, match="WRITE_MEM at 0x400"):
        acc.write(0x400, bytes(1000))
    acc.reset()
    acc.write(0x400, bytes(1000))    # the stale answers of the refused frames are ignored
    # A device smaller than the driver believes: BAD_ADDRESS names the frame's address.
    acc._info = replace(acc.device, mem_bytes=2 * device.mem_bytes)
    with pytest.raises(DriverError, match=r"WRITE_MEM at 0xff8c \(seq \d+, 124 data bytes\) refused by the "
                                          r"device: BAD_ADDRESS"):
        acc.write(device.mem_bytes - 240, bytes(480))     # 124-byte frames: the second crosses the end


# -- verified, incremental loads (CHECKSUM_MEM) ------------------------------------------------------

def _fire_program(seed: int = 3, size: int = 6):
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    qgraph = random_qgraph("fire", input_size=size, width_mult=0.25, num_classes=8, seed=seed)
    return compile_graph(qgraph, TINY, Preprocess(height=size, width=size))


def _commands(device, command) -> int:
    return sum(f.command is command for f in device.executed)


def test_checksum_is_the_devices_crc32():
    acc, device = make()
    device.memory[:] = np.random.default_rng(4).integers(0, 256, len(device.memory), dtype=np.uint8).tobytes()
    assert acc.checksum(0x100, 0x2000) == zlib.crc32(bytes(device.memory[0x100:0x2100]))
    assert acc.checksum(0, 1 << 16) == zlib.crc32(bytes(device.memory))      # far more than a frame
    assert acc.checksum(8, 0) == 0
    with pytest.raises(DriverError, match="whole 4-byte words"):
        acc.checksum(2, 8)
    with pytest.raises(DriverError, match="outside"):
        acc.checksum(0, (1 << 16) + 4)
    # The response timeout grows with the bytes the device reads before it answers.
    waits = []
    real = acc._await
    def spy(command, seq, timeout, expect):
        waits.append(timeout)
        return real(command, seq, timeout, expect)
    acc._await = spy
    acc.checksum(0, 1 << 16)
    acc.checksum(0, 4)
    assert waits[0] - waits[1] == pytest.approx(protocol.checksum_seconds((1 << 16) - 4))


def test_load_twice_sends_the_program_once():
    """The second load (this session's or a new one's: ``sqzhw run`` again on the same board) finds
    the program resident by CRC-32 and sends no program byte; the program still runs."""
    runtime = pytest.importorskip("sqzhw.runtime")
    program = _fire_program()
    acc, device = make(mem=max(1 << 16, program.memory_size))
    first = acc.load(program)
    total = sum(len(blob) for _, blob in program.static_image())
    assert first.verified and first.bytes_total == total and not first.resident
    assert first.bytes_sent == sum(c.size for c in first.written) and first.bytes_sent + sum(
        c.size for c in first.skipped) == total
    for addr, blob in program.static_image():
        assert bytes(device.memory[addr:addr + len(blob)]) == blob
    sent = acc.transport.bytes_sent
    writes = _commands(device, protocol.Command.WRITE_MEM)
    again = Accelerator(acc.transport, TINY)          # a new session on the same board
    second = again.load(program)
    assert second.resident and second.bytes_sent == 0 and not second.written
    assert "nothing sent" in second.summary() and again.last_load is second
    assert _commands(device, protocol.Command.WRITE_MEM) == writes
    assert acc.transport.bytes_sent - sent < 200      # INFO, STATUS and two CHECKSUM_MEM requests
    x = np.random.default_rng(0).standard_normal((program.input.channels, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(again.infer_full(x).sums, runtime.run_golden(program, x).sums)


def test_changed_weight_resends_only_its_chunk():
    """One weight byte changed: only the chunk that holds it crosses the link, and memory then holds
    the new image."""
    from dataclasses import replace

    program = _fire_program()
    acc, device = make(mem=max(1 << 16, program.memory_size))
    acc.verify_chunk = 256
    acc.load(program)
    weights = program.region("weights")
    image = bytearray(program.image)
    where = len(image) // 2
    image[where] ^= 0x40
    changed = replace(program, image=bytes(image))
    result = acc.load(changed)
    assert [(c.addr, c.size) for c in result.written] == [(weights.base + where // 256 * 256, 256)]
    assert result.bytes_sent == 256 and len(result.skipped) == len(result.written + result.skipped) - 1
    assert "weights" in result.written[0].what
    assert bytes(device.memory[weights.base:weights.base + len(image)]) == bytes(image)
    assert acc.program is changed


class FlakyMemory(bytearray):
    """External memory whose write path flips data bit 3 of the byte at ``bad`` whenever it is written."""

    def __init__(self, size: int, bad: int) -> None:
        super().__init__(size)
        self.bad = bad

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if isinstance(key, slice) and key.start <= self.bad < key.stop:
            super().__setitem__(self.bad, self[self.bad] ^ 0x08)


@pytest.mark.parametrize("region", ["weights", "instructions"])
def test_memory_that_corrupts_writes_is_a_memory_fault(region):
    """A write-path fault (the memory holds another bit than the one written) fails the load with
    MemoryFault naming the chunk: its address range and what it is; the program is not taken as
    loaded."""
    program = _fire_program()
    acc, device = make(mem=max(1 << 16, program.memory_size))
    acc.verify_chunk = 512
    base, blob = dict(zip(["instructions", "weights"], program.static_image()))[region]
    bad = base + len(blob) // 2
    device.memory = FlakyMemory(device.mem_bytes, bad)
    with pytest.raises(MemoryFault, match=rf"does not hold what was written at 0x[0-9a-f]+\.\.0x[0-9a-f]+ "
                                          rf"\({region}, bytes") as info:
        acc.load(program)
    chunk = info.value.chunk
    assert chunk.addr <= bad < chunk.addr + chunk.size and chunk.size <= 512
    assert info.value.got != info.value.expected
    assert acc.program is None
    # Unverified, the same load "succeeds": the check is what finds the fault.
    assert not acc.load(program, verify=False).verified


def test_without_checksum_mem_loads_are_plain():
    """A device without CHECKSUM_MEM (a bitstream built without it: INFO says so) gets today's plain
    load, every byte written and nothing asked; so does verify=False on one with it."""
    program = _fire_program()
    total = sum(len(blob) for _, blob in program.static_image())
    device = DeviceModel(TINY, max(1 << 16, program.memory_size), checksum=False)
    acc = Accelerator(LoopbackTransport(device), TINY)
    assert not acc.info().has_checksum
    for _ in range(2):
        result = acc.load(program)
        assert not result.verified and result.bytes_sent == total and "not checked" in result.summary()
    assert _commands(device, protocol.Command.CHECKSUM_MEM) == 0
    with pytest.raises(DriverError, match="no CHECKSUM_MEM"):
        acc.checksum(0, 4)
    acc, device = make(mem=max(1 << 16, program.memory_size))
    acc.load(program)
    writes = _commands(device, protocol.Command.WRITE_MEM)
    result = acc.load(program, verify=False)
    assert not result.verified and result.bytes_sent == total
    assert _commands(device, protocol.Command.WRITE_MEM) > writes


def test_version_2_device_is_talked_to_without_checksum():
    """A device of protocol version 2 (no features byte) is accepted, without CHECKSUM_MEM; versions
    outside COMPATIBLE_VERSIONS are refused."""
    class OldDevice(DeviceModel):
        version = 2

        def _execute(self, f):
            status, reply = super()._execute(f)
            if f.command is protocol.Command.INFO:
                reply = bytes([self.version]) + reply[1:9] + reply[10:]    # a v2 header: no features byte
            return status, reply

    device = OldDevice(TINY, 1 << 16)
    acc = Accelerator(LoopbackTransport(device), TINY)
    info = acc.info()
    assert (info.version, info.features, info.has_checksum, info.tag) == (2, 0, False, TINY.tag)
    device.version = 1
    with pytest.raises(DriverError, match="version 1"):
        acc.info()
