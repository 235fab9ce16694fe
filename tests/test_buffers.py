"""Tests of rtl_gen.buffers: geometry from the config, and every write/read port of every buffer in
the Amaranth simulator (partial writes with the port's granularity, synchronous reads)."""

import random

import pytest
from amaranth.sim import Simulator

from rtl_gen.buffers import Buffers, buffer_specs
from sqzhw.config import load_config


@pytest.mark.parametrize("name", ["tiny", "default", "small", "ulx3s"])
def test_specs_follow_config(name):
    config = load_config(name)
    specs = buffer_specs(config)
    assert sum(s.bytes for s in specs.values()) == config.on_chip_bytes
    assert specs["wgt"].width == config.rows * config.cols * 8
    assert specs["param"].width == config.cols * 128
    assert specs["acc"].width == config.cols * 32
    for spec in specs.values():
        assert 1 << spec.addr_width >= spec.depth
        assert spec.width % spec.write_granularity == 0
    # LOAD writes one bus word per cycle into its slice.
    assert {specs[n].write_granularity for n in ("act", "wgt", "param")} == {config.ext_data_bits}


def test_ports_write_and_read():
    config = load_config("tiny")
    dut = Buffers(config)
    rng = random.Random(3)

    async def bench(ctx):
        for spec in dut.specs.values():
            wp = getattr(dut, spec.writer)
            n_en = spec.width // spec.write_granularity
            model = {}
            for _ in range(40):
                addr = rng.randrange(spec.depth)
                data = rng.getrandbits(spec.width)
                en = rng.getrandbits(n_en)
                ctx.set(wp.addr, addr)
                ctx.set(wp.data, data)
                ctx.set(wp.en, en)
                await ctx.tick()
                old = model.get(addr, 0)
                for k in range(n_en):
                    if en >> k & 1:
                        g = spec.write_granularity
                        mask = ((1 << g) - 1) << (k * g)
                        old = (old & ~mask) | (data & mask)
                model[addr] = old
            ctx.set(wp.en, 0)
            for reader in spec.readers:
                rp = getattr(dut, reader)
                for addr, want in model.items():
                    ctx.set(rp.addr, addr)
                    await ctx.tick()
                    assert ctx.get(rp.data) == want, (spec.name, reader, addr)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
