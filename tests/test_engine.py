"""Whole-engine tests in the Amaranth simulator: hand-assembled programs on the tiny config against a
memory model with latency and stalls; error statuses and what the engine leaves in memory.

Programs that need the compute unit run with the real :class:`rtl_gen.compute.ComputeUnit` when it
exists and compare with the golden executor; the DMA/control programs also run with a small stand-in
compute unit (``CopyCompute`` below) whose effect the test computes with NumPy.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.buffers import buffer_specs
from rtl_gen.engine import Engine
from rtl_gen.testing import run_engine
from sqzhw import isa, quant
from sqzhw.config import PARAM_LANE_BYTES, load_config

Op, T, S, U = isa.Opcode, isa.LoadTarget, isa.StoreSource, isa.Unit


class CopyCompute(wiring.Component):
    """Stand-in compute unit with the real one's members. ``ADD`` copies ``count`` ACT entries
    (from ``a_addr``) to OUT (at ``out_addr``); ``GAP`` writes ``ACC[acc_addr + i]`` lane block 0 =
    ACT[in_addr + i] sign-extended, for ``i < pixels``; other opcodes are busy for 3 cycles."""

    def __init__(self, config):
        self.config = config
        specs = buffer_specs(config)
        members = {"cmd": In(stream.Signature(isa.Instruction)), "busy": Out(1), "array_active": Out(1)}
        for spec in specs.values():
            for reader in spec.readers:
                if not reader.endswith("_rs"):
                    members[reader] = In(spec.read_signature())
        members["acc_w"] = In(specs["acc"].write_signature())
        members["out_w"] = In(specs["out"].write_signature())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        L = self.config.rows
        p = self.cmd.payload.payload
        is_add = Signal()
        src = Signal(16)
        dst = Signal(16)
        left = Signal(17)
        rvalid = Signal()
        reading = Signal()
        m.d.comb += self.cmd.ready.eq(~self.busy)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += self.busy.eq(1)
            with m.Switch(self.cmd.payload.opcode):
                with m.Case(Op.ADD):
                    m.d.sync += [is_add.eq(1), src.eq(p.add.a_addr), dst.eq(p.add.out_addr),
                                 left.eq(p.add.count), reading.eq(1)]
                with m.Case(Op.GAP):
                    m.d.sync += [is_add.eq(0), src.eq(p.gap.in_addr), dst.eq(p.gap.acc_addr),
                                 left.eq(p.gap.pixels), reading.eq(1)]
                with m.Default():
                    m.d.sync += [left.eq(0), reading.eq(1)]
        m.d.comb += self.act_r.addr.eq(src)
        with m.If(reading):
            with m.If(left == 0):
                m.d.sync += reading.eq(0)
            with m.Else():
                m.d.sync += [src.eq(src + 1), left.eq(left - 1)]
        m.d.sync += rvalid.eq(reading & (left != 0))
        wdst = Signal(16)
        with m.If(rvalid):
            m.d.sync += wdst.eq(wdst + 1)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += wdst.eq(Mux(self.cmd.payload.opcode == Op.ADD, p.add.out_addr, p.gap.acc_addr))
        # ACC lane block 0 gets the ACT lanes sign-extended to int32.
        ext = [Signal(32, name=f"ext{i}") for i in range(L)]
        m.d.comb += [e.eq(self.act_r.data[8 * i:8 * i + 8].as_signed()) for i, e in enumerate(ext)]
        m.d.comb += [
            self.out_w.addr.eq(wdst), self.out_w.data.eq(self.act_r.data),
            self.out_w.en.eq(rvalid & is_add),
            self.acc_w.addr.eq(wdst), self.acc_w.data.eq(Cat(*ext)),
            self.acc_w.en.eq(rvalid & ~is_add),
        ]
        with m.If(self.busy & ~reading & ~rvalid):
            m.d.sync += self.busy.eq(0)
        return m


# -- programs ------------------------------------------------------------------------------------

CONFIG = load_config("tiny")
MEM = 1 << 13
INSN = 0            # instructions at 0
DATA = 2048         # input data (read only)
WIN = (4096, 6144)  # writable window


def _memory(rng):
    mem = bytearray(MEM)
    mem[DATA:DATA + 2048] = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
    return mem


def _place(mem, words):
    mem[INSN:INSN + 16 * len(words)] = isa.pack_program(words)


def _param_entry(bias, mult, shift) -> bytes:
    return b"".join(isa.ParamLane.const({"bias": int(b), "multiplier": int(m), "shift": int(s)})
                    .as_bits().to_bytes(PARAM_LANE_BYTES, "little") for b, m, s in zip(bias, mult, shift))


#: The front end without a prefetch queue and with the serial checker (the iCEBreaker's knobs).
COMPACT = dataclasses.replace(CONFIG, fetch_depth=0, serial_products=True)


def _run(mem, words, count=None, stall=0.25, config=CONFIG, **kw):
    _place(mem, words)
    return run_engine(Engine(config, compute=CopyCompute(config)), mem, INSN,
                      len(words) if count is None else count, WIN, stall=stall, **kw)


@pytest.mark.parametrize("config", [CONFIG, COMPACT], ids=["queue", "compact"])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_load_copy_store_out(stall, config):
    rng = np.random.default_rng(1)
    mem = _memory(rng)
    L = CONFIG.rows
    words = [
        isa.encode(Op.LOAD, target=T.ACT, sram_addr=100, dram_addr=DATA, rows=3, row_len=10,
                   dram_stride=16 * L),
        isa.encode(Op.ADD, wait={U.LOAD}, a_addr=100, b_addr=100, count=30, out_addr=7),
        isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.OUT, sram_addr=7, dram_addr=WIN[0], rows=2,
                   row_len=15, dram_stride=20 * L),
        isa.encode(Op.END, wait={U.STORE}),
    ]
    before = bytes(mem)
    res = _run(mem, words, stall=stall, config=config)
    assert res.done and res.error is isa.ErrorCode.NONE, res
    assert res.error_pc == 0
    src = b"".join(before[DATA + r * 16 * L:DATA + r * 16 * L + 10 * L] for r in range(3))
    assert bytes(mem[WIN[0]:WIN[0] + 15 * L]) == src[:15 * L]
    assert bytes(mem[WIN[0] + 20 * L:WIN[0] + 35 * L]) == src[15 * L:]
    # Nothing else changed.
    changed = [i for i in range(16 * len(words), MEM) if mem[i] != before[i]]
    assert all(WIN[0] <= i < WIN[0] + 35 * L for i in changed)
    c = res.counters
    assert c["insns"] == 4
    assert c["cycles"] == res.cycles or abs(c["cycles"] - res.cycles) <= 2
    assert c["load_busy"] >= 30 and c["store_busy"] >= 30 and c["compute_busy"] >= 30
    if stall == 0:
        assert c["mem_write_stall"] == 0
    else:
        assert c["mem_write_stall"] > 0 and c["mem_read_stall"] > 0
    if config is CONFIG or stall:
        # The ADD and STORE waited for their predecessors. (Without stalls the compact front end,
        # a fetch and a 30-cycle serial check per instruction on tiny, outlasts these short instructions.)
        assert c["dispatch_stall"] > 0


def test_store_acc_and_requant():
    rng = np.random.default_rng(2)
    mem = _memory(rng)
    L, C = CONFIG.rows, CONFIG.cols
    bias = rng.integers(-300, 300, C)
    mult = rng.integers(1 << 30, 1 << 31, C)
    shift = np.array([31, 30, 33, 0][:C])
    mem[DATA + 1024:DATA + 1024 + C * 16] = _param_entry(bias, mult, shift)
    words = [
        isa.encode(Op.LOAD, target=T.ACT, sram_addr=0, dram_addr=DATA, rows=1, row_len=20),
        isa.encode(Op.LOAD, target=T.PARAM, sram_addr=5, dram_addr=DATA + 1024, rows=1, row_len=1),
        isa.encode(Op.GAP, wait={U.LOAD}, in_addr=0, pixels=20, blocks=1, acc_addr=40),
        isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.ACC, sram_addr=40, dram_addr=WIN[0], rows=1,
                   row_len=20),
        isa.encode(Op.STORE, wait={U.STORE}, source=S.ACC_REQUANT, sram_addr=40, dram_addr=WIN[0] + 512,
                   rows=1, row_len=20, param_addr=5, zp_out=-3, relu=1),
        isa.encode(Op.END),
    ]
    before = bytes(mem)
    res = _run(mem, words)
    assert res.done, res
    act = np.frombuffer(before[DATA:DATA + 20 * L], np.int8).reshape(20, L).astype(np.int32)
    got = np.frombuffer(bytes(mem[WIN[0]:WIN[0] + 20 * C * 4]), "<i4").reshape(20, C)
    np.testing.assert_array_equal(got[:, :L], act)
    want = quant.requantize(quant.wrap_int32(act + bias[:L]), mult[:L], shift[:L], -3, True)
    got_q = np.frombuffer(bytes(mem[WIN[0] + 512:WIN[0] + 512 + 20 * L]), np.int8).reshape(20, L)
    np.testing.assert_array_equal(got_q, want)


@pytest.fixture(params=[CONFIG, COMPACT], ids=["queue", "compact"])
def front_end(request):
    return request.param


def _error_case(words, count=None, **kw):
    rng = np.random.default_rng(3)
    mem = _memory(rng)
    before = bytes(mem)
    res = _run(mem, words, count=count, **kw)
    assert not res.done
    return res, mem, before


def _prologue():
    """A LOAD and an ADD copy that must complete before the failing instruction stops the run."""
    return [isa.encode(Op.LOAD, target=T.ACT, sram_addr=0, dram_addr=DATA, rows=1, row_len=8),
            isa.encode(Op.ADD, wait={U.LOAD}, a_addr=0, b_addr=0, count=8, out_addr=0),
            isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.OUT, sram_addr=0, dram_addr=WIN[0], rows=1,
                       row_len=8)]


def test_bad_opcode_stops_with_pc(front_end):
    words = _prologue() + [0xB, isa.encode(Op.END)]
    res, mem, before = _error_case(words, config=front_end)
    assert (res.error, res.error_pc) == (isa.ErrorCode.BAD_OPCODE, 3)
    # The instructions before it completed (the STORE), nothing after.
    assert bytes(mem[WIN[0]:WIN[0] + 8 * CONFIG.rows]) == before[DATA:DATA + 8 * CONFIG.rows]
    assert res.counters["insns"] == 3


def test_misaligned_dram_address(front_end):
    words = [isa.encode(Op.NOP), isa.encode(Op.LOAD, target=T.ACT, sram_addr=0, dram_addr=DATA + 2, rows=1,
                                            row_len=1), isa.encode(Op.END)]
    res, _, _ = _error_case(words, config=front_end)
    assert (res.error, res.error_pc) == (isa.ErrorCode.DRAM_ALIGN, 1)


def test_write_outside_window_writes_nothing(front_end):
    words = _prologue()[:2] + [
        isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.OUT, sram_addr=0, dram_addr=WIN[1] - 4 * CONFIG.rows,
                   rows=1, row_len=8),
        isa.encode(Op.END)]
    res, mem, before = _error_case(words, config=front_end)
    assert (res.error, res.error_pc) == (isa.ErrorCode.DRAM_RANGE, 2)
    assert bytes(mem) == before[:INSN] + bytes(mem[INSN:INSN + 16 * len(words)]) + before[INSN + 16 * len(words):]
    assert not res.memory.writes


def test_read_past_memory_is_dram_range(front_end):
    words = [isa.encode(Op.LOAD, target=T.WGT, sram_addr=0, dram_addr=MEM - 32, rows=1, row_len=3),
             isa.encode(Op.END)]
    res, _, _ = _error_case(words, config=front_end)
    assert (res.error, res.error_pc) == (isa.ErrorCode.DRAM_RANGE, 0)
    assert not res.memory.bad_reads


def test_running_past_insn_count(front_end):
    words = _prologue() + [isa.encode(Op.NOP)]
    res, mem, before = _error_case(words, count=4, config=front_end)
    assert (res.error, res.error_pc) == (isa.ErrorCode.FETCH_RANGE, 4)
    assert res.memory.reads < 4 * 4 + 8 + 8   # never fetched past the count


def test_restart_after_error_runs_clean():
    """Status and counters clear at start; a second program runs after an error."""
    rng = np.random.default_rng(4)
    mem = _memory(rng)
    engine = Engine(CONFIG, compute=CopyCompute(CONFIG))
    _place(mem, [0xF])
    res = run_engine(engine, mem, INSN, 1, WIN)
    assert res.error is isa.ErrorCode.BAD_OPCODE
    _place(mem, [isa.encode(Op.NOP), isa.encode(Op.END)])
    res = run_engine(engine, mem, INSN, 2, WIN)
    assert res.done and res.error is isa.ErrorCode.NONE and res.counters["insns"] == 2


# -- with the real compute unit, against the golden executor --------------------------------------

def _golden_program(rng):
    """LOAD -> CONV 3x3 -> STORE ACC_REQUANT; MAXPOOL -> STORE OUT; GAP -> STORE ACC; ADD -> STORE OUT."""
    L, C = CONFIG.rows, CONFIG.cols
    mem = bytearray(MEM)
    mem[DATA:DATA + 72 * L] = rng.integers(-128, 128, 72 * L, dtype=np.int8).tobytes()
    mem[DATA + 512:DATA + 512 + 18 * L * C] = rng.integers(-127, 128, 18 * L * C, dtype=np.int8).tobytes()
    mem[DATA + 1024:DATA + 1024 + C * 16] = _param_entry(rng.integers(-2000, 2000, C),
                                                         rng.integers(1 << 30, 1 << 31, C),
                                                         rng.integers(36, 42, C))
    w0 = WIN[0]
    words = [
        isa.encode(Op.LOAD, target=T.ACT, sram_addr=0, dram_addr=DATA, rows=1, row_len=72),
        isa.encode(Op.LOAD, target=T.WGT, sram_addr=0, dram_addr=DATA + 512, rows=1, row_len=18),
        isa.encode(Op.LOAD, target=T.PARAM, sram_addr=0, dram_addr=DATA + 1024, rows=1, row_len=1),
        isa.encode(Op.CONV, wait={U.LOAD}, in_addr=0, in_h=6, in_w=6, cin_blocks=2, out_h=6, out_w=6,
                   kernel3=1, pad_top=1, pad_left=1, pad_value=-5, wgt_addr=0, acc_addr=0),
        isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.ACC_REQUANT, sram_addr=0, dram_addr=w0, rows=1,
                   row_len=36, param_addr=0, zp_out=-2, relu=1),
        isa.encode(Op.MAXPOOL, in_addr=0, in_h=6, in_w=6, blocks=2, out_h=3, out_w=3, kernel=3, stride=2,
                   pad_top=1, pad_left=1, out_addr=0),
        isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.OUT, sram_addr=0, dram_addr=w0 + 256, rows=1,
                   row_len=18),
        isa.encode(Op.GAP, in_addr=0, pixels=36, blocks=2, acc_addr=100),
        isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.ACC, sram_addr=100, dram_addr=w0 + 512, rows=1,
                   row_len=2),
        isa.encode(Op.ADD, a_addr=0, b_addr=36, count=36, ka=3, kb=-2, param_addr=0, zp_out=1, out_addr=50),
        isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.OUT, sram_addr=50, dram_addr=w0 + 768, rows=2,
                   row_len=18, dram_stride=18 * L),
        isa.encode(Op.END, wait={U.STORE}),
    ]
    _place(mem, words)
    return mem, words


@pytest.mark.parametrize("config", [CONFIG, COMPACT], ids=["queue", "compact"])
def test_engine_matches_golden_executor(config):
    pytest.importorskip("sqzhw.golden.executor")
    compute = pytest.importorskip("rtl_gen.compute")
    from sqzhw.golden.executor import Executor
    mem, words = _golden_program(np.random.default_rng(5))
    golden_mem = bytearray(mem)
    golden = Executor(config, golden_mem, WIN).run(INSN, len(words))
    assert golden.done, golden
    # Every STORE wrote something non-trivial, so the comparison below means something.
    for lo, n in ((0, 36 * 4), (256, 18 * 4), (512, 2 * 16), (768, 36 * 4)):
        assert golden_mem[WIN[0] + lo:WIN[0] + lo + n] != bytes(n)
    res = run_engine(Engine(config, compute=compute.ComputeUnit(config)), mem, INSN, len(words), WIN,
                     stall=0.2, latency=5)
    assert res.done and res.error is isa.ErrorCode.NONE, res
    np.testing.assert_array_equal(np.frombuffer(mem, np.uint8), np.frombuffer(golden_mem, np.uint8))
    assert res.counters["insns"] == len(words) == golden.executed
    assert res.counters["array_active"] > 0


def test_out_of_range_param_lanes_as_golden():
    """Multiplier bit 31 set and shift > 62 in the lanes a STORE uses: the engine uses them as
    sqzhw.quant.effective_params defines, exactly as the golden model."""
    from sqzhw.golden.executor import Executor
    rng = np.random.default_rng(6)
    mem = _memory(rng)
    C = CONFIG.cols
    mem[DATA + 1024:DATA + 1024 + C * 16] = _param_entry([100] * C, [(1 << 31) | (3 << 28)] * C,
                                                         [5, 63, 255, 40][:C])
    words = [isa.encode(Op.LOAD, target=T.ACT, sram_addr=0, dram_addr=DATA, rows=1, row_len=8),
             isa.encode(Op.LOAD, target=T.PARAM, sram_addr=2, dram_addr=DATA + 1024, rows=1, row_len=1),
             isa.encode(Op.GAP, wait={U.LOAD}, in_addr=0, pixels=1, blocks=1, acc_addr=0),
             isa.encode(Op.STORE, wait={U.COMPUTE}, source=S.ACC_REQUANT, sram_addr=0, dram_addr=WIN[0],
                        rows=1, row_len=1, param_addr=2),
             isa.encode(Op.END, wait={U.STORE})]
    _place(mem, words)
    golden_mem = bytearray(mem)
    golden = Executor(CONFIG, golden_mem, WIN).run(INSN, len(words))
    res = run_engine(Engine(CONFIG, compute=CopyCompute(CONFIG)), mem, INSN, len(words), WIN)
    assert golden.done and res.done
    # CopyCompute's GAP copies one entry (pixels=1) = the golden GAP of one pixel, one block.
    np.testing.assert_array_equal(np.frombuffer(mem, np.uint8), np.frombuffer(golden_mem, np.uint8))
