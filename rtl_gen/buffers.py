"""On-chip buffers of the engine: ACT, WGT, PARAM, ACC and OUT as :class:`amaranth.lib.memory.Memory`.

Every buffer is one memory of ``depth`` entries; an entry is one memory row, stored as plain bits in
the byte order of ``docs/architecture.md`` ("Byte order"): element 0 in the lowest bits. Rows are
wide (a whole weight tile, a whole parameter entry) and shallow, which yosys maps to block RAM
(DP16KD on ECP5) as several RAMs side by side, each with its own write enable.

========  ======================  =====================================  =================================
buffer    row (bits)              write port                             read ports
========  ======================  =====================================  =================================
ACT       ``rows*8``              ``act_w`` (LOAD), granularity ``E``    ``act_r`` (COMPUTE)
WGT       ``rows*cols*8``         ``wgt_w`` (LOAD), granularity ``E``    ``wgt_r`` (COMPUTE)
PARAM     ``cols*128`` (or compact) ``param_w`` (LOAD), granularity ``E``  ``param_r`` (COMPUTE), ``param_rs`` (STORE)
ACC       ``cols*32``             ``acc_w`` (COMPUTE), granularity       ``acc_r`` (COMPUTE), ``acc_rs`` (STORE)
                                  ``rows*32`` (one lane block)
OUT       ``rows*8``              ``out_w`` (COMPUTE)                    ``out_rs`` (STORE)
========  ======================  =====================================  =================================

``E`` is the external word width (``config.ext_data_bits``); the LOAD unit writes one bus word per
cycle into its slice of the row (config validation guarantees an entry is a whole number of words).
All read ports are synchronous (data one cycle after the address). What a read returns when the same
row is written in the same cycle is undefined (``no_rw_check``): the compiler's wait flags keep a unit
from reading what another unit writes in the same instruction window, and the compute unit handles
its own accumulate read-modify-write ordering. Each read port is an asynchronous memory port and a
data register without reset, which yosys merges into a block RAM read port without old-data
emulation (it still adds one LUT per read bit for the register's initial value on iCE40). A read
port's data changes only in cycles after its ``en`` was high (the STORE unit holds an ACC entry so).

Compact PARAM (:func:`compact_param`: no ADD unit, so only the STORE reads parameters, and ``E <= 128``):
a row holds ``store_lanes`` lanes of one entry, each lane only the bytes the engine uses (bias,
multiplier, shift: :data:`PARAM_USED_BITS`) rounded up to whole bus words (:func:`param_lane_bits`);
entry ``e`` is rows ``e*cols/store_lanes ..``, the lane group the requantizer takes in one cycle per
row, and the ``param_r`` port of the compute unit is left unconnected (reads 0). The iCE40 build of
a 2x2 engine keeps 64 entries in 5 block RAMs instead of 32. The LOAD writes each multiplier's bit 31
as 0 (:func:`sqzhw.quant.effective_params` ignores it), which the STORE's requantizer relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out, flipped

from sqzhw.config import PARAM_LANE_BYTES, AccelConfig

__all__ = ["BufferSpec", "buffer_specs", "Buffers", "NO_INIT_ATTR", "PARAM_USED_BITS", "compact_param", "param_lane_bits",
           "param_rows"]

#: Attribute of the read data registers: their power-up value is never read (a port's data is only
#: used after a read), so the board builds remove their ``init`` (``setattr -unset init a:<this>``)
#: and yosys need not emulate an initial value the iCE40 block RAM's output cannot have (a LUT per
#: read bit).
NO_INIT_ATTR = "sqzhw_no_init"

#: Bits of an :class:`isa.ParamLane` the engine uses: bias, multiplier, shift (the rest is padding).
PARAM_USED_BITS = 72


@dataclass(frozen=True)
class BufferSpec:
    """Geometry of one on-chip buffer.

    Parameters
    ----------
    name : str
        ``"act"``, ``"wgt"``, ``"param"``, ``"acc"`` or ``"out"``.
    width : int
        Bits per entry (memory row).
    depth : int
        Entries.
    write_granularity : int
        Bits per write-enable bit of the write port.
    readers : tuple of str
        Member names of the read ports.
    writer : str
        Member name of the write port.
    """
    name: str
    width: int
    depth: int
    write_granularity: int
    writer: str
    readers: tuple[str, ...]

    @property
    def addr_width(self) -> int:
        return max(1, (self.depth - 1).bit_length())

    @property
    def bytes(self) -> int:
        return self.width // 8 * self.depth

    def read_signature(self) -> memory.ReadPort.Signature:
        return memory.ReadPort.Signature(addr_width=self.addr_width, shape=unsigned(self.width))

    def write_signature(self) -> memory.WritePort.Signature:
        granularity = None if self.write_granularity == self.width else self.write_granularity
        return memory.WritePort.Signature(addr_width=self.addr_width, shape=unsigned(self.width),
                                          granularity=granularity)


def compact_param(config: AccelConfig) -> bool:
    """Whether PARAM rows are lane groups of used bytes (module docstring) instead of whole entries."""
    return not config.add_unit and config.ext_data_bits <= PARAM_LANE_BYTES * 8


def param_lane_bits(config: AccelConfig) -> int:
    """Bits per lane in a PARAM row: :data:`PARAM_USED_BITS` in whole bus words (compact), else 128."""
    if not compact_param(config):
        return PARAM_LANE_BYTES * 8
    e = config.ext_data_bits
    return -(-PARAM_USED_BITS // e) * e


def param_rows(config: AccelConfig, entry: int, value: int) -> dict[int, int]:
    """The PARAM memory rows that hold entry ``entry`` of external bytes ``value`` (an int, lane 0 in
    the lowest bits), as the LOAD unit writes them (for tests that preset or read the buffer).
    Compact rows hold each multiplier's bit 31 (lane bit 63) as 0: no result depends on it."""
    if not compact_param(config):
        return {entry: value}
    group, lane_bits = config.store_lanes, param_lane_bits(config)
    per_entry = config.cols // group
    rows = {}
    for r in range(per_entry):
        row = 0
        for j in range(group):
            lane = value >> (PARAM_LANE_BYTES * 8 * (r * group + j))
            row |= (lane & ((1 << lane_bits) - 1) & ~(1 << 63)) << (j * lane_bits)
        rows[entry * per_entry + r] = row
    return rows


