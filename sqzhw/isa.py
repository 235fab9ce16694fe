"""The sqzhw instruction set, written once.

Every instruction is one 128-bit word: a header (opcode and wait flags) and a per-opcode payload in a
:class:`amaranth.lib.data.UnionLayout`. The compiler encodes with :func:`encode`
(``Layout.const(...).as_bits()``), the golden model and the testbenches decode with :func:`decode`
(``Layout.from_bits``), and the RTL decoder uses :data:`Instruction` as a signal shape. There is no
other copy of the encoding.

Machine model
-------------
The engine has three execution units, each running one instruction at a time:

* ``LOAD`` unit: ``LOAD`` (external memory -> activation, weight or parameter buffer);
* ``COMPUTE`` unit: ``CONV``, ``MAXPOOL``, ``GAP``, ``ADD``;
* ``STORE`` unit: ``STORE`` (output or accumulator buffer, optionally requantized -> external memory).

Instructions are dispatched in program order. Before dispatching an instruction the front end waits
until (a) the unit it needs is idle and (b) every unit named in its ``wait`` flags is idle. ``NOP``
needs no unit (with wait flags it is a barrier); ``END`` waits for all units and then halts with
``done``. So units overlap unless the compiler asks otherwise: the compiler must set ``wait`` for
every read-after-write, write-after-read and write-after-write hazard between instructions on
different units (buffers and external memory alike). The golden model checks this.

On-chip buffers (sizes from :class:`~sqzhw.config.AccelConfig`, ``L = rows``, ``K = cols // rows``):

========  ===========================  ==================================
buffer    entry                        written by / read by
========  ===========================  ==================================
``ACT``   ``L`` int8                   LOAD / CONV, MAXPOOL, GAP, ADD
``WGT``   ``rows x cols`` int8 tile,   LOAD / CONV
          byte ``r*cols + c`` is the
          weight of input lane ``r``
          to output lane ``c``
``PARAM`` ``cols`` lanes of 16 bytes:  LOAD / STORE(ACC_REQUANT), ADD
          bias int32, multiplier
          int32, shift uint8, 7 pad
``ACC``   ``cols`` int32               CONV, GAP / STORE
``OUT``   ``L`` int8                   MAXPOOL, ADD / STORE
========  ===========================  ==================================

Activation tensors in external memory are block-major: channel block ``b`` (channels
``b*L .. b*L+L-1``) of an ``H x W`` tensor is a plane of ``H*W`` entries of ``L`` bytes, pixel
``(y, x)`` at entry ``y*W + x``. Concatenation is therefore a block offset.

Semantics of each opcode are in the docstrings of its payload layout below. Arithmetic on the
accumulator wraps modulo 2**32 (the compiler proves it never does). Requantization is
:func:`sqzhw.quant.requantize`.

Errors
------
The engine stops with an :class:`ErrorCode` and the failing instruction's index instead of
executing an instruction whose fields are out of range (see :func:`check`), whose DRAM address is not
word aligned, which reads outside memory or writes outside the writable window, or whose opcode is
unknown. It never hangs.
"""


from dataclasses import dataclass

from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

from .config import AccelConfig

__all__ = [
    "Access", "footprint", "entry_bytes", "dram_span", "mem_limit", "max_padding",
    "INSN_BITS", "INSN_BYTES", "Opcode", "Unit", "LoadTarget", "StoreSource", "ErrorCode", "Counter",
    "WaitFlags", "LoadFields", "StoreFields", "ConvFields", "MaxPoolFields", "GapFields", "AddFields",
    "ParamLane", "Payload", "Instruction", "UNIT_OF", "encode", "decode", "to_bytes", "from_bytes",
    "pack_program", "unpack_program", "check", "FieldError", "Violation", "disassemble", "fields_of",
    "raw_field", "FieldInfo", "OPCODE_FIELD", "WAIT_FIELDS", "PAYLOAD_FIELDS", "PARAM_LANE_FIELDS",
    "extract", "Decoded", "decode_fields", "encode_slow",
]

