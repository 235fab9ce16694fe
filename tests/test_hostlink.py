"""HostLink in the Amaranth simulator: byte streams in and out, a memory model with random stalls
and an engine stand-in; responses compared with the Python device model (sqzhw.driver.DeviceModel)
byte for byte, the driver run against the gateware, back-to-back frames at a UART's line rate
into the receive FIFO (its sizing), and CHECKSUM_MEM's CRC-32 of memory ranges."""

import os
import zlib
from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl_gen.hostlink import WRITE_WAIT, HostLink, _idle_lfsr, _lfsr_step, rx_backlog, rx_fifo_depth
from rtl_gen.testing import collect_quietly
from sqzhw import isa, protocol
from sqzhw.config import load_config
from sqzhw.driver import Accelerator, DeviceBusyError, DeviceModel, DriverError, FaultInjector
from sqzhw.protocol import Command, Status

CONFIG = load_config("tiny")     # 4-byte memory words
MEM = 4096
MAX_PAYLOAD = 64
IDLE = 300
PERIOD = 1e-8


async def _first_edge(ctx, cond, value):
    """Wait for the first clock edge at which ``cond`` is high; ``value`` just before it. (A loop of
    single triggers: ``tick().until()`` leaves a generator open that complains when the simulation
    stops in the middle of it.)"""
    while True:
        _, _, high, got = await ctx.tick().sample(cond, value)
        if high:
            return got


