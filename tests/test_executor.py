"""The ISA golden model: each opcode against the isa.py docstring formulas written as plain loops,
the error codes, the hazard check, the cycle model, and a fuzz test."""

import numpy as np
import pytest

from sqzhw import isa
from sqzhw.config import AccelConfig, load_config
from sqzhw.golden.executor import CycleModel, Executor, HazardError, decode_fields, estimate_cycles
from sqzhw.isa import ErrorCode, LoadTarget, Opcode, StoreSource, Unit
from sqzhw.quant import requantize, wrap_int32

CFG = load_config("tiny")        # rows = cols = 4, 32-bit external words
WIDE = AccelConfig("r4c8", rows=4, cols=8, act_buf_entries=512, wgt_buf_tiles=128, acc_buf_entries=128,
                   out_buf_entries=256, param_buf_entries=16, ext_data_bits=32)
ALL = (Unit.LOAD, Unit.COMPUTE, Unit.STORE)


def run(cfg, words, mem=None, window=None, **kw):
    """Instructions at 0, data after; returns (executor, result, memory)."""
    prog = isa.pack_program(words)
    if mem is None:
        mem = bytearray(4096)
    mem[:len(prog)] = prog
    ex = Executor(cfg, mem, window or (len(prog), len(mem)), **kw)
    return ex, ex.run(0, len(words)), mem


def enc(op, wait=ALL, **f):
    return isa.encode(op, wait, **f)


def param_bytes(bias, mult, shift) -> bytes:
    lanes = np.zeros((len(bias), 16), np.uint8)
    lanes[:, 0:4] = np.asarray(bias, "<i4").view(np.uint8).reshape(-1, 4)
    lanes[:, 4:8] = np.asarray(mult, "<u4").view(np.uint8).reshape(-1, 4)
    lanes[:, 8] = shift
    return lanes.tobytes()


def test_load_store_round_trip_strided():
    rng = np.random.default_rng(0)
    mem = bytearray(4096)
    data = rng.integers(0, 256, 1024, dtype=np.uint8)
    mem[1024:2048] = data.tobytes()
    # gather 3 rows of 2 entries (4 bytes each) with a 64-byte stride, then scatter them back packed
    words = [enc(Opcode.LOAD, target=LoadTarget.ACT, sram_addr=10, dram_addr=1024, rows=3, row_len=2,
                 dram_stride=64),
             enc(Opcode.NOP),
             enc(Opcode.END)]
    ex, res, mem = run(CFG, words, mem)
    assert res.done and res.error == ErrorCode.NONE
    expect = np.concatenate([data[r * 64:r * 64 + 8] for r in range(3)]).view(np.int8).reshape(6, 4)
    np.testing.assert_array_equal(ex.act[10:16], expect)
    # OUT store: rows of entries to a strided destination
    ex.out[0:6] = expect
    ex2_words = [enc(Opcode.STORE, source=StoreSource.OUT, sram_addr=0, dram_addr=3072, rows=2, row_len=3,
                     dram_stride=32), enc(Opcode.END)]
    prog = isa.pack_program(ex2_words)
    mem[:len(prog)] = prog
    res = ex.run(0, 2)
    assert res.done
    got = np.frombuffer(bytes(mem[3072:3072 + 44]), np.int8)
    np.testing.assert_array_equal(got[0:12], expect[0:3].reshape(-1))
    np.testing.assert_array_equal(got[32:44], expect[3:6].reshape(-1))


def ref_conv(act, wgt, f, cfg):
    """The CONV docstring formula, literally."""
    k, s = (3 if f["kernel3"] else 1), (2 if f["stride2"] else 1)
    out = np.zeros((f["out_h"] * f["out_w"], cfg.cols), np.int64)
    for oy in range(f["out_h"]):
        for ox in range(f["out_w"]):
            for b in range(f["cin_blocks"]):
                for ky in range(k):
                    for kx in range(k):
                        y, x = oy * s + ky - f["pad_top"], ox * s + kx - f["pad_left"]
                        if 0 <= y < f["in_h"] and 0 <= x < f["in_w"]:
                            a = act[f["in_addr"] + b * f["in_h"] * f["in_w"] + y * f["in_w"] + x].astype(np.int64)
                        else:
                            a = np.full(cfg.rows, f["pad_value"], np.int64)
                        out[oy * f["out_w"] + ox] += a @ wgt[f["wgt_addr"] + (b * k + ky) * k + kx].astype(np.int64)
    return out


