"""The compute unit: CONV on the systolic array, MAXPOOL, GAP and ADD beside it.

Interface (``ComputeUnit(config)``)
-----------------------------------
* ``cmd: In(stream.Signature(isa.Instruction))``: an already legality-checked CONV, MAXPOOL, GAP
  or ADD; accepted (``ready``) only when idle. ``busy`` is high from the cycle after the handshake
  until every ACC/OUT write of the instruction has been performed (the cycle of the last write is
  the last busy cycle).
* Buffer ports with exactly the signatures of :func:`rtl_gen.buffers.buffer_specs`, seen from the
  user side, so the top connects them with ``wiring.connect(m, buffers.act_r, compute.act_r)``:
  ``act_r``, ``wgt_r``, ``param_r``, ``acc_r`` (read, ``In(ReadPort.Signature)``), ``acc_w`` (write,
  granularity one lane block of ``rows`` int32) and ``out_w`` (write). Entries are plain bits in the
  byte order of docs/architecture.md; WGT is one whole ``rows x cols`` tile per entry, weight
  ``(r, c)`` in bits ``8*(r*cols + c)`` (:func:`rtl_gen.array.tile_layout`). Reads are synchronous
  (data the cycle after the address); transparency is not relied on (see the hazards below).
* ``array_active: Out(1)``: a valid activation vector enters the systolic array this cycle.

Nothing stalls inside the unit (its memory ports are its own), so every opcode is a fixed pipeline.

CONV
----
Weight-stationary order: for each weight tile ``j = (b*k + ky)*k + kx`` (``T = cin_blocks*k*k``
tiles), stream all ``N = out_h*out_w`` output pixels through the array, one per cycle; tile ``j``
uses weight bank ``j % 2``. The address generator walks ``(y, x) = (oy*s + ky - pad_top,
ox*s + kx - pad_left)`` with adders only (no multiplier per pixel) and feeds ``pad_value`` for
out-of-range taps. The weight loader reads tile ``j + 1`` into the idle bank while tile ``j``
streams, as soon as tile ``j - 1`` has drained from the array (``rows + cols - 2`` cycles after its
last pixel). Sums leave the array ``rows + cols + 1`` cycles after their pixel and are added to
(``accumulate`` or a later tile) or written over (first tile without ``accumulate``) ACC entry
``acc_addr + oy*out_w + ox``. Read-modify-write hazard: the ACC read of pixel ``p`` of tile ``j+1``
must come after the write of pixel ``p`` of tile ``j`` (2 cycles after its read), so consecutive
tiles start at least 3 cycles apart.

MAXPOOL
-------
One activation entry per cycle in ``(b, oy, ox, ky, kx)`` order, a running lane-wise maximum (out of
range taps contribute -128), one OUT write per window.

GAP
---
One activation entry per cycle; per block a running int32 sum per lane; at the end of a block the
ACC entry is read and the block's lanes are written (byte enables of one lane block), adding the
old value when ``accumulate``. Each lane is written once per instruction, so there is no hazard.

ADD
---
Two activation reads per entry (``a`` then ``b``: the ACT buffer has one compute read port). One
int8 x int16 multiplier per lane serves both halves (``a*ka``, then ``+ b*kb``), registered; the sum
goes to a ``rows``-lane :class:`~rtl_gen.requant.Requantizer` (which adds the bias) and the results
are written to OUT in order. The PARAM entry is read continuously during the ADD. With
``AccelConfig.add_unit = False`` all of this is left out (no requantizer, no products, the PARAM
read port unused): the controller's checker rejects ADD as ``BAD_OPCODE``, as ``isa.check`` does.

Cycle cost (cycles ``busy`` is high; ``D = rows + cols - 2``, ``LAT = rows + cols + 1``)
--------------------------------------------------------------------------------------------
* CONV (``T = cin_blocks*k*k`` tiles of ``N = out_h*out_w`` pixels): ``T*N + LAT + 5`` whenever
  ``N >= max(D, 3)``: no bubble at any tile switch, the array takes a pixel every cycle. Shorter
  tiles are limited by the weight double buffer (two consecutive tiles take at least ``N + D``
  cycles) and the ACC read-modify-write (3 cycles per tile); :func:`conv_cycles` gives the exact
  count in every case.
* MAXPOOL: ``blocks*out_h*out_w*kernel**2 + 4``.
* GAP: ``blocks*pixels + 5``.
* ADD: ``2*count + Requantizer.LATENCY + 5``.
* With ``AccelConfig.serial_products`` every one of these takes :func:`setup_extra` (9) cycles
  more: the plane size ``in_h*in_w`` is then computed by shift-and-add in SETUP, not on a DSP.

Multipliers: ``rows*cols`` in the array, 4 per lane in the ADD's requantizer, 1 per lane for the
ADD's products (these two only with ``add_unit``), 1 for the plane size (``in_h*in_w``, once per instruction). Two set-up cycles per
instruction derive the loop constants, so every issue-loop step is one registered adder deep.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from sqzhw import isa
from sqzhw.config import AccelConfig

from .array import SystolicArray
from .buffers import buffer_specs
from .requant import Requantizer

__all__ = ["ComputeUnit", "conv_cycles", "maxpool_cycles", "gap_cycles", "add_cycles", "setup_extra"]

#: Minimum cycles between the first pixels of consecutive CONV tiles (ACC read-modify-write).
_MIN_TILE_GAP = 3
#: Signed width of the internal address arithmetic (buffers have at most 2**16 entries; windows
#: reach a few rows and columns past a plane).
_ADDR = signed(21)
#: Signed width of pixel coordinates (up to 3*1023 + 2 and down to -2).
_COORD = signed(13)
#: Bits of ``in_h``: the serial plane product (``AccelConfig.serial_products``) takes one SETUP
#: cycle per bit.
_PLANE_BITS = 10


def setup_extra(config: AccelConfig | None) -> int:
    """Extra SETUP cycles of every compute instruction: ``_PLANE_BITS - 1`` with
    ``serial_products``, else 0."""
    return _PLANE_BITS - 1 if config is not None and config.serial_products else 0


def _array_latency(config: AccelConfig) -> int:
    return config.rows + config.cols + 1


def conv_cycles(config: AccelConfig, cin_blocks: int, kernel3: bool, out_h: int, out_w: int) -> int:
    """Busy cycles of one CONV (exact, no stalls: the unit owns its ports)."""
    k = 3 if kernel3 else 1
    tiles, n = cin_blocks * k * k, out_h * out_w
    d = config.rows + config.cols - 2
    # Simulate the issue schedule: tile j may start once its weights are in (loaded the cycle after
    # tile j-2's last pixel + d) and 3 cycles after tile j-1 started.
    load, first, last = {}, {}, {}
    cycle = 2 + setup_extra(config)  # first run cycle (after SETUP and SETUP2): the loader reads tile 0
    for j in range(tiles):
        load[j] = max(cycle if j == 0 else load[j - 1] + 1, last.get(j - 2, -10**9) + d)
        start = load[j] + 1
        if j:
            start = max(start, last[j - 1] + 1, first[j - 1] + _MIN_TILE_GAP)
        first[j], last[j] = start, start + n - 1
        cycle = last[j] + 1
    return last[tiles - 1] + _array_latency(config) + 3


def maxpool_cycles(blocks: int, out_h: int, out_w: int, kernel: int, config: AccelConfig | None = None) -> int:
    """Busy cycles of one MAXPOOL (``config``: for :func:`setup_extra`)."""
    return blocks * out_h * out_w * kernel * kernel + 4 + setup_extra(config)


def gap_cycles(blocks: int, pixels: int, config: AccelConfig | None = None) -> int:
    """Busy cycles of one GAP (``config``: for :func:`setup_extra`)."""
    return blocks * pixels + 5 + setup_extra(config)


def add_cycles(count: int, config: AccelConfig | None = None) -> int:
    """Busy cycles of one ADD (``config``: for :func:`setup_extra`)."""
    return 2 * count + Requantizer.LATENCY + 5 + setup_extra(config)


class _State(enum.Enum, shape=3):
    IDLE = 0
    SETUP = 1
    CONV = 2
    MAXPOOL = 3
    GAP = 4
    ADD = 5
    SETUP2 = 6


class ComputeUnit(wiring.Component):
    """Executes CONV, MAXPOOL, GAP and ADD (see the module docstring).

    Parameters
    ----------
    config : AccelConfig

    Members
    -------
    cmd : ``In(stream.Signature(isa.Instruction))``
    busy : ``Out(1)``
    act_r, wgt_r, param_r, acc_r : ``In(ReadPort.Signature)`` of :func:`~rtl_gen.buffers.buffer_specs`
    acc_w, out_w : ``In(WritePort.Signature)`` of :func:`~rtl_gen.buffers.buffer_specs`
    array_active : ``Out(1)``
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"ComputeUnit takes an AccelConfig, got {type(config).__name__}")
        self.config = config
        specs = buffer_specs(config)
        #: Cycles from an activation vector entering the array to its sums leaving it.
        self.array_latency = _array_latency(config)
        super().__init__({
            "cmd": In(stream.Signature(isa.Instruction)),
            "busy": Out(1),
            "act_r": In(specs["act"].read_signature()),
            "wgt_r": In(specs["wgt"].read_signature()),
            "param_r": In(specs["param"].read_signature()),
            "acc_r": In(specs["acc"].read_signature()),
            "acc_w": In(specs["acc"].write_signature()),
            "out_w": In(specs["out"].write_signature()),
            "array_active": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        L, C, K = cfg.rows, cfg.cols, cfg.lane_blocks
        m.submodules.array = array = SystolicArray(cfg.rows, cfg.cols)
        assert array.latency == self.array_latency
        if cfg.add_unit:
            m.submodules.requant = rq = Requantizer(L)

        act_lanes = data.ArrayLayout(signed(8), L)
        acc_lanes = data.ArrayLayout(signed(32), C)
        act_data = act_lanes(self.act_r.data)
        acc_old = acc_lanes(self.acc_r.data)

        state = Signal(_State)
        insn = Signal(isa.Instruction)
        finish = Signal()  # the instruction's last buffer write happens this cycle
        m.d.comb += [
            self.cmd.ready.eq(state == _State.IDLE),
            self.busy.eq(state != _State.IDLE),
            self.act_r.en.eq(1), self.wgt_r.en.eq(1), self.param_r.en.eq(1), self.acc_r.en.eq(1),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [insn.eq(self.cmd.payload), state.eq(_State.SETUP)]
        with m.If(finish):
            m.d.sync += state.eq(_State.IDLE)

        conv, pool, gap, add = insn.payload.conv, insn.payload.maxpool, insn.payload.gap, insn.payload.add

        # ---- shared per-instruction values, computed in SETUP ------------------------------------
        is_conv_op = insn.opcode == isa.Opcode.CONV
        plane = Signal(20)
        pk = Signal(range(_PLANE_BITS))    # serial_products: the in_h bit SETUP adds next
        if cfg.serial_products:
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += [plane.eq(0), pk.eq(0)]
        in_h = Mux(is_conv_op, conv.in_h, pool.in_h)
        in_w = Mux(is_conv_op, conv.in_w, pool.in_w)
        # Two set-up cycles derive per-instruction constants, one adder deep each, so the issue
        # loops below add one registered value per cycle. One multiplier per instruction, not per pixel.
        setup = state == _State.SETUP
        setup2 = state == _State.SETUP2
        with m.If(setup):
            if cfg.serial_products:
                # in_h * in_w without a multiplier: shift-and-add over in_h's bits, most
                # significant first, so SETUP lasts _PLANE_BITS cycles (conv_cycles & co. count them).
                bit = in_h.bit_select((_PLANE_BITS - 1 - pk)[:4], 1)
                m.d.sync += [plane.eq((plane << 1) + Mux(bit, in_w, 0)), pk.eq(pk + 1)]
                with m.If(pk == _PLANE_BITS - 1):
                    m.d.sync += state.eq(_State.SETUP2)
            else:
                m.d.sync += [plane.eq(in_h * in_w), state.eq(_State.SETUP2)]
            with m.If((insn.opcode != isa.Opcode.CONV) & (insn.opcode != isa.Opcode.MAXPOOL)
                      & (insn.opcode != isa.Opcode.GAP)
                      & ((insn.opcode != isa.Opcode.ADD) | (not cfg.add_unit))):
                # Not a compute opcode (the controller never sends one): drop it, never hang.
                m.d.sync += state.eq(_State.IDLE)
        with m.If(setup2):
            with m.Switch(insn.opcode):
                with m.Case(isa.Opcode.CONV):
                    m.d.sync += state.eq(_State.CONV)
                with m.Case(isa.Opcode.MAXPOOL):
                    m.d.sync += state.eq(_State.MAXPOOL)
                with m.Case(isa.Opcode.GAP):
                    m.d.sync += state.eq(_State.GAP)
                if cfg.add_unit:
                    with m.Case(isa.Opcode.ADD):
                        m.d.sync += state.eq(_State.ADD)

        def setup_reg(value, shape, name: str) -> Signal:
            """``value`` registered in SETUP (valid from SETUP2 on)."""
            reg = Signal(shape, name=name)
            with m.If(setup):
                m.d.sync += reg.eq(value)
            return reg

        def last_index(value, width: int, name: str) -> Signal:
            """``value - 1``, registered in SETUP, so loop ends are equality tests, not subtractions
            and carry chains on the issue path."""
            reg = Signal(width, name=name)
            with m.If(setup):
                m.d.sync += reg.eq(value - 1)
            return reg

        # ============================== CONV ==============================================
        k3 = conv.kernel3
        kmax = Mux(k3, 2, 0)
        cstride = Mux(conv.stride2, 2, 1)
        c_s_in_w = setup_reg(Mux(conv.stride2, conv.in_w << 1, conv.in_w), 11, "c_s_in_w")
        c_top_left = setup_reg(Mux(conv.pad_top == 2, conv.in_w << 1, Mux(conv.pad_top == 1, conv.in_w, 0))
                               + conv.pad_left, 12, "c_top_left")
        tiles = Mux(k3, (conv.cin_blocks << 3) + conv.cin_blocks, conv.cin_blocks)
        n_tiles, last_tile = setup_reg(tiles, 14, "n_tiles"), last_index(tiles, 14, "last_tile")

        pj = Signal(14)   # tile being streamed
        wj = Signal(14)   # tiles whose weights have been read
        tkx, tky = Signal(2), Signal(2)
        tile_x0, tile_y0 = Signal(signed(4)), Signal(signed(4))
        b_base, ky_base, tile_base = Signal(_ADDR), Signal(_ADDR), Signal(_ADDR)
        oy, ox = Signal(10), Signal(10)
        py, px = Signal(_COORD), Signal(_COORD)
        row_addr, addr = Signal(_ADDR), Signal(_ADDR)
        pix = Signal(20)
        since_first = Signal(range(_MIN_TILE_GAP + 1))
        d_max = max(cfg.rows + cfg.cols - 2, 0)
        drain = [Signal(range(d_max + 1), name=f"drain{i}") for i in range(2)]

        running = state == _State.CONV
        c_ow1, c_oh1 = last_index(conv.out_w, 10, "c_ow1"), last_index(conv.out_h, 10, "c_oh1")
        tile_last_pix = (ox == c_ow1) & (oy == c_oh1)
        gap_ok = (pix != 0) | (pj == 0) | (since_first == _MIN_TILE_GAP)
        c_issue = running & (pj < n_tiles) & (wj > pj) & gap_ok
        c_wload = running & (wj < n_tiles) & (wj <= pj + 1) & (Mux(wj[0], drain[1], drain[0]) == 0)
        in_range = (py >= 0) & (py < conv.in_h) & (px >= 0) & (px < conv.in_w)

        # The next tile's geometry (used when the last pixel of a tile is issued).
        nt_x0, nt_y0 = Signal(signed(4)), Signal(signed(4))
        nt_base, nt_ky_base, nt_b_base = Signal(_ADDR), Signal(_ADDR), Signal(_ADDR)
        nt_kx, nt_ky = Signal(2), Signal(2)
        m.d.comb += [nt_x0.eq(tile_x0), nt_y0.eq(tile_y0), nt_base.eq(tile_base), nt_ky_base.eq(ky_base),
                     nt_b_base.eq(b_base), nt_kx.eq(tkx), nt_ky.eq(tky)]
        with m.If(tkx != kmax):
            m.d.comb += [nt_kx.eq(tkx + 1), nt_x0.eq(tile_x0 + 1), nt_base.eq(tile_base + 1)]
        with m.Elif(tky != kmax):
            m.d.comb += [nt_kx.eq(0), nt_ky.eq(tky + 1), nt_y0.eq(tile_y0 + 1), nt_x0.eq(-conv.pad_left),
                         nt_ky_base.eq(ky_base + conv.in_w), nt_base.eq(ky_base + conv.in_w)]
        with m.Else():
            m.d.comb += [nt_kx.eq(0), nt_ky.eq(0), nt_y0.eq(-conv.pad_top), nt_x0.eq(-conv.pad_left),
                         nt_b_base.eq(b_base + plane), nt_ky_base.eq(b_base + plane),
                         nt_base.eq(b_base + plane)]

        def start_tile(base, x0, y0):
            return [oy.eq(0), ox.eq(0), py.eq(y0), px.eq(x0), row_addr.eq(base), addr.eq(base), pix.eq(0)]

        for i in range(2):
            with m.If(drain[i] != 0):
                m.d.sync += drain[i].eq(drain[i] - 1)
        with m.If(setup2):
            first_base = conv.in_addr - c_top_left
            m.d.sync += [pj.eq(0), wj.eq(0), tkx.eq(0), tky.eq(0), tile_x0.eq(-conv.pad_left),
                         tile_y0.eq(-conv.pad_top), b_base.eq(first_base), ky_base.eq(first_base),
                         tile_base.eq(first_base), since_first.eq(0), drain[0].eq(0), drain[1].eq(0),
                         *start_tile(first_base, -conv.pad_left, -conv.pad_top)]
        with m.If(c_wload):
            m.d.sync += wj.eq(wj + 1)
        with m.If(c_issue):
            with m.If(pix == 0):
                m.d.sync += since_first.eq(1)
            with m.Elif(since_first != _MIN_TILE_GAP):
                m.d.sync += since_first.eq(since_first + 1)
            with m.If(tile_last_pix):
                m.d.sync += [pj.eq(pj + 1), tkx.eq(nt_kx), tky.eq(nt_ky), tile_x0.eq(nt_x0),
                             tile_y0.eq(nt_y0), tile_base.eq(nt_base), ky_base.eq(nt_ky_base),
                             b_base.eq(nt_b_base), *start_tile(nt_base, nt_x0, nt_y0)]
                for i in range(2):
                    with m.If(pj[0] == i):
                        m.d.sync += drain[i].eq(max(d_max - 1, 0))
            with m.Else():
                m.d.sync += pix.eq(pix + 1)
                with m.If(ox == c_ow1):
                    m.d.sync += [ox.eq(0), oy.eq(oy + 1), py.eq(py + cstride), px.eq(tile_x0),
                                 row_addr.eq(row_addr + c_s_in_w), addr.eq(row_addr + c_s_in_w)]
                with m.Else():
                    m.d.sync += [ox.eq(ox + 1), px.eq(px + cstride), addr.eq(addr + cstride)]
        with m.Elif(running & (since_first != 0) & (since_first != _MIN_TILE_GAP)):
            # Keep the saturating counter moving while the next tile waits for its weights.
            m.d.sync += since_first.eq(since_first + 1)

        # Stage 1: ACT and WGT data arrive; into the array.
        meta = data.StructLayout({"valid": 1, "acc_addr": 16, "overwrite": 1, "last": 1})
        c1 = Signal(meta)
        c1_pad, c1_bank = Signal(), Signal()
        w1_valid, w1_bank = Signal(), Signal()
        m.d.sync += [
            c1.valid.eq(c_issue),
            c1.acc_addr.eq(conv.acc_addr + pix),
            c1.overwrite.eq((pj == 0) & ~conv.accumulate),
            c1.last.eq(tile_last_pix & (pj == last_tile)),
            c1_pad.eq(~in_range),
            c1_bank.eq(pj[0]),
            w1_valid.eq(c_wload),
            w1_bank.eq(wj[0]),
        ]
        m.d.comb += [
            array.a.valid.eq(c1.valid),
            array.a.payload.bank.eq(c1_bank),
            array.w.valid.eq(w1_valid),
            array.w.payload.bank.eq(w1_bank),
            array.w.payload.tile.eq(self.wgt_r.data),
            self.array_active.eq(c1.valid),
        ]
        for r in range(L):
            m.d.comb += array.a.payload.data[r].eq(Mux(c1_pad, conv.pad_value, act_data[r]))

        # Metadata waits beside the array; the ACC read is issued one cycle before the sums leave.
        delayed = c1
        for i in range(array.latency - 1):
            nxt = Signal(meta, name=f"cmeta{i}")
            m.d.sync += nxt.eq(delayed)
            delayed = nxt
        c_rd = delayed                      # cycle before the sums leave the array: read ACC
        c_out = Signal(meta)                # the sums are on array.o
        m.d.sync += c_out.eq(c_rd)
        c_wr = Signal(meta)                 # write stage
        c_wr_data = Signal(acc_lanes)
        m.d.sync += c_wr.eq(Mux(array.o.valid, c_out, 0))
        for c in range(C):
            m.d.sync += c_wr_data[c].eq(Mux(c_out.overwrite, 0, acc_old[c]) + array.o.payload[c])

        # ============================== MAXPOOL ===========================================
        p_on = state == _State.MAXPOOL
        pk1 = last_index(pool.kernel, 2, "pk1")
        p_ow1, p_oh1 = last_index(pool.out_w, 10, "p_ow1"), last_index(pool.out_h, 10, "p_oh1")
        p_b1 = last_index(pool.blocks, 9, "p_b1")
        p_s_in_w = setup_reg(Mux(pool.stride == 3, (pool.in_w << 1) + pool.in_w,
                                 Mux(pool.stride == 2, pool.in_w << 1, pool.in_w)), 12, "p_s_in_w")
        p_top_left = setup_reg(Mux(pool.pad_top == 2, pool.in_w << 1, Mux(pool.pad_top == 1, pool.in_w, 0))
                               + pool.pad_left, 12, "p_top_left")
        pb, poy, pox, pky, pkx = Signal(9), Signal(10), Signal(10), Signal(2), Signal(2)
        # Entry addresses of the window's top-left tap, all already offset by -(pad_top*in_w +
        # pad_left): of the block, of the window row, of the window, of the tap row, of the tap.
        blk_start, row_start, win, tap_row, paddr = (Signal(_ADDR, name=n) for n in
                                                     ("blk_start", "row_start", "win", "tap_row", "paddr"))
        wy0, wx0, ty, tx = (Signal(_COORD, name=n) for n in ("wy0", "wx0", "ty", "tx"))
        out_idx = Signal(16)
        p_done = Signal()
        p_issue = p_on & ~p_done
        p_last_tap = (pky == pk1) & (pkx == pk1)
        p_last = p_last_tap & (pox == p_ow1) & (poy == p_oh1) & (pb == p_b1)
        p_in_range = (ty >= 0) & (ty < pool.in_h) & (tx >= 0) & (tx < pool.in_w)
        with m.If(setup2):
            base0 = pool.in_addr - p_top_left
            m.d.sync += [pb.eq(0), poy.eq(0), pox.eq(0), pky.eq(0), pkx.eq(0), out_idx.eq(0), p_done.eq(0),
                         blk_start.eq(base0), row_start.eq(base0), win.eq(base0), tap_row.eq(base0),
                         paddr.eq(base0), wy0.eq(-pool.pad_top), wx0.eq(-pool.pad_left),
                         ty.eq(-pool.pad_top), tx.eq(-pool.pad_left)]
        with m.If(p_issue):
            with m.If(p_last_tap):
                m.d.sync += out_idx.eq(out_idx + 1)
            with m.If(pkx != pk1):
                m.d.sync += [pkx.eq(pkx + 1), paddr.eq(paddr + 1), tx.eq(tx + 1)]
            with m.Elif(pky != pk1):
                nxt = tap_row + pool.in_w
                m.d.sync += [pkx.eq(0), pky.eq(pky + 1), tap_row.eq(nxt), paddr.eq(nxt),
                             ty.eq(ty + 1), tx.eq(wx0)]
            with m.Elif(pox != p_ow1):
                nxt = win + pool.stride
                m.d.sync += [pkx.eq(0), pky.eq(0), pox.eq(pox + 1), win.eq(nxt), tap_row.eq(nxt),
                             paddr.eq(nxt), wx0.eq(wx0 + pool.stride), ty.eq(wy0), tx.eq(wx0 + pool.stride)]
            with m.Elif(poy != p_oh1):
                nxt = row_start + p_s_in_w
                m.d.sync += [pkx.eq(0), pky.eq(0), pox.eq(0), poy.eq(poy + 1), row_start.eq(nxt),
                             win.eq(nxt), tap_row.eq(nxt), paddr.eq(nxt), wy0.eq(wy0 + pool.stride),
                             wx0.eq(-pool.pad_left), ty.eq(wy0 + pool.stride), tx.eq(-pool.pad_left)]
            with m.Elif(pb != p_b1):
                nxt = blk_start + plane
                m.d.sync += [pkx.eq(0), pky.eq(0), pox.eq(0), poy.eq(0), pb.eq(pb + 1), blk_start.eq(nxt),
                             row_start.eq(nxt), win.eq(nxt), tap_row.eq(nxt), paddr.eq(nxt),
                             wy0.eq(-pool.pad_top), wx0.eq(-pool.pad_left),
                             ty.eq(-pool.pad_top), tx.eq(-pool.pad_left)]
            with m.Else():
                m.d.sync += p_done.eq(1)
        # Stage 1: running maximum; stage 2: OUT write.
        p1_valid, p1_first, p1_lasttap, p1_pad, p1_last = Signal(), Signal(), Signal(), Signal(), Signal()
        p1_out = Signal(16)
        m.d.sync += [p1_valid.eq(p_issue), p1_first.eq((pky == 0) & (pkx == 0)), p1_lasttap.eq(p_last_tap),
                     p1_pad.eq(~p_in_range), p1_last.eq(p_last), p1_out.eq(pool.out_addr + out_idx)]
        run_max = Signal(act_lanes)
        new_max = Signal(act_lanes)
        for l in range(L):
            prev = Mux(p1_first, -128, run_max[l])
            tap = Mux(p1_pad, -128, act_data[l])
            m.d.comb += new_max[l].eq(Mux(tap > prev, tap, prev))
        with m.If(p1_valid):
            m.d.sync += run_max.eq(new_max)
        p2_write, p2_last, p2_out = Signal(), Signal(), Signal(16)
        p2_data = Signal(act_lanes)
        m.d.sync += [p2_write.eq(p1_valid & p1_lasttap), p2_last.eq(p1_valid & p1_last),
                     p2_out.eq(p1_out), p2_data.eq(new_max)]

        # ============================== GAP ===============================================
        g_on = state == _State.GAP
        g_i, g_p, g_b, g_e = Signal(20), Signal(16), Signal(9), Signal(16)
        g_kb = Signal(range(max(K, 2)))
        g_done = Signal()
        g_issue = g_on & ~g_done
        g_pix1, g_b1 = last_index(gap.pixels, 16, "g_pix1"), last_index(gap.blocks, 9, "g_b1")
        g_blast = g_p == g_pix1
        g_last = g_blast & (g_b == g_b1)
        with m.If(setup):
            m.d.sync += [g_i.eq(0), g_p.eq(0), g_b.eq(0), g_e.eq(0), g_kb.eq(0), g_done.eq(0)]
        with m.If(g_issue):
            m.d.sync += g_i.eq(g_i + 1)
            with m.If(~g_blast):
                m.d.sync += g_p.eq(g_p + 1)
            with m.Else():
                m.d.sync += [g_p.eq(0), g_b.eq(g_b + 1)]
                with m.If(g_kb == K - 1):
                    m.d.sync += [g_kb.eq(0), g_e.eq(g_e + 1)]
                with m.Else():
                    m.d.sync += g_kb.eq(g_kb + 1)
                with m.If(g_last):
                    m.d.sync += g_done.eq(1)
        g1_valid, g1_first, g1_blast, g1_last = Signal(), Signal(), Signal(), Signal()
        g1_kb, g1_entry = Signal.like(g_kb), Signal(16)
        m.d.sync += [g1_valid.eq(g_issue), g1_first.eq(g_p == 0), g1_blast.eq(g_blast), g1_last.eq(g_last),
                     g1_kb.eq(g_kb), g1_entry.eq(gap.acc_addr + g_e)]
        g_run = Signal(data.ArrayLayout(signed(32), L))
        g_new = Signal(data.ArrayLayout(signed(32), L))
        for l in range(L):
            m.d.comb += g_new[l].eq(Mux(g1_first, 0, g_run[l]) + act_data[l])
        with m.If(g1_valid):
            m.d.sync += g_run.eq(g_new)
        g2_write, g2_last = Signal(), Signal()
        g2_kb, g2_entry = Signal.like(g_kb), Signal(16)
        g2_sum = Signal(data.ArrayLayout(signed(32), L))
        m.d.sync += [g2_write.eq(g1_valid & g1_blast), g2_last.eq(g1_valid & g1_last), g2_kb.eq(g1_kb),
                     g2_entry.eq(g1_entry), g2_sum.eq(g_new)]
        g2_old = Signal(data.ArrayLayout(signed(32), L))
        m.d.comb += g2_old.eq(self.acc_r.data.word_select(g2_kb, 32 * L))
        # Stage 3: the write (registered after the adder behind the ACC read port).
        g3_write, g3_last = Signal(), Signal()
        g3_kb, g3_entry = Signal.like(g_kb), Signal(16)
        g3_data = Signal(data.ArrayLayout(signed(32), L))
        m.d.sync += [g3_write.eq(g2_write), g3_last.eq(g2_last), g3_kb.eq(g2_kb), g3_entry.eq(g2_entry)]
        for l in range(L):
            m.d.sync += g3_data[l].eq(g2_sum[l] + Mux(gap.accumulate, g2_old[l], 0))

        # ============================== ADD ===============================================
        # Left out with AccelConfig.add_unit = False (the checker then rejects ADD).
        if cfg.add_unit:
            a_on = state == _State.ADD
            a_cnt1 = last_index(add.count, 16, "a_cnt1")
            a_i = Signal(16)
            a_phase = Signal()
            a_done = Signal()
            a_issue = a_on & ~a_done
            with m.If(setup):
                m.d.sync += [a_i.eq(0), a_phase.eq(0), a_done.eq(0)]
            with m.If(a_issue):
                m.d.sync += a_phase.eq(~a_phase)
                with m.If(a_phase):
                    m.d.sync += a_i.eq(a_i + 1)
                    with m.If(a_i == a_cnt1):
                        m.d.sync += a_done.eq(1)
            a1_valid, a1_phase = Signal(), Signal()
            m.d.sync += [a1_valid.eq(a_issue), a1_phase.eq(a_phase)]
            # One multiplier per lane, shared by the a and b halves (registered product), then a
            # registered sum: a*ka arrives first, b*kb completes the accumulator.
            a2_valid, a2_phase = Signal(), Signal()
            a2_prod = Signal(data.ArrayLayout(signed(24), L))
            m.d.sync += [a2_valid.eq(a1_valid), a2_phase.eq(a1_phase)]
            for l in range(L):
                m.d.sync += a2_prod[l].eq(act_data[l] * Mux(a1_phase, add.kb, add.ka))
            a3_valid = Signal()
            a3_acc = Signal(data.ArrayLayout(signed(32), L))
            m.d.sync += a3_valid.eq(a2_valid & a2_phase)
            with m.If(a2_valid):
                for l in range(L):
                    m.d.sync += a3_acc[l].eq(Mux(a2_phase, a3_acc[l], 0) + a2_prod[l])
            params = data.ArrayLayout(isa.ParamLane, C)(self.param_r.data)
            m.d.comb += [
                rq.i.valid.eq(a3_valid),
                rq.i.payload.zp_out.eq(add.zp_out),
                rq.i.payload.relu.eq(add.relu),
                rq.o.ready.eq(1),
            ]
            for l in range(L):
                m.d.comb += [
                    rq.i.payload.acc[l].eq(a3_acc[l]),
                    rq.i.payload.params[l].eq(params[l]),
                ]
            a_out = Signal(16)
            with m.If(setup):
                m.d.sync += a_out.eq(0)
            with m.If(rq.o.valid):
                m.d.sync += a_out.eq(a_out + 1)

        # ============================== shared ports ======================================
        with m.Switch(state):
            with m.Case(_State.CONV):
                m.d.comb += self.act_r.addr.eq(addr)
            with m.Case(_State.MAXPOOL):
                m.d.comb += self.act_r.addr.eq(paddr)
            with m.Case(_State.GAP):
                m.d.comb += self.act_r.addr.eq(gap.in_addr + g_i)
            if cfg.add_unit:
                with m.Case(_State.ADD):
                    m.d.comb += self.act_r.addr.eq(Mux(a_phase, add.b_addr, add.a_addr) + a_i)
        m.d.comb += [
            self.wgt_r.addr.eq(conv.wgt_addr + wj),
            self.param_r.addr.eq(add.param_addr),
            self.acc_r.addr.eq(Mux(state == _State.GAP, g1_entry, c_rd.acc_addr)),
        ]
        # ACC writes: CONV (all lanes) or GAP (one lane block); OUT writes: MAXPOOL or ADD.
        all_blocks = (1 << K) - 1
        with m.If(c_wr.valid):
            m.d.comb += [self.acc_w.en.eq(all_blocks), self.acc_w.addr.eq(c_wr.acc_addr),
                         self.acc_w.data.eq(c_wr_data), finish.eq(c_wr.last)]
        with m.Elif(g3_write):
            m.d.comb += [self.acc_w.en.eq(Const(1, K) << g3_kb), self.acc_w.addr.eq(g3_entry),
                         self.acc_w.data.eq(Cat(*([g3_data] * K))), finish.eq(g3_last)]
        with m.If(p2_write):
            m.d.comb += [self.out_w.en.eq(1), self.out_w.addr.eq(p2_out), self.out_w.data.eq(p2_data),
                         finish.eq(p2_last)]
        if cfg.add_unit:
            with m.Elif(rq.o.valid):
                m.d.comb += [self.out_w.en.eq(1), self.out_w.addr.eq(add.out_addr + a_out),
                             self.out_w.data.eq(rq.o.payload), finish.eq(a_on & (a_out == a_cnt1))]
        return m
