"""The ISA layouts: encode/decode round trip, field overflow, and check() for every error code."""

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import enum

from sqzhw import isa
from sqzhw.config import load_config
from sqzhw.isa import ErrorCode, LoadTarget, Opcode, StoreSource, Unit

CFG = load_config("tiny")


def _members(op: Opcode):
    return isa.Payload.as_shape().members[isa.fields_of(op)].as_shape().members


def _random_fields(op: Opcode, rng: np.random.Generator) -> dict:
    out = {}
    for name, shape in _members(op).items():
        if isinstance(shape, type) and issubclass(shape, enum.Enum):
            out[name] = list(shape)[rng.integers(len(shape))]
            continue
        s = Shape.cast(shape)
        lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
        out[name] = int(rng.integers(lo, hi, endpoint=True))
    return out


@pytest.mark.parametrize("op", list(Opcode))
def test_round_trip_every_opcode(op):
    rng = np.random.default_rng(op.value)
    for _ in range(20):
        wait = {u for u in (Unit.LOAD, Unit.COMPUTE, Unit.STORE) if rng.integers(2)}
        fields = _random_fields(op, rng) if isa.fields_of(op) else {}
        word = isa.encode(op, wait, **fields)
        assert 0 <= word < 1 << isa.INSN_BITS
        assert isa.from_bytes(isa.to_bytes(word)) == word
        view = isa.decode(word)
        assert view.opcode == op
        for u in (Unit.LOAD, Unit.COMPUTE, Unit.STORE):
            assert getattr(view.wait, u.name.lower()) == (u in wait)
        if fields:
            payload = getattr(view.payload, isa.fields_of(op))
            for name, value in fields.items():
                got = getattr(payload, name)
                assert (got == value) if isinstance(value, enum.Enum) else int(got) == value, name
        assert isa.disassemble(word).startswith(op.name.lower())


def test_pack_unpack_program():
    words = [isa.encode(Opcode.NOP), isa.encode(Opcode.LOAD, rows=1, row_len=2), isa.encode(Opcode.END)]
    raw = isa.pack_program(words)
    assert len(raw) == 3 * isa.INSN_BYTES
    assert isa.unpack_program(raw) == words
    with pytest.raises(isa.FieldError, match="not a multiple"):
        isa.unpack_program(raw[:-1])


@pytest.mark.parametrize("op,name,value", [
    (Opcode.LOAD, "rows", 1 << 10), (Opcode.LOAD, "sram_addr", -1), (Opcode.CONV, "pad_value", 128),
    (Opcode.CONV, "pad_value", -129), (Opcode.ADD, "ka", 1 << 15), (Opcode.STORE, "lane_block", 8),
    (Opcode.GAP, "pixels", 1 << 16), (Opcode.LOAD, "dram_addr", 1 << 32),
])
def test_field_overflow_raises(op, name, value):
    with pytest.raises(isa.FieldError, match=name):
        isa.encode(op, **{name: value})


def test_unknown_field_and_fields_on_nop():
    with pytest.raises(isa.FieldError, match="no field"):
        isa.encode(Opcode.CONV, rows=1)
    with pytest.raises(isa.FieldError, match="takes no fields"):
        isa.encode(Opcode.END, rows=1)


def _good_conv(**kw):
    f = dict(in_addr=0, in_h=4, in_w=4, cin_blocks=1, out_h=4, out_w=4, kernel3=1, pad_top=1, pad_left=1,
             wgt_addr=0, acc_addr=0)
    f.update(kw)
    return isa.encode(Opcode.CONV, **f)


def test_check_accepts_legal():
    assert isa.check(_good_conv(), CFG) is None
    assert isa.check(isa.encode(Opcode.LOAD, target=LoadTarget.WGT, rows=2, row_len=3, dram_stride=64), CFG) is None
    assert isa.check(isa.encode(Opcode.END), CFG) is None