INSN_BITS = 128
INSN_BYTES = INSN_BITS // 8


class Opcode(enum.Enum, shape=4):
    NOP = 0
    LOAD = 1
    STORE = 2
    CONV = 3
    MAXPOOL = 4
    GAP = 5
    ADD = 6
    END = 7


class Unit(enum.Enum, shape=2):
    """Execution units; also the bit positions of :class:`WaitFlags`."""
    LOAD = 0
    COMPUTE = 1
    STORE = 2
    NONE = 3


#: Which unit executes each opcode.
UNIT_OF: dict[Opcode, Unit] = {
    Opcode.NOP: Unit.NONE, Opcode.END: Unit.NONE,
    Opcode.LOAD: Unit.LOAD, Opcode.STORE: Unit.STORE,
    Opcode.CONV: Unit.COMPUTE, Opcode.MAXPOOL: Unit.COMPUTE, Opcode.GAP: Unit.COMPUTE,
    Opcode.ADD: Unit.COMPUTE,
}


class LoadTarget(enum.Enum, shape=2):
    ACT = 0
    WGT = 1
    PARAM = 2


class StoreSource(enum.Enum, shape=2):
    OUT = 0           #: raw int8 entries of the output buffer
    ACC = 1           #: raw int32 entries of the accumulator buffer (``cols * 4`` bytes each)
    ACC_REQUANT = 2   #: ``L`` lanes of accumulator entries, requantized to int8 on the way out


class ErrorCode(enum.Enum, shape=4):
    NONE = 0
    BAD_OPCODE = 1     #: opcode not in :class:`Opcode`, or ADD on an engine without the ADD unit
    BAD_FIELD = 2      #: a field outside its legal range (zero size, kernel 0, stride 0, enum value...)
    BUF_RANGE = 3      #: a buffer access past the end of an on-chip buffer
    DRAM_ALIGN = 4     #: a DRAM address or stride not a multiple of the external word
    DRAM_RANGE = 5     #: a read outside memory or a write outside the writable window
    FETCH_RANGE = 6    #: ran past the instruction count without an END


class Counter(enum.Enum, shape=4):
    """Hardware performance counters, 32 bits each, cleared at start. The index is the enum value."""
    CYCLES = 0          #: cycles from start to done/error
    LOAD_BUSY = 1       #: cycles the load unit executes an instruction
    COMPUTE_BUSY = 2    #: cycles the compute unit executes an instruction
    STORE_BUSY = 3      #: cycles the store unit executes an instruction
    ARRAY_ACTIVE = 4    #: cycles a valid activation vector enters the MAC array
    DISPATCH_STALL = 5  #: cycles a decoded instruction waits for its unit or its wait flags
    MEM_READ_STALL = 6  #: cycles the load unit or fetch waits on external-memory read data
    MEM_WRITE_STALL = 7 #: cycles the store unit waits on external-memory write ready
    INSNS = 8           #: instructions retired


class WaitFlags(data.Struct):
    """Units that must be idle before this instruction is dispatched."""
    load: 1
    compute: 1
    store: 1


class LoadFields(data.Struct):
    """``LOAD``: copy ``rows x row_len`` buffer entries from external memory.

    Entry ``i`` of row ``r`` comes from DRAM byte address
    ``dram_addr + r*dram_stride + i*entry_bytes`` and goes to buffer entry
    ``sram_addr + r*row_len + i`` of ``target`` (entry size: ACT ``L``, WGT ``rows*cols``,
    PARAM ``cols*16`` bytes). ``rows`` and ``row_len`` are at least 1.
    """
    target: LoadTarget
    sram_addr: 16
    dram_addr: 32
    rows: 10
    row_len: 14
    dram_stride: 22


