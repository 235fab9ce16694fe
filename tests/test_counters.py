"""Tests of rtl_gen.counters: each counter counts its own event bit and clears on clear."""

import random

from amaranth.sim import Simulator

from rtl_gen.counters import N_COUNTERS, CounterRAM, Counters
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


def _ram_bench(dut, cycles, seed, p_event, ext_insns=None):
    """Random events, clears and reads (``sel`` changed at random times): every cycle ``valid`` is
    high, ``value`` must be the reference count of the events before that cycle."""
    rng = random.Random(seed)
    internal = [c.value for c in dut.internal]
    checked = {c: 0 for c in isa.Counter}

    async def bench(ctx):
        want = [0] * N_COUNTERS
        sel = internal[0]
        for cycle in range(cycles):
            events = sum(1 << i for i in range(N_COUNTERS) if rng.random() < p_event)
            clear = rng.random() < 0.002
            if rng.random() < 0.3:
                sel = rng.randrange(N_COUNTERS)
            ctx.set(dut.events, events)
            ctx.set(dut.clear, clear)
            ctx.set(dut.sel, sel)
            if ext_insns is not None:
                ctx.set(dut.ext[isa.Counter.INSNS.value], ext_insns + cycle)
            if ctx.get(dut.valid):
                expect = want[sel] if sel in internal else ext_insns + cycle
                assert ctx.get(dut.value) == expect, (cycle, isa.Counter(sel), ctx.get(dut.value), expect)
                checked[isa.Counter(sel)] += 1
            await ctx.tick()
            want = [0] * N_COUNTERS if clear else [(w + (events >> i & 1)) % (1 << 32) for i, w in enumerate(want)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return checked


def test_counter_ram_reads_exact_counts_at_random_times():
    """High bits in RAM + low bits + pending carry read back the exact count, also in the cycle a
    carry is applied or arrives, and right after clears (rows not yet rewritten read 0)."""
    dut = CounterRAM(external=(isa.Counter.INSNS,))
    assert dut.p_bits == 3
    checked = _ram_bench(dut, 6000, seed=3, p_event=0.9, ext_insns=1000)
    assert all(n > 50 for n in checked.values()), checked


def test_counter_ram_sparse_events_and_all_internal():
    dut = CounterRAM()
    assert dut.p_bits == 4     # INSNS = 8 is a row too: a 16-cycle round robin, still exact
    checked = _ram_bench(dut, 8000, seed=4, p_event=0.97)
    assert all(n > 10 for n in checked.values()), checked
    dut = CounterRAM(external=(isa.Counter.INSNS,))
    _ram_bench(dut, 3000, seed=5, p_event=0.2, ext_insns=7)


def test_counter_ram_visits_every_row_in_one_round():
    """``valid`` comes within ``2**p_bits`` cycles of any ``sel``."""
    dut = CounterRAM(external=(isa.Counter.INSNS,))

    async def bench(ctx):
        for c in isa.Counter:
            ctx.set(dut.sel, c.value)
            waited = 0
            while not ctx.get(dut.valid):
                await ctx.tick()
                waited += 1
            assert waited < 1 << dut.p_bits

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_counter_ram_counts_from_zero_after_a_reset():
    """A reset (the host link's RESET) cannot clear the RAM: the rows hold earlier counts, and the
    first round robin after the reset must read and write them as 0."""
    from amaranth.hdl import ResetInserter, Signal

    dut = CounterRAM()
    rst = Signal()
    rng = random.Random(6)

    async def bench(ctx):
        want = [0] * N_COUNTERS
        for cycle in range(900):
            reset = cycle in (400, 413)
            events = sum(1 << i for i in range(N_COUNTERS) if rng.random() < 0.8)
            sel = rng.randrange(N_COUNTERS)
            ctx.set(dut.events, events)
            ctx.set(dut.sel, sel)
            ctx.set(rst, reset)
            if not reset and ctx.get(dut.valid):
                assert ctx.get(dut.value) == want[sel], (cycle, sel)
            await ctx.tick()
            want = [0] * N_COUNTERS if reset else [w + (events >> i & 1) for i, w in enumerate(want)]

    sim = Simulator(ResetInserter(rst)(dut))
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
