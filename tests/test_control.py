"""Tests of rtl_gen.control: the RTL legality checker against sqzhw.isa.check on fuzzed words, and
the fetch unit against a memory model with latency and stalls."""

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.control import Checker, Fetch, rotate_fields
from rtl_gen.testing import dram_violation, random_word
from sqzhw import isa
from sqzhw.config import load_config


class _CheckerBench(wiring.Component):
    """A :class:`Checker` with its decode register, as in the controller: ``start`` loads ``insn``
    into the register (and latches the window), which then turns as the checker asks
    (:func:`rotate_fields`)."""

    def __init__(self, config):
        self.config = config
        super().__init__({"insn": In(isa.Instruction), "start": In(1), "mem_bytes": In(32),
                          "wr_lo": In(32), "wr_hi": In(32), "code": Out(isa.ErrorCode),
                          "held": Out(isa.Instruction)})
        self.checker = Checker(config)
        self.latency = self.checker.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.checker = checker = self.checker
        with m.If(self.start):
            m.d.sync += self.held.eq(self.insn)
        rotate_fields(m, self.held, checker.rotate)
        m.d.comb += [checker.insn.eq(self.held), checker.start.eq(self.start),
                     checker.load_window.eq(self.start), checker.mem_bytes.eq(self.mem_bytes),
                     checker.wr_lo.eq(self.wr_lo), checker.wr_hi.eq(self.wr_hi),
                     self.code.eq(checker.code)]
        return m


def _config(name):
    """A preset, or ``NAME+serial``: the preset with ``serial_products`` (no multipliers)."""
    if name.endswith("+serial"):
        return dataclasses.replace(load_config(name[:-len("+serial")]), serial_products=True)
    return load_config(name)


async def _settle(ctx, dut):
    """The clock edge that loads the instruction (with the ``start`` pulse the controller gives),
    then ``latency`` more edges, as the controller waits (``serial_products`` configs compute their
    products bit-serially, so this is exact for them). The decode register must then hold the
    instruction as loaded (the serial checker's rotations are complete)."""
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    loaded = ctx.get(dut.held.as_value())
    await ctx.tick().repeat(dut.latency)
    assert ctx.get(dut.held.as_value()) == loaded


@pytest.mark.parametrize("name", ["tiny", "default", "small", "icebreaker", "default+serial", "tiny+serial",
                                  "small+serial"])
def test_checker_matches_isa_check(name):
    config = _config(name)
    dut = _CheckerBench(config)
    rng = random.Random(1234)
    mem_bytes, wr_lo, wr_hi = 1 << 20, 1 << 18, (1 << 20) - 4096
    words = [random_word(rng, config, mem_bytes) for _ in range(1500)]
    mismatches = []
    seen = set()

    async def bench(ctx):
        ctx.set(dut.mem_bytes, mem_bytes)
        ctx.set(dut.wr_lo, wr_lo)
        ctx.set(dut.wr_hi, wr_hi)
        for word in words:
            ctx.set(dut.insn, isa.Instruction.from_bits(word))
            await _settle(ctx, dut)
            got = isa.ErrorCode(ctx.get(dut.code.as_value()))
            violation = isa.check(word, config)
            if violation is not None:
                want = violation.code
            elif dram_violation(word, config, mem_bytes, wr_lo, wr_hi):
                want = isa.ErrorCode.DRAM_RANGE
            else:
                want = isa.ErrorCode.NONE
            seen.add(want)
            if got != want:
                mismatches.append((isa.disassemble(word), want, got))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not mismatches, mismatches[:5]
    # The fuzzer must reach every outcome, or the comparison proves little.
    assert seen >= {isa.ErrorCode.NONE, isa.ErrorCode.BAD_OPCODE, isa.ErrorCode.BAD_FIELD,
                    isa.ErrorCode.BUF_RANGE, isa.ErrorCode.DRAM_ALIGN, isa.ErrorCode.DRAM_RANGE}


@pytest.mark.parametrize("name", ["small", "ulx3s", "small+serial", "ulx3s+serial"])
def test_checker_large_planes(name):
    """Planes of ``2**w`` or more entries (``w`` = bits of the buffer depth), whose low bits are
    small: the pipelined checker multiplies only the low bits, so these must still be BUF_RANGE."""
    config = _config(name)
    dut = _CheckerBench(config)
    words = []
    for h, w in [(1023, 1023), (128, 128), (256, 64), (64, 64), (1, 1), (1023, 1)]:
        for blocks in (1, 3):
            words.append(isa.encode(isa.Opcode.CONV, in_h=h, in_w=w, out_h=1, out_w=1,
                                    cin_blocks=blocks))
            words.append(isa.encode(isa.Opcode.MAXPOOL, in_h=1, in_w=1, out_h=h, out_w=w,
                                    blocks=blocks, kernel=1, stride=1))
            words.append(isa.encode(isa.Opcode.MAXPOOL, in_h=h, in_w=w, out_h=1, out_w=1,
                                    blocks=blocks, kernel=1, stride=1))
    got = {}

    async def bench(ctx):
        ctx.set(dut.mem_bytes, 1 << 20)
        ctx.set(dut.wr_hi, 1 << 20)
        for word in words:
            ctx.set(dut.insn, isa.Instruction.from_bits(word))
            await _settle(ctx, dut)
            got[word] = isa.ErrorCode(ctx.get(dut.code.as_value()))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = {word: (v.code if (v := isa.check(word, config)) else isa.ErrorCode.NONE) for word in words}
    assert got == want
    assert isa.ErrorCode.BUF_RANGE in want.values() and isa.ErrorCode.NONE in want.values()