def buffer_specs(config: AccelConfig) -> dict[str, BufferSpec]:
    """The five buffers of ``config``, by name."""
    e = config.ext_data_bits
    if compact_param(config):
        group = config.store_lanes
        param = BufferSpec("param", group * param_lane_bits(config),
                           config.param_buf_entries * config.cols // group, e, "param_w", ("param_r", "param_rs"))
    else:
        param = BufferSpec("param", config.cols * PARAM_LANE_BYTES * 8, config.param_buf_entries, e,
                           "param_w", ("param_r", "param_rs"))
    return {
        "act": BufferSpec("act", config.act_entry_bytes * 8, config.act_buf_entries, e, "act_w", ("act_r",)),
        "wgt": BufferSpec("wgt", config.wgt_tile_bytes * 8, config.wgt_buf_tiles, e, "wgt_w", ("wgt_r",)),
        "param": param,
        "acc": BufferSpec("acc", config.acc_entry_bytes * 8, config.acc_buf_entries, config.rows * 32,
                          "acc_w", ("acc_r", "acc_rs")),
        "out": BufferSpec("out", config.act_entry_bytes * 8, config.out_buf_entries, config.rows * 8,
                          "out_w", ("out_rs",)),
    }


class Buffers(wiring.Component):
    """All on-chip buffers of one engine.

    Parameters
    ----------
    config : AccelConfig

    Members
    -------
    act_w, wgt_w, param_w, acc_w, out_w : ``Out(WritePort.Signature)``
        Write ports (driven by the unit that writes the buffer; see the module docstring).
    act_r, wgt_r, param_r, acc_r, param_rs, acc_rs, out_rs : ``Out(ReadPort.Signature)``
        Read ports; the ``*_rs`` ones belong to the STORE unit.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        self.specs = buffer_specs(config)
        members = {}
        for spec in self.specs.values():
            members[spec.writer] = Out(spec.write_signature())
            for reader in spec.readers:
                members[reader] = Out(spec.read_signature())
        super().__init__(members)
        #: The memories by buffer name (simulation tests read and preset them through ``.data``).
        self.memories = {spec.name: memory.Memory(shape=unsigned(spec.width), depth=spec.depth, init=[],
                                                  attrs={"no_rw_check": 1})
                         for spec in self.specs.values()}

    def elaborate(self, platform):
        m = Module()
        for spec in self.specs.values():
            mem = self.memories[spec.name]
            m.submodules[spec.name] = mem
            granularity = None if spec.write_granularity == spec.width else spec.write_granularity
            wiring.connect(m, flipped(getattr(self, spec.writer)), mem.write_port(granularity=granularity))
            for reader in spec.readers:
                if reader == "param_r" and compact_param(self.config):
                    continue                       # only an ADD unit reads it
                # An asynchronous port and a register without reset: yosys merges them into a
                # block RAM read port and, unlike for a synchronous port, honours no_rw_check (no
                # old-data emulation: a flip-flop per written bit and a LUT per read bit on iCE40).
                port, rp = getattr(self, reader), mem.read_port(domain="comb")
                data = Signal(spec.width, name=f"{reader}_data", reset_less=True, attrs={NO_INIT_ATTR: 1})
                m.d.comb += [rp.addr.eq(port.addr), port.data.eq(data)]
                with m.If(port.en):
                    m.d.sync += data.eq(rp.data)
        return m