@pytest.mark.parametrize("word,code,field", [
    (9, ErrorCode.BAD_OPCODE, "opcode"),
    (15, ErrorCode.BAD_OPCODE, "opcode"),
    (isa.encode(Opcode.LOAD, rows=0, row_len=1), ErrorCode.BAD_FIELD, "LOAD.rows"),
    (isa.encode(Opcode.LOAD, rows=1, row_len=0), ErrorCode.BAD_FIELD, "LOAD.row_len"),
    (isa.encode(Opcode.LOAD, rows=1, row_len=1) | (3 << 7), ErrorCode.BAD_FIELD, "LOAD.target"),
    (isa.encode(Opcode.STORE, rows=1, row_len=1) | (3 << 7), ErrorCode.BAD_FIELD, "STORE.source"),
    (isa.encode(Opcode.STORE, source=StoreSource.ACC_REQUANT, rows=1, row_len=1, lane_block=1),
     ErrorCode.BAD_FIELD, "STORE.lane_block"),
    (isa.encode(Opcode.STORE, source=StoreSource.ACC_REQUANT, rows=1, row_len=1,
                param_addr=CFG.param_buf_entries), ErrorCode.BUF_RANGE, "STORE.param_addr"),
    (isa.encode(Opcode.LOAD, rows=1, row_len=1, dram_addr=2), ErrorCode.DRAM_ALIGN, "LOAD.dram_addr"),
    (isa.encode(Opcode.STORE, rows=2, row_len=1, dram_stride=6), ErrorCode.DRAM_ALIGN, "STORE.dram_stride"),
    (isa.encode(Opcode.LOAD, rows=1, row_len=2, sram_addr=CFG.act_buf_entries - 1), ErrorCode.BUF_RANGE,
     "LOAD.sram_addr"),
    (isa.encode(Opcode.LOAD, target=LoadTarget.WGT, rows=1, row_len=CFG.wgt_buf_tiles + 1),
     ErrorCode.BUF_RANGE, "LOAD.sram_addr"),
    (_good_conv(in_h=0), ErrorCode.BAD_FIELD, "CONV.in_h"),
    (_good_conv(cin_blocks=0), ErrorCode.BAD_FIELD, "CONV.cin_blocks"),
    (_good_conv(kernel3=0, pad_top=2), ErrorCode.BAD_FIELD, "CONV.pad_top"),
    (_good_conv(kernel3=0, pad_left=2), ErrorCode.BAD_FIELD, "CONV.pad_left"),
    (isa.encode(Opcode.MAXPOOL, in_h=2, in_w=2, blocks=1, out_h=2, out_w=2, kernel=1, stride=1, pad_top=1),
     ErrorCode.BAD_FIELD, "MAXPOOL.pad_top"),
    (_good_conv(wgt_addr=CFG.wgt_buf_tiles - 8), ErrorCode.BUF_RANGE, "CONV.wgt_addr"),
    (_good_conv(acc_addr=CFG.acc_buf_entries - 15), ErrorCode.BUF_RANGE, "CONV.acc_addr"),
    (_good_conv(in_addr=CFG.act_buf_entries - 15), ErrorCode.BUF_RANGE, "CONV.in_addr"),
    (isa.encode(Opcode.MAXPOOL, in_h=2, in_w=2, blocks=1, out_h=1, out_w=1, kernel=0, stride=1),
     ErrorCode.BAD_FIELD, "MAXPOOL.kernel"),
    (isa.encode(Opcode.MAXPOOL, in_h=2, in_w=2, blocks=1, out_h=1, out_w=1, kernel=2, stride=1,
                out_addr=CFG.out_buf_entries), ErrorCode.BUF_RANGE, "MAXPOOL.out_addr"),
    (isa.encode(Opcode.GAP, pixels=0, blocks=1), ErrorCode.BAD_FIELD, "GAP.pixels"),
    (isa.encode(Opcode.GAP, pixels=1, blocks=1, acc_addr=CFG.acc_buf_entries), ErrorCode.BUF_RANGE, "GAP.acc_addr"),
    (isa.encode(Opcode.ADD, count=0), ErrorCode.BAD_FIELD, "ADD.count"),
    (isa.encode(Opcode.ADD, count=1, param_addr=CFG.param_buf_entries), ErrorCode.BUF_RANGE, "ADD.param_addr"),
    (isa.encode(Opcode.ADD, count=2, b_addr=CFG.act_buf_entries - 1), ErrorCode.BUF_RANGE, "ADD.b_addr"),
])
def test_check_flags_each_error(word, code, field):
    v = isa.check(word, CFG)
    assert v is not None
    assert v.code == code
    assert v.field == field
    assert v.message


def test_fast_encode_equals_amaranth_const():
    """isa.encode's field tables are read off the layouts; Layout.const is the reference."""
    import random

    from amaranth.hdl import Shape

    rnd = random.Random(11)
    for opcode, table in isa.PAYLOAD_FIELDS.items():
        for _ in range(20):
            fields = {}
            for name, info in table.items():
                if info.enum is not None:
                    fields[name] = rnd.choice(list(info.enum))
                elif info.signed:
                    fields[name] = rnd.randint(-(1 << (info.width - 1)), (1 << (info.width - 1)) - 1)
                else:
                    fields[name] = rnd.randint(0, (1 << info.width) - 1)
            wait = {u for u in (isa.Unit.LOAD, isa.Unit.COMPUTE, isa.Unit.STORE) if rnd.random() < 0.5}
            fast = isa.encode(opcode, wait, **fields)
            assert fast == isa.encode_slow(opcode, wait, **fields)
            d = isa.decode_fields(fast)
            assert d.opcode is opcode and d.wait == wait
            assert d.fields == {k: (v.value if hasattr(v, "value") else v) for k, v in fields.items()}
            assert Shape.cast(isa.Instruction).width == isa.INSN_BITS


def test_add_is_bad_opcode_without_add_unit():
    import dataclasses
    word = isa.encode(Opcode.ADD, a_addr=0, b_addr=4, out_addr=0, count=4, param_addr=0, ka=1, kb=1)
    assert isa.check(word, CFG) is None
    v = isa.check(word, dataclasses.replace(CFG, add_unit=False))
    assert v.code is isa.ErrorCode.BAD_OPCODE and "ADD unit" in v.message
