"""The accelerator configuration: the one description every other part derives from.

An :class:`AccelConfig` fixes the systolic array's shape, the operand and accumulator widths, the
depth of every on-chip buffer and the external-memory data width. The ISA's field widths, the RTL's
parameters, the compiler's tiling and the golden model's buffer sizes are all computed from it.
Named presets live in ``configs/*.toml`` at the repository root.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AccelConfig", "ConfigError", "CONFIG_DIR", "PARAM_LANE_BYTES", "load_config", "preset_names"]

#: Where the named presets live (``configs/NAME.toml`` beside the package).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

#: Bytes per output channel in the parameter buffer: bias (int32), multiplier (int32), shift (uint8),
#: padding. A power of two so parameter entries stay aligned to any external-memory width.
PARAM_LANE_BYTES = 16


class ConfigError(ValueError):
    """A configuration that cannot describe a working engine (names the field and the rule)."""


def _is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True)
class AccelConfig:
    """Parameters of one accelerator instance.

    Parameters
    ----------
    name : str
        Preset name, for messages and file names; not part of the tag.
    rows : int
        Systolic array rows: input-channel lanes, i.e. the activation block width ``L``. Activations
        are stored block-major, ``rows`` channels per entry.
    cols : int
        Systolic array columns: output channels computed at once. A multiple of ``rows``.
    act_buf_entries : int
        Activation buffer depth in entries of ``rows`` int8 values.
    wgt_buf_tiles : int
        Weight buffer depth in tiles of ``rows x cols`` int8 weights.
    acc_buf_entries : int
        Accumulator buffer depth in entries of ``cols`` int32 values.
    out_buf_entries : int
        Output buffer depth in entries of ``rows`` int8 values (max-pool and add results).
    param_buf_entries : int
        Parameter buffer depth in entries of ``cols`` lanes of :data:`PARAM_LANE_BYTES` bytes.
    ext_data_bits : int
        External-memory data width; every DRAM address and stride an instruction uses is a multiple
        of ``ext_data_bits // 8`` bytes.
    clock_mhz : float
        Clock target for board builds and throughput estimates.
    act_bits, wgt_bits, acc_bits : int
        Operand and accumulator widths. Only 8/8/32 is implemented; they are here so the tag and the
        overflow check say so explicitly.
    ext_addr_bits : int
        Byte-address width of external memory, 10 to 32 (ISA address fields are 32 bits). The
        LOAD/STORE address datapaths and the memory command addresses are this wide (less the
        word's byte bits); the engine and the golden model treat a memory larger than
        ``2**ext_addr_bits`` bytes as that size (:func:`sqzhw.isa.mem_limit`), so a legal access
        always fits. Area only: not in :attr:`tag`.
    requant_lanes : int
        Lanes of the STORE unit's requantizer (each lane is four 16x16 multipliers and a 64-bit
        shifter). ``0`` (the default) means ``rows``: one activation entry per cycle. A smaller power
        of two that divides ``rows`` makes ``ACC_REQUANT`` stores lane-serial, ``rows //
        requant_lanes`` cycles per entry, for small FPGAs. Throughput only: not in :attr:`tag`.
    add_unit : bool
        Whether the compute unit has the element-wise ``ADD`` (a requantizer of ``add_lanes``
        lanes and ``rows`` multipliers). Without it an ``ADD`` instruction is illegal (``BAD_OPCODE``) and
        bypass networks do not compile; it is part of :attr:`tag`.
    add_lanes : int
        Lanes of the ADD unit's requantizer. ``0`` (the default) means ``rows``. ``rows // 2``
        (``rows >= 2``): the two halves of an entry's lanes take turns on half as many lanes (4
        multipliers saved per lane), at no cost in cycles, since ADD reads two entries per output
        entry anyway. Area only: not in :attr:`tag`.
    serial_products : bool
        Compute the control path's products (the decode checker's buffer and DRAM spans, the
        compute unit's plane size) bit-serially with one adder each instead of on DSP multipliers,
        so the only DSPs are the array's and the requantizers'. Costs decode latency (see
        ``rtl_gen.control.Checker``) and 9 set-up cycles per compute instruction. Throughput only:
        not in :attr:`tag`.
    fetch_depth : int
        Instructions the fetch unit prefetches into its queue ahead of the one in decode (``4``, the
        default). ``0``: no queue; each instruction is fetched into the decode register after the
        previous one is dispatched (saves ``4 x 128`` flip-flops and a 128-bit register on small
        FPGAs; the fetch's bus words then add to the front end's latency, see
        ``rtl_gen.control``). Throughput only: not in :attr:`tag`.
    max_reads : int
        Reads the engine keeps in flight on its external read port at most (the depth of the read
        arbiter's tag FIFO), 1 to 64. ``16`` (the default) covers the ULX3S SDRAM path's latency; a
        memory path that never has more than ``n`` reads in flight (the iCEBreaker's: board arbiter,
        command slice, SPRAM; 4) loses nothing with ``n``. Throughput only: not in :attr:`tag`.
    broadcast_array : bool
        Systolic array for at most 2 rows (small FPGAs): each activation is broadcast to its
        row's PEs, row 0's products go straight into row 1's adder, and each tile's weights are
        read with its first pixel into the multipliers' input registers, so there are no weight
        banks, no skew and no de-skew registers (latency ``rows + 1`` instead of ``rows + cols +
        1``, no tile-switch bubble; see ``rtl_gen.array``). Throughput only: not in :attr:`tag`.
    """

    name: str
    rows: int
    cols: int
    act_buf_entries: int
    wgt_buf_tiles: int
    acc_buf_entries: int
    out_buf_entries: int
    param_buf_entries: int
    ext_data_bits: int = 64
    clock_mhz: float = 100.0
    act_bits: int = 8
    wgt_bits: int = 8
    acc_bits: int = 32
    ext_addr_bits: int = 32
    requant_lanes: int = 0
    add_unit: bool = True
    add_lanes: int = 0
    serial_products: bool = False
    fetch_depth: int = 4
    max_reads: int = 16
    broadcast_array: bool = False

    def __post_init__(self) -> None:
        def fail(field: str, rule: str) -> None:
            raise ConfigError(f"config {self.name!r}: {field} = {getattr(self, field)!r}: {rule}")

        for field in ("rows", "cols", "act_buf_entries", "wgt_buf_tiles", "acc_buf_entries",
                      "out_buf_entries", "param_buf_entries"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) <= 0:
                fail(field, "must be a positive integer")
        if not _is_pow2(self.rows):
            fail("rows", "must be a power of two (it is the activation block width)")
        if self.cols % self.rows:
            fail("cols", f"must be a multiple of rows ({self.rows})")
        if self.cols // self.rows > 8:
            fail("cols", "may be at most 8 x rows (the store's lane_block field is 3 bits)")
        if (self.act_bits, self.wgt_bits, self.acc_bits) != (8, 8, 32):
            fail("acc_bits", "only int8 activations and weights with int32 accumulators are implemented")
        if self.ext_data_bits not in (8, 16, 32, 64, 128, 256, 512):
            fail("ext_data_bits", "must be a power of two from 8 to 512")
        if self.rows % self.ext_bytes:
            fail("ext_data_bits", f"must divide an activation entry ({self.rows} bytes)")
        if (not isinstance(self.ext_addr_bits, int) or isinstance(self.ext_addr_bits, bool)
                or not 10 <= self.ext_addr_bits <= 32):
            fail("ext_addr_bits", "must be an integer from 10 to 32 (ISA address fields are 32 bits)")
        for field in ("act_buf_entries", "out_buf_entries", "acc_buf_entries", "wgt_buf_tiles",
                      "param_buf_entries"):
            if getattr(self, field) > 1 << 16:
                fail(field, "may be at most 65536 (ISA buffer addresses are 16 bits)")
        if self.clock_mhz <= 0:
            fail("clock_mhz", "must be positive")
        if (not isinstance(self.requant_lanes, int) or isinstance(self.requant_lanes, bool)
                or self.requant_lanes < 0 or (self.requant_lanes and (not _is_pow2(self.requant_lanes)
                                                                      or self.rows % self.requant_lanes))):
            fail("requant_lanes", f"must be 0 (= rows) or a power of two that divides rows ({self.rows})")
        if (not isinstance(self.add_lanes, int) or isinstance(self.add_lanes, bool)
                or self.add_lanes not in {0, self.rows, self.rows // 2}):
            fail("add_lanes", f"must be 0 (= rows), rows ({self.rows}) or rows // 2 ({self.rows // 2})")
        if (not isinstance(self.fetch_depth, int) or isinstance(self.fetch_depth, bool)
                or not 0 <= self.fetch_depth <= 16):
            fail("fetch_depth", "must be an integer from 0 to 16")
        if (not isinstance(self.max_reads, int) or isinstance(self.max_reads, bool)
                or not 1 <= self.max_reads <= 64):
            fail("max_reads", "must be an integer from 1 to 64")
        for field in ("add_unit", "serial_products", "broadcast_array"):
            if not isinstance(getattr(self, field), bool):
                fail(field, "must be true or false")
        if self.broadcast_array and self.rows > 2:
            fail("broadcast_array", f"needs rows <= 2 (rows = {self.rows}): rows are not skewed")

    # -- derived sizes -------------------------------------------------------------------------

    @property
    def block(self) -> int:
        """Activation block width ``L``: channels per activation/output buffer entry."""
        return self.rows

    @property
    def lane_blocks(self) -> int:
        """Activation blocks per accumulator entry (``cols // rows``)."""
        return self.cols // self.rows

    @property
    def store_lanes(self) -> int:
        """Lanes the STORE unit requantizes per cycle (``requant_lanes``, or ``rows`` for 0)."""
        return self.requant_lanes or self.rows

    @property
    def add_requant_lanes(self) -> int:
        """Lanes of the ADD unit's requantizer (``add_lanes``, or ``rows`` for 0)."""
        return self.add_lanes or self.rows

    @property
    def ext_bytes(self) -> int:
        """Bytes per external-memory word."""
        return self.ext_data_bits // 8

    @property
    def act_entry_bytes(self) -> int:
        return self.rows

    @property
    def wgt_tile_bytes(self) -> int:
        return self.rows * self.cols

    @property
    def acc_entry_bytes(self) -> int:
        return self.cols * 4

    @property
    def param_entry_bytes(self) -> int:
        return self.cols * PARAM_LANE_BYTES

    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols

    def addr_bits(self, entries: int) -> int:
        """Bits needed to address ``entries`` buffer entries."""
        return max(1, math.ceil(math.log2(entries)))

    @property
    def on_chip_bytes(self) -> int:
        """Total on-chip buffer storage in bytes."""
        return (self.act_buf_entries * self.act_entry_bytes + self.wgt_buf_tiles * self.wgt_tile_bytes
                + self.acc_buf_entries * self.acc_entry_bytes + self.out_buf_entries * self.act_entry_bytes
                + self.param_buf_entries * self.param_entry_bytes)

    @property
    def tag(self) -> str:
        """Identity of the hardware a program is compiled for (VTA style), e.g.
        ``16x16_i8w8a32_A8192_W1024_C4096_O4096_P128_M128``. Everything the compiled instruction
        stream depends on is in it (an engine without the ADD unit adds ``_noadd``); the clock,
        the preset name, throughput-only knobs (``requant_lanes``, ``add_lanes``, ``serial_products``,
        ``fetch_depth``, ``max_reads``) and ``ext_addr_bits`` are not."""
        return (f"{self.rows}x{self.cols}_i{self.act_bits}w{self.wgt_bits}a{self.acc_bits}"
                f"_A{self.act_buf_entries}_W{self.wgt_buf_tiles}_C{self.acc_buf_entries}"
                f"_O{self.out_buf_entries}_P{self.param_buf_entries}_M{self.ext_data_bits}"
                + ("" if self.add_unit else "_noadd"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "AccelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"config {values.get('name', '?')!r}: unknown field(s) {unknown}; "
                              f"known: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"config {values.get('name', '?')!r}: {exc}") from None


def preset_names() -> list[str]:
    """Names of the presets in :data:`CONFIG_DIR`."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load_config(name_or_path: str | Path) -> AccelConfig:
    """Load a preset by name (``"tiny"``) or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = CONFIG_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise ConfigError(f"no config preset {str(name_or_path)!r}; presets: {preset_names()}")
    elif not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: {exc}") from None
    values.setdefault("name", path.stem)
    return AccelConfig.from_dict(values)
