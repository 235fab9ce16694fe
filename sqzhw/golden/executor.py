"""The ISA golden model: executes sqzhw instruction words on a modelled external memory.

:class:`Executor` fetches 128-bit instruction words from a ``bytearray`` (the external memory),
checks each with :func:`sqzhw.isa.check` (the same rules the RTL decoder implements), and executes
it exactly as the docstrings of :mod:`sqzhw.isa` define, on NumPy on-chip buffers sized from the
:class:`~sqzhw.config.AccelConfig`. Requantization is :func:`sqzhw.quant.requantize`, nowhere else.

Besides the data, the executor models the machine the compiler targets (see "Machine model" in
:mod:`sqzhw.isa`):

* **Hazards.** Each of the three units (load, compute, store) runs one instruction at a time and
  dispatch is in order, so at most one instruction per unit may still be in flight when another is
  dispatched: the last one issued to that unit, unless a later instruction waited for the unit. An
  instruction that reads or writes a buffer range or DRAM span that such an in-flight instruction of
  another unit writes (or writes what it reads) without a ``wait`` flag for that unit is a
  :class:`HazardError` (RAW, WAR or WAW). DRAM accesses are compared as the span from their first to
  their last byte.
* **Cycles.** A simple, documented estimate per instruction (:class:`CycleModel`), overlapped per the
  wait flags: three units in parallel, in-order dispatch of one instruction per cycle.

Errors are reported the way the hardware reports them, as an :class:`~sqzhw.isa.ErrorCode` and the
failing instruction's index in :class:`ExecResult`, never as a Python exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import isa
from ..config import AccelConfig
from ..isa import ErrorCode, LoadTarget, Opcode, StoreSource, Unit
from ..quant import effective_params, requantize, wrap_int32

__all__ = ["Executor", "ExecResult", "HazardError", "CycleModel", "Access", "footprint",
           "decode_fields", "estimate_cycles", "Timing"]


# -- decoding ----------------------------------------------------------------------------------
# The field tables live in sqzhw.isa (read off its layouts); decoded words are cached because whole
# networks execute the same few thousand words.

Decoded = isa.Decoded
_PARAM_FIELDS = {name: (info.offset, info.width) for name, info in isa.PARAM_LANE_FIELDS.items()}

_DECODE_CACHE: dict[int, Decoded] = {}


def decode_fields(word: int) -> Decoded:
    """Decode an instruction word into plain integers (enum fields as their raw values)."""
    hit = _DECODE_CACHE.get(word)
    if hit is not None:
        return hit
    result = isa.decode_fields(word)
    if len(_DECODE_CACHE) > 1 << 18:
        _DECODE_CACHE.clear()
    _DECODE_CACHE[word] = result
    return result


_CHECK_CACHE: dict[tuple[int, str], isa.Violation | None] = {}


def _check(word: int, config: AccelConfig) -> isa.Violation | None:
    key = (word, config.tag)
    if key not in _CHECK_CACHE:
        if len(_CHECK_CACHE) > 1 << 18:
            _CHECK_CACHE.clear()
        _CHECK_CACHE[key] = isa.check(word, config)
    return _CHECK_CACHE[key]


# -- footprints and hazards ----------------------------------------------------------------------

# Access, footprint and the entry sizes are ISA semantics: they live in sqzhw.isa (the compiler's
# hazard analysis uses them too).
Access = isa.Access
footprint = isa.footprint
_entry_bytes = isa.entry_bytes
_dram_span = isa.dram_span


class HazardError(Exception):
    """An instruction touches a range that another unit's not-waited-for in-flight instruction
    touches (RAW, WAR or WAW)."""

    def __init__(self, kind: str, earlier: int, later: int, unit: Unit, resource: str,
                 lo: int, hi: int):
        self.kind, self.earlier, self.later, self.unit = kind, earlier, later, unit
        self.resource, self.lo, self.hi = resource, lo, hi
        what = "bytes" if resource == "DRAM" else "entries"
        super().__init__(f"{kind} hazard: instruction {later} touches {resource} {what} "
                         f"[{lo}, {hi}) which instruction {earlier} on the {unit.name} unit may still be "
                         f"using; instruction {later} needs wait {unit.name.lower()}")


def _conflict(earlier: list[Access], later: list[Access]) -> tuple[str, Access, Access] | None:
    for a in later:
        for b in earlier:
            if (a.write or b.write) and a.overlaps(b):
                kind = "WAW" if a.write and b.write else ("RAW" if b.write else "WAR")
                return kind, b, a
    return None


# -- cycle model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CycleModel:
    """Cycle estimate per instruction (the RTL's counters are the measurement; this is the model).

    * ``CONV``: ``cin_blocks*k*k*out_h*out_w`` array steps plus the array fill ``rows + cols +
      conv_overhead`` (``rows + conv_overhead`` with ``broadcast_array``).
    * ``LOAD``/``STORE``: external words moved (one per cycle) plus ``load_latency`` /
      ``store_latency``; a requantizing store reads one accumulator entry per cycle, or per
      ``rows // requant_lanes`` cycles with a lane-serial requantizer (``AccelConfig.store_lanes``).
    * ``MAXPOOL``: one input entry read per cycle (``blocks*out_h*out_w*k*k``); ``GAP``: ``blocks *
      pixels``; ``ADD``: two entries read per output entry.
    * Every instruction also takes ``dispatch`` cycle(s) of the in-order front end.
    * Area knobs of :class:`~sqzhw.config.AccelConfig`: ``requant_lanes`` (above) and
      ``serial_products`` (9 more set-up cycles per compute instruction; its longer decode,
      like the pipelined checker's, overlaps the previous instruction and is not modelled), and
      ``fetch_depth = 0`` (each instruction's fetch, ``128 / ext_data_bits`` words, starts at the
      previous dispatch and overlaps it likewise: not modelled; about 2% more cycles measured on
      short test programs of the iCEBreaker knobs).
    """
    load_latency: int = 20
    store_latency: int = 8
    conv_overhead: int = 4
    op_overhead: int = 4
    dispatch: int = 1

    def cycles(self, d: Decoded, config: AccelConfig) -> int:
        op = d.opcode
        if config.serial_products and op in (Opcode.CONV, Opcode.MAXPOOL, Opcode.GAP, Opcode.ADD):
            # The compute unit's set-up computes the plane size by shift-and-add (9 more cycles).
            return self._cycles(d, config) + 9
        return self._cycles(d, config)

    def _cycles(self, d: Decoded, config: AccelConfig) -> int:
        op, f = d.opcode, d.fields
        E = config.ext_bytes
        if op is Opcode.LOAD:
            eb = _entry_bytes(config, LoadTarget(f["target"]).name)
            return self.load_latency + f["rows"] * f["row_len"] * eb // E
        if op is Opcode.STORE:
            source = StoreSource(f["source"])
            n = f["rows"] * f["row_len"]
            if source is StoreSource.ACC:
                return self.store_latency + n * config.acc_entry_bytes // E
            # A lane-serial requantizer (AccelConfig.requant_lanes) takes rows/lanes cycles per entry.
            per_entry = config.rows // config.store_lanes if source is StoreSource.ACC_REQUANT else 1
            return self.store_latency + max(n * per_entry, n * config.act_entry_bytes // E)
        if op is Opcode.CONV:
            k = 3 if f["kernel3"] else 1
            # The broadcast array (AccelConfig.broadcast_array) fills in rows + 1 cycles, not rows + cols + 1.
            fill = config.rows + (0 if config.broadcast_array else config.cols)
            return f["cin_blocks"] * k * k * f["out_h"] * f["out_w"] + fill + self.conv_overhead
        if op is Opcode.MAXPOOL:
            return self.op_overhead + f["blocks"] * f["out_h"] * f["out_w"] * f["kernel"] ** 2
        if op is Opcode.GAP:
            return self.op_overhead + f["blocks"] * f["pixels"]
        if op is Opcode.ADD:
            return self.op_overhead + 2 * f["count"]
        return 0


def _array_macs(d: Decoded, config: AccelConfig) -> int:
    if d.opcode is not Opcode.CONV:
        return 0
    f = d.fields
    k = 3 if f["kernel3"] else 1
    return f["cin_blocks"] * k * k * f["out_h"] * f["out_w"] * config.rows * config.cols


class _Timeline:
    """Three units in parallel, in-order dispatch, wait flags."""

    def __init__(self, model: CycleModel):
        self.model = model
        self.front = 0
        self.free = {Unit.LOAD: 0, Unit.COMPUTE: 0, Unit.STORE: 0}
        self.busy = {Unit.LOAD: 0, Unit.COMPUTE: 0, Unit.STORE: 0}
        self.stall = 0
        self.end = 0

    def issue(self, unit: Unit, wait: frozenset, cycles: int, is_end: bool = False) -> int:
        ready = self.front
        needed = set(wait) | ({unit} if unit in self.free else set())
        if is_end:
            needed = set(self.free)
        start = max([ready] + [self.free[u] for u in needed if u in self.free])
        self.stall += start - ready
        if unit in self.free:
            self.free[unit] = start + cycles
            self.busy[unit] += cycles
        self.front = start + self.model.dispatch
        self.end = max(self.end, start + max(cycles, self.model.dispatch))
        return start

    @property
    def total(self) -> int:
        return max([self.end, self.front] + list(self.free.values()))


@dataclass
class Timing:
    """Cycle estimate of an instruction stream (no data): per-instruction start and cycles."""
    total: int
    start: np.ndarray
    cycles: np.ndarray
    finish: np.ndarray
    unit_busy: dict
    array_macs: int


def estimate_cycles(words: list[int], config: AccelConfig, model: CycleModel | None = None) -> Timing:
    """The cycle model alone, for the compiler's per-layer estimates (fields are not checked)."""
    model = model or CycleModel()
    tl = _Timeline(model)
    n = len(words)
    start, cycles = np.zeros(n, np.int64), np.zeros(n, np.int64)
    macs = 0
    for i, w in enumerate(words):
        d = decode_fields(w)
        unit = isa.UNIT_OF.get(d.opcode, Unit.NONE) if d.opcode is not None else Unit.NONE
        c = model.cycles(d, config)
        start[i] = tl.issue(unit, d.wait, c, is_end=d.opcode is Opcode.END)
        cycles[i] = c
        macs += _array_macs(d, config)
        if d.opcode is Opcode.END:
            start, cycles = start[:i + 1], cycles[:i + 1]
            break
    return Timing(tl.total, start, cycles, start + cycles, dict(tl.busy), macs)


# -- the executor ------------------------------------------------------------------------------

@dataclass
class ExecResult:
    """Outcome of :meth:`Executor.run`.

    ``done`` means the program reached END; otherwise ``error`` is non-zero (and ``error_pc`` the
    failing instruction) or ``stopped`` says ``max_insns`` ran out. ``cycles`` is the cycle model's
    total, ``insn_cycles``/``insn_start`` are per executed instruction, ``array_macs`` the MACs the
    array performed (padding lanes included: divide the network's useful MACs by
    ``rows*cols*cycles`` for utilization).
    """
    done: bool = False
    error: ErrorCode = ErrorCode.NONE
    error_pc: int | None = None
    message: str = ""
    stopped: bool = False
    executed: int = 0
    cycles: int = 0
    insn_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    insn_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unit_busy: dict = field(default_factory=dict)
    dispatch_stall: int = 0
    array_macs: int = 0
    hazards: list[HazardError] = field(default_factory=list)

    @property
    def counters(self) -> dict[str, int]:
        """The cycle model's view of the hardware counters (:class:`sqzhw.isa.Counter` names)."""
        return {"cycles": self.cycles, "load_busy": self.unit_busy.get(Unit.LOAD, 0),
                "compute_busy": self.unit_busy.get(Unit.COMPUTE, 0),
                "store_busy": self.unit_busy.get(Unit.STORE, 0),
                "array_active": self.array_macs, "dispatch_stall": self.dispatch_stall,
                "insns": self.executed}


class _Fault(Exception):
    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code


class Executor:
    """Bit-exact model of the engine running on an external memory.

    Parameters
    ----------
    config : AccelConfig
        The engine; buffer sizes come from it.
    memory : bytearray
        External memory, modified in place by STOREs. Its length is ``mem_bytes``; only its first
        :func:`sqzhw.isa.mem_limit` bytes (``2**config.ext_addr_bits`` at most) are addressable.
    wr_window : (int, int)
        The writable byte window ``[lo, hi)``; a write outside it is ``DRAM_RANGE``. Default: all.
    check_hazards : bool
        Track in-flight instructions and detect missing wait flags.
    raise_hazards : bool
        Raise the first :class:`HazardError` (default); otherwise collect them in
        ``ExecResult.hazards`` and go on.
    cycle_model : CycleModel, optional
    """

    def __init__(self, config: AccelConfig, memory: bytearray, wr_window: tuple[int, int] | None = None,
                 *, check_hazards: bool = True, raise_hazards: bool = True,
                 cycle_model: CycleModel | None = None):
        if not isinstance(memory, bytearray):
            raise TypeError(f"memory must be a bytearray, got {type(memory).__name__}")
        self.config = config
        self.memory = memory
        #: The bytes the engine can address (``2**ext_addr_bits`` at most): the DRAM range limit.
        self.mem_limit = isa.mem_limit(config, len(memory))
        self.wr_window = (0, len(memory)) if wr_window is None else (int(wr_window[0]), int(wr_window[1]))
        self.check_hazards = check_hazards
        self.raise_hazards = raise_hazards
        self.cycle_model = cycle_model or CycleModel()
        c = config
        self.act = np.zeros((c.act_buf_entries, c.rows), np.int8)
        self.wgt = np.zeros((c.wgt_buf_tiles, c.rows, c.cols), np.int8)
        self.param = np.zeros((c.param_buf_entries, c.cols, isa.ParamLane.as_shape().size // 8), np.uint8)
        self.acc = np.zeros((c.acc_buf_entries, c.cols), np.int32)
        self.out = np.zeros((c.out_buf_entries, c.rows), np.int8)

    # -- external memory ---------------------------------------------------------------------

    def _read(self, mem: np.ndarray, f: dict, entry_bytes: int) -> np.ndarray:
        lo, hi = _dram_span(f, entry_bytes)
        limit = self.mem_limit
        if hi > limit:
            raise _Fault(ErrorCode.DRAM_RANGE, f"read of bytes [{lo}, {hi}) past the end of the "
                                               f"{limit}-byte memory")
        rows, row_bytes, stride = f["rows"], f["row_len"] * entry_bytes, f["dram_stride"]
        if rows == 1 or stride == row_bytes:
            return mem[lo:lo + rows * row_bytes].copy()
        view = np.lib.stride_tricks.as_strided(mem[lo:], shape=(rows, row_bytes), strides=(stride, 1))
        return view.reshape(-1).copy()

    def _write(self, mem: np.ndarray, f: dict, entry_bytes: int, data: np.ndarray) -> None:
        lo, hi = _dram_span(f, entry_bytes)
        wlo, whi = self.wr_window
        limit = self.mem_limit
        if lo < wlo or hi > whi or hi > limit:
            raise _Fault(ErrorCode.DRAM_RANGE, f"write of bytes [{lo}, {hi}) outside the writable "
                                               f"window [{wlo}, {min(whi, limit)})")
        rows, row_bytes, stride = f["rows"], f["row_len"] * entry_bytes, f["dram_stride"]
        data = data.reshape(rows, row_bytes)
        if rows == 1 or stride == row_bytes:
            mem[lo:lo + rows * row_bytes] = data.reshape(-1)
        else:  # row by row, in order, so overlapping rows end as the hardware leaves them
            for r in range(rows):
                mem[lo + r * stride:lo + r * stride + row_bytes] = data[r]

    # -- opcodes -----------------------------------------------------------------------------

    def _params(self, entry: int, lanes: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raw = self.param[entry, lanes]

        def get(name: str) -> np.ndarray:
            off, width = _PARAM_FIELDS[name]
            b = raw[:, off // 8:(off + width) // 8]
            return b.copy().view({1: np.uint8, 4: np.uint32}[width // 8]).reshape(-1).astype(np.int64)

        bias, mult, shift = get("bias"), get("multiplier"), get("shift")
        mult, shift = effective_params(mult, shift)
        return wrap_int32(bias), mult, shift

    def _load(self, mem: np.ndarray, f: dict) -> None:
        target = LoadTarget(f["target"])
        n = f["rows"] * f["row_len"]
        a = f["sram_addr"]
        if target is LoadTarget.ACT:
            self.act[a:a + n] = self._read(mem, f, self.config.act_entry_bytes).view(np.int8).reshape(n, -1)
        elif target is LoadTarget.WGT:
            data = self._read(mem, f, self.config.wgt_tile_bytes).view(np.int8)
            self.wgt[a:a + n] = data.reshape(n, self.config.rows, self.config.cols)
        else:
            self.param[a:a + n] = self._read(mem, f, self.config.param_entry_bytes).reshape(
                n, self.config.cols, -1)

    def _store(self, mem: np.ndarray, f: dict) -> None:
        source = StoreSource(f["source"])
        n = f["rows"] * f["row_len"]
        a = f["sram_addr"]
        L = self.config.rows
        if source is StoreSource.OUT:
            self._write(mem, f, L, self.out[a:a + n].view(np.uint8).reshape(-1))
        elif source is StoreSource.ACC:
            self._write(mem, f, self.config.acc_entry_bytes,
                        self.acc[a:a + n].astype("<i4").view(np.uint8).reshape(-1))
        else:
            lanes = slice(f["lane_block"] * L, f["lane_block"] * L + L)
            bias, mult, shift = self._params(f["param_addr"], lanes)
            acc = wrap_int32(self.acc[a:a + n, lanes].astype(np.int64) + bias)
            q = requantize(acc, mult, shift, f["zp_out"], bool(f["relu"]))
            self._write(mem, f, L, q.view(np.uint8).reshape(-1))

    def _padded(self, planes: np.ndarray, f: dict, k: int, s: int, fill: int) -> np.ndarray:
        """Planes ``(B, in_h, in_w, L)`` embedded in a ``fill`` canvas covering every window."""
        B, ih, iw, L = planes.shape
        pt, pl = f["pad_top"], f["pad_left"]
        hp = pt + max(ih, (f["out_h"] - 1) * s + k - pt)
        wp = pl + max(iw, (f["out_w"] - 1) * s + k - pl)
        canvas = np.full((B, hp, wp, L), fill, planes.dtype)
        canvas[:, pt:pt + ih, pl:pl + iw] = planes
        return canvas

    def _windows(self, canvas: np.ndarray, f: dict, k: int, s: int) -> np.ndarray:
        """``(B, k, k, out_h, out_w, L)`` window taps."""
        oh, ow = f["out_h"], f["out_w"]
        taps = [canvas[:, ky:ky + (oh - 1) * s + 1:s, kx:kx + (ow - 1) * s + 1:s]
                for ky in range(k) for kx in range(k)]
        B, L = canvas.shape[0], canvas.shape[-1]
        return np.stack(taps, axis=1).reshape(B, k, k, oh, ow, L)

    def _conv(self, f: dict) -> None:
        c = self.config
        k, s = (3 if f["kernel3"] else 1), (2 if f["stride2"] else 1)
        cb, ih, iw = f["cin_blocks"], f["in_h"], f["in_w"]
        oh, ow = f["out_h"], f["out_w"]
        planes = self.act[f["in_addr"]:f["in_addr"] + cb * ih * iw].reshape(cb, ih, iw, c.rows)
        n = cb * k * k * c.rows
        # float matmul is exact while every partial sum is an integer below 2**24 (float32) / 2**53
        dtype = np.float32 if n * 128 * 128 <= 1 << 24 else np.float64
        if k == 1 and s == 1 and ih == oh and iw == ow:  # the common 1x1 case: no window copies
            cols = planes.transpose(1, 2, 0, 3).reshape(oh * ow, n).astype(dtype)
        else:
            win = self._windows(self._padded(planes, f, k, s, f["pad_value"]), f, k, s)
            # (B, ky, kx, oy, ox, r) -> (oy*ox, B*ky*kx*r), matching the WGT tile order (b*k+ky)*k+kx
            cols = win.transpose(3, 4, 0, 1, 2, 5).astype(dtype).reshape(oh * ow, n)
        w = self.wgt[f["wgt_addr"]:f["wgt_addr"] + cb * k * k].reshape(n, c.cols).astype(dtype)
        acc = (cols @ w).astype(np.int64)
        dst = slice(f["acc_addr"], f["acc_addr"] + oh * ow)
        if f["accumulate"]:
            acc += self.acc[dst]
        self.acc[dst] = wrap_int32(acc)

    def _maxpool(self, f: dict) -> None:
        L = self.config.rows
        k, s, b = f["kernel"], f["stride"], f["blocks"]
        ih, iw, oh, ow = f["in_h"], f["in_w"], f["out_h"], f["out_w"]
        planes = self.act[f["in_addr"]:f["in_addr"] + b * ih * iw].reshape(b, ih, iw, L)
        win = self._windows(self._padded(planes, f, k, s, -128), f, k, s)
        self.out[f["out_addr"]:f["out_addr"] + b * oh * ow] = win.max(axis=(1, 2)).reshape(-1, L)

    def _gap(self, f: dict) -> None:
        c = self.config
        L, K = c.rows, c.lane_blocks
        b, p = f["blocks"], f["pixels"]
        sums = self.act[f["in_addr"]:f["in_addr"] + b * p].reshape(b, p, L).astype(np.int64).sum(axis=1)
        for blk in range(b):
            entry, lanes = f["acc_addr"] + blk // K, slice((blk % K) * L, (blk % K) * L + L)
            prev = self.acc[entry, lanes].astype(np.int64) if f["accumulate"] else 0
            self.acc[entry, lanes] = wrap_int32(sums[blk] + prev)

    def _add(self, f: dict) -> None:
        L = self.config.rows
        n = f["count"]
        bias, mult, shift = self._params(f["param_addr"], slice(0, L))
        a = self.act[f["a_addr"]:f["a_addr"] + n].astype(np.int64)
        b = self.act[f["b_addr"]:f["b_addr"] + n].astype(np.int64)
        acc = wrap_int32(a * f["ka"] + b * f["kb"] + bias)
        self.out[f["out_addr"]:f["out_addr"] + n] = requantize(acc, mult, shift, f["zp_out"], bool(f["relu"]))

    # -- the run loop -------------------------------------------------------------------------

    def run(self, insn_base: int, insn_count: int, max_insns: int | None = None) -> ExecResult:
        """Execute from instruction 0 at byte ``insn_base`` until END, an error or ``max_insns``.

        Raises
        ------
        HazardError
            On a missing wait flag, when ``raise_hazards`` (the data results would be undefined).
        """
        cfg = self.config
        mem = np.frombuffer(self.memory, dtype=np.uint8)
        result = ExecResult()
        tl = _Timeline(self.cycle_model)
        pending: dict[Unit, tuple[int, list[Access]] | None] = {u: None for u in tl.free}
        starts, cycles = [], []
        pc = 0
        try:
            while True:
                if max_insns is not None and result.executed >= max_insns:
                    result.stopped = True
                    break
                if pc >= insn_count:
                    raise _Fault(ErrorCode.FETCH_RANGE, f"instruction {pc} is past the instruction count "
                                                        f"{insn_count} (no END)")
                addr = insn_base + pc * isa.INSN_BYTES
                limit = self.mem_limit
                if insn_base % cfg.ext_bytes or addr < 0 or addr + isa.INSN_BYTES > limit:
                    raise _Fault(ErrorCode.DRAM_RANGE, f"instruction fetch at byte {addr} outside the "
                                                       f"{limit}-byte memory")
                word = int.from_bytes(mem[addr:addr + isa.INSN_BYTES].tobytes(), "little")
                violation = _check(word, cfg)
                if violation is not None:
                    raise _Fault(violation.code, f"{violation.field}: {violation.message}")
                d = decode_fields(word)
                op = d.opcode
                unit = isa.UNIT_OF[op]
                if self.check_hazards:
                    acc = footprint(d, cfg)
                    for other, entry in pending.items():
                        if entry is None or other is unit or other in d.wait or op is Opcode.END:
                            continue
                        hit = _conflict(entry[1], acc)
                        if hit:
                            kind, b, a = hit
                            lo, hi = max(a.lo, b.lo), min(a.hi, b.hi)
                            err = HazardError(kind, entry[0], pc, other, a.resource, lo, hi)
                            if self.raise_hazards:
                                raise err
                            result.hazards.append(err)
                    for u in d.wait:
                        if u in pending:
                            pending[u] = None
                    if op is Opcode.END:
                        pending = {u: None for u in pending}
                    elif unit in pending:
                        pending[unit] = (pc, acc)
                c = self.cycle_model.cycles(d, cfg)
                starts.append(tl.issue(unit, d.wait, c, is_end=op is Opcode.END))
                cycles.append(c)
                if op is Opcode.LOAD:
                    self._load(mem, d.fields)
                elif op is Opcode.STORE:
                    self._store(mem, d.fields)
                elif op is Opcode.CONV:
                    self._conv(d.fields)
                    result.array_macs += _array_macs(d, cfg)
                elif op is Opcode.MAXPOOL:
                    self._maxpool(d.fields)
                elif op is Opcode.GAP:
                    self._gap(d.fields)
                elif op is Opcode.ADD:
                    self._add(d.fields)
                result.executed += 1
                if op is Opcode.END:
                    result.done = True
                    break
                pc += 1
        except _Fault as fault:
            result.error, result.error_pc, result.message = fault.code, pc, f"instruction {pc}: {fault}"
        finally:
            del mem
        result.cycles = tl.total
        result.insn_start = np.array(starts, np.int64)
        result.insn_cycles = np.array(cycles, np.int64)
        result.unit_busy = dict(tl.busy)
        result.dispatch_stall = tl.stall
        return result
