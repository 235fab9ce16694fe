"""Tests of rtl_gen.counters: each counter counts its own event bit and clears on clear."""

import random

from amaranth.sim import Simulator

from rtl_gen.counters import N_COUNTERS, Counters
from sqzhw import isa


def test_counts_and_clears():
    dut = Counters()
    rng = random.Random(1)
    assert N_COUNTERS == len(isa.Counter)

    async def bench(ctx):
        want = [0] * N_COUNTERS
        for cycle in range(200):
            events = rng.getrandbits(N_COUNTERS)
            clear = cycle == 120
            ctx.set(dut.events, events)
            ctx.set(dut.clear, clear)
            await ctx.tick()
            want = [0] * N_COUNTERS if clear else [w + (events >> i & 1) for i, w in enumerate(want)]
            got = ctx.get(dut.counters)
            assert [int(got[i]) for i in range(N_COUNTERS)] == want

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_external_counters_have_no_register():
    """A counter kept elsewhere (the engine's INSNS is the controller's pc) reads 0 here."""
    dut = Counters(external=(isa.Counter.INSNS,))

    async def bench(ctx):
        ctx.set(dut.events, (1 << N_COUNTERS) - 1)
        await ctx.tick().repeat(5)
        got = ctx.get(dut.counters)
        assert int(got[isa.Counter.INSNS.value]) == 0
        assert int(got[isa.Counter.CYCLES.value]) == 5

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
