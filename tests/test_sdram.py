"""SDRAM controller against the cycle-level SDRAM model (Amaranth simulation).

Random reads and writes with random idle cycles and read back-pressure: every read returns the last
value written (a dict is the reference), and the model reports no timing violation. The model's
checks are themselves tested by driving it with deliberately wrong command sequences.
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtl_gen.sdram import (IS42S16160, SDRAMCommand, SDRAMController, SDRAMTiming, mode_register,
                           throughput_model)
from rtl_gen.sdram_model import SDRAMModel, Violation
from rtl_gen.testing import drive_word_ops, wait_for

# Short power-up wait and refresh interval so tests see init and many refreshes in few cycles.
FAST = SDRAMTiming(t_init=2000.0, t_refi=2000.0)
WORDS = 1 << 14   # 8 rows in each of the 4 banks


class Pair(wiring.Component):
    """Controller wired to the model, as on the board but without I/O registers."""

    def __init__(self, timing, clock_mhz, words=WORDS):
        self.ctrl = SDRAMController(IS42S16160, timing, clock_mhz)
        self.model = SDRAMModel(IS42S16160, timing, clock_mhz, words=words)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl, m.submodules.model = self.ctrl, self.model
        wiring.connect(m, self.ctrl.sdram, self.model.sdram)
        return m


def run_traffic(ops, timing=FAST, clock_mhz=50.0, idle=0.3, backpressure=0.3, seed=1):
    """Run ``ops`` ([("w", addr, data) | ("r", addr)]) through the pair; return (reads, cycles, dut)."""
    dut = Pair(timing, clock_mhz)
    c, m = dut.ctrl, dut.model
    rng = random.Random(seed)
    expected: list[tuple[int, int]] = []
    got: list[int] = []
    state = {"issued": False, "start": 0, "end": 0}
    n_reads = sum(op[0] == "r" for op in ops)

    async def issuer(ctx):
        await wait_for(ctx, c.init_done, 50_000, "init_done")
        state["start"] = ctx.get(m.commands)
        ref: dict[int, int] = {}
        expected.extend(await drive_word_ops(ctx, c, ops, ref, rng, idle))
        state["issued"] = True

    async def collector(ctx):
        cycles = 0
        while len(got) < n_reads:
            ready = not (backpressure and rng.random() < backpressure)
            ctx.set(c.rd_data.ready, ready)
            await ctx.tick()
            cycles += 1
            # sample the handshake of the edge just passed via the values before it
        state["end"] = cycles

    async def sampler(ctx):
        async for _clk, _rst, valid, ready, payload in ctx.tick().sample(
                c.rd_data.valid, c.rd_data.ready, c.rd_data.payload):
            if valid and ready:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6 / clock_mhz)
    sim.add_testbench(issuer)
    sim.add_testbench(collector)
    sim.add_process(sampler)
    cycles_box = {}

    async def timer(ctx):
        n = 0
        await wait_for(ctx, c.init_done, 50_000, "init_done")
        while len(got) < n_reads or not state["issued"]:
            await ctx.tick()
            n += 1
        cycles_box["cycles"] = n
        cycles_box["violation"] = ctx.get(m.violation)
        cycles_box["violations"] = ctx.get(m.violations)
        cycles_box["violation_cmd"] = ctx.get(m.violation_cmd)
        cycles_box["refreshes"] = ctx.get(m.refreshes)
        cycles_box["activates"] = ctx.get(m.activates)

    sim.add_testbench(timer)
    budget = 200 + FAST.cycles(clock_mhz).init * 2 + 60 * len(ops)
    sim.run_until((budget / clock_mhz) * 1e-6)
    assert "cycles" in cycles_box, f"traffic did not finish within {budget} cycles " \
                                   f"({len(got)}/{n_reads} reads returned)"
    return expected, got, cycles_box


def check(expected, got, info):
    assert info["violation"] == Violation.NONE, \
        f"SDRAM model saw {info['violation']} at command {info['violation_cmd']} " \
        f"({info['violations']} violations)"
    assert len(got) == len(expected)
    for i, ((addr, want), value) in enumerate(zip(expected, got)):
        assert value == want, f"read {i} of word {addr:#x}: got {value:#06x}, want {want:#06x}"


@pytest.mark.parametrize("cl,clock_mhz", [(2, 50.0), (3, 100.0)])
def test_random_traffic(cl, clock_mhz):
    rng = random.Random(cl)
    timing = SDRAMTiming(cas_latency=cl, t_init=2000.0, t_refi=2000.0)
    # Clustered addresses: many row hits, bank changes and row misses in the same bank.
    hot = [rng.randrange(WORDS) for _ in range(48)]
    ops = []
    for _ in range(600):
        addr = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(WORDS)
        if rng.random() < 0.45:
            ops.append(("w", addr, rng.randrange(1 << 16)))
        else:
            ops.append(("r", addr))
    expected, got, info = run_traffic(ops, timing=timing, clock_mhz=clock_mhz, seed=cl)
    check(expected, got, info)
    assert info["refreshes"] > 10 + FAST.init_refreshes, "refresh never ran during traffic"


def test_back_to_back_no_stalls():
    """Writes then reads of a sequential block, no idle cycles, consumer always ready."""
    n = 600   # crosses a row boundary (512 columns)
    ops = [("w", 100 + i, (i * 2654435761) & 0xFFFF) for i in range(n)] + [("r", 100 + i) for i in range(n)]
    expected, got, info = run_traffic(ops, idle=0, backpressure=0)
    check(expected, got, info)


def test_throughput_matches_model():
    """Measured cycles per word of sequential and random reads are what throughput_model says."""
    rng = random.Random(7)
    timing = SDRAMTiming(t_init=2000.0)   # real refresh interval
    model = throughput_model(IS42S16160, timing, 50.0)
    n = 1200
    _, got, info = run_traffic([("r", i) for i in range(n)], timing=timing, idle=0, backpressure=0)
    assert info["violation"] == Violation.NONE
    seq = info["cycles"] / n
    assert seq == pytest.approx(model["seq_read"], rel=0.05), (seq, model)
    # Random rows of one bank: every access closes and opens a row.
    bank_stride = 1 << (IS42S16160.col_bits + IS42S16160.bank_bits)
    ops = [("r", rng.randrange(8) * bank_stride * 0 + (i % 8) * bank_stride + rng.randrange(512))
           for i in range(300)]
    _, got, info = run_traffic(ops, timing=timing, idle=0, backpressure=0)
    assert info["violation"] == Violation.NONE
    rand = info["cycles"] / len(ops)
    assert rand == pytest.approx(model["random_read"], rel=0.15), (rand, model)


def test_model_rejects_bad_commands():
    """Each timing rule of the model fires on a command sequence that breaks it."""
    # Slower parts than the default so that every rule spans at least two cycles at 50 MHz.
    slow = SDRAMTiming(t_init=2000.0, t_refi=2000.0, t_rcd=40.0, t_rp=40.0, t_rrd=40.0)
    c = slow.cycles(50.0)
    assert min(c.rcd, c.rp, c.rrd, c.ras, c.rfc) >= 2

    def run(sequence):
        dut = SDRAMModel(IS42S16160, slow, 50.0, words=WORDS)
        out = {}

        async def bench(ctx):
            ctx.set(dut.sdram.cke, 1)
            ctx.set(dut.sdram.cs, 1)
            for _ in range(c.init + 1):
                await ctx.tick()
            for cmd, ba, a, gap in sequence:
                ctx.set(dut.sdram.cmd, cmd)
                ctx.set(dut.sdram.ba, ba)
                ctx.set(dut.sdram.a, a)
                await ctx.tick()
                ctx.set(dut.sdram.cmd, SDRAMCommand.NOP)
                for _ in range(gap):
                    await ctx.tick()
            out["v"] = ctx.get(dut.violation)

        sim = Simulator(dut)
        sim.add_clock(20e-9)
        sim.add_testbench(bench)
        sim.run_until(((c.init + 400) / 50) * 1e-6)
        return out["v"]

    P, R, M, A, RD = (SDRAMCommand.PRECHARGE, SDRAMCommand.REFRESH, SDRAMCommand.MODE,
                      SDRAMCommand.ACTIVE, SDRAMCommand.READ)
    init = [(P, 0, 1 << 10, c.rp), (R, 0, 0, c.rfc), (R, 0, 0, c.rfc), (M, 0, mode_register(2), c.mrd)]
    assert run(init + [(A, 0, 5, c.rcd), (RD, 0, 3, c.ras)]) == Violation.NONE
    assert run([(A, 0, 5, 4)]) == Violation.INIT
    assert run(init + [(A, 0, 5, 0), (RD, 0, 3, 1)]) == Violation.T_RCD
    assert run(init + [(A, 0, 5, c.ras), (P, 0, 0, 0), (A, 0, 6, 1)]) == Violation.T_RP
    assert run(init + [(A, 0, 5, 1), (P, 0, 0, 1)]) == Violation.T_RAS
    assert run(init + [(A, 0, 5, 0), (A, 1, 6, 1)]) == Violation.T_RRD
    assert run(init + [(A, 0, 5, c.rcd), (A, 0, 6, 1)]) == Violation.BANK_STATE
    assert run(init[:1] + [(R, 0, 0, 1), (R, 0, 0, 1)]) == Violation.T_RFC
    assert run(init[:3] + [(M, 0, mode_register(2) | 3, 2)]) == Violation.MODE
    assert run(init + [(A, 0, 1 << 4, 3)]) == Violation.ALIAS


def test_bad_parameters():
    with pytest.raises(ValueError, match="cas_latency"):
        SDRAMTiming(cas_latency=4)
    with pytest.raises(ValueError, match="CAS latency 2"):
        SDRAMController(IS42S16160, SDRAMTiming(cas_latency=2), 125.0)
    with pytest.raises(ValueError, match="words"):
        SDRAMModel(IS42S16160, FAST, 50.0, words=1000)