@pytest.mark.parametrize("cfg", [CFG, WIDE], ids=["4x4", "4x8"])
@pytest.mark.parametrize("kernel3,stride2,pad_top,pad_left,in_h,in_w,out_h,out_w", [
    (1, 0, 1, 1, 5, 6, 5, 6),    # same padding
    (1, 1, 1, 1, 7, 5, 4, 3),    # stride 2, implicit bottom/right padding
    (1, 0, 0, 2, 4, 3, 2, 3),    # halo band: no top pad, larger left pad
    (0, 0, 0, 0, 3, 4, 3, 4),    # 1x1
    (0, 1, 0, 0, 5, 5, 3, 3),    # 1x1 stride 2
])
def test_conv_matches_docstring(cfg, kernel3, stride2, pad_top, pad_left, in_h, in_w, out_h, out_w):
    rng = np.random.default_rng(in_h * 7 + out_w)
    ex = Executor(cfg, bytearray(4096))
    ex.act[:] = rng.integers(-128, 128, ex.act.shape)
    ex.wgt[:] = rng.integers(-128, 128, ex.wgt.shape)
    prior = rng.integers(-1000, 1000, (out_h * out_w, cfg.cols)).astype(np.int32)
    for accumulate in (0, 1):
        f = dict(in_addr=7, in_h=in_h, in_w=in_w, cin_blocks=2, out_h=out_h, out_w=out_w, kernel3=kernel3,
                 stride2=stride2, pad_top=pad_top, pad_left=pad_left, pad_value=-5, wgt_addr=3, acc_addr=11,
                 accumulate=accumulate)
        ex.acc[11:11 + out_h * out_w] = prior
        mem = ex.memory
        mem[:32] = isa.pack_program([enc(Opcode.CONV, **f), enc(Opcode.END)])
        res = ex.run(0, 2)
        assert res.done, res.message
        expect = ref_conv(ex.act, ex.wgt, f, cfg) + (prior if accumulate else 0)
        np.testing.assert_array_equal(ex.acc[11:11 + out_h * out_w], wrap_int32(expect))
        assert res.array_macs == 2 * (9 if kernel3 else 1) * out_h * out_w * cfg.rows * cfg.cols


def test_conv_accumulator_wraps():
    ex = Executor(CFG, bytearray(256))
    ex.act[:] = -128
    ex.wgt[:] = -128
    ex.acc[0] = np.iinfo(np.int32).max
    f = dict(in_addr=0, in_h=1, in_w=1, cin_blocks=1, out_h=1, out_w=1, wgt_addr=0, acc_addr=0, accumulate=1)
    ex.memory[:32] = isa.pack_program([enc(Opcode.CONV, **f), enc(Opcode.END)])
    assert ex.run(0, 2).done
    np.testing.assert_array_equal(ex.acc[0], wrap_int32(np.iinfo(np.int32).max + 4 * 128 * 128))


def test_maxpool_ceil_edges():
    rng = np.random.default_rng(1)
    ex = Executor(CFG, bytearray(256))
    ex.act[:] = rng.integers(-128, 128, ex.act.shape)
    f = dict(in_addr=3, in_h=5, in_w=4, blocks=2, out_h=3, out_w=2, kernel=3, stride=2, pad_top=1, pad_left=0,
             out_addr=9)
    ex.memory[:32] = isa.pack_program([enc(Opcode.MAXPOOL, **f), enc(Opcode.END)])
    assert ex.run(0, 2).done
    for b in range(2):
        for oy in range(3):
            for ox in range(2):
                vals = [ex.act[3 + b * 20 + y * 4 + x] for ky in range(3) for kx in range(3)
                        for y, x in [(oy * 2 + ky - 1, ox * 2 + kx)] if 0 <= y < 5 and 0 <= x < 4]
                np.testing.assert_array_equal(ex.out[9 + b * 6 + oy * 2 + ox], np.max(vals, axis=0))