@pytest.mark.parametrize("name", ["small", "ulx3s", "small+serial", "ulx3s+serial"])
def test_checker_large_strides(name):
    """LOAD/STORE ending exactly at and one byte past the memory (and window) end, with strides
    using the top bits of the 22-bit field (the checker splits that product across a DSP and LUTs)."""
    config = _config(name)
    dut = _CheckerBench(config)
    cases = []
    for stride in (1 << 18, (1 << 21) + 2 * config.ext_bytes, (1 << 22) - config.ext_bytes,
                   (3 << 18) | (1 << 17), 0xABC * config.ext_bytes):
        for rows in (2, 5, 1023):
            end = (rows - 1) * stride + config.act_entry_bytes
            for mem_bytes in (end, end - 1):
                if mem_bytes < 1 << 32:
                    for op in (isa.Opcode.LOAD, isa.Opcode.STORE):
                        word = isa.encode(op, dram_addr=0, rows=rows, row_len=1, dram_stride=stride)
                        cases.append((word, mem_bytes))
    got = []

    async def bench(ctx):
        for word, mem_bytes in cases:
            ctx.set(dut.insn, isa.Instruction.from_bits(word))
            ctx.set(dut.mem_bytes, mem_bytes)
            ctx.set(dut.wr_hi, mem_bytes)
            await _settle(ctx, dut)
            got.append(isa.ErrorCode(ctx.get(dut.code.as_value())))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = []
    for word, mem_bytes in cases:
        assert isa.check(word, config) is None
        want.append(isa.ErrorCode.DRAM_RANGE if dram_violation(word, config, mem_bytes, 0, mem_bytes)
                    else isa.ErrorCode.NONE)
    assert got == want
    assert set(want) == {isa.ErrorCode.NONE, isa.ErrorCode.DRAM_RANGE}


def _run_fetch(config, runs, depth=4):
    """Run :class:`Fetch` once per ``(memory, insn_addr, insn_count)`` against a memory answering one
    read per cycle (one cycle late, with stalls); return ``(delivered words, fault)`` per run."""
    dut = Fetch(config, depth=depth)
    eb = config.ext_bytes
    results = []

    async def bench(ctx):
        rng = random.Random(7)
        for memory, insn_addr, count in runs:
            # As in the engine: insn_addr and insn_count are the engine's inputs, read with
            # `start`; the controller latches mem_bytes in the start edge, so the fetch sees it
            # only from the cycle after `start`. Stale values elsewhere must not matter.
            ctx.set(dut.insn_addr, insn_addr)
            ctx.set(dut.insn_count, count)
            ctx.set(dut.mem_bytes, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.insn_addr, 0xFFFF_FFF0)
            ctx.set(dut.insn_count, 0)
            ctx.set(dut.mem_bytes, len(memory))
            got, pending = [], []
            for _ in range(2000):
                ready = rng.random() < 0.7
                ctx.set(dut.rd_cmd.ready, ready)
                ctx.set(dut.insn.ready, rng.random() < 0.8)
                if pending:
                    addr = pending.pop(0)
                    assert 0 <= addr * eb and (addr + 1) * eb <= len(memory), f"read outside memory: {addr}"
                    ctx.set(dut.rd_data.payload, int.from_bytes(memory[addr * eb:(addr + 1) * eb], "little"))
                    ctx.set(dut.rd_data.valid, 1)
                else:
                    ctx.set(dut.rd_data.valid, 0)
                if ctx.get(dut.rd_cmd.valid) and ready:
                    pending.append(ctx.get(dut.rd_cmd.payload))
                if ctx.get(dut.insn.valid) and ctx.get(dut.insn.ready):
                    got.append(ctx.get(dut.insn.payload.as_value()))
                await ctx.tick()
                fault = isa.ErrorCode(ctx.get(dut.fault.as_value()))
                if fault != isa.ErrorCode.NONE and ctx.get(dut.idle) and not ctx.get(dut.insn.valid):
                    break
            else:
                raise AssertionError("fetch did not stop within 2000 cycles")
            ctx.set(dut.rd_data.valid, 0)
            results.append((got, fault))
            await ctx.tick().repeat(3)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("name,depth", [("small", 4), ("default", 4), ("small", 1), ("default", 1),
                                        ("icebreaker", 1)])
def test_fetch_ranges_and_restart(name, depth):
    """Instructions arrive in order; FETCH_RANGE after ``insn_count``, DRAM_RANGE for an instruction
    past memory or a misaligned ``insn_addr``; a new start uses the new run parameters."""
    config = load_config(name)
    rng = random.Random(3)
    memory = bytearray(rng.randrange(256) for _ in range(512))
    words = [int.from_bytes(memory[i:i + 16], "little") for i in range(0, 512, 16)]
    if depth == 1:   # the single-register fetch does not keep the reserved bits (they read as 0)
        words = [w & ((1 << isa.Instruction.as_shape()["reserved"].offset) - 1) for w in words]
    runs = [(memory, 64, 5),                            # FETCH_RANGE after 5
            (memory, 512 - 3 * 16, 10),                 # DRAM_RANGE after 3
            (memory, 16 + config.ext_bytes // 2 if config.ext_bytes > 1 else 17, 4),  # misaligned
            (memory, 0, 2)]                             # restart: clean parameters
    (r0, f0), (r1, f1), (r2, f2), (r3, f3) = _run_fetch(config, runs, depth)
    assert (r0, f0) == (words[4:9], isa.ErrorCode.FETCH_RANGE)
    assert (r1, f1) == (words[29:32], isa.ErrorCode.DRAM_RANGE)
    assert (r2, f2) == ([], isa.ErrorCode.DRAM_RANGE)
    assert (r3, f3) == (words[0:2], isa.ErrorCode.FETCH_RANGE)
