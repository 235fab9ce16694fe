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
PARAM     ``cols*128``            ``param_w`` (LOAD), granularity ``E``  ``param_r`` (COMPUTE), ``param_rs`` (STORE)
ACC       ``cols*32``             ``acc_w`` (COMPUTE), granularity       ``acc_r`` (COMPUTE), ``acc_rs`` (STORE)
                                  ``rows*32`` (one lane block)
OUT       ``rows*8``              ``out_w`` (COMPUTE)                    ``out_rs`` (STORE)
========  ======================  =====================================  =================================

``E`` is the external word width (``config.ext_data_bits``); the LOAD unit writes one bus word per
cycle into its slice of the row (config validation guarantees an entry is a whole number of words).
All read ports are synchronous (data one cycle after the address) and not transparent: the compiler's
wait flags keep a unit from reading what another unit writes in the same instruction window, and the
compute unit handles its own accumulate read-modify-write ordering.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out, flipped

from sqzhw.config import PARAM_LANE_BYTES, AccelConfig

__all__ = ["BufferSpec", "buffer_specs", "Buffers"]


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


def buffer_specs(config: AccelConfig) -> dict[str, BufferSpec]:
    """The five buffers of ``config``, by name."""
    e = config.ext_data_bits
    return {
        "act": BufferSpec("act", config.act_entry_bytes * 8, config.act_buf_entries, e, "act_w", ("act_r",)),
        "wgt": BufferSpec("wgt", config.wgt_tile_bytes * 8, config.wgt_buf_tiles, e, "wgt_w", ("wgt_r",)),
        "param": BufferSpec("param", config.cols * PARAM_LANE_BYTES * 8, config.param_buf_entries, e,
                            "param_w", ("param_r", "param_rs")),
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
        self.memories = {spec.name: memory.Memory(shape=unsigned(spec.width), depth=spec.depth, init=[])
                         for spec in self.specs.values()}

    def elaborate(self, platform):
        m = Module()
        for spec in self.specs.values():
            mem = self.memories[spec.name]
            m.submodules[spec.name] = mem
            granularity = None if spec.write_granularity == spec.width else spec.write_granularity
            wiring.connect(m, flipped(getattr(self, spec.writer)), mem.write_port(granularity=granularity))
            for reader in spec.readers:
                wiring.connect(m, flipped(getattr(self, reader)), mem.read_port())
        return m
