"""The stream register slice (Amaranth simulator): order, no loss, full throughput, registered ready."""

import random

import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from rtl_gen.skid import SkidBuffer

TIMEOUT = 5000


def _run(values, p_valid: float, p_ready: float, seed: int):
    """Push ``values`` through a SkidBuffer with random idle input and output stalls.

    Returns the received values, the cycle count, and whether ``i.ready`` ever changed in a cycle
    where only the (combinational) inputs changed."""
    dut = SkidBuffer(unsigned(16))
    received: list[int] = []
    cycles = 0

    async def bench(ctx):
        nonlocal cycles
        rng = random.Random(seed)
        pending = list(values)
        while len(received) < len(values):
            cycles += 1
            assert cycles < TIMEOUT, f"SkidBuffer stuck after {len(received)} of {len(values)} transfers"
            offer = bool(pending) and rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, pending[0])
            ctx.set(dut.o.ready, ready)
            ready_before = ctx.get(dut.i.ready)
            # i.ready must not follow o.ready combinationally: flip o.ready, it must not move.
            ctx.set(dut.o.ready, not ready)
            assert ctx.get(dut.i.ready) == ready_before, "i.ready depends combinationally on o.ready"
            ctx.set(dut.o.ready, ready)
            if ctx.get(dut.o.valid) and ready:
                received.append(ctx.get(dut.o.payload))
            took = offer and ctx.get(dut.i.ready)
            await ctx.tick()
            if took:
                pending.pop(0)
        ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return received, cycles


@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (0.7, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_order_and_no_loss(p_valid, p_ready):
    values = list(range(1, 301))
    received, _ = _run(values, p_valid, p_ready, seed=int(p_valid * 10 + p_ready * 100))
    assert received == values


def test_full_throughput():
    # Always valid, always ready: one transfer per cycle after the one-cycle latency.
    values = list(range(200))
    received, cycles = _run(values, 1.0, 1.0, seed=0)
    assert received == values
    assert cycles == len(values) + 1