def test_gap_lanes_and_accumulate():
    rng = np.random.default_rng(2)
    ex = Executor(WIDE, bytearray(256))
    ex.act[:] = rng.integers(-128, 128, ex.act.shape)
    ex.acc[:] = 77
    words = [enc(Opcode.GAP, in_addr=5, pixels=6, blocks=3, acc_addr=2, accumulate=0),
             enc(Opcode.GAP, in_addr=100, pixels=6, blocks=3, acc_addr=2, accumulate=1), enc(Opcode.END)]
    ex.memory[:48] = isa.pack_program(words)
    assert ex.run(0, 3).done
    s1 = ex.act[5:23].astype(np.int64).reshape(3, 6, 4).sum(axis=1)
    s2 = ex.act[100:118].astype(np.int64).reshape(3, 6, 4).sum(axis=1)
    tot = s1 + s2
    np.testing.assert_array_equal(ex.acc[2, 0:4], tot[0])
    np.testing.assert_array_equal(ex.acc[2, 4:8], tot[1])
    np.testing.assert_array_equal(ex.acc[3, 0:4], tot[2])
    np.testing.assert_array_equal(ex.acc[3, 4:8], 77)  # lanes not covered are unchanged


def test_add_and_store_requant_use_requantize():
    rng = np.random.default_rng(3)
    mem = bytearray(4096)
    bias, mult, shift = [-300, 5, 0, 7, 1, 2, 3, 4], [1 << 30, 1 << 29, 123456789, 0, 1, 1, 1, 1], [31, 30, 33, 0, 0, 0, 0, 0]
    mem[1024:1024 + 128] = param_bytes(bias, mult, shift)
    words = [enc(Opcode.LOAD, target=LoadTarget.PARAM, sram_addr=3, dram_addr=1024, rows=1, row_len=1),
             enc(Opcode.ADD, a_addr=0, b_addr=40, count=20, ka=300, kb=-200, param_addr=3, zp_out=-7, relu=1,
                 out_addr=50),
             enc(Opcode.STORE, source=StoreSource.ACC_REQUANT, sram_addr=4, dram_addr=2048, rows=1, row_len=10,
                 param_addr=3, zp_out=3, relu=0, lane_block=1),
             enc(Opcode.END)]
    prog = isa.pack_program(words)
    mem[:len(prog)] = prog
    ex = Executor(WIDE, mem, (2048, 4096))
    ex.act[:] = rng.integers(-128, 128, ex.act.shape)
    ex.acc[:] = rng.integers(-(1 << 31), 1 << 31, ex.acc.shape)
    res = ex.run(0, len(words))
    assert res.done, res.message
    b, m, n = np.array(bias[:4]), np.array(mult[:4]), np.array(shift[:4])
    acc = ex.act[0:20].astype(np.int64) * 300 + ex.act[40:60].astype(np.int64) * -200 + b
    np.testing.assert_array_equal(ex.out[50:70], requantize(wrap_int32(acc), m, n, -7, True))
    lanes = slice(4, 8)
    b, m, n = np.array(bias[4:]), np.array(mult[4:]), np.array(shift[4:])
    expect = requantize(wrap_int32(ex.acc[4:14, lanes].astype(np.int64) + b), m, n, 3, False)
    np.testing.assert_array_equal(np.frombuffer(bytes(mem[2048:2088]), np.int8).reshape(10, 4), expect)


def test_store_acc_raw_little_endian():
    ex = Executor(CFG, bytearray(1024), (512, 1024))
    ex.acc[2] = [1, -2, 1 << 30, -(1 << 31)]
    ex.memory[:32] = isa.pack_program([enc(Opcode.STORE, source=StoreSource.ACC, sram_addr=2, dram_addr=512,
                                           rows=1, row_len=1), enc(Opcode.END)])
    assert ex.run(0, 2).done
    np.testing.assert_array_equal(np.frombuffer(bytes(ex.memory[512:528]), "<i4"), ex.acc[2])


# -- errors --------------------------------------------------------------------------------------

def test_fetch_range_without_end():
    _, res, _ = run(CFG, [enc(Opcode.NOP), enc(Opcode.NOP)])
    assert not res.done and res.error == ErrorCode.FETCH_RANGE and res.error_pc == 2


