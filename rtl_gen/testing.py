"""Simulation helpers for the engine's Amaranth-sim tests: an external-memory model, stream drivers,
a fuzzer of instruction words and the Python statement of the DRAM range rules.

The memory model serves ``rd_cmd``/``rd_data``/``wr`` the way ``docs/architecture.md`` requires
(in order, a read after a write handshake sees the write) with a configurable latency and seeded
random stalls on every handshake, so unit tests cross their streams with idle cycles and
back-pressure.
"""

from __future__ import annotations

import gc
import random
import warnings
from collections import deque
from dataclasses import dataclass

from sqzhw import isa
from sqzhw.config import AccelConfig

__all__ = ["MemoryModel", "EngineRun", "run_engine", "stream_put", "stream_get", "random_word",
           "dram_violation", "field_bits"]


class MemoryModel:
    """External memory as a bytearray behind the engine's read and write streams.

    Parameters
    ----------
    data : bytearray
        Memory contents (modified in place by writes).
    ext_bytes : int
        Bytes per bus word.
    latency : int
        Cycles from a read request's handshake until its data may be offered.
    stall : float
        Probability of deasserting ``rd_cmd.ready``, ``rd_data.valid`` or ``wr.ready`` in a cycle.
    seed : int
    """

    def __init__(self, data: bytearray, ext_bytes: int, latency: int = 4, stall: float = 0.3,
                 seed: int = 0, max_outstanding: int = 32):
        self.data = data
        self.ext_bytes = ext_bytes
        self.latency = latency
        self.stall = stall
        self.rng = random.Random(seed)
        self.max_outstanding = max_outstanding
        self.reads = 0
        self.writes: list[tuple[int, int]] = []   # (word address, value) in handshake order
        self.bad_reads: list[int] = []
        self.cycle = 0

    def _word(self, addr: int) -> int:
        base = addr * self.ext_bytes
        if base + self.ext_bytes > len(self.data):
            self.bad_reads.append(addr)
            return 0
        return int.from_bytes(self.data[base:base + self.ext_bytes], "little")

    def _stall(self) -> bool:
        return self.stall > 0 and self.rng.random() < self.stall

    def process(self, rd_cmd, rd_data, wr):
        """An async process for ``sim.add_process`` serving these streams (see :meth:`serve`)."""
        async def run(ctx):
            await self.serve(ctx, rd_cmd, rd_data, wr)
        return run

    async def serve(self, ctx, rd_cmd, rd_data, wr):
        """Run forever (add it with ``sim.add_process``): serve reads and writes each cycle.
        ``rd_cmd``/``rd_data`` or ``wr`` may be ``None`` for a unit that only writes or only reads."""
        pending: deque[tuple[int, int]] = deque()    # (ready cycle, word)
        reads = rd_cmd is not None
        while True:
            cmd_ready = len(pending) < self.max_outstanding and not self._stall()
            offer = bool(pending) and pending[0][0] <= self.cycle and not self._stall()
            wr_ready = not self._stall()
            watch = []
            if reads:
                ctx.set(rd_cmd.ready, cmd_ready)
                ctx.set(rd_data.valid, offer)
                if offer:
                    ctx.set(rd_data.payload, pending[0][1])
                watch += [rd_cmd.valid, rd_cmd.payload, rd_data.ready]
            if wr is not None:
                ctx.set(wr.ready, wr_ready)
                watch += [wr.valid, wr.payload]
            sampled = list((await ctx.tick().sample(*watch))[2:])
            self.cycle += 1
            if wr is not None:
                wr_payload = sampled.pop()
                wr_valid = sampled.pop()
                # Writes before reads of the same cycle: a read after a write handshake sees it.
                if wr_ready and wr_valid:
                    addr, value = int(wr_payload.addr), int(wr_payload.data)
                    self.writes.append((addr, value))
                    base = addr * self.ext_bytes
                    if base + self.ext_bytes <= len(self.data):
                        self.data[base:base + self.ext_bytes] = value.to_bytes(self.ext_bytes, "little")
            if reads:
                cmd_valid, cmd_addr, data_ready = sampled
                if offer and data_ready:
                    pending.popleft()
                if cmd_ready and cmd_valid:
                    self.reads += 1
                    pending.append((self.cycle + self.latency, self._word(int(cmd_addr))))


