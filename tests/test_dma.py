"""Tests of rtl_gen.dma: LOAD and STORE units against a memory model with latency, random stalls and
back-pressure, and the read arbiter's in-order routing."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtl_gen.buffers import PARAM_USED_BITS, Buffers, compact_param, param_lane_bits, param_rows
from rtl_gen.dma import LoadUnit, ReadArbiter, StoreUnit
from rtl_gen.testing import MemoryModel, stream_get, stream_put
from sqzhw import isa, quant
from sqzhw.config import PARAM_LANE_BYTES, AccelConfig, load_config

TIMEOUT = 20_000


def _config(name):
    """A preset, or "wide": 8x24 (three lane blocks per accumulator entry) on a 64-bit bus;
    ``NAME/rqR``: the same with ``requant_lanes = R`` (a lane-serial STORE requantizer);
    ``NAME+noadd``: without the ADD unit (so with a compact PARAM buffer)."""
    if name.endswith("+noadd"):
        return dataclasses.replace(_config(name[:-len("+noadd")]), add_unit=False)
    if "/rq" in name:
        name, lanes = name.split("/rq")
        return dataclasses.replace(_config(name), requant_lanes=int(lanes))
    if name == "wide":
        return AccelConfig(name="wide", rows=8, cols=24, act_buf_entries=256, wgt_buf_tiles=64,
                           acc_buf_entries=64, out_buf_entries=128, param_buf_entries=16, ext_data_bits=64)
    return load_config(name)


def _entry_bytes(config, target):
    return {isa.LoadTarget.ACT: config.act_entry_bytes, isa.LoadTarget.WGT: config.wgt_tile_bytes,
            isa.LoadTarget.PARAM: config.param_entry_bytes}[target]


def _depth(config, target):
    return {isa.LoadTarget.ACT: config.act_buf_entries, isa.LoadTarget.WGT: config.wgt_buf_tiles,
            isa.LoadTarget.PARAM: config.param_buf_entries}[target]


async def _wait_idle(ctx, busy, timeout=TIMEOUT):
    await ctx.tick()
    for _ in range(timeout):
        if not ctx.get(busy):
            return
        await ctx.tick()
    raise TimeoutError("unit still busy")


@pytest.mark.parametrize("name,stall,latency", [("tiny", 0.3, 5), ("small", 0.5, 1), ("tiny", 0.0, 8), ("wide", 0.2, 3),
                                                    ("icebreaker", 0.3, 4), ("ulx3s", 0.0, 2),
                                                    ("wide/rq2+noadd", 0.2, 3)])
def test_load_unit(name, stall, latency):
    config = _config(name)
    rng = random.Random(hash((name, stall)) & 0xFFFF)
    E = config.ext_bytes
    mem = bytearray(rng.randbytes(1 << 14))
    m = Module()
    m.submodules.load = load = LoadUnit(config)
    m.submodules.bufs = bufs = Buffers(config)
    for port in ("act_w", "wgt_w", "param_w"):
        wiring.connect(m, getattr(bufs, port), getattr(load, port))
    model = MemoryModel(mem, E, latency=latency, stall=stall, seed=7)

    loads = []
    for _ in range(6):
        target = rng.choice(list(isa.LoadTarget))
        rows, row_len = rng.randint(1, 3), rng.randint(1, 4)
        stride = rng.randrange(0, 64) * E
        dram = rng.randrange(0, 256) * E
        sram = rng.randrange(0, _depth(config, target) - rows * row_len + 1)
        loads.append(dict(target=target, rows=rows, row_len=row_len, dram_stride=stride,
                          dram_addr=dram, sram_addr=sram))
    cycles = []

    async def bench(ctx):
        for fields in loads:
            word = isa.encode(isa.Opcode.LOAD, **fields)
            assert isa.check(word, config) is None
            t0 = model.cycle
            await stream_put(ctx, load.cmd, isa.Instruction.from_bits(word), rng, idle=0.5)
            await _wait_idle(ctx, load.busy)
            cycles.append(model.cycle - t0)
            f = fields
            memory = bufs.memories[{isa.LoadTarget.ACT: "act", isa.LoadTarget.WGT: "wgt",
                                    isa.LoadTarget.PARAM: "param"}[f["target"]]]
            entry = _entry_bytes(config, f["target"])
            for r in range(f["rows"]):
                for i in range(f["row_len"]):
                    addr = f["dram_addr"] + r * f["dram_stride"] + i * entry
                    want = int.from_bytes(mem[addr:addr + entry], "little")
                    index = f["sram_addr"] + r * f["row_len"] + i
                    rows = param_rows(config, index, want) if f["target"] == isa.LoadTarget.PARAM else {index: want}
                    for row, value in rows.items():
                        got = ctx.get(memory.data[row])
                        if f["target"] == isa.LoadTarget.PARAM and compact_param(config):
                            got &= _param_used_mask(config)    # bytes past the shift are not kept
                            value &= _param_used_mask(config)
                        assert got == value, (f, r, i, row)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(model.process(load.rd_cmd, load.rd_data, None))
    sim.add_testbench(bench)
    sim.run()
    assert not model.bad_reads
    if stall == 0:
        # Streaming: one word per cycle after the latency, not one per round trip.
        words = sum(f["rows"] * f["row_len"] * _entry_bytes(config, f["target"]) // E for f in loads)
        assert sum(cycles) < words + len(loads) * (latency + 12)


def _param_used_mask(config):
    """The bits of a compact PARAM row the engine keeps (bias, multiplier, shift of each lane)."""
    lane = (1 << PARAM_USED_BITS) - 1
    return sum(lane << (j * param_lane_bits(config)) for j in range(config.store_lanes))


def _preset(ctx, bufs, name, entries):
    for addr, value in entries.items():
        rows = param_rows(bufs.config, addr, value) if name == "param" else {addr: value}
        for row, v in rows.items():
            ctx.set(bufs.memories[name].data[row], v)


def _store_bench(config, mem: bytearray, stall: float, seed: int):
    """A StoreUnit on its buffers and a memory model of ``mem``: ``(module, store, bufs, model)``."""
    m = Module()
    m.submodules.store = store = StoreUnit(config)
    m.submodules.bufs = bufs = Buffers(config)
    for port in ("out_rs", "acc_rs", "param_rs"):
        wiring.connect(m, getattr(bufs, port), getattr(store, port))
    return m, store, bufs, MemoryModel(mem, config.ext_bytes, latency=1, stall=stall, seed=seed)


@pytest.mark.parametrize("name,stall", [("tiny", 0.4), ("small", 0.2), ("tiny", 0.0), ("wide", 0.3),
                                        ("tiny/rq1", 0.3), ("small/rq1", 0.0), ("wide/rq2", 0.2),
                                        ("wide/rq1", 0.0), ("icebreaker", 0.3), ("ulx3s", 0.2),
                                        ("wide/rq2+noadd", 0.2), ("small/rq1+noadd", 0.0), ("tiny+noadd", 0.3)])
def test_store_unit(name, stall):
    config = _config(name)
    rng = random.Random(99 + int(stall * 10))
    E, L, C = config.ext_bytes, config.rows, config.cols
    mem = bytearray(1 << 13)
    m, store, bufs, model = _store_bench(config, mem, stall, seed=3)

    out = {a: rng.getrandbits(L * 8) for a in range(64)}
    acc_vals = np.array([[rng.choice([rng.randrange(-(1 << 31), 1 << 31), rng.randrange(-3000, 3000)])
                          for _ in range(C)] for _ in range(64)], dtype=np.int64)
    acc = {a: int.from_bytes(acc_vals[a].astype("<i4").tobytes(), "little") for a in range(64)}
    # Parameter entry 3: per-lane bias, multiplier, shift (including rounding corners: shift 0, 1, 62).
    bias = np.array([rng.randrange(-5000, 5000) for _ in range(C)], dtype=np.int64)
    mult = np.array([rng.randrange(1 << 29, 1 << 31) for _ in range(C)], dtype=np.int64)
    shift = np.array([rng.choice([0, 1, 31, 36, 40, 62]) for _ in range(C)], dtype=np.int64)
    lanes = b"".join(isa.ParamLane.const({"bias": int(b), "multiplier": int(mu), "shift": int(s)})
                     .as_bits().to_bytes(PARAM_LANE_BYTES, "little") for b, mu, s in zip(bias, mult, shift))
    param = {3: int.from_bytes(lanes, "little")}

    stores = [
        dict(source=isa.StoreSource.OUT, sram_addr=5, dram_addr=64, rows=3, row_len=4, dram_stride=8 * L),
        dict(source=isa.StoreSource.ACC, sram_addr=2, dram_addr=1024, rows=2, row_len=3, dram_stride=4 * C * 4),
        dict(source=isa.StoreSource.ACC_REQUANT, sram_addr=10, dram_addr=2048, rows=2, row_len=5,
             dram_stride=6 * L, param_addr=3, zp_out=-7, relu=1, lane_block=config.lane_blocks - 1),
        dict(source=isa.StoreSource.ACC_REQUANT, sram_addr=30, dram_addr=3072, rows=1, row_len=9,
             dram_stride=0, param_addr=3, zp_out=12, relu=0, lane_block=0),
    ]

    def expected(f):
        """(byte address, bytes) pieces the STORE must write."""
        pieces = []
        for r in range(f["rows"]):
            for i in range(f["row_len"]):
                e = f["sram_addr"] + r * f["row_len"] + i
                if f["source"] is isa.StoreSource.OUT:
                    raw = out[e].to_bytes(L, "little")
                elif f["source"] is isa.StoreSource.ACC:
                    raw = acc[e].to_bytes(4 * C, "little")
                else:
                    lo = f["lane_block"] * L
                    a = quant.wrap_int32(acc_vals[e, lo:lo + L] + bias[lo:lo + L])
                    raw = quant.requantize(a, mult[lo:lo + L], shift[lo:lo + L], f["zp_out"],
                                           bool(f["relu"])).tobytes()
                pieces.append((f["dram_addr"] + r * f["dram_stride"] + i * len(raw), raw))
        return pieces

    async def bench(ctx):
        _preset(ctx, bufs, "out", out)
        _preset(ctx, bufs, "acc", acc)
        _preset(ctx, bufs, "param", param)
        for fields in stores:
            word = isa.encode(isa.Opcode.STORE, **fields)
            assert isa.check(word, config) is None, isa.check(word, config)
            await stream_put(ctx, store.cmd, isa.Instruction.from_bits(word), rng, idle=0.5)
            await _wait_idle(ctx, store.busy)
            for addr, raw in expected(fields):
                assert bytes(mem[addr:addr + len(raw)]) == raw, (fields["source"], addr)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(model.process(None, None, store.wr))
    sim.add_testbench(bench)
    sim.run()
    written = sum(len(raw) for f in stores for _, raw in expected(f)) // E
    assert len(model.writes) == written   # nothing outside the expected pieces


@pytest.mark.parametrize("source", [isa.StoreSource.ACC_REQUANT, isa.StoreSource.OUT, isa.StoreSource.ACC])
@pytest.mark.parametrize("name", ["wide", "wide/rq2", "wide/rq1", "small/rq1", "icebreaker", "wide/rq2+noadd"])
def test_store_throughput(name, source):
    """An ACC_REQUANT STORE takes ``n * max(rows / requant_lanes, words)`` cycles plus a fixed
    start-up, as the compute/DMA docstrings and the golden cycle model say; OUT and ACC stores
    keep one bus word per cycle (the lane-serial unit's shorter queue still covers the latency)."""
    config = _config(name)
    P, E = config.rows // config.store_lanes, config.ext_bytes
    words = (config.acc_entry_bytes if source is isa.StoreSource.ACC else config.act_entry_bytes) // E
    if source is not isa.StoreSource.ACC_REQUANT:
        P = 1
    mem = bytearray(1 << 12)
    m, store, bufs, model = _store_bench(config, mem, 0.0, seed=1)
    n = 40
    fields = dict(source=source, sram_addr=0, dram_addr=0, rows=1, row_len=n,
                  dram_stride=0, param_addr=0, zp_out=0, relu=0, lane_block=0)
    busy = []

    async def bench(ctx):
        await stream_put(ctx, store.cmd, isa.Instruction.from_bits(isa.encode(isa.Opcode.STORE, **fields)))
        cycles = 0
        while ctx.get(store.busy):
            cycles += 1
            assert cycles < TIMEOUT, "store still busy"
            await ctx.tick()
        busy.append(cycles)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(model.process(None, None, store.wr))
    sim.add_testbench(bench)
    sim.run()
    per_entry = max(P, words)
    assert n * per_entry <= busy[0] <= n * per_entry + 16, (busy, per_entry)


def test_read_arbiter_routes_in_order():
    config = load_config("tiny")
    dut = ReadArbiter(config, max_reads=4)
    rng = random.Random(5)
    mem = bytearray(rng.randbytes(4096))
    model = MemoryModel(mem, config.ext_bytes, latency=3, stall=0.3, seed=11)
    requests = {"fetch": [rng.randrange(0, 1000) for _ in range(40)],
                "load": [rng.randrange(0, 1000) for _ in range(60)]}
    got = {"fetch": [], "load": []}

    def word(a):
        return int.from_bytes(mem[a * 4:a * 4 + 4], "little")

    def issuer(who):
        async def run(ctx):
            for a in requests[who]:
                await stream_put(ctx, getattr(dut, f"{who}_cmd"), a, rng, idle=0.3)
        return run

    def receiver(who):
        async def run(ctx):
            for _ in requests[who]:
                got[who].append(await stream_get(ctx, getattr(dut, f"{who}_data"), rng, backpressure=0.3))
        return run

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(model.process(dut.rd_cmd, dut.rd_data, None))
    for who in ("fetch", "load"):
        sim.add_testbench(issuer(who))
        sim.add_testbench(receiver(who))
    sim.run()
    for who in ("fetch", "load"):
        assert got[who] == [word(a) for a in requests[who]]


def test_ram_queue_matches_sync_fifo():
    """RamQueue (block RAM, bypass for the read that meets a write) is cycle-for-cycle SyncFIFO."""
    import random

    from amaranth.hdl import Module
    from amaranth.lib import fifo
    from amaranth.sim import Simulator

    from rtl_gen.dma import RamQueue

    depth, width = 5, 16
    m = Module()
    m.submodules.ram = ram = RamQueue(width=width, depth=depth)
    m.submodules.ref = ref = fifo.SyncFIFO(width=width, depth=depth)
    rng = random.Random(7)

    async def bench(ctx):
        for cycle in range(600):
            phase = (cycle // 100) % 3          # fill-heavy, drain-heavy, balanced stretches
            w_en = rng.random() < (0.8, 0.3, 0.5)[phase]
            r_en = rng.random() < (0.3, 0.8, 0.5)[phase]
            w_data = rng.getrandbits(width)
            for q in (ram, ref):
                ctx.set(q.w_en, w_en)
                ctx.set(q.w_data, w_data)
                ctx.set(q.r_en, r_en)
            for name in ("w_rdy", "r_rdy"):
                assert ctx.get(getattr(ram, name)) == ctx.get(getattr(ref, name)), (cycle, name)
            if ctx.get(ref.r_rdy):
                assert ctx.get(ram.r_data) == ctx.get(ref.r_data), cycle
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_ram_queue_tags_follow_their_entries():
    """RamQueue tags, written ahead of their entries (as the STORE writes row-end flags when it
    reads), come out with them, at every fill level including the bypassed write to an empty queue."""
    import random

    from amaranth.hdl import Module
    from amaranth.sim import Simulator

    from rtl_gen.dma import RamQueue

    depth = 5
    m = Module()
    m.submodules.ram = ram = RamQueue(width=8, depth=depth, tag_width=2)
    rng = random.Random(11)

    def tag_of(n):
        return (n * 7 + 3) % 4

    async def bench(ctx):
        tags = written = read = 0
        for cycle in range(800):
            phase = (cycle // 100) % 3
            t_en = tags - read < depth and rng.random() < 0.7
            w_en = written < tags and rng.random() < (0.9, 0.3, 0.6)[phase]
            r_en = rng.random() < (0.3, 0.9, 0.6)[phase]
            ctx.set(ram.t_en, t_en)
            ctx.set(ram.t_data, tag_of(tags))
            ctx.set(ram.w_en, w_en)
            ctx.set(ram.w_data, written & 0xFF)
            ctx.set(ram.r_en, r_en)
            if ctx.get(ram.r_rdy):
                assert ctx.get(ram.r_data) == read & 0xFF, cycle
                assert ctx.get(ram.r_tag) == tag_of(read), cycle
            w_ok, r_ok = w_en and ctx.get(ram.w_rdy), r_en and ctx.get(ram.r_rdy)
            await ctx.tick()
            tags += t_en
            written += w_ok
            read += r_ok
        assert read > 200

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
