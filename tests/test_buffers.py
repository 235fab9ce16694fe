"""Tests of rtl_gen.buffers: geometry from the config, and every write/read port of every buffer in
the Amaranth simulator (partial writes with the port's granularity, synchronous reads)."""

import random

import pytest
from amaranth.sim import Simulator

from rtl_gen.buffers import Buffers, buffer_specs, compact_param, param_lane_bits, param_rows
from sqzhw.config import load_config


@pytest.mark.parametrize("name", ["tiny", "default", "small", "ulx3s", "icebreaker"])
def test_specs_follow_config(name):
    config = load_config(name)
    specs = buffer_specs(config)
    param = specs["param"]
    if compact_param(config):
        # Rows of store_lanes lanes, each the used 72 bits in whole bus words.
        assert param.width == config.store_lanes * param_lane_bits(config)
        assert param.depth == config.param_buf_entries * config.cols // config.store_lanes
        assert param_lane_bits(config) % config.ext_data_bits == 0 and param_lane_bits(config) >= 72
        logical = config.param_buf_entries * config.param_entry_bytes
        assert sum(s.bytes for s in specs.values()) - param.bytes + logical == config.on_chip_bytes
    else:
        assert param.width == config.cols * 128
        assert sum(s.bytes for s in specs.values()) == config.on_chip_bytes
    assert specs["wgt"].width == config.rows * config.cols * 8
    assert specs["acc"].width == config.cols * 32
    for spec in specs.values():
        assert 1 << spec.addr_width >= spec.depth
        assert spec.width % spec.write_granularity == 0
    # LOAD writes one bus word per cycle into its slice.
    assert {specs[n].write_granularity for n in ("act", "wgt", "param")} == {config.ext_data_bits}


@pytest.mark.parametrize("name", ["tiny", "icebreaker"])
def test_ports_write_and_read(name):
    config = load_config(name)
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
                if reader == "param_r" and compact_param(config):
                    continue                       # not connected without an ADD unit
                rp = getattr(dut, reader)
                for addr, want in model.items():
                    ctx.set(rp.addr, addr)
                    await ctx.tick()
                    assert ctx.get(rp.data) == want, (spec.name, reader, addr)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_compact_param_only_without_add_unit():
    """Compact PARAM rows for the no-ADD configs on buses up to 128 bits; whole entries otherwise."""
    assert compact_param(load_config("icebreaker")) and compact_param(load_config("ulx3s"))
    assert not compact_param(load_config("default")) and not compact_param(load_config("tiny"))
    config = load_config("icebreaker")                     # 2 lanes, 1 per row, 80-bit rows
    assert param_lane_bits(config) == 80
    lanes = [(0x11223344, 0x55667788, 9), (0x0A0B0C0D, 0x01020304, 62)]
    value = sum((b | m << 32 | s << 64 | 0xEE << 72) << (128 * j) for j, (b, m, s) in enumerate(lanes))
    rows = param_rows(config, 3, value)
    assert sorted(rows) == [6, 7]
    for j, (b, m, s) in enumerate(lanes):
        assert rows[6 + j] & ((1 << 72) - 1) == b | m << 32 | s << 64
    # Multiplier bit 31 is stored as 0 (the LOAD clears it; the STORE's requantizer relies on it).
    rows = param_rows(config, 0, (0xFFFFFFFF << 32) | (0xFFFFFFFF << 160))
    assert rows[0] >> 32 & 0xFFFFFFFF == rows[1] >> 32 & 0xFFFFFFFF == 0x7FFFFFFF


def test_block_ram_count_icebreaker():
    """The iCEBreaker buffers in SB_RAM40_4K (256 x 16): the 2 KiB of PARAM take 5, not 32."""
    config = load_config("icebreaker")
    ebr = {name: -(-s.width // 16) * -(-s.depth // 256) * len([r for r in s.readers
                                                              if r != "param_r" or not compact_param(config)])
           for name, s in buffer_specs(config).items()}
    assert ebr["param"] == 5
    assert sum(ebr.values()) <= 24