def run_testbench(dut, bench, cycles: int = 200, period: float = 1e-8) -> None:
    """Simulate ``dut`` with one ``sync`` clock and the async testbench ``bench`` for ``cycles``
    clock periods (the testbench's own waits still need their limits)."""
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(period)
    sim.add_testbench(bench)
    sim.run_until(period * cycles)


async def stream_put(ctx, stream, payload, rng: random.Random | None = None, idle: float = 0.0,
                     timeout: int = 10_000):
    """Offer one payload on a stream (testbench drives ``valid``), with random idle cycles first."""
    while rng is not None and rng.random() < idle:
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    for _ in range(timeout):
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            ctx.set(stream.valid, 0)
            return
    raise TimeoutError(f"stream_put: no ready within {timeout} cycles")


async def stream_get(ctx, stream, rng: random.Random | None = None, backpressure: float = 0.0,
                     timeout: int = 10_000):
    """Take one payload from a stream (testbench drives ``ready``), with random back-pressure."""
    for _ in range(timeout):
        ready = not (rng is not None and rng.random() < backpressure)
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if ready and valid:
            ctx.set(stream.ready, 0)
            return payload
    raise TimeoutError(f"stream_get: no valid within {timeout} cycles")


async def wait_for(ctx, signal, limit: int, what: str) -> None:
    """Tick until ``signal`` is high; AssertionError naming ``what`` after ``limit`` cycles."""
    for _ in range(limit):
        if ctx.get(signal):
            return
        await ctx.tick()
    raise AssertionError(f"timeout after {limit} cycles waiting for {what}")


async def drive_word_ops(ctx, ctrl, ops, ref: dict[int, int], rng: random.Random, idle: float = 0.0,
                         timeout: int = 10_000) -> list[tuple[int, int]]:
    """Issue ``ops`` (``("w", addr, data)`` / ``("r", addr)``) on a memory controller's ``wr`` and
    ``rd_cmd`` streams, in order, with random idle cycles; ``ref`` (word -> value, updated by the
    writes) says what each read must return. Returns ``[(addr, expected value)]`` per read."""
    expected = []
    rng_idle = rng if idle else None   # no draws without idle cycles: the caller's stream stays its own
    for op in ops:
        if op[0] == "w":
            _, addr, value = op
            await stream_put(ctx, ctrl.wr, {"addr": addr, "data": value}, rng_idle, idle, timeout)
            ref[addr] = value
        else:
            _, addr = op
            await stream_put(ctx, ctrl.rd_cmd, addr, rng_idle, idle, timeout)
            expected.append((addr, ref.get(addr, 0)))
    return expected


def field_bits(opcode: isa.Opcode) -> dict[str, tuple[int, int]]:
    """``name -> (bit offset in the instruction word, width)`` of an opcode's payload fields."""
    return {name: (info.offset, info.width) for name, info in isa.PAYLOAD_FIELDS[opcode].items()}