class HostLinkBench:
    """HostLink with Python models around it, stepped from plain Python (``run``)."""

    def __init__(self, config=CONFIG, stall: float = 0.3, seed: int = 0, engine_cycles: int = 50,
                 latency: int = 3, engine_error: isa.ErrorCode = isa.ErrorCode.NONE,
                 counter_port: bool = False, *, mem: int = MEM, max_payload: int = MAX_PAYLOAD,
                 divisor: int | None = None, write_wait: int | None = None,
                 window: int = protocol.DEFAULT_WINDOW, checksum: bool = True) -> None:
        """``divisor``: the bytes come and go at a UART's line rate, ``10 * divisor`` cycles per byte:
        a request byte not taken before the next one is complete is an overrun (AssertionError), as in
        :class:`rtl_gen.uart.UARTRx`; the response side takes one byte per byte time; the memory
        only takes writes, holding ``wr.ready`` low exactly ``write_wait`` cycles for every word; no
        engine (the models wait for events, not cycles: long line-rate runs stay quick)."""
        self.config = config
        self.counter_port = counter_port
        self.mem = mem
        self.line = None if divisor is None else 10 * divisor
        self.write_wait = write_wait or 0
        self.dut = HostLink(config, mem, max_payload=max_payload, idle_timeout=IDLE,
                            counter_port=counter_port, uart_divisor=divisor, window=window, checksum=checksum)
        self.rng = np.random.default_rng(seed)
        self.memory = bytearray(mem)
        self.fifo_most = 0                  # the receive FIFO's highest level
        self.to_dut: deque = deque()        # bytes, or ("gap", cycles)
        self.from_dut = bytearray()
        self.starts: list[tuple[int, int, int, int]] = []
        self.resets = 0
        self.mem_writes = 0
        self.mem_reads = 0
        self.cycles = 0
        self.stall = stall
        self.latency = latency
        self.engine_cycles = engine_cycles
        self.engine_error = engine_error
        self.counter_values = [int(v) for v in self.rng.integers(0, 1 << 32, len(isa.Counter))]
        sim = Simulator(self.dut)
        sim.add_clock(PERIOD)
        self.live_counters = [0] * len(isa.Counter)
        benches = ((self._feeder, self._sink, self._memory, self._engine) if self.line is None
                   else (self._line_feeder, self._line_sink, self._line_memory))
        for bench in benches + ((self._counter_ram,) if counter_port else ()):
            sim.add_testbench(bench)
        self.sim = sim

    def send(self, data: bytes) -> None:
        self.to_dut.extend(data)

    def gap(self, cycles: int) -> None:
        self.to_dut.append(("gap", cycles))

    def run(self, cycles: int) -> None:
        self.cycles += cycles
        self.sim.run_until(self.cycles * PERIOD)

    def run_until_quiet(self, limit: int = 200_000, quiet: int = 400) -> None:
        """Run until the input is consumed and the output has been quiet for ``quiet`` cycles."""
        last = -1
        for _ in range(limit // 100):
            self.run(100)
            if not self.to_dut and len(self.from_dut) == last and self._idle_for >= quiet:
                return
            last = len(self.from_dut)
        raise AssertionError(f"HostLink still talking after {limit} cycles")

    @property
    def _idle_for(self) -> int:
        return self.cycles - self._last_activity

    _last_activity = 0

    def responses(self) -> list[protocol.Frame]:
        dec = protocol.FrameDecoder(responses=True)
        frames = list(dec.feed(bytes(self.from_dut)))
        assert dec.errors == 0 and dec.pending == 0, "the gateware sent a malformed frame"
        return frames

    async def _feeder(self, ctx):
        rx = self.dut.rx
        while True:
            if not self.to_dut:
                await ctx.tick()
                continue
            item = self.to_dut.popleft()
            if isinstance(item, tuple):
                # A quiet gap at the protocol engine: it starts once the FIFO has handed on every byte.
                fifo = self.dut.rx_fifo
                for _ in range(100_000):
                    if fifo is None or not ctx.get(fifo.level):
                        break
                    await ctx.tick()
                await ctx.tick().repeat(item[1])
                continue
            ctx.set(rx.payload, item)
            ctx.set(rx.valid, 1)
            for _ in range(100_000):
                if ctx.get(rx.ready):
                    break
                await ctx.tick()
            else:
                raise AssertionError("HostLink never took a byte")
            await ctx.tick()
            ctx.set(rx.valid, 0)
            self._last_activity = self.cycles
            if self.rng.random() < self.stall:
                await ctx.tick().repeat(int(self.rng.integers(1, 4)))

    async def _line_feeder(self, ctx):
        rx, line = self.dut.rx, self.line
        while True:
            if not self.to_dut:
                await ctx.tick()
                continue
            ctx.set(rx.payload, self.to_dut.popleft())
            ctx.set(rx.valid, 1)
            waited = 0
            while not ctx.get(rx.ready):
                waited += 1
                if waited >= line:
                    raise AssertionError(f"overrun: a request byte was not taken in {line} cycles (cycle "
                                         f"{self.cycles})")
                await ctx.tick()
            await ctx.tick()
            ctx.set(rx.valid, 0)
            self._last_activity = self.cycles
            if self.dut.rx_fifo is not None:
                self.fifo_most = max(self.fifo_most, ctx.get(self.dut.rx_fifo.level))
            await ctx.tick().repeat(line - 1 - waited)

    async def _line_sink(self, ctx):
        tx = self.dut.tx
        while True:
            ctx.set(tx.ready, 1)
            byte = await _first_edge(ctx, tx.valid, tx.payload)   # taken: the UART sends it
            self.from_dut.append(byte)
            self._last_activity = self.cycles
            ctx.set(tx.ready, 0)
            await ctx.tick().repeat(self.line - 1)

    async def _line_memory(self, ctx):
        wr, e = self.dut.wr, self.config.ext_bytes
        while True:
            ctx.set(wr.ready, int(not self.write_wait))
            w = await _first_edge(ctx, wr.valid, wr.payload)   # one cycle of the wait, or taken
            if self.write_wait:
                if self.write_wait > 1:
                    await ctx.tick().repeat(self.write_wait - 1)
                ctx.set(wr.ready, 1)
                w = ctx.get(wr.payload)
                await ctx.tick()
            assert (w.addr + 1) * e <= self.mem, f"write past memory: word {w.addr}"
            self.memory[w.addr * e:(w.addr + 1) * e] = int(w.data).to_bytes(e, "little")
            self.mem_writes += 1

    async def _sink(self, ctx):
        tx = self.dut.tx
        while True:
            ready = int(self.rng.random() >= self.stall)
            ctx.set(tx.ready, ready)
            if ready and ctx.get(tx.valid):
                self.from_dut.append(ctx.get(tx.payload))
                self._last_activity = self.cycles
            await ctx.tick()

    async def _memory(self, ctx):
        d = self.dut
        e = self.config.ext_bytes
        pending: deque = deque()
        now = 0
        while True:
            cmd_ready = int(self.rng.random() >= self.stall)
            wr_ready = int(self.rng.random() >= self.stall)
            ctx.set(d.rd_cmd.ready, cmd_ready)
            ctx.set(d.wr.ready, wr_ready)
            show = bool(pending) and pending[0][0] <= now and self.rng.random() >= self.stall
            ctx.set(d.rd_data.valid, int(show))
            if show:
                addr = pending[0][1]
                ctx.set(d.rd_data.payload, int.from_bytes(self.memory[addr * e:(addr + 1) * e], "little"))
            if show and ctx.get(d.rd_data.ready):
                pending.popleft()
            if cmd_ready and ctx.get(d.rd_cmd.valid):
                addr = ctx.get(d.rd_cmd.payload)
                assert (addr + 1) * e <= self.mem, f"read past memory: word {addr}"
                pending.append((now + self.latency, addr))
                self.mem_reads += 1
            if wr_ready and ctx.get(d.wr.valid):
                w = ctx.get(d.wr.payload)
                assert (w.addr + 1) * e <= self.mem, f"write past memory: word {w.addr}"
                self.memory[w.addr * e:(w.addr + 1) * e] = int(w.data).to_bytes(e, "little")
                self.mem_writes += 1
            await ctx.tick()
            now += 1

    async def _engine(self, ctx):
        d = self.dut
        left = 0
        while True:
            if ctx.get(d.engine_reset):
                self.resets += 1
                left = 0
                ctx.set(d.busy, 0)
                ctx.set(d.done, 0)
                ctx.set(d.error, isa.ErrorCode.NONE)
            elif ctx.get(d.start):
                self.starts.append((ctx.get(d.insn_addr), ctx.get(d.insn_count), ctx.get(d.wr_lo),
                                    ctx.get(d.wr_hi)))
                assert ctx.get(d.mem_bytes) == self.mem
                left = self.engine_cycles
                ctx.set(d.busy, 1)
                ctx.set(d.done, 0)
                ctx.set(d.error, isa.ErrorCode.NONE)
            elif left:
                left -= 1
                if not left:
                    ctx.set(d.busy, 0)
                    failed = self.engine_error != isa.ErrorCode.NONE
                    ctx.set(d.done, int(not failed))
                    ctx.set(d.error, self.engine_error)
                    ctx.set(d.error_pc, 17 if failed else 0)
                    if self.counter_port:
                        self.live_counters = list(self.counter_values)
                    else:
                        ctx.set(d.counters, self.counter_values)
            await ctx.tick()

    async def _counter_ram(self, ctx):
        """A CounterRAM's read port: ``ctr_valid`` once per 16-cycle round, garbage otherwise."""
        d = self.dut
        now = 0
        while True:
            sel = ctx.get(d.ctr_sel)
            valid = now % 16 == sel
            ctx.set(d.ctr_valid, int(valid))
            ctx.set(d.ctr_value, self.live_counters[sel] if valid else int(self.rng.integers(0, 1 << 32)))
            await ctx.tick()
            now += 1


def req(command, seq, payload=b""):
    return protocol.encode_request(command, seq, payload)


def write_req(seq, addr, data):
    return req(Command.WRITE_MEM, seq, addr.to_bytes(4, "little") + data)


def read_req(seq, addr, count):
    return req(Command.READ_MEM, seq, protocol.encode_read_args(addr, count))


def checksum_req(seq, addr, count):
    return req(Command.CHECKSUM_MEM, seq, protocol.encode_checksum_args(addr, count))


def test_info_write_read_roundtrip():
    tb = HostLinkBench(seed=1)
    data = os.urandom(60)
    tb.send(req(Command.INFO, 1) + write_req(2, 64, data) + read_req(3, 64, 60) + read_req(4, 60, 8))
    tb.run_until_quiet()
    r = tb.responses()
    assert [(f.status, f.command, f.seq) for f in r] == [
        (Status.OK, Command.INFO, 1), (Status.OK, Command.WRITE_MEM, 2),
        (Status.OK, Command.READ_MEM, 3), (Status.OK, Command.READ_MEM, 4)]
    assert protocol.decode_info(r[0].payload) == {"version": protocol.PROTOCOL_VERSION, "ext_bytes": 4,
                                                  "max_payload": MAX_PAYLOAD, "mem_bytes": MEM,
                                                  "window": protocol.DEFAULT_WINDOW, "tag": CONFIG.tag,
                                                  "features": protocol.Feature.CHECKSUM_MEM}
    assert bytes(tb.memory[64:124]) == data
    assert r[2].payload == data
    assert r[3].payload == bytes(4) + data[:4]


@pytest.mark.parametrize("counter_port", [False, True])
def test_start_status_counters_busy_and_repeat(counter_port):
    """(``counter_port``: the counters come one at a time from a CounterRAM-like read port.)"""
    tb = HostLinkBench(seed=2, engine_cycles=3000, counter_port=counter_port)
    args = protocol.encode_start_args(0x40, 12, 0x100, 0x800)
    tb.send(req(Command.START, 10, args) + req(Command.STATUS, 11) + write_req(12, 0, bytes(4))
            + req(Command.START, 13, args) + req(Command.START, 13, args))
    tb.run_until_quiet()
    tb.run(3000)
    tb.send(req(Command.STATUS, 14) + req(Command.READ_COUNTERS, 15) + req(Command.START, 15, args))
    tb.run_until_quiet()
    r = tb.responses()
    assert [(f.status, f.seq) for f in r] == [
        (Status.OK, 10), (Status.OK, 11), (Status.BUSY, 12), (Status.BUSY, 13), (Status.BUSY, 13),
        (Status.OK, 14), (Status.OK, 15), (Status.OK, 16 - 1)]
    assert tb.starts[0] == (0x40, 12, 0x100, 0x800)
    assert protocol.decode_status(r[1].payload)["busy"] is True
    s = protocol.decode_status(r[5].payload)
    assert (s["busy"], s["done"], s["error"]) == (False, True, isa.ErrorCode.NONE)
    assert list(protocol.decode_counters(r[6].payload).values()) == tb.counter_values
    # seq 15 was READ_COUNTERS, so the START with seq 15 is a new request and starts the engine
    assert len(tb.starts) == 2


def test_repeated_start_is_not_restarted():
    tb = HostLinkBench(seed=3, engine_cycles=20)
    args = protocol.encode_start_args(0, 1, 0, 64)
    tb.send(req(Command.START, 7, args))
    tb.run_until_quiet()
    tb.send(req(Command.START, 7, args))       # a retry: the ACK was lost
    tb.run_until_quiet()
    tb.send(req(Command.START, 8, args) + req(Command.RESET, 9) + req(Command.STATUS, 10))
    tb.run_until_quiet()
    r = tb.responses()
    assert [f.status for f in r] == [Status.OK] * 5
    assert len(tb.starts) == 2 and tb.resets == 1
    s = protocol.decode_status(r[4].payload)
    assert (s["busy"], s["done"]) == (False, False)


def test_engine_error_reported():
    tb = HostLinkBench(seed=4, engine_cycles=10, engine_error=isa.ErrorCode.DRAM_RANGE)
    tb.send(req(Command.START, 1, protocol.encode_start_args(0, 1, 0, 64)))
    tb.run_until_quiet()
    tb.send(req(Command.STATUS, 2))
    tb.run_until_quiet()
    s = protocol.decode_status(tb.responses()[1].payload)
    assert (s["busy"], s["done"], s["error"], s["error_pc"]) == (False, False, isa.ErrorCode.DRAM_RANGE, 17)


@pytest.mark.parametrize("starting,failed", [(1, 0), (0, 1), (0, 0)])
def test_status_reports_the_memory_start_up(starting, failed):
    """STATUS carries the external memory's start-up flags as the system drives them."""
    tb = HostLinkBench(seed=5)

    async def memory_flags(ctx):
        ctx.set(tb.dut.mem_starting, starting)
        ctx.set(tb.dut.mem_failed, failed)

    tb.sim.add_testbench(memory_flags)
    tb.send(req(Command.STATUS, 1))
    tb.run_until_quiet()
    s = protocol.decode_status(tb.responses()[0].payload)
    assert (s["mem_starting"], s["mem_failed"]) == (bool(starting), bool(failed))


def test_naks():
    tb = HostLinkBench(seed=5)
    good = write_req(1, 0, b"\x11" * 8)
    corrupt = bytearray(good)
    corrupt[7] ^= 0x10
    too_long = bytes([protocol.REQUEST_SYNC, Command.WRITE_MEM.value, 2]) + (MAX_PAYLOAD + 1).to_bytes(2, "little")
    tb.send(bytes(corrupt))
    tb.send(too_long)
    tb.gap(IDLE + 50)
    tb.send(req(0x42, 3) + req(Command.STATUS, 4, b"x") + write_req(5, 2, bytes(4))
            + write_req(6, MEM - 4, bytes(8)) + read_req(7, 0, MAX_PAYLOAD + 4) + read_req(8, 0, 6))
    tb.run_until_quiet()
    r = tb.responses()
    assert [(f.status, f.seq) for f in r] == [
        (Status.BAD_CRC, 1), (Status.BAD_LENGTH, 2), (Status.UNKNOWN_COMMAND, 3), (Status.BAD_LENGTH, 4),
        (Status.BAD_ADDRESS, 5), (Status.BAD_ADDRESS, 6), (Status.BAD_ADDRESS, 7), (Status.BAD_ADDRESS, 8)]
    assert all(f.payload == b"" for f in r)
    assert tb.mem_writes == 0 and tb.memory == bytearray(MEM)


def test_dropped_byte_frame_is_dropped_not_executed():
    tb = HostLinkBench(seed=6)
    frame = write_req(1, 0, b"\x22" * 16)
    tb.send(frame[:10] + frame[11:])           # one byte lost: the frame never completes
    tb.gap(IDLE + 50)                          # the idle timeout drops it
    tb.send(write_req(1, 16, b"\x33" * 4))     # the retry (same seq) works
    tb.run_until_quiet()
    r = tb.responses()
    assert [(f.status, f.seq) for f in r] == [(Status.OK, 1)]
    assert tb.memory[:16] == bytes(16) and tb.memory[16:20] == b"\x33" * 4


@pytest.mark.parametrize("config,counter_port", [("tiny", False), ("icebreaker", False), ("icebreaker", True)])
def test_matches_device_model_on_random_traffic(config, counter_port):
    """Random requests mixed with garbage, corrupted and truncated frames: the gateware's
    responses equal the Python device model's byte for byte, and so does memory (4- and 2-byte
    memory words; the iCEBreaker's counter read port)."""
    config = load_config(config)
    rng = np.random.default_rng(11)
    tb = HostLinkBench(config=config, seed=7, stall=0.2, counter_port=counter_port)
    model = DeviceModel(config, MEM, max_payload=MAX_PAYLOAD)
    model.memory[:] = tb.memory
    expected = bytearray()
    seq = 0
    for step in range(28):
        seq = (seq + 1) & 0xFF
        kind = rng.integers(7)
        if kind == 6:
            frame = checksum_req(seq, int(rng.integers(0, MEM // 4 - 80)) * 4, int(rng.integers(0, 80)) * 4)
        elif kind == 0:
            frame = write_req(seq, int(rng.integers(0, MEM // 4 - 16)) * 4,
                              rng.integers(0, 256, int(rng.integers(0, 14)) * 4, dtype=np.uint8).tobytes())
        elif kind == 1:
            frame = read_req(seq, int(rng.integers(0, MEM // 4 - 16)) * 4, int(rng.integers(0, 16)) * 4)
        elif kind == 2:
            frame = req(Command(int(rng.choice([1, 5, 6]))), seq)
        elif kind == 3:
            frame = bytearray(write_req(seq, 128, b"\x5a" * 8))
            frame[int(rng.integers(1, len(frame)))] ^= 1 << int(rng.integers(8))
            frame = bytes(frame)
        elif kind == 4:
            garbage = rng.integers(0, 256, int(rng.integers(1, 12)), dtype=np.uint8).tobytes()
            frame = garbage.replace(bytes([protocol.REQUEST_SYNC]), b"\x00")
        else:
            frame = write_req(seq, 256, b"\x77" * 8)[:int(rng.integers(2, 15))]
        tb.send(frame)
        expected += model.receive(frame)
        # a quiet gap: the idle timeout on both sides
        tb.gap(IDLE + 20)
        model.idle()
    tb.run_until_quiet()
    assert bytes(tb.from_dut) == bytes(expected)
    assert tb.memory == model.memory


class AmaranthSimTransport:
    """The driver's transport onto :class:`HostLinkBench` (the gateware in the Amaranth simulator)."""
    byte_time = 0.0
    default_timeout = 0.0

    def __init__(self, bench: HostLinkBench, faults: FaultInjector | None = None, budget: int = 3000):
        self.bench = bench
        self.faults = faults
        self.budget = budget

    def write(self, data: bytes) -> None:
        self.bench.send(self.faults(data) if self.faults else data)

    def read(self, timeout: float) -> bytes:
        for _ in range(self.budget // 100):
            self.bench.run(100)
            if self.bench.from_dut and self.bench._idle_for > 20:
                out = bytes(self.bench.from_dut)
                self.bench.from_dut.clear()
                return out
        return b""

    def close(self) -> None:
        pass


def test_driver_against_gateware_with_faults():
    tb = HostLinkBench(seed=8, stall=0.1, engine_cycles=1_000_000)
    # (~1 fault per two 71-byte frames: windowed writes lose the frame behind a dropped byte too)
    acc = Accelerator(AmaranthSimTransport(tb, FaultInjector(corrupt=0.006, drop=0.003, seed=3)), CONFIG,
                      retries=8)
    info = acc.info()
    assert (info.tag, info.mem_bytes, info.max_payload) == (CONFIG.tag, MEM, MAX_PAYLOAD)
    data = os.urandom(150)
    acc.write(6, data)
    assert acc.read(6, 150) == data
    assert bytes(tb.memory[6:156]) == data
    assert acc.checksum(4, 156) == zlib.crc32(bytes(tb.memory[4:160]))
    acc.start(0x100, 3, 0x200, 0x400)
    with pytest.raises(DeviceBusyError):
        acc.write(0, bytes(4))
    assert len(tb.starts) == 1, "a retried START must not start the engine twice"
    with pytest.raises(DriverError, match="outside"):
        acc.read(MEM - 4, 8)


@pytest.mark.parametrize("cycles", [1, 2, 7, 300, 10_000])
def test_idle_timer_lfsr_counts_exactly(cycles):
    """The idle timer's LFSR reaches its end state after exactly ``cycles`` steps from 1."""
    n, tap, end = _idle_lfsr(cycles)
    state = 1
    for step in range(cycles):
        assert state != end, f"end state reached after {step} steps"
        state = _lfsr_step(state, n, tap)
    assert state == end


# -- the receive FIFO: windowed writes at the line rate ------------------------------------------------

def test_rx_fifo_sizing():
    """The FIFO holds the bytes that arrive while a full WRITE_MEM is executed and answered, with a
    quarter more; a few dozen bytes on the iCEBreaker (16-bit words, 18 MHz) at 1 and 2 Mbaud."""
    ice = load_config("icebreaker")
    for divisor, most in ((18, 33), (9, 58)):
        backlog = rx_backlog(ice.ext_bytes, protocol.MAX_PAYLOAD, divisor)
        depth = rx_fifo_depth(ice.ext_bytes, protocol.MAX_PAYLOAD, divisor)
        assert backlog + backlog // 4 <= depth <= most
        # the answer alone (8 bytes at the line rate) is part of it
        assert backlog > protocol.RESPONSE_HEADER_BYTES + protocol.CRC_BYTES
    link = HostLink(ice, 128 << 10, uart_divisor=18)
    assert link.rx_fifo.depth == rx_fifo_depth(ice.ext_bytes, protocol.MAX_PAYLOAD, 18)
    assert HostLink(ice, 128 << 10, window=1).rx_fifo is None
    with pytest.raises(ValueError, match="window"):
        HostLink(ice, 128 << 10, window=0)
    del link
    collect_quietly()   # built only to inspect


@pytest.mark.parametrize("config,divisor,write_wait", [("tiny", 4, WRITE_WAIT), ("icebreaker", 5, 0)])
def test_back_to_back_frames_at_line_rate(config, divisor, write_wait):
    """WRITE_MEM frames of every size, back to back at the line rate with no gap (a windowed host),
    into a link whose answers leave at the line rate too and whose memory takes ``write_wait`` cycles
    per word (the FIFO is sized for WRITE_WAIT): no request byte is ever left untaken (no overrun),
    every frame is acknowledged in order, memory is bit-exact, and the FIFO never holds more than
    :func:`rx_backlog` bytes."""
    config = load_config(config)
    e = config.ext_bytes
    mem = 8 << 10
    tb = HostLinkBench(config, seed=9, mem=mem, max_payload=protocol.MAX_PAYLOAD, divisor=divisor,
                       write_wait=write_wait)
    rng = np.random.default_rng(10)
    sizes = [1020, 2 * e, 4 * e, 1020, 516]     # short frames arrive whole while a long one executes
    frames, addr, expect = [], 0, bytearray(mem)
    for seq, n in enumerate(sizes, 1):
        n -= n % e
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        frames.append(write_req(seq, addr, data))
        expect[addr:addr + n] = data
        addr += n
    tb.send(b"".join(frames))
    line_cycles = sum(len(f) for f in frames) * 10 * divisor
    tb.run_until_quiet(limit=line_cycles + 20_000, quiet=5_000)
    assert [(f.status, f.command, f.seq) for f in tb.responses()] == [(Status.OK, Command.WRITE_MEM, s)
                                                                      for s in range(1, len(sizes) + 1)]
    np.testing.assert_array_equal(np.frombuffer(tb.memory, np.uint8), np.frombuffer(bytes(expect), np.uint8))
    backlog = rx_backlog(e, protocol.MAX_PAYLOAD, divisor, write_wait)
    depth = tb.dut.rx_fifo.depth
    assert backlog - 3 <= tb.fifo_most <= backlog < depth, (tb.fifo_most, backlog, depth)


def test_without_fifo_a_line_rate_host_overruns():
    """window = 1 (no receive FIFO): INFO says stop-and-wait, and back-to-back frames overrun, the
    failure the FIFO prevents."""
    tb = HostLinkBench(stall=0.0, seed=11, divisor=4, window=1)
    tb.send(req(Command.INFO, 1))
    tb.run_until_quiet(quiet=200)
    assert protocol.decode_info(tb.responses()[0].payload)["window"] == 1
    tb.send(write_req(2, 0, bytes(32)) + write_req(3, 32, bytes(32)))
    with pytest.raises(AssertionError, match="overrun"):
        tb.run_until_quiet(quiet=200)


# -- CHECKSUM_MEM ------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", ["tiny", "icebreaker"])
def test_checksum_mem_of_ranges(config):
    """CHECKSUM_MEM over ranges of one word to all of the memory (64 frames' worth), through a memory
    with random stalls and latency: the reply is zlib.crc32 of those bytes, exactly the range's words
    are read, and unaligned, out-of-range and oversized requests get BAD_ADDRESS without a read (4-
    and 2-byte words); the responses equal the device model's byte for byte."""
    config = load_config(config)
    e = config.ext_bytes
    tb = HostLinkBench(config=config, seed=12, stall=0.2)
    tb.memory[:] = np.random.default_rng(12).integers(0, 256, MEM, dtype=np.uint8).tobytes()
    model = DeviceModel(config, MEM, max_payload=MAX_PAYLOAD)
    model.memory[:] = tb.memory
    good = [(0, e), (MEM - e, e), (64, 10 * e), (4 * e, 3 * MAX_PAYLOAD + 2 * e), (0, MEM), (MEM // 2, 0)]
    bad = [(e // 2, 2 * e), (0, 3 * e - 1), (MEM - e, 2 * e), (MEM + e, 0), (0, (1 << 32) - e), (1 << 31, e),
           (MEM // 2, 1 << 24)]
    frames = [checksum_req(seq, a, n) for seq, (a, n) in enumerate(good + bad, 1)]
    for f in frames:
        tb.send(f)
    tb.run_until_quiet(limit=400_000)
    r = tb.responses()
    expect = [Status.OK] * len(good) + [Status.BAD_ADDRESS] * len(bad)
    assert [(f.status, f.seq) for f in r] == list(zip(expect, range(1, len(frames) + 1)))
    for (a, n), f in zip(good, r):
        assert protocol.decode_checksum(f.payload) == zlib.crc32(bytes(tb.memory[a:a + n])), (a, n)
    assert tb.mem_reads == sum(n for _, n in good) // e
    assert bytes(tb.from_dut) == b"".join(model.receive(f) for f in frames)


def test_checksum_mem_after_writes_and_while_busy():
    """The CRC follows what WRITE_MEM wrote (a retried CHECKSUM_MEM with the same seq reads again:
    it is idempotent), and CHECKSUM_MEM is not refused while the engine runs (it only reads)."""
    tb = HostLinkBench(seed=13, engine_cycles=5000)
    data = os.urandom(48)
    tb.send(write_req(1, 100, data) + checksum_req(2, 100, 48) + checksum_req(2, 100, 48)
            + req(Command.START, 3, protocol.encode_start_args(0, 1, 0, 64)) + checksum_req(4, 96, 8))
    tb.run_until_quiet()
    r = tb.responses()
    assert [(f.status, f.seq) for f in r] == [(Status.OK, s) for s in (1, 2, 2, 3, 4)]
    crcs = [protocol.decode_checksum(f.payload) for f in (r[1], r[2], r[4])]
    assert crcs == [zlib.crc32(data), zlib.crc32(data), zlib.crc32(bytes(4) + data[:4])]
    assert len(tb.starts) == 1


def test_without_checksum_the_command_is_unknown():
    """HostLink(checksum=False): INFO's features say so, CHECKSUM_MEM gets UNKNOWN_COMMAND (as the
    device model without it), everything else is unchanged."""
    tb = HostLinkBench(seed=14, checksum=False)
    model = DeviceModel(CONFIG, MEM, max_payload=MAX_PAYLOAD, checksum=False)
    frames = [req(Command.INFO, 1), checksum_req(2, 0, 16), write_req(3, 0, b"abcd"), read_req(4, 0, 4),
              req(0x18, 5)]
    tb.send(b"".join(frames))
    tb.run_until_quiet()
    r = tb.responses()
    assert [(f.status, f.seq) for f in r] == [(Status.OK, 1), (Status.UNKNOWN_COMMAND, 2), (Status.OK, 3),
                                              (Status.OK, 4), (Status.UNKNOWN_COMMAND, 5)]
    assert protocol.decode_info(r[0].payload)["features"] == 0
    assert r[3].payload == b"abcd" and tb.mem_reads == 1
    assert bytes(tb.from_dut) == b"".join(model.receive(f) for f in frames)
