"""The compute unit (CONV, MAXPOOL, GAP, ADD) in the Amaranth simulator, against NumPy.

The reference below is written from the docstrings of :mod:`sqzhw.isa`; one test also checks it
against the golden executor. Buffers are :class:`amaranth.lib.memory.Memory` with random contents;
after each instruction every ACC and OUT entry is compared (so stray writes are caught too), and
``busy`` must last exactly the documented number of cycles.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from rtl_gen.buffers import buffer_specs, compact_param
from rtl_gen.compute import ComputeUnit, add_cycles, conv_cycles, gap_cycles, maxpool_cycles
from sqzhw import isa
from sqzhw.config import AccelConfig
from sqzhw.isa import Opcode
from sqzhw.quant import requantize, wrap_int32
from rtl_gen.testing import collect_quietly


def make_config(rows: int, cols: int, **depths) -> AccelConfig:
    sizes = dict(act_buf_entries=256, wgt_buf_tiles=64, acc_buf_entries=64, out_buf_entries=64,
                 param_buf_entries=4)
    sizes.update(depths)
    return AccelConfig(f"t{rows}x{cols}", rows, cols, ext_data_bits=8 * min(rows, 8), **sizes)


# ---- buffer images -----------------------------------------------------------------------------

def _pack(values: np.ndarray, bits: int) -> list[int]:
    """Rows of ``values`` (lane 0 lowest) as integers of ``bits``-bit lanes."""
    mask = (1 << bits) - 1
    out = []
    for row in values.reshape(values.shape[0], -1):
        word = 0
        for lane, v in enumerate(row.tolist()):
            word |= (int(v) & mask) << (lane * bits)
        out.append(word)
    return out


def _unpack(words: list[int], lanes: int, bits: int) -> np.ndarray:
    out = np.zeros((len(words), lanes), np.int64)
    for i, w in enumerate(words):
        for lane in range(lanes):
            v = (w >> (lane * bits)) & ((1 << bits) - 1)
            out[i, lane] = v - (1 << bits) if v >> (bits - 1) else v
    return out


def _param_words(bias, mult, shift) -> list[int]:
    entries = []
    for b_row, m_row, s_row in zip(bias, mult, shift):
        word = 0
        for lane, (b, m, s) in enumerate(zip(b_row, m_row, s_row)):
            lane_bits = (int(b) & 0xFFFFFFFF) | (int(m) << 32) | (int(s) << 64)
            word |= lane_bits << (128 * lane)
        entries.append(word)
    return entries


class Buffers:
    """Random contents of every buffer of ``config`` (NumPy), and the reference semantics."""

    def __init__(self, config: AccelConfig, rng: np.random.Generator):
        c = config
        self.config = c
        self.act = rng.integers(-128, 128, size=(c.act_buf_entries, c.rows))
        self.wgt = rng.integers(-128, 128, size=(c.wgt_buf_tiles, c.rows, c.cols))
        self.acc = rng.integers(-(1 << 31), 1 << 31, size=(c.acc_buf_entries, c.cols))
        self.out = rng.integers(-128, 128, size=(c.out_buf_entries, c.rows))
        self.bias = rng.integers(-(1 << 20), 1 << 20, size=(c.param_buf_entries, c.cols))
        self.mult = rng.integers(1 << 29, 1 << 31, size=(c.param_buf_entries, c.cols))
        self.shift = rng.integers(30, 40, size=(c.param_buf_entries, c.cols))

    # The reference, from the isa.py docstrings.
    def execute(self, op: Opcode, f: dict) -> None:
        L, K = self.config.rows, self.config.lane_blocks
        if op is Opcode.CONV:
            k, s = (3 if f["kernel3"] else 1), (2 if f["stride2"] else 1)
            plane = f["in_h"] * f["in_w"]
            for oy in range(f["out_h"]):
                for ox in range(f["out_w"]):
                    acc = np.zeros(self.config.cols, np.int64)
                    for b in range(f["cin_blocks"]):
                        for ky in range(k):
                            for kx in range(k):
                                y, x = oy * s + ky - f["pad_top"], ox * s + kx - f["pad_left"]
                                if 0 <= y < f["in_h"] and 0 <= x < f["in_w"]:
                                    a = self.act[f["in_addr"] + b * plane + y * f["in_w"] + x]
                                else:
                                    a = np.full(L, f["pad_value"])
                                acc += a @ self.wgt[f["wgt_addr"] + (b * k + ky) * k + kx]
                    e = f["acc_addr"] + oy * f["out_w"] + ox
                    self.acc[e] = wrap_int32(acc + (self.acc[e] if f["accumulate"] else 0))
        elif op is Opcode.MAXPOOL:
            k, s = f["kernel"], f["stride"]
            plane = f["in_h"] * f["in_w"]
            i = f["out_addr"]
            for b in range(f["blocks"]):
                for oy in range(f["out_h"]):
                    for ox in range(f["out_w"]):
                        best = np.full(L, -128)
                        for ky in range(k):
                            for kx in range(k):
                                y, x = oy * s + ky - f["pad_top"], ox * s + kx - f["pad_left"]
                                if 0 <= y < f["in_h"] and 0 <= x < f["in_w"]:
                                    best = np.maximum(best, self.act[f["in_addr"] + b * plane
                                                                     + y * f["in_w"] + x])
                        self.out[i] = best
                        i += 1
        elif op is Opcode.GAP:
            for b in range(f["blocks"]):
                rows = self.act[f["in_addr"] + b * f["pixels"]:f["in_addr"] + (b + 1) * f["pixels"]]
                e, lanes = f["acc_addr"] + b // K, slice((b % K) * L, (b % K + 1) * L)
                prev = self.acc[e, lanes] if f["accumulate"] else 0
                self.acc[e, lanes] = wrap_int32(rows.sum(axis=0) + prev)
        elif op is Opcode.ADD:
            p = f["param_addr"]
            for i in range(f["count"]):
                acc = wrap_int32(self.act[f["a_addr"] + i] * f["ka"] + self.act[f["b_addr"] + i] * f["kb"]
                                 + self.bias[p, :L])
                self.out[f["out_addr"] + i] = requantize(acc, self.mult[p, :L], self.shift[p, :L],
                                                         f["zp_out"], bool(f["relu"]))
        else:
            raise ValueError(op)


class Harness(Elaboratable):
    """A :class:`ComputeUnit` wired to memories holding ``bufs``."""

    def __init__(self, config: AccelConfig, bufs: Buffers):
        self.dut = ComputeUnit(config)
        specs = buffer_specs(config)
        c = config
        init = {
            "act": _pack(bufs.act, 8), "wgt": _pack(bufs.wgt, 8), "acc": _pack(bufs.acc, 32),
            "out": _pack(bufs.out, 8),
            # Compact PARAM rows (no ADD unit) are the STORE's alone: the compute unit never reads them.
            "param": [] if compact_param(config) else _param_words(bufs.bias, bufs.mult, bufs.shift),
        }
        self.mems = {name: memory.Memory(shape=unsigned(specs[name].width), depth=specs[name].depth,
                                         init=init[name]) for name in specs}
        self.specs = specs
        self.config = c

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        for name, mem in self.mems.items():
            m.submodules[name] = mem
        g = self.specs["acc"].write_granularity
        ports = {
            "act_r": self.mems["act"].read_port(), "wgt_r": self.mems["wgt"].read_port(),
            "param_r": self.mems["param"].read_port(), "acc_r": self.mems["acc"].read_port(),
            "acc_w": self.mems["acc"].write_port(granularity=None if g == self.specs["acc"].width else g),
            "out_w": self.mems["out"].write_port(),
        }
        for name, port in ports.items():
            wiring.connect(m, port, getattr(self.dut, name))
        return m


def run_program(config: AccelConfig, program: list[tuple[Opcode, dict]], seed: int = 0,
                idle: float = 0.3, scramble: bool = False) -> tuple[Buffers, Buffers, list[int], int]:
    """Run ``program`` on the RTL and on the reference; returns both buffer sets, the busy cycles of
    each instruction and the cycles of array activity. ``scramble``: random payload bits after each
    handshake (the unit must keep what it needs from the handshake cycle)."""
    rng = np.random.default_rng(seed)
    ref = Buffers(config, rng)
    harness = Harness(config, ref)
    dut = harness.dut
    words = [isa.encode(op, **f) for op, f in program]
    for w in words:
        assert isa.check(w, config) is None, isa.disassemble(w)
    prng = random.Random(seed)
    busy_cycles, active = [], [0]
    budget = 200 + sum(_expected_cycles(config, op, f) * 2 + 20 for op, f in program)
    finished = []
    got = {}

    async def bench(ctx):
        for w in words:
            while prng.random() < idle:
                await ctx.tick()
            ctx.set(dut.cmd.payload, isa.Instruction.from_bits(w))
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            if scramble:
                ctx.set(dut.cmd.payload, isa.Instruction.from_bits(prng.getrandbits(128)))
            n = 0
            while True:
                _, _, busy, act = await ctx.tick().sample(dut.busy, dut.array_active)
                active[0] += act
                if not busy:
                    break
                n += 1
            busy_cycles.append(n)
        for name in ("acc", "out"):
            got[name] = [ctx.get(harness.mems[name].data[i]) for i in range(harness.mems[name].depth)]
        finished.append(True)

    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(1e-6 * budget)
    assert finished, (f"timeout: only {len(busy_cycles)} of {len(words)} instructions finished in "
                      f"{budget} cycles")
    for op, f in program:
        ref.execute(op, f)
    rtl = Buffers.__new__(Buffers)
    rtl.config = config
    rtl.acc = _unpack(got["acc"], config.cols, 32)
    rtl.out = _unpack(got["out"], config.rows, 8)
    return ref, rtl, busy_cycles, active[0]


def _expected_cycles(config, op, f) -> int:
    if op is Opcode.CONV:
        return conv_cycles(config, f["cin_blocks"], bool(f["kernel3"]), f["out_h"], f["out_w"])
    if op is Opcode.MAXPOOL:
        return maxpool_cycles(f["blocks"], f["out_h"], f["out_w"], f["kernel"], config)
    if op is Opcode.GAP:
        return gap_cycles(f["blocks"], f["pixels"], config)
    return add_cycles(f["count"], config)


def check(config, program, seed=0, idle=0.3, scramble=False):
    ref, rtl, busy, active = run_program(config, program, seed=seed, idle=idle, scramble=scramble)
    np.testing.assert_array_equal(rtl.acc, ref.acc)
    np.testing.assert_array_equal(rtl.out, ref.out)
    assert busy == [_expected_cycles(config, op, f) for op, f in program]
    pixels = sum(f["cin_blocks"] * (9 if f["kernel3"] else 1) * f["out_h"] * f["out_w"]
                 for op, f in program if op is Opcode.CONV)
    assert active == pixels
    return busy


def conv(in_h, in_w, out_h, out_w, *, cin_blocks=1, kernel3=0, stride2=0, pad_top=0, pad_left=0,
         pad_value=0, in_addr=0, wgt_addr=0, acc_addr=0, accumulate=0) -> tuple[Opcode, dict]:
    return Opcode.CONV, dict(in_addr=in_addr, in_h=in_h, in_w=in_w, cin_blocks=cin_blocks, out_h=out_h,
                             out_w=out_w, kernel3=kernel3, stride2=stride2, pad_top=pad_top,
                             pad_left=pad_left, pad_value=pad_value, wgt_addr=wgt_addr,
                             acc_addr=acc_addr, accumulate=accumulate)


def _same_out(n, k, s, pad):
    return (n + 2 * pad - k) // s + 1


# ---- CONV ----------------------------------------------------------------------------------------

def test_conv_1x1_tiny():
    cfg = make_config(4, 4)
    check(cfg, [conv(3, 4, 3, 4, cin_blocks=2, in_addr=5, wgt_addr=3, acc_addr=7)])


def test_conv_1x1_padded():
    """A 1x1 kernel with pad 1 (SqueezeNet 1.0's conv10): the border outputs see only pad_value."""
    cfg = make_config(4, 4)
    check(cfg, [conv(3, 4, 5, 6, cin_blocks=2, pad_top=1, pad_left=1, pad_value=-5, in_addr=2, wgt_addr=1,
                     acc_addr=3)], seed=6)


def test_conv_3x3_padded_multiple_blocks_tiny():
    cfg = make_config(4, 4)
    check(cfg, [conv(4, 3, 4, 3, cin_blocks=2, kernel3=1, pad_top=1, pad_left=1, pad_value=-7,
                     in_addr=10, wgt_addr=1, acc_addr=3)], seed=1)


def test_conv_3x3_stride2_cols_2x_rows():
    cfg = make_config(2, 4)
    oh, ow = _same_out(5, 3, 2, 1), _same_out(6, 3, 2, 1)
    check(cfg, [conv(5, 6, oh, ow, cin_blocks=1, kernel3=1, stride2=1, pad_top=1, pad_left=1,
                     pad_value=3, in_addr=2, wgt_addr=5, acc_addr=1)], seed=2)


def test_conv_stride2_no_pad_and_accumulate_chain():
    """Two CONVs into one ACC tile (the second accumulates), then a 1x1 that overwrites part of it."""
    cfg = make_config(4, 8)
    check(cfg, [
        conv(5, 5, 2, 2, kernel3=1, stride2=1, in_addr=0, wgt_addr=0, acc_addr=4),
        conv(5, 5, 2, 2, kernel3=1, stride2=1, pad_top=2, pad_left=1, in_addr=25, wgt_addr=9,
             acc_addr=4, accumulate=1, pad_value=-128),
        conv(1, 2, 1, 2, in_addr=60, wgt_addr=20, acc_addr=5),
    ], seed=3)


def test_conv_single_pixel_tiles_hazard():
    """One output pixel per tile: tile switches and ACC read-modify-write back to back."""
    cfg = make_config(2, 2)
    check(cfg, [conv(3, 3, 1, 1, cin_blocks=3, kernel3=1, in_addr=0, wgt_addr=0, acc_addr=9),
                conv(1, 1, 1, 1, cin_blocks=4, in_addr=40, wgt_addr=30, acc_addr=9, accumulate=1)], seed=4)


def test_conv_full_utilization():
    """Tiles of at least rows + cols - 2 pixels stream with no bubble: busy = T*N + latency + 5."""
    cfg = make_config(4, 4)
    oh, ow = 2, 4  # 8 pixels >= rows + cols - 2 = 6
    busy = check(cfg, [conv(oh, ow, oh, ow, cin_blocks=3, kernel3=1, pad_top=1, pad_left=1,
                            pad_value=1)], seed=5, idle=0)
    assert busy == [27 * oh * ow + (4 + 4 + 1) + 5]


def test_conv_random_shapes():
    """Random legal CONVs on a 2x2 array (fast)."""
    rng = random.Random(11)
    cfg = make_config(2, 2, act_buf_entries=128, wgt_buf_tiles=40, acc_buf_entries=40)
    program = []
    for _ in range(4):
        k3, s2 = rng.randrange(2), rng.randrange(2)
        k, s = (3 if k3 else 1), (2 if s2 else 1)
        in_h, in_w = rng.randrange(1, 6), rng.randrange(1, 6)
        pt, pl = rng.randrange(k), rng.randrange(k)
        oh = max(1, (in_h + pt - k) // s + 1 + rng.randrange(2))
        ow = max(1, (in_w + pl - k) // s + 1 + rng.randrange(2))
        cb = rng.randrange(1, 3)
        program.append(conv(in_h, in_w, oh, ow, cin_blocks=cb, kernel3=k3, stride2=s2, pad_top=pt,
                            pad_left=pl, pad_value=rng.randrange(-128, 128),
                            in_addr=rng.randrange(128 - cb * in_h * in_w + 1),
                            wgt_addr=rng.randrange(40 - cb * k * k + 1),
                            acc_addr=rng.randrange(40 - oh * ow + 1),
                            accumulate=rng.randrange(2)))
    check(cfg, program, seed=6)


# ---- MAXPOOL / GAP / ADD -------------------------------------------------------------------------

def maxpool(in_h, in_w, out_h, out_w, *, blocks=1, kernel=3, stride=2, pad_top=0, pad_left=0, in_addr=0,
            out_addr=0):
    return Opcode.MAXPOOL, dict(in_addr=in_addr, in_h=in_h, in_w=in_w, blocks=blocks, out_h=out_h,
                                out_w=out_w, kernel=kernel, stride=stride, pad_top=pad_top,
                                pad_left=pad_left, out_addr=out_addr)


def test_maxpool_ceil_mode_and_padding():
    cfg = make_config(4, 4)
    check(cfg, [
        maxpool(5, 5, 2, 2, blocks=2, in_addr=3, out_addr=1),                 # 3x3/2 floor
        maxpool(4, 4, 2, 2, blocks=1, in_addr=60, out_addr=20),               # ceil: window past the edge
        maxpool(3, 4, 3, 4, kernel=2, stride=1, pad_top=1, pad_left=1, in_addr=80, out_addr=30),
        maxpool(2, 3, 1, 2, kernel=1, stride=3, blocks=3, in_addr=100, out_addr=45),
    ], seed=7)


def test_maxpool_empty_window_gives_minus_128():
    cfg = make_config(2, 2)
    check(cfg, [maxpool(1, 1, 2, 2, kernel=1, stride=2, in_addr=0, out_addr=0)], seed=8)


def gap(pixels, blocks, *, in_addr=0, acc_addr=0, accumulate=0):
    return Opcode.GAP, dict(in_addr=in_addr, pixels=pixels, blocks=blocks, acc_addr=acc_addr,
                            accumulate=accumulate)


def test_gap_lane_blocks():
    """cols = 2*rows: blocks pair up in ACC entries; an odd block count leaves lanes untouched."""
    cfg = make_config(2, 4)
    check(cfg, [gap(5, 3, in_addr=1, acc_addr=2), gap(1, 5, in_addr=30, acc_addr=10, accumulate=1),
                gap(3, 2, in_addr=50, acc_addr=2, accumulate=1)], seed=9)


def test_gap_tiny():
    cfg = make_config(4, 4)
    check(cfg, [gap(9, 2, in_addr=7, acc_addr=0), gap(4, 1, in_addr=0, acc_addr=0, accumulate=1)], seed=10)


def add(count, *, a_addr=0, b_addr=0, out_addr=0, ka=1 << 14, kb=1 << 14, param_addr=0, zp_out=0, relu=0):
    return Opcode.ADD, dict(a_addr=a_addr, b_addr=b_addr, count=count, ka=ka, kb=kb, param_addr=param_addr,
                            zp_out=zp_out, relu=relu, out_addr=out_addr)


def test_add_requantizes():
    cfg = make_config(4, 8)
    check(cfg, [add(5, a_addr=3, b_addr=40, out_addr=2, ka=12000, kb=-16384, param_addr=1, zp_out=-5),
                add(3, a_addr=7, b_addr=7, out_addr=9, ka=-32768, kb=32767, param_addr=3, zp_out=100, relu=1),
                add(1, a_addr=0, b_addr=1, out_addr=0, param_addr=0, zp_out=-128, relu=1)], seed=12)


def test_mixed_program_2x2():
    cfg = make_config(2, 2)
    check(cfg, [gap(2, 2, acc_addr=1), conv(2, 2, 2, 2, acc_addr=0, accumulate=1),
                add(2, a_addr=4, b_addr=9, out_addr=3, param_addr=2), maxpool(3, 3, 1, 1, in_addr=2)],
          seed=13)


@pytest.mark.parametrize("rows,cols,serial", [(2, 2, False), (4, 8, True), (8, 8, False)])
def test_add_half_width_requantizer(rows, cols, serial):
    """add_lanes = rows // 2: an entry's low and high lanes take turns on the ADD requantizer,
    bit-exact (extreme ka/kb, ReLU, zp_out at both ends) with the busy cycles of add_cycles, the
    same as with a full-width one; the other opcodes around it are unaffected."""
    import dataclasses
    cfg = dataclasses.replace(make_config(rows, cols), add_lanes=rows // 2, serial_products=serial)
    assert cfg.add_requant_lanes == rows // 2
    check(cfg, [add(5, a_addr=3, b_addr=40, out_addr=2, ka=12000, kb=-16384, param_addr=1, zp_out=-5),
                gap(2, 2, acc_addr=1),
                add(3, a_addr=7, b_addr=7, out_addr=9, ka=-32768, kb=32767, param_addr=3, zp_out=127, relu=1),
                add(1, a_addr=0, b_addr=1, out_addr=0, param_addr=0, zp_out=-128, relu=1),
                maxpool(3, 3, 1, 1, in_addr=2, out_addr=20),
                add(2, a_addr=9, b_addr=4, out_addr=12, ka=-1, kb=32767, param_addr=2, zp_out=0)],
          seed=30 + rows)


# ---- the reference against the golden executor ---------------------------------------------------

def test_reference_agrees_with_golden_executor():
    pytest.importorskip("sqzhw.golden.executor")
    from sqzhw.golden.executor import Executor

    cfg = make_config(2, 4)
    rng = np.random.default_rng(14)
    program = [conv(4, 5, 2, 3, cin_blocks=2, kernel3=1, stride2=1, pad_top=1, pad_left=2, pad_value=-3,
                    in_addr=3, wgt_addr=2, acc_addr=1, accumulate=1),
               maxpool(4, 5, 2, 3, blocks=2, pad_top=1, in_addr=3, out_addr=4),
               gap(3, 3, in_addr=9, acc_addr=20, accumulate=1),
               add(4, a_addr=1, b_addr=20, out_addr=30, ka=9000, kb=-7000, param_addr=1, zp_out=3, relu=1)]
    ref = Buffers(cfg, rng)
    words = [isa.encode(op, **f) for op, f in program] + [isa.encode(Opcode.END)]
    mem = bytearray(isa.pack_program(words))
    ex = Executor(cfg, mem, check_hazards=False)
    ex.act[:] = ref.act
    ex.wgt[:] = ref.wgt
    ex.acc[:] = ref.acc
    ex.out[:] = ref.out
    params = np.zeros((cfg.param_buf_entries, cfg.cols, 16), np.uint8)
    for e in range(cfg.param_buf_entries):
        for lane in range(cfg.cols):
            lane_bytes = (int(ref.bias[e, lane]) & 0xFFFFFFFF | int(ref.mult[e, lane]) << 32
                          | int(ref.shift[e, lane]) << 64).to_bytes(16, "little")
            params[e, lane] = np.frombuffer(lane_bytes, np.uint8)
    ex.param[:] = params
    result = ex.run(0, len(words))
    assert result.done, result
    for op, f in program:
        ref.execute(op, f)
    np.testing.assert_array_equal(ex.acc.astype(np.int64), ref.acc)
    np.testing.assert_array_equal(ex.out.astype(np.int64), ref.out)


def test_rejects_non_config():
    with pytest.raises(TypeError, match="AccelConfig") as exc:
        ComputeUnit(4)
    del exc
    collect_quietly()


def test_conv_8x16_two_lane_blocks():
    """A wider engine (cols = 2*rows, 128 MACs): CONV, then GAP into both lane blocks."""
    cfg = make_config(8, 16, act_buf_entries=128, wgt_buf_tiles=32, acc_buf_entries=32)
    check(cfg, [conv(4, 6, 4, 6, cin_blocks=2, kernel3=1, pad_top=1, pad_left=1, pad_value=-1,
                     in_addr=7, wgt_addr=4, acc_addr=2, accumulate=1),
                gap(3, 3, in_addr=100, acc_addr=27, accumulate=1)], seed=15)


def test_non_compute_opcode_is_dropped_not_hung():
    """The controller never sends one, but a stray LOAD must not wedge the unit."""
    cfg = make_config(2, 2)
    harness = Harness(cfg, Buffers(cfg, np.random.default_rng(0)))
    dut = harness.dut
    word = isa.encode(Opcode.LOAD, target=isa.LoadTarget.ACT, rows=1, row_len=1)
    idle_after = []

    async def bench(ctx):
        ctx.set(dut.cmd.payload, isa.Instruction.from_bits(word))
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        for cycle in range(10):
            _, _, busy = await ctx.tick().sample(dut.busy)
            if not busy:
                idle_after.append(cycle)
                return

    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(1e-6 * 50)
    assert idle_after and idle_after[0] <= 2


def _random_insn(rng: random.Random, cfg: AccelConfig) -> tuple[Opcode, dict]:
    """A random legal compute instruction with small shapes for ``cfg``."""
    A, W, C, O, P = (cfg.act_buf_entries, cfg.wgt_buf_tiles, cfg.acc_buf_entries, cfg.out_buf_entries,
                     cfg.param_buf_entries)
    kind = rng.choice([Opcode.CONV, Opcode.CONV, Opcode.MAXPOOL, Opcode.GAP, Opcode.ADD])
    if kind is Opcode.CONV:
        k3, s2 = rng.randrange(2), rng.randrange(2)
        k, s = (3 if k3 else 1), (2 if s2 else 1)
        in_h, in_w, cb = rng.randrange(1, 5), rng.randrange(1, 5), rng.randrange(1, 3)
        pt, pl = rng.randrange(k), rng.randrange(k)
        oh = max(1, (in_h + pt - k) // s + 1 + rng.randrange(2))
        ow = max(1, (in_w + pl - k) // s + 1 + rng.randrange(2))
        return conv(in_h, in_w, oh, ow, cin_blocks=cb, kernel3=k3, stride2=s2, pad_top=pt, pad_left=pl,
                    pad_value=rng.randrange(-128, 128), in_addr=rng.randrange(A - cb * in_h * in_w + 1),
                    wgt_addr=rng.randrange(W - cb * k * k + 1), acc_addr=rng.randrange(C - oh * ow + 1),
                    accumulate=rng.randrange(2))
    if kind is Opcode.MAXPOOL:
        k, s = rng.randrange(1, 4), rng.randrange(1, 4)
        in_h, in_w, b = rng.randrange(1, 6), rng.randrange(1, 6), rng.randrange(1, 3)
        pt, pl = rng.randrange(k), rng.randrange(k)
        oh, ow = rng.randrange(1, 4), rng.randrange(1, 4)
        return maxpool(in_h, in_w, oh, ow, blocks=b, kernel=k, stride=s, pad_top=pt, pad_left=pl,
                       in_addr=rng.randrange(A - b * in_h * in_w + 1), out_addr=rng.randrange(O - b * oh * ow + 1))
    if kind is Opcode.GAP:
        p, b = rng.randrange(1, 6), rng.randrange(1, 5)
        return gap(p, b, in_addr=rng.randrange(A - p * b + 1),
                   acc_addr=rng.randrange(C - -(-b // cfg.lane_blocks) + 1), accumulate=rng.randrange(2))
    n = rng.randrange(1, 5)
    return add(n, a_addr=rng.randrange(A - n + 1), b_addr=rng.randrange(A - n + 1),
               out_addr=rng.randrange(O - n + 1), ka=rng.randrange(-32768, 32768), kb=rng.randrange(-32768, 32768),
               param_addr=rng.randrange(P), zp_out=rng.randrange(-128, 128), relu=rng.randrange(2))


@pytest.mark.parametrize("rows,cols,seed", [(2, 4, 21), (4, 4, 22)])
def test_random_programs(rows, cols, seed):
    """Fuzz: random legal instructions of every opcode, back to back, against the reference."""
    cfg = make_config(rows, cols, act_buf_entries=96, wgt_buf_tiles=24, acc_buf_entries=24,
                      out_buf_entries=24)
    rng = random.Random(seed)
    check(cfg, [_random_insn(rng, cfg) for _ in range(6)], seed=seed)


def test_without_add_unit():
    """add_unit = false leaves the ADD out; CONV, MAXPOOL and GAP stay bit-exact with the same
    cycle counts (an ADD never reaches the unit: the checker rejects it, see test_control)."""
    import dataclasses
    cfg = dataclasses.replace(make_config(2, 2), add_unit=False)
    check(cfg, [conv(5, 4, 3, 2, cin_blocks=2, kernel3=1, pad_top=0, in_addr=1, wgt_addr=2, acc_addr=3),
                maxpool(5, 5, 2, 2, in_addr=4, blocks=2),
                gap(6, 3, in_addr=7, acc_addr=1)], seed=4)


@pytest.mark.parametrize("add_unit", [True, False])
def test_serial_products(add_unit):
    """serial_products: the plane size by shift-and-add in SETUP (9 more busy cycles per
    instruction, as conv_cycles & co. say); multi-block CONV and MAXPOOL use it to step planes."""
    import dataclasses
    cfg = dataclasses.replace(make_config(4, 4), serial_products=True, add_unit=add_unit)
    program = [conv(7, 5, 3, 2, cin_blocks=3, kernel3=1, stride2=1, pad_top=1, pad_left=1, pad_value=3,
                    in_addr=1, wgt_addr=2, acc_addr=3),
               conv(3, 9, 3, 9, cin_blocks=2, in_addr=110, wgt_addr=40, acc_addr=20),
               maxpool(9, 7, 4, 3, in_addr=4, blocks=3),
               gap(6, 3, in_addr=7, acc_addr=1)]
    if add_unit:
        program.append(add(5, a_addr=3, b_addr=30, out_addr=9))
    check(cfg, program, seed=8)


def test_golden_cycle_model_counts_serial_setup():
    """The golden executor's cycle model adds exactly setup_extra() per compute instruction."""
    import dataclasses

    from rtl_gen.compute import setup_extra
    from sqzhw.golden.executor import CycleModel, decode_fields
    plain = make_config(2, 2)
    serial = dataclasses.replace(plain, serial_products=True)
    assert setup_extra(plain) == 0 and setup_extra(serial) > 0
    for op, f in (conv(5, 4, 3, 2, kernel3=1), maxpool(5, 5, 2, 2), gap(6, 3), add(5)):
        d = decode_fields(isa.encode(op, **f))
        assert CycleModel().cycles(d, serial) - CycleModel().cycles(d, plain) == setup_extra(serial)


@pytest.mark.parametrize("add_unit", [True, False])
def test_payload_only_read_at_handshake(add_unit):
    """The unit latches what it uses at the handshake: the controller may reuse its register."""
    import dataclasses
    cfg = dataclasses.replace(make_config(2, 2), add_unit=add_unit)
    program = [gap(2, 2, acc_addr=1), conv(2, 2, 2, 2, acc_addr=0, accumulate=1),
               maxpool(3, 3, 1, 1, in_addr=2, out_addr=5)]
    if add_unit:
        program.append(add(2, a_addr=4, b_addr=9, out_addr=3, param_addr=2))
    check(cfg, program, seed=21, scramble=True)


@pytest.mark.parametrize("rows,cols", [(2, 2), (2, 4), (1, 2)])
def test_broadcast_array(rows, cols):
    """broadcast_array: weights read with each tile's first pixel (no loader), latency rows + 1;
    single-pixel tiles, accumulate chains and the other opcodes stay bit-exact, busy cycles as
    conv_cycles says (T*N + rows + 5 once N >= 3)."""
    import dataclasses
    cfg = dataclasses.replace(make_config(rows, cols), broadcast_array=True, serial_products=(cols == 4))
    busy = check(cfg, [conv(3, 3, 1, 1, cin_blocks=3, kernel3=1, in_addr=0, wgt_addr=0, acc_addr=9),
                       conv(1, 1, 1, 1, cin_blocks=4, in_addr=40, wgt_addr=30, acc_addr=9, accumulate=1),
                       conv(5, 4, 3, 2, cin_blocks=2, kernel3=1, pad_top=1, pad_left=1, pad_value=-3,
                            in_addr=1, wgt_addr=2, acc_addr=3),
                       conv(2, 4, 2, 4, cin_blocks=2, kernel3=1, stride2=1, pad_top=2, pad_left=1,
                            in_addr=60, wgt_addr=20, acc_addr=10, accumulate=1),
                       maxpool(5, 5, 2, 2, in_addr=4, blocks=2), gap(6, 3, in_addr=7, acc_addr=1)],
                 seed=rows + cols)
    extra = 9 if cols == 4 else 0
    assert busy[2] == 18 * 6 + rows + 5 + extra


def test_broadcast_random_programs():
    import dataclasses
    cfg = dataclasses.replace(make_config(2, 4, act_buf_entries=96, wgt_buf_tiles=24, acc_buf_entries=24,
                                          out_buf_entries=24), broadcast_array=True)
    rng = random.Random(31)
    check(cfg, [_random_insn(rng, cfg) for _ in range(6)], seed=31)
