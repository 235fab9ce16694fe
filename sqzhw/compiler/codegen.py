"""The code generator: a quantized graph becomes a :class:`~sqzhw.program.Program`.

Steps (see ``docs/architecture.md``):

1. **Layout.** Every activation tensor is block-major in external memory. A concat is a block
   offset: each part starts on a block, so a part of ``C`` channels takes ``ceil(C/L)`` blocks and
   its unused lanes hold the zero point (the producing conv computes them with zero weights, bias 0
   and multiplier 0). The channel segments of each placement record the logical -> physical map.
   The two inputs of a bypass add must share a layout, so a conv feeding an add is laid out like
   the add's other input.
2. **First layer.** A first convolution with few input channels (or a kernel the array cannot run)
   is lowered to a 1x1 convolution over an im2col input that the host builds
   (:class:`~sqzhw.program.Im2col`; weights ``(Cout, kh*kw*Cin)`` in ``(ky, kx, c)`` order).
3. **Numbers.** Zero points are folded into the biases (``bias - zp_in * sum(w)``) and the
   accumulator bound is checked at compile time.
4. **Tiling** (:mod:`sqzhw.compiler.tiling`) and **emission**: each layer becomes a list of steps
   (loads, compute, stores); on-chip buffers are used in halves so the load of step ``i+1`` and the
   stores of step ``i-1`` run under the compute of step ``i``. The steps are software-pipelined
   across the whole network, reordering only where no data dependency forbids it, and each
   instruction gets exactly the ``wait`` flags its hazards need (the same in-flight model the ISA
   golden model checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import isa
from ..config import AccelConfig
from ..isa import LoadTarget, Opcode, StoreSource, Unit
from ..program import (Im2col, InputSpec, LayerInfo, OutputSpec, Preprocess, Program, Region, Segment,
                       TensorPlacement)
from .graph import QAdd, QConcat, QConv, QGlobalAvgPool, QGraph, QMaxPool, QParams
from .tiling import (MAX_ROW_LEN, MAX_ROWS, MAX_STRIDE, TilingError, plan_add, plan_conv,
                     plan_gap, plan_pool)

__all__ = ["compile_graph", "CodegenError", "ALIGN", "lowered_name", "should_lower"]

#: Alignment of every region and tensor in external memory (bytes).
ALIGN = 64



def _input_window(oy0: int, ox0: int, oh: int, ow: int, s: int, k: int, pt: int, pl: int, H: int, W: int,
                  full_width: bool) -> tuple[int, int, int, int, int, int]:
    """The input rows/columns an ``oh x ow`` output tile at ``(oy0, ox0)`` reads (stride ``s``,
    kernel ``k``, top/left padding ``pt``/``pl``, input ``H x W``): ``(r0, first row, rows, first
    column, columns, left padding inside the tile)``; ``r0 < 0`` means top padding ``-r0``. A full-width
    tile loads whole rows and keeps the layer's left padding."""
    r0 = oy0 * s - pt
    ra, rb = max(0, r0), min(H, (oy0 + oh - 1) * s - pt + k)
    if full_width:
        ca, cend, c_pad = 0, W, pl
    else:
        q0 = ox0 * s - pl
        ca, cend, c_pad = max(0, q0), min(W, (ox0 + ow - 1) * s - pl + k), max(0, -q0)
    return r0, ra, rb - ra, ca, cend - ca, c_pad

class CodegenError(ValueError):
    """A graph the code generator cannot compile for a configuration (names the layer and why)."""