class StoreFields(data.Struct):
    """``STORE``: copy ``rows x row_len`` buffer entries to external memory.

    Source entry ``sram_addr + r*row_len + i`` goes to ``dram_addr + r*dram_stride + i*entry_bytes``.

    * ``OUT``: entries of the output buffer, ``L`` bytes each.
    * ``ACC``: entries of the accumulator buffer, ``cols`` little-endian int32 each.
    * ``ACC_REQUANT``: lanes ``lane_block*L .. lane_block*L+L-1`` of accumulator entries, lane ``j``
      requantized with parameter lane ``lane_block*L + j`` of parameter entry ``param_addr``:
      ``requantize(acc + bias, multiplier, shift, zp_out, relu)``; ``L`` bytes each.
    ``param_addr``, ``zp_out``, ``relu`` and ``lane_block`` are ignored for the raw sources.
    """
    source: StoreSource
    sram_addr: 16
    dram_addr: 32
    rows: 10
    row_len: 14
    dram_stride: 22
    param_addr: 12
    zp_out: signed(8)
    relu: 1
    lane_block: 3


class ConvFields(data.Struct):
    """``CONV``: one output tile of one ``cols``-channel group, accumulated over input blocks.

    The input tile is ``cin_blocks`` planes of ``in_h x in_w`` entries in the activation buffer,
    plane ``b`` at ``in_addr + b*in_h*in_w``. With ``k = 3 if kernel3 else 1`` and
    ``s = 2 if stride2 else 1``, for every output pixel ``(oy, ox)`` of the ``out_h x out_w`` tile::

        acc = sum over b < cin_blocks, ky < k, kx < k, r < rows of
              A(b, oy*s + ky - pad_top, ox*s + kx - pad_left)[r]
              * WGT[wgt_addr + (b*k + ky)*k + kx][r][c]
        ACC[acc_addr + oy*out_w + ox][c] = acc + (ACC[...][c] if accumulate else 0)

    where ``A(b, y, x)`` is the buffer entry of pixel ``(y, x)`` of plane ``b`` when
    ``0 <= y < in_h`` and ``0 <= x < in_w``, and ``pad_value`` in every lane otherwise (zero-point
    padding). All products are int8 x int8; zero points are folded into the bias by the compiler.
    ``pad_top`` and ``pad_left`` are at most ``k - 1``, except that a 1x1 kernel may pad by 1
    (SqueezeNet 1.0's conv10: its border outputs see only ``pad_value``).
    """
    in_addr: 16
    in_h: 10
    in_w: 10
    cin_blocks: 9
    out_h: 10
    out_w: 10
    kernel3: 1
    stride2: 1
    pad_top: 2
    pad_left: 2
    pad_value: signed(8)
    wgt_addr: 16
    acc_addr: 16
    accumulate: 1


class MaxPoolFields(data.Struct):
    """``MAXPOOL``: ``kernel x kernel`` max-pool with stride ``stride`` over ``blocks`` planes.

    Reads planes of ``in_h x in_w`` entries at ``in_addr + b*in_h*in_w`` (activation buffer) and
    writes ``OUT[out_addr + b*out_h*out_w + oy*out_w + ox][l]`` = the maximum of
    ``A(b, oy*stride + ky - pad_top, ox*stride + kx - pad_left)[l]`` over the in-range window
    positions (out-of-range positions are ignored, as in ``ceil_mode``; a window with none gives -128).
    ``kernel`` and ``stride`` are 1 to 3; ``pad_top`` and ``pad_left`` are below ``kernel``.
    """
    in_addr: 16
    in_h: 10
    in_w: 10
    blocks: 9
    out_h: 10
    out_w: 10
    kernel: 2
    stride: 2
    pad_top: 2
    pad_left: 2
    out_addr: 16


class GapFields(data.Struct):
    """``GAP``: per-channel int32 sums over ``pixels`` entries (global average pool, before the divide).

    For block ``b < blocks``, lane ``l``::

        s = sum over p < pixels of ACT[in_addr + b*pixels + p][l]
        ACC[acc_addr + b // K][(b % K)*L + l] = s + (previous value if accumulate else 0)

    Lanes of accumulator entries not covered by a block are left unchanged.
    """
    in_addr: 16
    pixels: 16
    blocks: 9
    acc_addr: 16
    accumulate: 1