def collect_quietly() -> None:
    """Collect components built only to inspect (or half-built by a rejected argument) without an
    UnusedElaboratable warning landing in some later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()


def random_word(rng: random.Random, config: AccelConfig, mem_bytes: int = 1 << 20) -> int:
    """A fuzzed instruction word biased toward the edges of the legality rules: opcodes both valid
    and not, fields 0, 1, small, near a buffer depth, near the top of their range."""
    word = rng.getrandbits(isa.INSN_BITS)
    opcode = rng.choice([o.value for o in isa.Opcode] * 3 + list(range(8, 16)))
    word = (word & ~0xF) | opcode
    try:
        op = isa.Opcode(opcode)
    except ValueError:
        return word
    if isa.fields_of(op) is None:
        return word
    depths = [config.act_buf_entries, config.wgt_buf_tiles, config.acc_buf_entries, config.out_buf_entries,
              config.param_buf_entries]
    for name, (offset, width) in field_bits(op).items():
        top = (1 << width) - 1
        choice = rng.random()
        if choice < 0.15:
            value = 0
        elif choice < 0.3:
            value = 1
        elif choice < 0.6:
            value = rng.randrange(0, min(top, 8) + 1)
        elif choice < 0.75:
            value = min(top, max(0, rng.choice(depths) + rng.randrange(-3, 4)))
        elif choice < 0.85 and name in ("dram_addr", "dram_stride"):
            value = rng.randrange(0, min(top, mem_bytes) + 1) & ~(config.ext_bytes - 1)
            if rng.random() < 0.2:
                value |= rng.randrange(0, config.ext_bytes)
            value &= top
        elif choice < 0.9:
            value = top - rng.randrange(0, min(top, 3) + 1)
        else:
            value = rng.randrange(0, top + 1)
        word = (word & ~(top << offset)) | (value << offset)
    return word


def dram_violation(word: int, config: AccelConfig, mem_bytes: int, wr_lo: int, wr_hi: int) -> bool:
    """The DRAM range rule of a statically legal LOAD/STORE: reads below ``mem_bytes``, writes inside
    ``[wr_lo, wr_hi)`` (the engine's rule that :func:`sqzhw.isa.check` leaves out)."""
    insn = isa.decode(word)
    opcode = isa.Opcode(word & 0xF)
    if opcode is isa.Opcode.LOAD:
        f = insn.payload.load
        entry = {isa.LoadTarget.ACT: config.act_entry_bytes, isa.LoadTarget.WGT: config.wgt_tile_bytes,
                 isa.LoadTarget.PARAM: config.param_entry_bytes}[f.target]
        end = f.dram_addr + (f.rows - 1) * f.dram_stride + f.row_len * entry
        return end > mem_bytes
    if opcode is isa.Opcode.STORE:
        f = insn.payload.store
        entry = config.acc_entry_bytes if f.source is isa.StoreSource.ACC else config.act_entry_bytes
        end = f.dram_addr + (f.rows - 1) * f.dram_stride + f.row_len * entry
        return f.dram_addr < wr_lo or end > wr_hi or end > mem_bytes
    return False


@dataclass
class EngineRun:
    """Outcome of :func:`run_engine`."""
    done: bool
    error: isa.ErrorCode
    error_pc: int
    counters: dict[str, int]
    cycles: int
    memory: MemoryModel


def run_engine(engine, memory: bytearray, insn_addr: int, insn_count: int, wr_window: tuple[int, int],
               *, latency: int = 4, stall: float = 0.2, seed: int = 0, timeout: int = 200_000,
               mem_bytes: int | None = None) -> EngineRun:
    """Run a program on an :class:`rtl_gen.engine.Engine` in the Amaranth simulator.

    ``memory`` is modified in place by the engine's writes. Raises ``TimeoutError`` if the engine
    is still busy after ``timeout`` cycles.
    """
    from amaranth.sim import Simulator

    model = MemoryModel(memory, engine.config.ext_bytes, latency=latency, stall=stall, seed=seed)
    result = {}

    async def bench(ctx):
        ctx.set(engine.insn_addr, insn_addr)
        ctx.set(engine.insn_count, insn_count)
        ctx.set(engine.mem_bytes, len(memory) if mem_bytes is None else mem_bytes)
        ctx.set(engine.wr_lo, wr_window[0])
        ctx.set(engine.wr_hi, wr_window[1])
        ctx.set(engine.start, 1)
        await ctx.tick()
        ctx.set(engine.start, 0)
        for cycle in range(timeout):
            await ctx.tick()
            if not ctx.get(engine.busy):
                break
        else:
            raise TimeoutError(f"engine still busy after {timeout} cycles")
        counters = ctx.get(engine.counters)
        result.update(done=bool(ctx.get(engine.done)), error=isa.ErrorCode(ctx.get(engine.error.as_value())),
                      error_pc=ctx.get(engine.error_pc), cycles=cycle + 1,
                      counters={c.name.lower(): int(counters[c.value]) for c in isa.Counter})

    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_process(model.process(engine.rd_cmd, engine.rd_data, engine.wr))
    sim.add_testbench(bench)
    sim.run()
    return EngineRun(memory=model, **result)