@pytest.mark.parametrize("word,code", [
    (enc(Opcode.LOAD, target=LoadTarget.ACT, dram_addr=4092, rows=1, row_len=2), ErrorCode.DRAM_RANGE),
    (enc(Opcode.STORE, source=StoreSource.OUT, dram_addr=0, rows=1, row_len=1), ErrorCode.DRAM_RANGE),
    (enc(Opcode.STORE, source=StoreSource.OUT, dram_addr=4088, rows=1, row_len=4), ErrorCode.DRAM_RANGE),
    (enc(Opcode.LOAD, dram_addr=2, rows=1, row_len=1), ErrorCode.DRAM_ALIGN),
    (12, ErrorCode.BAD_OPCODE),
    (enc(Opcode.CONV, in_h=1, in_w=1, cin_blocks=1, out_h=1, out_w=1, kernel3=0, pad_top=2), ErrorCode.BAD_FIELD),
    (enc(Opcode.LOAD, rows=1, row_len=2, sram_addr=CFG.act_buf_entries - 1), ErrorCode.BUF_RANGE),
])
def test_errors_stop_with_code_and_pc(word, code):
    _, res, mem = run(CFG, [enc(Opcode.NOP), word, enc(Opcode.END)])
    assert not res.done
    assert res.error == code and res.error_pc == 1
    assert "instruction 1" in res.message


def test_param_lane_fields_out_of_range_are_well_defined():
    """Multiplier bit 31 is ignored and shifts above 62 act as 62 (quant.effective_params)."""
    outputs = []
    for mult, shift in (([(1 << 31) | 12345, (1 << 31) | (1 << 30), 7, 1 << 30], [10, 255, 63, 62]),
                        ([12345, 1 << 30, 7, 1 << 30], [10, 62, 62, 62])):
        mem = bytearray(4096)
        mem[1024:1024 + 64] = param_bytes([0, 1 << 20, -5, 1 << 30], mult, shift)
        words = [enc(Opcode.LOAD, target=LoadTarget.PARAM, dram_addr=1024, rows=1, row_len=1),
                 enc(Opcode.ADD, count=8, ka=1000, kb=-3), enc(Opcode.END)]
        prog = isa.pack_program(words)
        mem[:len(prog)] = prog
        ex = Executor(CFG, mem, (2048, 4096))
        ex.act[:] = np.random.default_rng(5).integers(-128, 128, ex.act.shape)
        res = ex.run(0, len(words))
        assert res.done, res.message
        outputs.append(ex.out[:8].copy())
    np.testing.assert_array_equal(outputs[0], outputs[1])


# -- hazards -------------------------------------------------------------------------------------

def _conv_reading_act(wait):
    return isa.encode(Opcode.CONV, wait, in_addr=0, in_h=2, in_w=2, cin_blocks=1, out_h=2, out_w=2, wgt_addr=0,
                      acc_addr=0)


def test_raw_hazard_detected_and_named():
    words = [isa.encode(Opcode.LOAD, (), target=LoadTarget.ACT, sram_addr=2, dram_addr=1024, rows=1, row_len=4),
             _conv_reading_act(()), enc(Opcode.END)]
    with pytest.raises(HazardError) as info:
        run(CFG, words)
    e = info.value
    assert (e.kind, e.earlier, e.later, e.unit, e.resource) == ("RAW", 0, 1, Unit.LOAD, "ACT")
    assert (e.lo, e.hi) == (2, 4)
    assert "instruction 1" in str(e) and "instruction 0" in str(e) and "ACT" in str(e)
    words[1] = _conv_reading_act((Unit.LOAD,))
    _, res, _ = run(CFG, words)
    assert res.done and not res.hazards


def test_war_hazard_and_collection_mode():
    words = [_conv_reading_act(()),
             isa.encode(Opcode.LOAD, (), target=LoadTarget.ACT, sram_addr=3, dram_addr=1024, rows=1, row_len=1),
             enc(Opcode.END)]
    _, res, _ = run(CFG, words, raise_hazards=False)
    assert res.done and len(res.hazards) == 1
    assert res.hazards[0].kind == "WAR" and res.hazards[0].unit == Unit.COMPUTE