class AddFields(data.Struct):
    """``ADD``: element-wise weighted sum of two activation regions, requantized (bypass add).

    For entry ``i < count`` and lane ``l < L``::

        acc = ACT[a_addr + i][l] * ka + ACT[b_addr + i][l] * kb + bias[l]
        OUT[out_addr + i][l] = requantize(acc, multiplier[l], shift[l], zp_out, relu)

    with ``bias``, ``multiplier`` and ``shift`` from lanes ``0..L-1`` of parameter entry
    ``param_addr`` (the compiler folds both zero points into ``bias``).
    """
    a_addr: 16
    b_addr: 16
    count: 16
    ka: signed(16)
    kb: signed(16)
    param_addr: 12
    zp_out: signed(8)
    relu: 1
    out_addr: 16


class ParamLane(data.Struct):
    """One output channel's requantization parameters in the PARAM buffer (16 bytes, little-endian
    in external memory): ``requantize(acc + bias, multiplier, shift, ...)``."""
    bias: signed(32)
    multiplier: 32     #: the engine uses bits 30:0 (the compiler writes values below 2**31)
    shift: 8           #: the engine uses min(shift, 62) (sqzhw.quant.effective_params)
    reserved: 56


assert ParamLane.as_shape().size == 128


class Payload(data.Union):
    load: LoadFields
    store: StoreFields
    conv: ConvFields
    maxpool: MaxPoolFields
    gap: GapFields
    add: AddFields


class Instruction(data.Struct):
    opcode: Opcode
    wait: WaitFlags
    payload: Payload
    reserved: INSN_BITS - 4 - 3 - Payload.as_shape().size


assert Instruction.as_shape().size == INSN_BITS, Instruction.as_shape()

_FIELDS_OF = {Opcode.LOAD: "load", Opcode.STORE: "store", Opcode.CONV: "conv",
              Opcode.MAXPOOL: "maxpool", Opcode.GAP: "gap", Opcode.ADD: "add"}


def fields_of(opcode: Opcode) -> str | None:
    """Name of the payload member an opcode uses (``None`` for NOP and END)."""
    return _FIELDS_OF.get(opcode)


# -- fast field tables -------------------------------------------------------------------------
# Offsets, widths and signedness are read off the layouts above once, so there is no second copy
# of the encoding; they make encoding and decoding fast enough for whole networks (Amaranth's
# ``Layout.const`` takes about a millisecond per instruction). ``tests/test_isa.py`` checks that
# :func:`encode` equals ``Instruction.const(...).as_bits()``.

@dataclass(frozen=True)
class FieldInfo:
    name: str
    offset: int       #: bit offset in the 128-bit word
    width: int
    signed: bool
    enum: type | None  #: the enum class of an enum-typed field


def _table(layout, base: int) -> dict[str, FieldInfo]:
    table = {}
    for name, fld in layout:
        shape = Shape.cast(fld.shape)
        is_enum = isinstance(fld.shape, type) and issubclass(fld.shape, enum.Enum)
        table[name] = FieldInfo(name, base + fld.offset, shape.width, shape.signed,
                                fld.shape if is_enum else None)
    return table


_INSN_LAYOUT = Instruction.as_shape()
OPCODE_FIELD = FieldInfo("opcode", _INSN_LAYOUT["opcode"].offset, Shape.cast(Opcode).width, False, Opcode)
WAIT_FIELDS = _table(WaitFlags.as_shape(), _INSN_LAYOUT["wait"].offset)
PAYLOAD_FIELDS: dict[Opcode, dict[str, FieldInfo]] = {
    op: _table(Payload.as_shape().members[member].as_shape(), _INSN_LAYOUT["payload"].offset)
    for op, member in _FIELDS_OF.items()
}
PARAM_LANE_FIELDS = _table(ParamLane.as_shape(), 0)


