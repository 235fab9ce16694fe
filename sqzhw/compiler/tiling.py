"""Tile-size choices of the code generator: how a layer is cut to fit the on-chip buffers.

Every plan uses half of each buffer (the other half holds the next tile: double buffering). The
plans only choose sizes; :mod:`sqzhw.compiler.codegen` emits the instructions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import AccelConfig

__all__ = ["ConvPlan", "PoolPlan", "GapPlan", "plan_conv", "plan_pool", "plan_gap", "plan_add", "TilingError",
           "MAX_DIM", "MAX_ROW_LEN", "MAX_ROWS", "MAX_STRIDE"]

#: Field limits of the ISA (see sqzhw.isa): 10-bit sizes, 14-bit row length, 10-bit row count,
#: 22-bit DRAM stride.
MAX_DIM = (1 << 10) - 1
MAX_ROW_LEN = (1 << 14) - 1
MAX_ROWS = (1 << 10) - 1
MAX_STRIDE = (1 << 22) - 1
#: Cost of one extra instruction in external words, for comparing plans (about a load's latency).
INSN_COST = 24


class TilingError(ValueError):
    """A layer that the configuration cannot tile (the message says what does not fit)."""


def _extent(n: int, s: int, k: int) -> int:
    """Input rows (or columns) that ``n`` outputs of a ``k``-tap, stride-``s`` window read."""
    return (n - 1) * s + k


def _width_tiles(out_w: int):
    """Distinct tile widths, widest first: ``ceil(out_w / n)`` for n = 1, 2, ..."""
    seen = set()
    for n in range(1, out_w + 1):
        bw = -(-out_w // n)
        if bw not in seen:
            seen.add(bw)
            yield bw


@dataclass(frozen=True)
class ConvPlan:
    """``bh x bw`` output tiles, ``cb`` input blocks per pass (``cb < cin_blocks``: accumulate over
    passes), weights resident for the whole layer or loaded per (group, cin chunk), loop order
    ``"tile"`` (spatial tiles outer) or ``"group"`` (cout groups outer)."""
    bh: int
    bw: int
    cb: int
    resident: bool
    order: str


def _rows_fitting(budget: int, per_row: int, s: int, k: int, size: int, limit: int) -> int:
    """Largest output-row count whose input band (``per_row`` entries per input row) fits ``budget``."""
    rows_in = min(budget // per_row, MAX_DIM)
    if rows_in >= size:  # the whole input height fits
        return limit
    if rows_in < k:
        return 0
    return min(limit, (rows_in - k) // s + 1)


def plan_conv(config: AccelConfig, name: str, cin_blocks: int, groups: int, h: int, w: int,
              out_h: int, out_w: int, k: int, s: int) -> ConvPlan:
    """Choose the tiles of a convolution (see :class:`ConvPlan`)."""
    a2, c2, w2 = config.act_buf_entries // 2, config.acc_buf_entries // 2, config.wgt_buf_tiles // 2
    kk = k * k
    if kk > w2:
        raise TilingError(f"layer {name!r}: one input block's {kk} weight tiles do not fit half the "
                          f"weight buffer ({w2} tiles)")
    best = None
    for split in (False, True):
        for bw in _width_tiles(out_w):
            iw = w if bw == out_w else min(w, _extent(bw, s, k))
            if bw > MAX_DIM or iw > MAX_DIM:
                continue
            bh_acc = min(c2 // bw, out_h, MAX_DIM)
            if bh_acc == 0:
                continue
            if not split:
                if cin_blocks * kk > w2:
                    break
                bh = _rows_fitting(a2, cin_blocks * iw, s, k, h, bh_acc)
                cb = cin_blocks
            else:
                # keep a few input blocks per pass, then as many rows as fit
                cb_min = min(cin_blocks, 4, w2 // kk)
                bh = _rows_fitting(a2, cb_min * iw, s, k, h, bh_acc)
                if bh == 0:
                    cb_min = 1
                    bh = _rows_fitting(a2, iw, s, k, h, bh_acc)
                ih = min(h, _extent(bh, s, k)) if bh else 1
                cb = min(cin_blocks, a2 // max(1, ih * iw), w2 // kk)
            if bh == 0 or cb == 0:
                continue
            ih = min(h, _extent(bh, s, k))
            tiles = -(-out_h // bh) * -(-out_w // bw)
            passes = -(-cin_blocks // cb)
            in_words = tiles * cin_blocks * ih * iw * (groups if split else 1)
            wgt_tiles = groups * cin_blocks * kk
            resident = not split and wgt_tiles <= w2
            if resident:
                cost, order = in_words + wgt_tiles, "tile"
            elif split:
                cost, order = in_words + tiles * wgt_tiles, "tile"
            else:
                by_tile = in_words + tiles * wgt_tiles
                by_group = (in_words * (groups if tiles > 1 else 1)) + wgt_tiles
                cost, order = min((by_tile, "tile"), (by_group, "group"))
            cost += INSN_COST * tiles * groups * passes * 3
            plan = ConvPlan(bh, bw, cb, resident, order)
            if best is None or cost < best[0]:
                best = (cost, plan)
        if best is not None:
            return best[1]
    raise TilingError(f"layer {name!r}: no tile fits: a {k}x{k} window over {cin_blocks} input blocks of "
                      f"width {w} needs more than half the activation buffer ({a2} entries) or half the "
                      f"accumulator buffer ({c2} entries)")


@dataclass(frozen=True)
class PoolPlan:
    """``nb`` blocks of ``bh x bw`` output tiles per MAXPOOL."""
    nb: int
    bh: int
    bw: int


def plan_pool(config: AccelConfig, name: str, blocks: int, h: int, w: int, out_h: int, out_w: int,
              k: int, s: int) -> PoolPlan:
    a2, o2 = config.act_buf_entries // 2, config.out_buf_entries // 2
    best = None
    for bw in _width_tiles(out_w):
        iw = w if bw == out_w else min(w, _extent(bw, s, k))
        if bw > MAX_DIM or iw > MAX_DIM:
            continue
        for nb in sorted({max(1, -(-blocks // d)) for d in range(1, blocks + 1)}, reverse=True):
            bh = _rows_fitting(a2, nb * iw, s, k, h, min(out_h, MAX_DIM, o2 // (nb * bw)))
            if bh == 0:
                continue
            ih = min(h, _extent(bh, s, k))
            tiles = -(-out_h // bh) * -(-out_w // bw) * -(-blocks // nb)
            cost = tiles * nb * ih * iw + INSN_COST * tiles * 3
            if best is None or cost < best[0]:
                best = (cost, PoolPlan(nb, bh, bw))
            break  # fewer blocks per pass only costs more
    if best is None:
        raise TilingError(f"layer {name!r}: a {k}x{k} pooling window over width {w} does not fit half the "
                          f"activation buffer ({a2} entries) and output buffer ({o2} entries)")
    return best[1]


@dataclass(frozen=True)
class GapPlan:
    """``nb`` blocks (a multiple of ``cols/rows`` unless all) by ``npix`` pixels per GAP."""
    nb: int
    npix: int


def plan_gap(config: AccelConfig, name: str, blocks: int, pixels: int) -> GapPlan:
    a2, c2, K = config.act_buf_entries // 2, config.acc_buf_entries // 2, config.lane_blocks
    nb = min(blocks, 511, c2 * K)
    if nb < blocks:
        nb = max(K, nb // K * K)
    npix = min(pixels, a2 // nb, MAX_ROW_LEN, (1 << 16) - 1)
    while npix == 0 and nb > K:
        nb -= K
        npix = min(pixels, a2 // nb, MAX_ROW_LEN)
    if npix == 0:
        raise TilingError(f"layer {name!r}: {nb} blocks of one pixel do not fit half the activation "
                          f"buffer ({a2} entries)")
    return GapPlan(nb, npix)


def plan_add(config: AccelConfig, name: str, entries: int) -> int:
    """Entries per ADD (both inputs share half the activation buffer)."""
    n = min(entries, config.act_buf_entries // 4, config.out_buf_entries // 2, MAX_ROW_LEN)
    if n == 0:
        raise TilingError(f"layer {name!r}: the activation or output buffer is too small for an ADD")
    return n