def test_dram_raw_between_store_and_load():
    words = [isa.encode(Opcode.STORE, (), source=StoreSource.OUT, dram_addr=2048, rows=1, row_len=4),
             isa.encode(Opcode.LOAD, (), target=LoadTarget.ACT, dram_addr=2060, rows=1, row_len=4),
             enc(Opcode.END)]
    with pytest.raises(HazardError, match="DRAM bytes \\[2060, 2064\\)"):
        run(CFG, words)


def test_no_hazard_when_unit_already_known_idle():
    # the store waited for compute, so the later LOAD may overwrite what the CONV read
    words = [_conv_reading_act(()),
             isa.encode(Opcode.STORE, (Unit.COMPUTE,), source=StoreSource.ACC, dram_addr=2048, rows=1, row_len=1),
             isa.encode(Opcode.LOAD, (), target=LoadTarget.ACT, sram_addr=0, dram_addr=1024, rows=1, row_len=4),
             enc(Opcode.END)]
    _, res, _ = run(CFG, words)
    assert res.done


# -- cycle model ---------------------------------------------------------------------------------

def test_cycle_model_overlap_and_waits():
    m = CycleModel()
    load = isa.encode(Opcode.LOAD, (), target=LoadTarget.ACT, sram_addr=100, dram_addr=1024, rows=1, row_len=50)
    conv = _conv_reading_act(())
    t_par = estimate_cycles([load, conv, enc(Opcode.END)], CFG, m)
    c_load = m.cycles(decode_fields(load), CFG)
    c_conv = m.cycles(decode_fields(conv), CFG)
    assert c_load == m.load_latency + 50
    assert c_conv == 4 + CFG.rows + CFG.cols + m.conv_overhead
    assert t_par.total == max(c_load, 1 + c_conv) + 1      # in parallel, END after both
    serial = _conv_reading_act((Unit.LOAD,))
    t_ser = estimate_cycles([load, serial, enc(Opcode.END)], CFG, m)
    assert t_ser.total == c_load + c_conv + 1
    _, res, _ = run(CFG, [load, serial, enc(Opcode.END)])
    assert res.cycles == t_ser.total
    assert res.unit_busy[Unit.LOAD] == c_load and res.unit_busy[Unit.COMPUTE] == c_conv


# -- fuzz ----------------------------------------------------------------------------------------

def _fuzz_word(rng, cfg):
    if rng.random() < 0.3:
        return int.from_bytes(rng.bytes(16), "little")
    op = Opcode(int(rng.integers(0, 8)))
    member = isa.fields_of(op)
    if member is None:
        return isa.encode(op, {u for u in ALL if rng.random() < 0.5})
    fields = {}
    from amaranth.hdl import Shape
    from amaranth.lib import enum
    for name, shape in isa.Payload.as_shape().members[member].as_shape().members.items():
        if isinstance(shape, type) and issubclass(shape, enum.Enum):
            fields[name] = list(shape)[int(rng.integers(len(shape)))]
            continue
        s = Shape.cast(shape)
        small = int(rng.integers(0, 12)) if rng.random() < 0.8 else int(rng.integers(0, 1 << min(s.width, 31)))
        if name in ("dram_addr",):
            small = int(rng.integers(0, 70)) * 32
        if name == "dram_stride":
            small = int(rng.integers(0, 4)) * 32
        if s.signed:
            small = int(np.clip(small - 6, -(1 << (s.width - 1)), (1 << (s.width - 1)) - 1))
        fields[name] = min(small, (1 << s.width) - 1)
    return isa.encode(op, {u for u in ALL if rng.random() < 0.5}, **fields)


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_never_raises_never_writes_outside(seed):
    rng = np.random.default_rng(seed)
    cfg = CFG if seed % 2 else WIDE
    for _ in range(25):
        words = [_fuzz_word(rng, cfg) for _ in range(int(rng.integers(1, 30)))]
        mem = bytearray(rng.bytes(2048))
        prog = isa.pack_program(words)
        mem[:len(prog)] = prog
        window = (1024, 1536)
        before = bytes(mem)
        ex = Executor(cfg, mem, window, raise_hazards=False)
        res = ex.run(0, len(words))
        assert res.done or res.error != ErrorCode.NONE
        assert bytes(mem[:window[0]]) == before[:window[0]]
        assert bytes(mem[window[1]:]) == before[window[1]:]
        if res.error != ErrorCode.NONE:
            assert 0 <= res.error_pc <= len(words)