def extract(word: int, info: FieldInfo) -> int:
    """The integer value of one field of ``word`` (sign-extended for signed fields; enum fields as
    their raw value, valid member or not)."""
    value = (word >> info.offset) & ((1 << info.width) - 1)
    if info.signed and value >> (info.width - 1):
        value -= 1 << info.width
    return value


@dataclass(frozen=True)
class Decoded:
    """An instruction as plain integers: opcode (``None`` when unknown), wait units, payload fields."""
    opcode: "Opcode | None"
    raw_opcode: int
    wait: frozenset
    fields: dict


def decode_fields(word: int) -> Decoded:
    """Decode an instruction word into plain integers (enum fields as raw values)."""
    raw_opcode = extract(word, OPCODE_FIELD)
    try:
        opcode = Opcode(raw_opcode)
    except ValueError:
        opcode = None
    wait = frozenset(Unit[name.upper()] for name, info in WAIT_FIELDS.items() if extract(word, info))
    table = PAYLOAD_FIELDS.get(opcode, {})
    return Decoded(opcode, raw_opcode, wait, {name: extract(word, info) for name, info in table.items()})


def encode(opcode: Opcode, wait: tuple[Unit, ...] | set[Unit] = (), **fields) -> int:
    """Encode one instruction as a 128-bit integer.

    ``wait`` names the units that must be idle first; ``fields`` are the payload fields of the
    opcode (missing ones are 0). Values that do not fit their field raise :class:`FieldError`.
    """
    opcode = Opcode(opcode)
    table = PAYLOAD_FIELDS.get(opcode)
    if table is None and fields:
        raise FieldError(f"{opcode.name} takes no fields, got {sorted(fields)}")
    word = opcode.value << OPCODE_FIELD.offset
    for unit in set(wait):
        if unit is not Unit.NONE:
            word |= 1 << WAIT_FIELDS[unit.name.lower()].offset
    for name, value in fields.items():
        info = table.get(name)
        if info is None:
            raise FieldError(f"{opcode.name} has no field {name!r}; fields: {list(table)}")
        if info.enum is not None:
            value = info.enum(value).value
        value = int(value)
        lo, hi = ((-(1 << (info.width - 1)), (1 << (info.width - 1)) - 1) if info.signed
                  else (0, (1 << info.width) - 1))
        if not lo <= value <= hi:
            raise FieldError(f"{opcode.name}.{name} = {value} does not fit {info.width} bits "
                             f"({'signed' if info.signed else 'unsigned'}, {lo}..{hi})")
        word |= (value & ((1 << info.width) - 1)) << info.offset
    return word


def encode_slow(opcode: Opcode, wait=(), **fields) -> int:
    """:func:`encode` through Amaranth's ``Layout.const`` (the reference the fast path is tested
    against)."""
    flags = {u.name.lower(): int(u in set(wait)) for u in (Unit.LOAD, Unit.COMPUTE, Unit.STORE)}
    value = {"opcode": opcode, "wait": flags}
    member = fields_of(opcode)
    if member:
        value["payload"] = {member: dict(fields)}
    return Instruction.const(value).as_bits()


def decode(word: int):
    """Decode a 128-bit integer into an :class:`Instruction` view (``.opcode``, ``.wait``,
    ``.payload.conv.in_h`` ...). An unknown opcode decodes to a plain integer opcode field."""
    return Instruction.from_bits(word)


def to_bytes(word: int) -> bytes:
    return int(word).to_bytes(INSN_BYTES, "little")


