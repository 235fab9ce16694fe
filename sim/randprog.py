"""Random instruction streams for the RTL-versus-golden tests, generated from the ISA layout.

:func:`random_case` builds a small legal program exercising one instruction kind (LOAD/STORE,
CONV, MAXPOOL, GAP, ADD) with random operands on a random memory: inputs below a writable window,
the window itself filled with random bytes (so a stray or missing write shows), every instruction
fully serialized with ``wait`` flags. :func:`fuzz_words` builds illegal and borderline streams (random
opcodes, fields out of range, misaligned or out-of-window DRAM addresses, no END) whose legal
instructions are small enough to finish quickly.

Field values come from the layouts in :mod:`sqzhw.isa` (:func:`field_slots`), checked with
:func:`sqzhw.isa.check` — there is no second copy of the encoding here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from amaranth.hdl import Shape
from amaranth.lib import enum

from sqzhw import isa
from sqzhw.config import AccelConfig

__all__ = ["KINDS", "Case", "random_case", "fuzz_words", "field_slots", "param_entry", "dram_problem",
           "first_static_violation"]

KINDS = ("load_store", "conv", "maxpool", "gap", "add")
ALL_UNITS = (isa.Unit.LOAD, isa.Unit.COMPUTE, isa.Unit.STORE)


@dataclass
class Case:
    """A program and the memory it runs on. Instructions are not in ``memory`` (the runner and the
    golden model place them). The engine may write ``[wr_window[0], wr_window[1])``."""
    kind: str
    config: AccelConfig
    words: list[int]
    memory: bytearray
    wr_window: tuple[int, int]

    def listing(self) -> str:
        return "\n".join(f"{i:4d}: {isa.disassemble(w)}" for i, w in enumerate(self.words))


def field_slots(opcode: isa.Opcode) -> dict[str, tuple[int, int, bool]]:
    """``name -> (bit offset in the instruction word, width, signed)`` of an opcode's payload
    fields, from the ISA layouts."""
    member = isa.fields_of(opcode)
    if member is None:
        return {}
    base = isa.Instruction.as_shape()["payload"].offset + isa.Payload.as_shape()[member].offset
    layout = isa.Payload.as_shape().members[member].as_shape()
    slots = {}
    for name, f in layout:
        shape = f.shape
        if isinstance(shape, type) and issubclass(shape, enum.Enum):
            shape = shape.as_shape()
        s = Shape.cast(shape)
        slots[name] = (base + f.offset, s.width, s.signed)
    return slots


def _word(opcode: isa.Opcode, **fields) -> int:
    return isa.encode(opcode, wait=ALL_UNITS, **fields)


def param_entry(config: AccelConfig, lanes: list[tuple[int, int, int]]) -> bytes:
    """One PARAM buffer entry: ``cols`` lanes of ``(bias, multiplier, shift)``, as
    :class:`sqzhw.isa.ParamLane` little-endian."""
    assert len(lanes) == config.cols
    return b"".join(isa.ParamLane.const({"bias": b, "multiplier": m, "shift": s}).as_bits()
                    .to_bytes(16, "little") for b, m, s in lanes)


def _random_lane(rng: random.Random, acc_bits_hint: int) -> tuple[int, int, int]:
    """Requantization parameters that map accumulators of about ``2**acc_bits_hint`` to int8,
    with some corner cases (zero and extreme multipliers, shift 0 and the maximum)."""
    r = rng.random()
    if r < 0.05:
        return rng.randrange(-(1 << 31), 1 << 31), rng.randrange(0, 1 << 31), rng.randrange(0, 63)
    if r < 0.1:
        return rng.randrange(-1000, 1000), rng.choice([0, 1, (1 << 31) - 1]), rng.choice([0, 1, 31, 62])
    multiplier = rng.randrange(1 << 30, 1 << 31)
    shift = min(62, 31 + max(0, acc_bits_hint - 7) + rng.randrange(-1, 2))
    return rng.randrange(-(1 << acc_bits_hint), 1 << acc_bits_hint), multiplier, shift


class _Layout:
    """Allocates the input area (below the window) and the window of a case."""

    def __init__(self, config: AccelConfig, rng: random.Random):
        self.config, self.rng = config, rng
        self.inputs = bytearray()
        self.outputs = 0

    def put(self, data: bytes) -> int:
        """Place ``data`` in the input area at a random word-aligned gap; returns its address."""
        E = self.config.ext_bytes
        self.inputs.extend(bytes(self.rng.randrange(0, 3) * E))
        addr = len(self.inputs)
        self.inputs.extend(data)
        self.inputs.extend(bytes(-len(self.inputs) % E))
        return addr

    def reserve(self, nbytes: int) -> int:
        """Space in the window; returns its offset from the window base."""
        E = self.config.ext_bytes
        self.outputs += self.rng.randrange(0, 3) * E
        offset = self.outputs
        self.outputs += -(-nbytes // E) * E
        return offset

    def finish(self) -> tuple[bytearray, tuple[int, int], int]:
        base = -(-len(self.inputs) // 64) * 64 + 64
        size = -(-self.outputs // 64) * 64 + 64
        memory = bytearray(self.inputs) + bytearray(base - len(self.inputs))
        memory += bytearray(self.rng.randbytes(size))    # garbage the engine must overwrite exactly
        memory += bytearray(self.rng.randbytes(64))      # above the window: must stay unchanged
        return memory, (base, base + size), base


def _load_act(layout: _Layout, sram_addr: int, planes: int, h: int, w: int) -> int:
    """A strided LOAD of ``planes*h`` rows of ``w`` activation entries (random data, random extra
    stride) into ACT at ``sram_addr``."""
    cfg, rng = layout.config, layout.rng
    L, E = cfg.rows, cfg.ext_bytes
    stride = w * L + rng.randrange(0, 3) * E
    rows = planes * h
    data = bytearray(rng.randbytes(stride * rows))
    addr = layout.put(data)
    return _word(isa.Opcode.LOAD, target=isa.LoadTarget.ACT, sram_addr=sram_addr, dram_addr=addr,
                 rows=rows, row_len=w, dram_stride=stride)


def random_case(config: AccelConfig, kind: str, seed: int) -> Case:
    """A small legal program of ``kind`` (one of :data:`KINDS`) with random operands."""
    if kind not in KINDS:
        raise ValueError(f"unknown case kind {kind!r}; kinds: {KINDS}")
    rng = random.Random(seed)
    cfg = config
    L, K, C = cfg.rows, cfg.lane_blocks, cfg.cols
    lay = _Layout(cfg, rng)
    words: list[int] = []
    stores: list[tuple] = []   # (source, sram_addr, rows, row_len, entry_bytes, extra fields)

    def store(source: isa.StoreSource, sram_addr: int, rows: int, row_len: int, **extra) -> None:
        entry = cfg.acc_entry_bytes if source is isa.StoreSource.ACC else L
        stride = row_len * entry + rng.randrange(0, 2) * cfg.ext_bytes
        offset = lay.reserve(stride * rows)
        stores.append((source, sram_addr, rows, row_len, stride, offset, extra))

    if kind == "load_store":
        planes, h, w = 1, rng.randint(1, 6), rng.randint(1, 9)
        a = rng.randrange(0, cfg.act_buf_entries - h * w + 1)
        o = rng.randrange(0, cfg.out_buf_entries - h * w + 1)
        words.append(_load_act(lay, a, planes, h, w))
        # MAXPOOL 1x1 stride 1 is a copy ACT -> OUT, the only path from a LOAD to a STORE.
        words.append(_word(isa.Opcode.MAXPOOL, in_addr=a, in_h=h, in_w=w, blocks=1, out_h=h, out_w=w,
                           kernel=1, stride=1, pad_top=0, pad_left=0, out_addr=o))
        split = rng.choice([d for d in range(1, h * w + 1) if (h * w) % d == 0])
        store(isa.StoreSource.OUT, o, split, h * w // split)

    elif kind == "maxpool":
        blocks, h, w = rng.randint(1, 3), rng.randint(1, 8), rng.randint(1, 8)
        k, s = rng.randint(1, 3), rng.randint(1, 3)
        pt, pl = rng.randrange(0, k), rng.randrange(0, k)
        oh = max(1, -(-(h + pt - k) // s) + 1 + rng.randint(-1, 1))
        ow = max(1, -(-(w + pl - k) // s) + 1 + rng.randint(-1, 1))
        a = rng.randrange(0, cfg.act_buf_entries - blocks * h * w + 1)
        o = rng.randrange(0, cfg.out_buf_entries - blocks * oh * ow + 1)
        words.append(_load_act(lay, a, blocks, h, w))
        words.append(_word(isa.Opcode.MAXPOOL, in_addr=a, in_h=h, in_w=w, blocks=blocks, out_h=oh, out_w=ow,
                           kernel=k, stride=s, pad_top=pt, pad_left=pl, out_addr=o))
        store(isa.StoreSource.OUT, o, blocks * oh, ow)

    elif kind == "gap":
        blocks = K * rng.randint(1, 2)
        pixels = rng.randint(1, 40)
        a = rng.randrange(0, cfg.act_buf_entries - 2 * blocks * pixels + 1)
        acc = rng.randrange(0, cfg.acc_buf_entries - blocks // K + 1)
        words.append(_load_act(lay, a, blocks, 1, pixels))
        words.append(_load_act(lay, a + blocks * pixels, blocks, 1, pixels))
        words.append(_word(isa.Opcode.GAP, in_addr=a, pixels=pixels, blocks=blocks, acc_addr=acc, accumulate=0))
        words.append(_word(isa.Opcode.GAP, in_addr=a + blocks * pixels, pixels=pixels, blocks=blocks,
                           acc_addr=acc, accumulate=1))
        store(isa.StoreSource.ACC, acc, 1, blocks // K)

    elif kind == "add":
        count = rng.randint(1, 40)
        a = rng.randrange(0, cfg.act_buf_entries - 2 * count + 1)
        b = rng.choice([a, a + count, rng.randrange(0, cfg.act_buf_entries - count + 1)])
        o = rng.randrange(0, cfg.out_buf_entries - count + 1)
        p = rng.randrange(0, cfg.param_buf_entries)
        words.append(_load_act(lay, a, 1, 1, 2 * count))
        lanes = [_random_lane(rng, 21) for _ in range(C)]
        words.append(_word(isa.Opcode.LOAD, target=isa.LoadTarget.PARAM, sram_addr=p,
                           dram_addr=lay.put(param_entry(cfg, lanes)), rows=1, row_len=1, dram_stride=0))
        words.append(_word(isa.Opcode.ADD, a_addr=a, b_addr=b, count=count,
                           ka=rng.randrange(-(1 << 15), 1 << 15) if rng.random() < 0.2 else rng.randrange(1 << 13, 1 << 15),
                           kb=rng.randrange(-(1 << 15), 1 << 15) if rng.random() < 0.2 else rng.randrange(1 << 13, 1 << 15),
                           param_addr=p, zp_out=rng.randrange(-128, 128), relu=rng.randint(0, 1), out_addr=o))
        store(isa.StoreSource.OUT, o, 1, count)

    elif kind == "conv":
        cin = rng.randint(1, 3)
        k = rng.choice([1, 3])
        s = rng.choice([1, 2])
        h, w = rng.randint(1, 7), rng.randint(1, 7)
        max_pad = isa.max_padding(isa.Opcode.CONV, k)
        pt, pl = rng.randint(0, max_pad), rng.randint(0, max_pad)
        oh = max(1, (h + pt + rng.randint(0, max_pad) - k) // s + 1)
        ow = max(1, (w + pl + rng.randint(0, max_pad) - k) // s + 1)
        a = rng.randrange(0, cfg.act_buf_entries - cin * h * w + 1)
        wg = rng.randrange(0, cfg.wgt_buf_tiles - 2 * cin * k * k + 1)
        acc = rng.randrange(0, cfg.acc_buf_entries - oh * ow + 1)
        p = rng.randrange(0, cfg.param_buf_entries)
        words.append(_load_act(lay, a, cin, h, w))
        tiles = 2 * cin * k * k
        words.append(_word(isa.Opcode.LOAD, target=isa.LoadTarget.WGT, sram_addr=wg,
                           dram_addr=lay.put(rng.randbytes(tiles * cfg.wgt_tile_bytes)), rows=1,
                           row_len=tiles, dram_stride=0))
        bits = 14 + (cin * k * k * L).bit_length()
        lanes = [_random_lane(rng, bits) for _ in range(C)]
        words.append(_word(isa.Opcode.LOAD, target=isa.LoadTarget.PARAM, sram_addr=p,
                           dram_addr=lay.put(param_entry(cfg, lanes)), rows=1, row_len=1, dram_stride=0))
        pad = rng.randrange(-128, 128)
        common = dict(in_addr=a, in_h=h, in_w=w, cin_blocks=cin, out_h=oh, out_w=ow, kernel3=int(k == 3),
                      stride2=int(s == 2), pad_top=pt, pad_left=pl, pad_value=pad, acc_addr=acc)
        words.append(_word(isa.Opcode.CONV, wgt_addr=wg, accumulate=0, **common))
        # A second pass with the other half of the weights, accumulated.
        words.append(_word(isa.Opcode.CONV, wgt_addr=wg + cin * k * k, accumulate=1, **common))
        for lb in range(K):
            store(isa.StoreSource.ACC_REQUANT, acc, oh, ow, param_addr=p, zp_out=rng.randrange(-128, 128),
                  relu=rng.randint(0, 1), lane_block=lb)
        store(isa.StoreSource.ACC, acc, 1, oh * ow)

    memory, window, base = lay.finish()
    for source, sram_addr, rows, row_len, stride, offset, extra in stores:
        words.append(_word(isa.Opcode.STORE, source=source, sram_addr=sram_addr, dram_addr=base + offset,
                           rows=rows, row_len=row_len, dram_stride=stride, **extra))
    words.append(isa.encode(isa.Opcode.END, wait=ALL_UNITS))
    for i, word in enumerate(words):
        problem = isa.check(word, cfg)
        assert problem is None, f"generator bug: {kind} instruction {i} {isa.disassemble(word)}: {problem}"
        assert dram_problem(word, cfg, len(memory), *window) is None, \
            f"generator bug: {kind} instruction {i} {isa.disassemble(word)} leaves memory"
    return Case(kind, cfg, words, memory, window)


# -- fuzzing ---------------------------------------------------------------------------------------

def dram_problem(word: int, config: AccelConfig, mem_bytes: int, wr_lo: int, wr_hi: int) -> str | None:
    """Why a statically legal LOAD/STORE reads past ``mem_bytes`` or writes outside
    ``[wr_lo, wr_hi)`` (``None`` if it does not, or is not a LOAD/STORE)."""
    insn = isa.decode(word)
    try:
        opcode = isa.Opcode(word & 0xF)
    except ValueError:
        return None
    if opcode not in (isa.Opcode.LOAD, isa.Opcode.STORE):
        return None
    if opcode is isa.Opcode.LOAD:
        f = insn.payload.load
        entry = {0: config.act_entry_bytes, 1: config.wgt_tile_bytes, 2: config.param_entry_bytes}.get(
            isa.raw_field(f, "target"), 0)
    else:
        f = insn.payload.store
        entry = config.acc_entry_bytes if isa.raw_field(f, "source") == 1 else config.act_entry_bytes
    if f.rows == 0 or f.row_len == 0 or entry == 0:
        return None
    start = f.dram_addr
    end = f.dram_addr + (f.rows - 1) * f.dram_stride + f.row_len * entry
    if opcode is isa.Opcode.LOAD and end > mem_bytes:
        return f"reads bytes up to {end}, memory has {mem_bytes}"
    if opcode is isa.Opcode.STORE and (start < wr_lo or end > wr_hi):
        return f"writes [{start}, {end}) outside [{wr_lo}, {wr_hi})"
    return None


def first_static_violation(words: list[int], config: AccelConfig) -> tuple[int, isa.Violation] | None:
    """The first instruction :func:`sqzhw.isa.check` rejects, with why."""
    for i, w in enumerate(words):
        v = isa.check(w, config)
        if v is not None:
            return i, v
    return None


def _work(word: int, config: AccelConfig) -> int:
    """A rough upper bound of the cycles one legal instruction keeps its unit busy."""
    insn = isa.decode(word)
    op = word & 0xF
    if op in (isa.Opcode.LOAD.value, isa.Opcode.STORE.value):
        f = insn.payload.load if op == isa.Opcode.LOAD.value else insn.payload.store
        return f.rows * f.row_len * max(1, config.param_entry_bytes // config.ext_bytes)
    if op == isa.Opcode.CONV.value:
        f = insn.payload.conv
        k = 3 if f.kernel3 else 1
        return f.out_h * f.out_w * f.cin_blocks * k * k + f.cin_blocks * k * k * config.rows
    if op == isa.Opcode.MAXPOOL.value:
        f = insn.payload.maxpool
        return f.blocks * f.out_h * f.out_w * 9
    if op == isa.Opcode.GAP.value:
        f = insn.payload.gap
        return f.blocks * f.pixels
    if op == isa.Opcode.ADD.value:
        return insn.payload.add.count
    return 1


def _mutate(rng: random.Random, word: int, config: AccelConfig, mem_bytes: int) -> int:
    """Set one payload field (or the opcode) of ``word`` to an edge value."""
    try:
        opcode = isa.Opcode(word & 0xF)
    except ValueError:
        return word
    slots = field_slots(opcode)
    if not slots or rng.random() < 0.1:
        return (word & ~0xF) | rng.randrange(8, 16)   # an unknown opcode
    name = rng.choice(list(slots))
    offset, width, _ = slots[name]
    top = (1 << width) - 1
    depths = [config.act_buf_entries, config.wgt_buf_tiles, config.acc_buf_entries, config.out_buf_entries,
              config.param_buf_entries]
    value = rng.choice([0, 1, 2, 3, top, top - 1, rng.randrange(0, top + 1),
                        min(top, rng.choice(depths) + rng.randrange(-2, 3))])
    if name in ("dram_addr", "dram_stride"):
        value = rng.choice([value, min(top, mem_bytes - rng.randrange(0, 3) * config.ext_bytes),
                            rng.randrange(0, min(top, mem_bytes) + 1)])
    value = max(0, min(top, value))
    return (word & ~(top << offset)) | (value << offset)


def fuzz_words(config: AccelConfig, seed: int, n: int = 12, max_work: int = 20_000) -> Case:
    """An illegal or borderline instruction stream on a random memory.

    Mixes legal instructions of :func:`random_case` programs, the same with one field set to an edge
    value (zero sizes, buffer depths, field maxima, DRAM addresses near the end of memory or the
    window, unknown enum values and opcodes), random wait flags, and sometimes no END (the engine
    must stop with FETCH_RANGE). Legal instructions whose work exceeds ``max_work`` cycles are
    replaced, so a run is short whatever the engine does.
    """
    rng = random.Random(seed)
    base = random_case(config, rng.choice(KINDS), rng.randrange(1 << 30))
    mem_bytes = len(base.memory)
    pool = base.words[:-1]
    words = []
    for _ in range(n):
        w = rng.choice(pool)
        r = rng.random()
        if r < 0.55:
            w = _mutate(rng, w, config, mem_bytes)
        elif r < 0.65:
            w = rng.getrandbits(isa.INSN_BITS)
        # random wait flags
        w = (w & ~(0b111 << 4)) | (rng.randrange(8) << 4)
        if isa.check(w, config) is None and _work(w, config) > max_work:
            w = rng.choice(pool)
        words.append(w)
    if rng.random() < 0.7:
        words.append(isa.encode(isa.Opcode.END))
    return Case("fuzz", config, words, base.memory, base.wr_window)