def _align(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


def lowered_name(tensor: str) -> str:
    """Name of the im2col-lowered input tensor in ``Program.tensors``."""
    return f"{tensor}:im2col"


def _where(node) -> str:
    return f"layer {node.name!r} ({node.op})"


# -- instructions and their hazards ------------------------------------------------------------

_MEMBERS = {op: list(isa.Payload.as_shape().members[isa.fields_of(op)].as_shape().members)
            for op in Opcode if isa.fields_of(op)}


@dataclass(eq=False)
class _Insn:
    op: Opcode
    fields: dict
    layer: int
    wait: set = field(default_factory=set)
    _fp: list | None = None

    @property
    def unit(self) -> Unit:
        return isa.UNIT_OF[self.op]

    def footprint(self, config: AccelConfig):
        if self._fp is None:
            full = {name: 0 for name in _MEMBERS.get(self.op, [])}
            full.update({k: (v.value if hasattr(v, "value") else int(v)) for k, v in self.fields.items()})
            self._fp = isa.footprint(isa.Decoded(self.op, self.op.value, frozenset(), full), config)
        return self._fp


def _conflicts(a: list[_Insn], b: list[_Insn], config: AccelConfig) -> bool:
    for x in a:
        for y in b:
            for p in x.footprint(config):
                for q in y.footprint(config):
                    if (p.write or q.write) and p.overlaps(q):
                        return True
    return False


@dataclass
class _Step:
    layer: int = -1
    loads: list[_Insn] = field(default_factory=list)
    computes: list[_Insn] = field(default_factory=list)
    stores: list[_Insn] = field(default_factory=list)


def _interleave(a: list, b: list) -> list:
    out = []
    for i in range(max(len(a), len(b))):
        out += a[i:i + 1] + b[i:i + 1]
    return out


def _schedule(steps: list[_Step], config: AccelConfig, overlap_layers: bool) -> list[_Insn]:
    """Software-pipeline the steps: compute of step i, then the stores of step i-1 interleaved with
    the loads of step i+1. A store is only deferred past the next step's loads and compute when it
    does not conflict with them, so the emitted order computes the same values as the natural one.
    Without ``overlap_layers`` nothing moves across a layer boundary, so each layer's instructions
    are one contiguous range that runs on its own from the memory the previous layers left."""
    order: list[_Insn] = []
    if not steps:
        return order
    order += steps[0].loads
    deferred: list[_Insn] = []
    for i, step in enumerate(steps):
        order += step.computes
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        if nxt is not None and not overlap_layers and nxt.layer != step.layer:
            order += deferred + step.stores + nxt.loads
            deferred = []
            continue
        nxt_loads = nxt.loads if nxt else []
        can_defer = nxt is not None and not _conflicts(step.stores, nxt.loads + nxt.computes, config)
        if deferred and nxt_loads and _conflicts(deferred, nxt_loads, config):
            order += deferred
            deferred = []
        if can_defer:
            order += _interleave(deferred, nxt_loads)
            deferred = list(step.stores)
        else:
            order += deferred + step.stores + nxt_loads
            deferred = []
    order += deferred
    return order


def _assign_waits(order: list[_Insn], config: AccelConfig) -> None:
    """Set each instruction's wait flags: a unit whose last issued, not waited-for instruction
    touches what this one touches (see the machine model in :mod:`sqzhw.isa`)."""
    pending: dict[Unit, _Insn | None] = {Unit.LOAD: None, Unit.COMPUTE: None, Unit.STORE: None}
    for insn in order:
        unit = insn.unit
        for u, p in pending.items():
            if p is not None and u is not unit and _conflicts([p], [insn], config):
                insn.wait.add(u)
        for u in insn.wait:
            pending[u] = None
        if unit in pending:
            pending[unit] = insn


# -- buffer halves -----------------------------------------------------------------------------

class _Halves:
    """Two halves of an on-chip buffer, remembering what each holds (double buffering)."""

    def __init__(self, depth: int):
        self.size = depth // 2
        self.keys: list = [None, None]
        self.last = 1

    def get(self, key) -> tuple[int, bool]:
        """Base entry of the half holding ``key``, and whether it must be loaded."""
        for h in (0, 1):
            if self.keys[h] == key and key is not None:
                self.last = h
                return h * self.size, False
        h = 1 - self.last
        self.keys[h] = key
        self.last = h
        return h * self.size, True


# -- tensors -----------------------------------------------------------------------------------

@dataclass
class _Tensor:
    name: str
    channels: int
    h: int
    w: int
    q: QParams
    segments: tuple[Segment, ...]
    blocks: int
    base: int = -1            # data-relative byte address
    parent: str | None = None
    block_offset: int = 0

    def placement(self, shift: int) -> TensorPlacement:
        return TensorPlacement(self.name, self.base + shift, self.channels, self.h, self.w, self.blocks,
                               self.segments, float(self.q.scale), int(self.q.zero_point))

    def phys(self) -> np.ndarray:
        index = np.empty(self.channels, np.int64)
        for s in self.segments:
            index[s.logical:s.logical + s.count] = np.arange(s.physical, s.physical + s.count)
        return index


def _dense(c: int) -> tuple[Segment, ...]:
    return (Segment(0, 0, c),)


def _blocks_of(segments: tuple[Segment, ...], L: int) -> int:
    return -(-max(s.physical + s.count for s in segments) // L)


def should_lower(node: QConv, config: AccelConfig) -> bool:
    """Whether a first convolution is better (or only) run as a 1x1 convolution over im2col input."""
    cout, cin, kh, kw = node.weight.shape
    L = config.rows
    unsupported = (kh, kw) not in ((1, 1), (3, 3)) or node.stride not in ((1, 1), (2, 2)) \
        or max(node.pads) > isa.max_padding(Opcode.CONV, kh) or node.pads[0] != node.pads[1] and kh != kw
    return unsupported or kh * kw * -(-cin // L) > -(-(kh * kw * cin) // L)


# -- the compiler ------------------------------------------------------------------------------

class _Compiler:
    def __init__(self, qgraph: QGraph, config: AccelConfig, preprocess: Preprocess,
                 progress: Callable[[int, int, str], None] | None, overlap_layers: bool):
        self.g, self.cfg, self.pre, self.progress = qgraph, config, preprocess, progress
        self.overlap_layers = overlap_layers
        self.L, self.K = config.rows, config.lane_blocks
        self.tensors: dict[str, _Tensor] = {}
        self.image = bytearray()
        self.act = _Halves(config.act_buf_entries)
        self.wgt = _Halves(config.wgt_buf_tiles)
        self.acc = _Halves(config.acc_buf_entries)
        self.out = _Halves(config.out_buf_entries)
        self.par = _Halves(config.param_buf_entries)
        self.lowering: Im2col | None = None
        self.lowered_conv: str | None = None

    # -- checks and layout ----------------------------------------------------------------

    def validate(self) -> None:
        g = self.g
        if not g.nodes:
            raise CodegenError(f"graph {g.name!r} has no layers")
        last = g.nodes[-1]
        if not isinstance(last, QGlobalAvgPool) or last.output != g.output:
            raise CodegenError(f"graph {g.name!r}: the output {g.output!r} must be produced by a final "
                               f"global average pool (the engine returns its int32 sums); the last layer is "
                               f"{_where(last)}")
        produced = {g.input}
        for node in g.nodes:
            if not isinstance(node, (QConv, QMaxPool, QConcat, QAdd, QGlobalAvgPool)):
                raise CodegenError(f"layer {getattr(node, 'name', '?')!r}: unsupported op "
                                   f"{type(node).__name__}")
            inputs = node.inputs if isinstance(node, (QConcat, QAdd)) else [node.input]
            for t in inputs:
                if t not in produced:
                    raise CodegenError(f"{_where(node)}: input {t!r} is not computed before it")
            produced.add(node.output)
            if isinstance(node, QGlobalAvgPool) and node is not last:
                raise CodegenError(f"{_where(node)}: a global average pool must be the last layer")
            if isinstance(node, QAdd) and not self.cfg.add_unit:
                raise CodegenError(f"{_where(node)}: config {self.cfg.name!r} has no ADD unit "
                                   f"(add_unit = false), so this bypass network cannot run on it; "
                                   f"use a config with add_unit = true")

    def consumers(self, tensor: str) -> list:
        return [n for n in self.g.nodes
                if tensor in (n.inputs if isinstance(n, (QConcat, QAdd)) else [n.input])]

    def plan_input(self) -> None:
        g, L = self.g, self.L
        c, h, w = g.input_shape
        first = self.consumers(g.input)
        lower = len(first) == 1 and isinstance(first[0], QConv) and should_lower(first[0], self.cfg)
        if len(first) == 1 and isinstance(first[0], QConv) and not lower:
            self.check_conv_shape(first[0])
        if lower:
            node = first[0]
            _, cin, kh, kw = node.weight.shape
            (sh, sw), (pt, pl, pb, pr) = node.stride, node.pads
            self.lowering = Im2col(kh, kw, sh, sw, pt, pl, pb, pr)
            self.lowered_conv = node.name
            oc, oh, ow = g.shapes[node.output]
            name = lowered_name(g.input)
            ch = kh * kw * cin
            t = _Tensor(name, ch, oh, ow, g.input_q, _dense(ch), -(-ch // L))
            self.input_tensor = t
            self.tensors[name] = t
        else:
            t = _Tensor(g.input, c, h, w, g.input_q, _dense(c), -(-c // L))
            self.input_tensor = t
            self.tensors[g.input] = t

    def check_conv_shape(self, node: QConv) -> None:
        _, _, kh, kw = node.weight.shape
        if (kh, kw) not in ((1, 1), (3, 3)):
            raise CodegenError(f"{_where(node)}: kernel {kh}x{kw} is not supported by the array (1x1 or "
                               f"3x3; only the first layer is lowered to im2col)")
        if node.stride not in ((1, 1), (2, 2)):
            raise CodegenError(f"{_where(node)}: stride {node.stride} is not supported (1 or 2)")
        limit = isa.max_padding(Opcode.CONV, kh)
        if max(node.pads) > limit:
            raise CodegenError(f"{_where(node)}: pads {node.pads} must be at most {limit} for a {kh}x{kw} "
                               f"kernel")

    def plan_layout(self) -> None:
        g, L = self.g, self.L
        parents: dict[str, tuple[str, int]] = {}
        producer = {n.output: n for n in g.nodes}
        for node in g.nodes:
            if isinstance(node, QConcat):
                off = 0
                for part in node.inputs:
                    p = producer.get(part)
                    if not isinstance(p, QConv):
                        raise CodegenError(f"{_where(node)}: input {part!r} must be produced by a convolution "
                                           f"(a concat is a block offset of its producers' outputs)")
                    if part in parents:
                        raise CodegenError(f"{_where(node)}: input {part!r} is already part of concat "
                                           f"{parents[part][0]!r}")
                    parents[part] = (node.output, off)
                    off += -(-g.shapes[part][0] // L)
        override: dict[str, tuple[Segment, ...]] = {}
        for _ in range(len(g.nodes) + 1):
            lay: dict[str, tuple[Segment, ...]] = {self.input_tensor.name: self.input_tensor.segments}
            if self.lowering is None:
                lay[g.input] = self.input_tensor.segments
            for node in g.nodes:
                if isinstance(node, QConv):
                    lay[node.output] = override.get(node.output, _dense(node.weight.shape[0]))
                elif isinstance(node, QMaxPool):
                    lay[node.output] = lay[node.input]
                elif isinstance(node, QConcat):
                    segs, poff, loff = [], 0, 0
                    for part in node.inputs:
                        for s in lay[part]:
                            segs.append(Segment(s.logical + loff, s.physical + poff * L, s.count))
                        loff += g.shapes[part][0]
                        poff += _blocks_of(lay[part], L)
                    lay[node.output] = tuple(segs)
                elif isinstance(node, QAdd):
                    lay[node.output] = lay[node.inputs[0]]
            changed = False
            for node in g.nodes:
                if not isinstance(node, QAdd):
                    continue
                a, b = node.inputs
                if g.shapes[a] != g.shapes[b]:
                    raise CodegenError(f"{_where(node)}: inputs {a!r} {g.shapes[a]} and {b!r} {g.shapes[b]} "
                                       f"differ in shape")
                if lay[a] == lay[b]:
                    continue

                def free(t: str) -> bool:
                    return isinstance(producer.get(t), QConv) and t not in parents and t not in override

                if free(b):
                    override[b] = lay[a]
                elif free(a):
                    override[a] = lay[b]
                else:
                    raise CodegenError(f"{_where(node)}: inputs {a!r} and {b!r} have different channel "
                                       f"layouts (concat padding) and neither is a convolution output that "
                                       f"could adopt the other's")
                changed = True
            if not changed:
                break
        for node in g.nodes:
            if isinstance(node, QGlobalAvgPool):
                continue
            c, h, w = g.shapes[node.output]
            q = node.out_q if isinstance(node, QConv) else (node.q if isinstance(node, (QMaxPool, QConcat))
                                                           else node.out_q)
            segs = lay[node.output]
            t = _Tensor(node.output, c, h, w, q, segs, _blocks_of(segs, L))
            if node.output in parents:
                t.parent, t.block_offset = parents[node.output]
            self.tensors[node.output] = t

    def allocate(self) -> None:
        """Data-relative addresses: weights image first (filled while emitting), so tensors are
        placed after it in :meth:`finish`. Here only relative offsets inside the activation area."""
        L = self.L
        off = 0
        for t in self.tensors.values():
            if t is self.input_tensor or t.parent is not None:
                continue
            t.base = off
            off = _align(off + t.blocks * t.h * t.w * L)
        self.act_size = off
        for t in self.tensors.values():
            if t.parent is not None:
                p = self.tensors[t.parent]
                t.base = p.base + t.block_offset * p.h * p.w * L
        self.input_tensor.base = 0

    # -- weights image ---------------------------------------------------------------------

    def add_image(self, data: bytes) -> int:
        off = len(self.image)
        self.image += data
        self.image += bytes(_align(len(self.image)) - len(self.image))
        return off

    def param_bytes(self, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> bytes:
        """PARAM lanes (bias, multiplier, shift) laid out per :class:`sqzhw.isa.ParamLane`."""
        n = len(bias)
        lane_bytes = isa.ParamLane.as_shape().size // 8
        out = np.zeros((n, lane_bytes), np.uint8)
        for name, values, dtype in (("bias", bias, "<i4"), ("multiplier", mult, "<u4"), ("shift", shift, "u1")):
            fld = isa.ParamLane.as_shape()[name]
            raw = np.asarray(values, np.int64).astype(dtype).view(np.uint8).reshape(n, -1)
            out[:, fld.offset // 8:fld.offset // 8 + raw.shape[1]] = raw
        return out.tobytes()

    # -- emission helpers --------------------------------------------------------------------

    def load(self, layer: int, target: LoadTarget, sram: int, dram: int, rows: int, row_len: int,
             stride: int = 0) -> list[_Insn]:
        """LOADs of ``rows x row_len`` entries; split when a field would overflow."""
        eb = {LoadTarget.ACT: self.cfg.act_entry_bytes, LoadTarget.WGT: self.cfg.wgt_tile_bytes,
              LoadTarget.PARAM: self.cfg.param_entry_bytes}[target]
        return self._transfer(Opcode.LOAD, {"target": target}, layer, sram, dram, rows, row_len, stride, eb)

    def store(self, layer: int, extra: dict, sram: int, dram: int, rows: int, row_len: int,
              stride: int, eb: int) -> list[_Insn]:
        return self._transfer(Opcode.STORE, extra, layer, sram, dram, rows, row_len, stride, eb)

    def _transfer(self, op: Opcode, extra: dict, layer: int, sram: int, dram: int, rows: int,
                  row_len: int, stride: int, eb: int) -> list[_Insn]:
        if rows == 1 or stride == row_len * eb:  # contiguous: one long row, in pieces
            total, out, done = rows * row_len, [], 0
            while done < total:
                n = min(MAX_ROW_LEN, total - done)
                out.append(_Insn(op, {**extra, "sram_addr": sram + done, "dram_addr": dram + done * eb,
                                      "rows": 1, "row_len": n, "dram_stride": 0}, layer))
                done += n
            return out
        if rows <= MAX_ROWS and row_len <= MAX_ROW_LEN and stride <= MAX_STRIDE:
            return [_Insn(op, {**extra, "sram_addr": sram, "dram_addr": dram, "rows": rows,
                               "row_len": row_len, "dram_stride": stride}, layer)]
        out = []
        for r in range(rows):
            out += self._transfer(op, extra, layer, sram + r * row_len, dram + r * stride, 1, row_len, 0, eb)
        return out

    def load_band(self, layer: int, t: _Tensor, sram: int, b0: int, nb: int, r0: int, nr: int,
                  c0: int, nc: int) -> list[_Insn]:
        """Blocks ``b0..b0+nb-1``, rows ``r0..r0+nr-1``, columns ``c0..c0+nc-1`` of tensor ``t`` to
        ACT entries ``sram + b*nr*nc + y*nc + x``."""
        L, plane = self.L, t.h * t.w * self.L
        base = t.base + b0 * plane + (r0 * t.w + c0) * L
        if nc == t.w:
            return self.load(layer, LoadTarget.ACT, sram, base, nb, nr * nc, plane)
        out = []
        for b in range(nb):
            out += self.load(layer, LoadTarget.ACT, sram + b * nr * nc, base + b * plane, nr, nc, t.w * L)
        return out

    def params_for(self, layer: int, key, img_off: int, first: int, count: int, loads: list) -> int:
        base, miss = self.par.get(key)
        if miss:
            loads += self.load(layer, LoadTarget.PARAM, base, img_off + first * self.cfg.param_entry_bytes,
                               1, count)
        return base

    # -- layers ----------------------------------------------------------------------------

    def conv_steps(self, li: int, node: QConv) -> tuple[list[_Step], int, int]:
        cfg, L, K = self.cfg, self.L, self.K
        lowered = node.name == self.lowered_conv
        src = self.input_tensor if lowered else self.tensors[node.input]
        dst = self.tensors[node.output]
        weight = np.asarray(node.weight).astype(np.int64)
        cout = weight.shape[0]
        if lowered:
            weight = weight.transpose(0, 2, 3, 1).reshape(cout, -1, 1, 1)
            k, s, (pt, pl) = 1, 1, (0, 0)
        else:
            self.check_conv_shape(node)
            k, s = weight.shape[2], node.stride[0]
            pt, pl = node.pads[0], node.pads[1]
        if weight.shape[1] != src.channels:
            raise CodegenError(f"{_where(node)}: weights expect {weight.shape[1]} input channels, the input "
                               f"{src.name!r} has {src.channels}")
        from ..golden.layers import AccumulatorOverflowError, check_accumulator
        try:
            check_accumulator(node, cfg.acc_bits)
        except AccumulatorOverflowError as exc:
            raise CodegenError(str(exc)) from None
        zp_in = int(node.in_q.zero_point)
        bias = np.asarray(node.bias, np.int64) - zp_in * weight.reshape(cout, -1).sum(axis=1)
        if np.any(np.abs(bias) >= 1 << 31):
            raise CodegenError(f"{_where(node)}: the folded bias (bias - zp_in*sum(w)) leaves int32")
        CB, OB = src.blocks, dst.blocks
        G = -(-OB // K)
        wp = np.zeros((G * cfg.cols, CB * L, k, k), np.int8)
        wp[np.ix_(dst.phys(), src.phys())] = weight.astype(np.int8)
        lanes = G * cfg.cols
        pb, pm, ps = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
        pb[dst.phys()], pm[dst.phys()], ps[dst.phys()] = bias, node.multiplier, node.shift
        # tiles in (group, block, ky, kx) order, tile[r][c] = w[g*cols + c, b*L + r, ky, kx]
        tiles = wp.reshape(G, cfg.cols, CB, L, k, k).transpose(0, 2, 4, 5, 3, 1)
        w_off = self.add_image(np.ascontiguousarray(tiles).tobytes())
        p_off = self.add_image(self.param_bytes(pb, pm, ps))
        H, W = src.h, src.w
        OH, OW = dst.h, dst.w
        try:
            plan = plan_conv(cfg, node.name, CB, G, H, W, OH, OW, k, s)
        except TilingError as exc:
            raise CodegenError(str(exc)) from None
        kk = k * k
        p2 = cfg.param_buf_entries // 2
        tiles_xy = [(oy, ox) for oy in range(0, OH, plan.bh) for ox in range(0, OW, plan.bw)]
        chunks = list(range(0, CB, plan.cb))
        if plan.order == "tile":
            units = [(t, g, c) for t in range(len(tiles_xy)) for g in range(G) for c in chunks]
        else:
            units = [(t, g, c) for g in range(G) for t in range(len(tiles_xy)) for c in chunks]
        steps = []
        tb = cfg.wgt_tile_bytes
        for t, g, c0 in units:
            st = _Step()
            oy0, ox0 = tiles_xy[t]
            oh, ow = min(plan.bh, OH - oy0), min(plan.bw, OW - ox0)
            cb = min(plan.cb, CB - c0)
            r0, ra, ih, ca, iw, c_pad = _input_window(oy0, ox0, oh, ow, s, k, pt, pl, H, W, plan.bw == OW)
            a_base, miss = self.act.get((li, t, c0))
            if miss:
                st.loads += self.load_band(li, src, a_base, c0, cb, ra, ih, ca, iw)
            if plan.resident:
                w_base, miss = self.wgt.get((li, "all"))
                if miss:
                    st.loads += self.load(li, LoadTarget.WGT, w_base, w_off, 1, G * CB * kk)
                w_addr = w_base + (g * CB + c0) * kk
            else:
                w_addr, miss = self.wgt.get((li, g, c0))
                if miss:
                    st.loads += self.load(li, LoadTarget.WGT, w_addr, w_off + (g * CB + c0) * kk * tb, 1, cb * kk)
            if G <= p2:
                p_addr = self.params_for(li, (li, "params"), p_off, 0, G, st.loads) + g
            else:
                p_addr = self.params_for(li, (li, "params", g // p2), p_off, g // p2 * p2,
                                         min(p2, G - g // p2 * p2), st.loads) + g % p2
            acc_base, _ = self.acc.get((li, t, g)) if c0 == 0 else (self.acc_last, False)
            self.acc_last = acc_base
            st.computes.append(_Insn(Opcode.CONV, {
                "in_addr": a_base, "in_h": ih, "in_w": iw, "cin_blocks": cb, "out_h": oh, "out_w": ow,
                "kernel3": int(k == 3), "stride2": int(s == 2), "pad_top": max(0, -r0), "pad_left": c_pad,
                "pad_value": zp_in, "wgt_addr": w_addr, "acc_addr": acc_base, "accumulate": int(c0 > 0)}, li))
            if c0 + cb == CB:
                for j in range(K):
                    blk = g * K + j
                    if blk >= OB:
                        break
                    dram = dst.base + blk * OH * OW * L + (oy0 * OW + ox0) * L
                    extra = {"source": StoreSource.ACC_REQUANT, "param_addr": p_addr,
                             "zp_out": int(node.out_q.zero_point), "relu": int(node.relu), "lane_block": j}
                    if ow == OW:
                        st.stores += self.store(li, extra, acc_base, dram, 1, oh * ow, 0, L)
                    else:
                        st.stores += self.store(li, extra, acc_base, dram, oh, ow, OW * L, L)
            steps.append(st)
        macs = int(np.prod(node.weight.shape)) * OH * OW
        return steps, macs, G * CB * kk * tb

    def pool_steps(self, li: int, node: QMaxPool) -> list[_Step]:
        src, dst = self.tensors[node.input], self.tensors[node.output]
        L = self.L
        (kh, kw), (sh, sw) = node.kernel, node.stride
        pt, pl = node.pads[0], node.pads[1]
        if kh != kw or sh != sw or not 1 <= kh <= 3 or not 1 <= sh <= 3:
            raise CodegenError(f"{_where(node)}: kernel {node.kernel} stride {node.stride} unsupported "
                               f"(square, 1 to 3)")
        if pt >= kh or pl >= kw:
            raise CodegenError(f"{_where(node)}: pads {node.pads} must be below the kernel size {kh}")
        k, s = kh, sh
        H, W, OH, OW, B = src.h, src.w, dst.h, dst.w, src.blocks
        try:
            plan = plan_pool(self.cfg, node.name, B, H, W, OH, OW, k, s)
        except TilingError as exc:
            raise CodegenError(str(exc)) from None
        steps = []
        for b0 in range(0, B, plan.nb):
            nb = min(plan.nb, B - b0)
            for oy0 in range(0, OH, plan.bh):
                for ox0 in range(0, OW, plan.bw):
                    st = _Step()
                    oh, ow = min(plan.bh, OH - oy0), min(plan.bw, OW - ox0)
                    r0, ra, ih, ca, iw, c_pad = _input_window(oy0, ox0, oh, ow, s, k, pt, pl, H, W,
                                                              plan.bw == OW)
                    a_base, _ = self.act.get((li, b0, oy0, ox0))
                    st.loads += self.load_band(li, src, a_base, b0, nb, ra, ih, ca, iw)
                    o_base, _ = self.out.get((li, b0, oy0, ox0))
                    st.computes.append(_Insn(Opcode.MAXPOOL, {
                        "in_addr": a_base, "in_h": ih, "in_w": iw, "blocks": nb, "out_h": oh, "out_w": ow,
                        "kernel": k, "stride": s, "pad_top": max(0, -r0), "pad_left": c_pad,
                        "out_addr": o_base}, li))
                    plane = OH * OW * L
                    dram = dst.base + b0 * plane + (oy0 * OW + ox0) * L
                    if ow == OW:
                        st.stores += self.store(li, {"source": StoreSource.OUT}, o_base, dram, nb, oh * OW,
                                                plane, L)
                    else:
                        for b in range(nb):
                            st.stores += self.store(li, {"source": StoreSource.OUT}, o_base + b * oh * ow,
                                                    dram + b * plane, oh, ow, OW * L, L)
                    steps.append(st)
        return steps

    def add_steps(self, li: int, node: QAdd) -> list[_Step]:
        a, b = self.tensors[node.inputs[0]], self.tensors[node.inputs[1]]
        dst = self.tensors[node.output]
        L = self.L
        bias = -node.ka * node.a_q.zero_point - node.kb * node.b_q.zero_point
        lanes = self.cfg.cols
        p_off = self.add_image(self.param_bytes(np.full(lanes, bias), np.full(lanes, node.multiplier),
                                                np.full(lanes, node.shift)))
        total = a.blocks * a.h * a.w
        n_max = plan_add(self.cfg, node.name, total)
        steps = []
        for e0 in range(0, total, n_max):
            st = _Step()
            n = min(n_max, total - e0)
            p_addr = self.params_for(li, (li, "params"), p_off, 0, 1, st.loads)
            a_base, _ = self.act.get((li, e0))
            st.loads += self.load(li, LoadTarget.ACT, a_base, a.base + e0 * L, 1, n)
            st.loads += self.load(li, LoadTarget.ACT, a_base + n, b.base + e0 * L, 1, n)
            o_base, _ = self.out.get((li, e0))
            st.computes.append(_Insn(Opcode.ADD, {
                "a_addr": a_base, "b_addr": a_base + n, "count": n, "ka": node.ka, "kb": node.kb,
                "param_addr": p_addr, "zp_out": int(node.out_q.zero_point), "relu": int(node.relu),
                "out_addr": o_base}, li))
            st.stores += self.store(li, {"source": StoreSource.OUT}, o_base, dst.base + e0 * L, 1, n, 0, L)
            steps.append(st)
        return steps

    def gap_steps(self, li: int, node: QGlobalAvgPool, out_base: int) -> list[_Step]:
        src = self.tensors[node.input]
        L, K = self.L, self.K
        pixels = src.h * src.w
        try:
            plan = plan_gap(self.cfg, node.name, src.blocks, pixels)
        except TilingError as exc:
            raise CodegenError(str(exc)) from None
        steps = []
        for b0 in range(0, src.blocks, plan.nb):
            nb = min(plan.nb, src.blocks - b0)
            acc_base, _ = self.acc.get((li, b0))
            for p0 in range(0, pixels, plan.npix):
                npx = min(plan.npix, pixels - p0)
                st = _Step()
                a_base, _ = self.act.get((li, b0, p0))
                st.loads += self.load(li, LoadTarget.ACT, a_base, src.base + b0 * pixels * L + p0 * L, nb, npx,
                                      pixels * L)
                st.computes.append(_Insn(Opcode.GAP, {"in_addr": a_base, "pixels": npx, "blocks": nb,
                                                      "acc_addr": acc_base, "accumulate": int(p0 > 0)}, li))
                if p0 + npx == pixels:
                    st.stores += self.store(li, {"source": StoreSource.ACC}, acc_base,
                                            out_base + b0 * L * 4, 1, -(-nb // K), 0, self.cfg.acc_entry_bytes)
                steps.append(st)
        return steps

    # -- driver ----------------------------------------------------------------------------

    def run(self) -> Program:
        g, cfg, L, K = self.g, self.cfg, self.L, self.K
        self.validate()
        self.plan_input()
        self.plan_layout()
        self.allocate()
        gap = g.nodes[-1]
        gsrc = self.tensors[gap.input]
        out_size = _align(-(-gsrc.blocks // K) * cfg.acc_entry_bytes)
        n = len(g.nodes)
        all_steps: list[_Step] = []
        infos = []
        # The weight image's size is only known after emission, so emission uses a data space laid out
        # [input | activations | output | weights] and remap() moves it to the documented order.
        self.input_tensor.base = 0
        in_size = _align(self.input_tensor.blocks * self.input_tensor.h * self.input_tensor.w * L)
        act_base = in_size
        for t in self.tensors.values():
            if t is not self.input_tensor:
                t.base += act_base
        out_base = act_base + self.act_size
        wgt_base = out_base + out_size  # the weight image starts here during emission
        self.image_origin = wgt_base
        for li, node in enumerate(g.nodes):
            if self.progress:
                self.progress(li, n, node.name)
            macs, wbytes = 0, 0
            if isinstance(node, QConv):
                steps, macs, wbytes = self.conv_steps(li, node)
            elif isinstance(node, QMaxPool):
                steps = self.pool_steps(li, node)
            elif isinstance(node, QAdd):
                steps = self.add_steps(li, node)
            elif isinstance(node, QGlobalAvgPool):
                steps = self.gap_steps(li, node, out_base)
                macs = 0
            else:  # concat: no code
                steps = []
            for st in steps:
                st.layer = li
            all_steps += steps
            in_shape = tuple(g.shapes[node.inputs[0]] if isinstance(node, (QConcat, QAdd))
                             else g.shapes[node.input])
            infos.append((node, in_shape, macs, wbytes))
        if self.progress:
            self.progress(n, n, "schedule")
        # weight-image offsets were recorded relative to the image: move every WGT/PARAM LOAD
        for st in all_steps:
            for insn in st.loads:
                if insn.fields["target"] in (LoadTarget.WGT, LoadTarget.PARAM):
                    insn.fields["dram_addr"] += wgt_base
        order = _schedule(all_steps, cfg, self.overlap_layers)
        _assign_waits(order, cfg)
        order.append(_Insn(Opcode.END, {}, n - 1))
        # final memory map: [instructions | weights | input | activations | output]
        insn_size = _align(len(order) * isa.INSN_BYTES)
        img_size = _align(len(self.image))

        def remap(addr: int) -> int:  # data-relative (input, act, output, weights) -> final
            if addr >= wgt_base:
                return insn_size + (addr - wgt_base)
            return insn_size + img_size + addr

        words = []
        for insn in order:
            fields = dict(insn.fields)
            if "dram_addr" in fields:
                fields["dram_addr"] = remap(fields["dram_addr"])
            try:
                words.append(isa.encode(insn.op, insn.wait, **fields))
            except isa.FieldError as exc:
                raise CodegenError(f"{_where(g.nodes[insn.layer])}: {exc}") from None
        shift = insn_size + img_size
        regions = [Region("instructions", "instructions", 0, insn_size),
                   Region("weights", "weights", insn_size, img_size),
                   Region("input", "input", shift, in_size),
                   Region("activations", "activations", shift + act_base, max(self.act_size, ALIGN)),
                   Region("output", "output", shift + out_base, out_size)]
        need, limit = max(r.end for r in regions), 1 << cfg.ext_addr_bits
        if need > limit:
            sizes = ", ".join(f"{r.kind} {r.size:,}" for r in regions)
            raise CodegenError(f"model {g.name!r} needs {need:,} bytes of external memory ({sizes}), but config "
                               f"{cfg.name!r} addresses {limit:,} (ext_addr_bits = {cfg.ext_addr_bits}): use a "
                               f"smaller input or model, or a config with more memory")
        placements = [t.placement(shift) for t in self.tensors.values()]
        c, h, w = g.input_shape
        inp = InputSpec(self.pre, float(g.input_q.scale), int(g.input_q.zero_point), c, h, w, self.lowering,
                        self.input_tensor.placement(shift))
        phys = gsrc.phys()
        output = OutputSpec(shift + out_base, gsrc.channels, gsrc.h * gsrc.w, float(gap.in_q.scale),
                            int(gap.in_q.zero_point), tuple(int(p) for p in phys), out_size, g.softmax)
        layers = self.layer_infos(order, words, infos)
        return Program(cfg, words, bytes(self.image) + bytes(img_size - len(self.image)), regions, inp,
                       output, placements, layers, model_name=g.name,
                       notes={"lowered_input": self.lowering is not None})

    def layer_infos(self, order: list[_Insn], words: list[int], infos) -> list[LayerInfo]:
        """Per-layer figures. Instruction ranges partition the program (END excluded): layer ``i``
        runs from its first instruction to the next layer's first. Cycles: from the previous
        layer's last finish to this layer's last finish, so they add up to the total."""
        from ..golden.executor import estimate_cycles
        finish = estimate_cycles(words, self.cfg).finish
        n = len(self.g.nodes)
        first: list[int | None] = [None] * n
        end = np.zeros(n, np.int64)
        for i, insn in enumerate(order[:-1]):
            li = insn.layer
            if first[li] is None:
                first[li] = i
            end[li] = max(end[li], finish[i])
        starts = list(first)
        nxt = len(order) - 1
        for li in range(n - 1, -1, -1):  # layers without code start where the next one starts
            if starts[li] is None:
                starts[li] = nxt
            nxt = starts[li]
        out, prev_end = [], 0
        for li, (node, in_shape, macs, wbytes) in enumerate(infos):
            stop = starts[li + 1] if li + 1 < n else len(order) - 1
            cyc = 0
            if first[li] is not None:
                cyc = max(0, int(end[li]) - prev_end)
                prev_end = max(prev_end, int(end[li]))
            out.append(LayerInfo(node.name, node.op, tuple(int(v) for v in in_shape),
                                 tuple(int(v) for v in self.g.shapes[node.output]), int(macs), int(wbytes),
                                 int(starts[li]), int(stop - starts[li]), int(cyc)))
        return out


def compile_graph(qgraph: QGraph, config: AccelConfig, preprocess: Preprocess,
                  progress: Callable[[int, int, str], None] | None = None, *,
                  overlap_layers: bool = False) -> Program:
    """Compile a quantized graph for ``config``.

    Parameters
    ----------
    qgraph : QGraph
        Ends in a global average pool (the engine returns its int32 sums).
    config : AccelConfig
    preprocess : Preprocess
        Stored in the program so hosts prepare inputs the way the model expects.
    progress : callable, optional
        ``progress(layer_index, n_layers, name)`` per layer (``layer_index == n_layers`` for the final
        scheduling pass).
    overlap_layers : bool
        Also pipeline across layer boundaries (the next layer's first loads under the previous
        layer's last compute, where no data dependency forbids it). Off by default: then every
        ``LayerInfo`` instruction range is contiguous and self-contained, so a layer can be run on
        its own (per-layer RTL runs); the cost is a pipeline drain per layer.

    Raises
    ------
    CodegenError
        A layer the configuration cannot run or tile, naming the layer and what does not fit.
    """
    return _Compiler(qgraph, config, preprocess, progress, overlap_layers).run()