def from_bytes(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def pack_program(words: list[int]) -> bytes:
    """Instruction words as they lie in external memory (little-endian, consecutive)."""
    return b"".join(to_bytes(w) for w in words)


def unpack_program(raw: bytes) -> list[int]:
    if len(raw) % INSN_BYTES:
        raise FieldError(f"instruction stream of {len(raw)} bytes is not a multiple of {INSN_BYTES}")
    return [from_bytes(raw[i:i + INSN_BYTES]) for i in range(0, len(raw), INSN_BYTES)]


class FieldError(ValueError):
    """An instruction field out of its range."""


@dataclass(frozen=True)
class Violation:
    """Why an instruction is illegal: what the engine's error status reports."""
    code: ErrorCode
    field: str
    message: str


def raw_field(view: data.Const, name: str) -> int:
    """The raw bits of field ``name`` of a decoded view, also when they are not a valid enum member."""
    field = view.shape()[name]
    return (view.as_bits() >> field.offset) & ((1 << Shape.cast(field.shape).width) - 1)


class _Fields:
    """Attribute access to a decoded field dict (keeps :func:`check` readable)."""

    def __init__(self, fields: dict) -> None:
        self.__dict__.update(fields)


def max_padding(opcode: Opcode, kernel: int) -> int:
    """The largest legal ``pad_top``/``pad_left`` of a CONV or MAXPOOL with this kernel size:
    ``kernel - 1``, and 1 for a 1x1 CONV."""
    return 1 if opcode is Opcode.CONV and kernel == 1 else kernel - 1


def check(word: int, config: AccelConfig) -> Violation | None:
    """Static legality of one instruction for ``config`` (everything but DRAM ranges, which depend
    on the memory the engine is given: :func:`mem_limit` bytes, checked by the golden model and
    the engine). The RTL decoder implements the same rules; this function is their specification
    and the golden model's check.
    """
    d = decode_fields(word)
    opcode = d.opcode
    if opcode is None:
        return Violation(ErrorCode.BAD_OPCODE, "opcode", f"unknown opcode {d.raw_opcode}")
    if fields_of(opcode) is None:
        return None
    f = _Fields(d.fields)
    K = config.lane_blocks

    def bad(field: str, why: str, code: ErrorCode = ErrorCode.BAD_FIELD) -> Violation:
        return Violation(code, f"{opcode.name}.{field}", why)

    def span(field: str, start: int, count: int, depth: int, buf: str) -> Violation | None:
        if start + count > depth:
            return bad(field, f"{buf} entries {start}..{start + count - 1} exceed its {depth} entries",
                       ErrorCode.BUF_RANGE)
        return None

    if opcode in (Opcode.LOAD, Opcode.STORE):
        if f.rows == 0 or f.row_len == 0:
            return bad("rows" if f.rows == 0 else "row_len", "must be at least 1")
        if f.dram_addr % config.ext_bytes or f.dram_stride % config.ext_bytes:
            name = "dram_addr" if f.dram_addr % config.ext_bytes else "dram_stride"
            return bad(name, f"not a multiple of the {config.ext_bytes}-byte external word",
                       ErrorCode.DRAM_ALIGN)
        n = f.rows * f.row_len
        if opcode is Opcode.LOAD:
            try:
                target = LoadTarget(f.target)
            except ValueError:
                return bad("target", "unknown buffer")
            depth = {LoadTarget.ACT: config.act_buf_entries, LoadTarget.WGT: config.wgt_buf_tiles,
                     LoadTarget.PARAM: config.param_buf_entries}[target]
            return span("sram_addr", f.sram_addr, n, depth, target.name)
        try:
            source = StoreSource(f.source)
        except ValueError:
            return bad("source", "unknown buffer")
        if source is StoreSource.OUT:
            return span("sram_addr", f.sram_addr, n, config.out_buf_entries, "OUT")
        if source is StoreSource.ACC_REQUANT:
            if f.lane_block >= K:
                return bad("lane_block", f"must be below cols/rows = {K}")
            if f.param_addr >= config.param_buf_entries:
                return bad("param_addr", f"PARAM has {config.param_buf_entries} entries", ErrorCode.BUF_RANGE)
        return span("sram_addr", f.sram_addr, n, config.acc_buf_entries, "ACC")

    if opcode in (Opcode.CONV, Opcode.MAXPOOL):
        for name in ("in_h", "in_w", "out_h", "out_w", "cin_blocks" if opcode is Opcode.CONV else "blocks"):
            if getattr(f, name) == 0:
                return bad(name, "must be at least 1")
        blocks = f.cin_blocks if opcode is Opcode.CONV else f.blocks
        if opcode is Opcode.CONV:
            k, s = (3 if f.kernel3 else 1), (2 if f.stride2 else 1)
        else:
            k, s = f.kernel, f.stride
            if k == 0 or s == 0:
                return bad("kernel" if k == 0 else "stride", "must be 1 to 3")
        max_pad = max_padding(opcode, k)
        if f.pad_top > max_pad or f.pad_left > max_pad:
            return bad("pad_top" if f.pad_top > max_pad else "pad_left",
                       f"must be at most {max_pad} for kernel size {k}")
        plane = f.in_h * f.in_w
        problem = span("in_addr", f.in_addr, blocks * plane, config.act_buf_entries, "ACT")
        if problem:
            return problem
        if opcode is Opcode.CONV:
            problem = span("wgt_addr", f.wgt_addr, blocks * k * k, config.wgt_buf_tiles, "WGT")
            return problem or span("acc_addr", f.acc_addr, f.out_h * f.out_w, config.acc_buf_entries, "ACC")
        return span("out_addr", f.out_addr, blocks * f.out_h * f.out_w, config.out_buf_entries, "OUT")

    if opcode is Opcode.GAP:
        if f.pixels == 0 or f.blocks == 0:
            return bad("pixels" if f.pixels == 0 else "blocks", "must be at least 1")
        problem = span("in_addr", f.in_addr, f.blocks * f.pixels, config.act_buf_entries, "ACT")
        return problem or span("acc_addr", f.acc_addr, -(-f.blocks // K), config.acc_buf_entries, "ACC")

    if opcode is Opcode.ADD:
        if not config.add_unit:
            return Violation(ErrorCode.BAD_OPCODE, "opcode",
                             f"ADD: config {config.name!r} has no ADD unit (add_unit = false)")
        if f.count == 0:
            return bad("count", "must be at least 1")
        if f.param_addr >= config.param_buf_entries:
            return bad("param_addr", f"PARAM has {config.param_buf_entries} entries", ErrorCode.BUF_RANGE)
        return (span("a_addr", f.a_addr, f.count, config.act_buf_entries, "ACT")
                or span("b_addr", f.b_addr, f.count, config.act_buf_entries, "ACT")
                or span("out_addr", f.out_addr, f.count, config.out_buf_entries, "OUT"))
    return None


def disassemble(word: int) -> str:
    """One line of assembly for an instruction word (unknown opcodes print as ``.word``)."""
    raw_opcode = word & 0xF
    try:
        opcode = Opcode(raw_opcode)
    except ValueError:
        return f".word 0x{word:032x}"
    insn = decode(word)
    waits = [u.name.lower() for u in (Unit.LOAD, Unit.COMPUTE, Unit.STORE)
             if getattr(insn.wait, u.name.lower())]
    text = opcode.name.lower()
    if waits:
        text += f" [wait {','.join(waits)}]"
    member = fields_of(opcode)
    if member:
        f = getattr(insn.payload, member)
        parts = []
        for name in Payload.as_shape().members[member].as_shape().members:
            try:
                value = getattr(f, name)
            except ValueError:
                value = raw_field(f, name)
            parts.append(f"{name}={value.name if isinstance(value, enum.Enum) else int(value)}")
        text += " " + " ".join(parts)
    return text


# -- footprints (what each instruction touches; the hazard rules of the machine model) ----------

@dataclass(frozen=True)
class Access:
    """One range an instruction touches: ``resource`` is a buffer name (``ACT``, ``WGT``, ``PARAM``,
    ``ACC``, ``OUT``; entries) or ``DRAM`` (bytes); ``[lo, hi)``."""
    resource: str
    lo: int
    hi: int
    write: bool

    def overlaps(self, other: "Access") -> bool:
        return self.resource == other.resource and self.lo < other.hi and other.lo < self.hi


def entry_bytes(config: AccelConfig, buffer: str) -> int:
    """Bytes per entry of an on-chip buffer (``ACT``, ``WGT``, ``PARAM``, ``ACC``, ``OUT``)."""
    return {"ACT": config.act_entry_bytes, "WGT": config.wgt_tile_bytes, "PARAM": config.param_entry_bytes,
            "ACC": config.acc_entry_bytes, "OUT": config.act_entry_bytes}[buffer]


def dram_span(f: dict, entry_bytes: int) -> tuple[int, int]:
    """``[first, last + 1)`` byte span of a LOAD/STORE's strided rows in external memory."""
    lo = f["dram_addr"]
    return lo, lo + (f["rows"] - 1) * f["dram_stride"] + f["row_len"] * entry_bytes


def mem_limit(config: AccelConfig, mem_bytes: int) -> int:
    """Bytes of external memory an engine for ``config`` can address: ``mem_bytes``, at most
    ``2**config.ext_addr_bits``. A read (LOAD, instruction fetch) reaching past it, or a write
    past it, is ``DRAM_RANGE``; the engine clamps its ``mem_bytes`` input the same way."""
    return min(mem_bytes, 1 << config.ext_addr_bits)


def footprint(d: Decoded, config: AccelConfig) -> list[Access]:
    """Every buffer range and DRAM span a (legal) instruction reads or writes."""
    op, f = d.opcode, d.fields
    K = config.lane_blocks
    if op is Opcode.LOAD:
        target = LoadTarget(f["target"]).name
        n = f["rows"] * f["row_len"]
        return [Access(target, f["sram_addr"], f["sram_addr"] + n, True),
                Access("DRAM", *dram_span(f, entry_bytes(config, target)), False)]
    if op is Opcode.STORE:
        source = StoreSource(f["source"])
        buf = "OUT" if source is StoreSource.OUT else "ACC"
        n = f["rows"] * f["row_len"]
        eb = config.acc_entry_bytes if source is StoreSource.ACC else config.act_entry_bytes
        acc = [Access(buf, f["sram_addr"], f["sram_addr"] + n, False),
               Access("DRAM", *dram_span(f, eb), True)]
        if source is StoreSource.ACC_REQUANT:
            acc.append(Access("PARAM", f["param_addr"], f["param_addr"] + 1, False))
        return acc
    if op is Opcode.CONV:
        k = 3 if f["kernel3"] else 1
        cb = f["cin_blocks"]
        out = [Access("ACT", f["in_addr"], f["in_addr"] + cb * f["in_h"] * f["in_w"], False),
               Access("WGT", f["wgt_addr"], f["wgt_addr"] + cb * k * k, False),
               Access("ACC", f["acc_addr"], f["acc_addr"] + f["out_h"] * f["out_w"], True)]
        if f["accumulate"]:
            out.append(Access("ACC", f["acc_addr"], f["acc_addr"] + f["out_h"] * f["out_w"], False))
        return out
    if op is Opcode.MAXPOOL:
        b = f["blocks"]
        return [Access("ACT", f["in_addr"], f["in_addr"] + b * f["in_h"] * f["in_w"], False),
                Access("OUT", f["out_addr"], f["out_addr"] + b * f["out_h"] * f["out_w"], True)]
    if op is Opcode.GAP:
        n_acc = -(-f["blocks"] // K)
        return [Access("ACT", f["in_addr"], f["in_addr"] + f["blocks"] * f["pixels"], False),
                Access("ACC", f["acc_addr"], f["acc_addr"] + n_acc, True),
                Access("ACC", f["acc_addr"], f["acc_addr"] + n_acc, False)]
    if op is Opcode.ADD:
        n = f["count"]
        return [Access("ACT", f["a_addr"], f["a_addr"] + n, False),
                Access("ACT", f["b_addr"], f["b_addr"] + n, False),
                Access("PARAM", f["param_addr"], f["param_addr"] + 1, False),
                Access("OUT", f["out_addr"], f["out_addr"] + n, True)]
    return []
