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
last pixel: one more than the array's contract needs for ``rows >= 2``, kept so that cycle counts
stay as they were). With ``AccelConfig.broadcast_array`` (the array's broadcast variant, ``rows <= 2``) there is no
loader: tile ``j``'s WGT entry is read with its first pixel and goes straight into the multipliers'
input registers, so only the ACC read-modify-write gap (below) spaces tiles. Sums leave the array
``LAT`` cycles after their pixel (``rows + cols + 1``; broadcast: ``rows + 1``) and are added to
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
Two activation reads per entry (``a`` then ``b``: the ACT buffer has one compute read port), from
SETUP2 on (ADD needs no set-up products) and from registered addresses. Each entry read is
registered with its weight (``ka``, then ``kb``) in front of one int8 x int16 multiplier per lane
(registered product), shared by both halves; ``a*ka`` waits in a register for ``b*kb``, and their
sum, registered, goes to the ADD's :class:`~rtl_gen.requant.Requantizer` (which adds the bias); the results are
written to OUT in order. The PARAM entry is read continuously during the ADD. With
``AccelConfig.add_lanes = rows // 2`` the requantizer has half the lanes: the bias goes into
``a*ka``'s register, the low lanes' sums enter the requantizer unregistered and the high lanes'
one cycle later, and the low half waits one cycle for the high half, so an entry is written on the
same cycle as with ``rows`` lanes (the requantizer takes a half entry per cycle, and ADD reads
two entries per output entry anyway). With ``AccelConfig.add_unit = False`` all of this is left
out (no requantizer, no products, the PARAM read port unused): the controller's checker rejects
ADD as ``BAD_OPCODE``, as ``isa.check`` does.

Cycle cost (cycles ``busy`` is high; ``D = rows + cols - 2``, ``LAT = rows + cols + 1``)
--------------------------------------------------------------------------------------------
* CONV (``T = cin_blocks*k*k`` tiles of ``N = out_h*out_w`` pixels): ``T*N + LAT + 5`` whenever
  ``N >= max(D, 3)``: no bubble at any tile switch, the array takes a pixel every cycle. Shorter
  tiles are limited by the weight double buffer (two consecutive tiles take at least ``N + D``
  cycles) and the ACC read-modify-write (3 cycles per tile); :func:`conv_cycles` gives the exact
  count in every case. With ``broadcast_array``: ``T*N + LAT + 4`` (``LAT = rows + 1``) whenever
  ``N >= 3``, shorter tiles start 3 cycles apart.
* MAXPOOL: ``blocks*out_h*out_w*kernel**2 + 4``.
* GAP: ``blocks*pixels + 5``.
* ADD: ``2*count + Requantizer.LATENCY + 5``.
* With ``AccelConfig.serial_products`` every one of these takes :func:`setup_extra` (9) cycles
  more: the plane size ``in_h*in_w`` is then computed by shift-and-add in SETUP, not on a DSP.

Multipliers: ``rows*cols`` in the array, 4 per lane of the ADD's requantizer
(``AccelConfig.add_requant_lanes``) and 1 per lane for the ADD's products (these two only with
``add_unit``), 1 for the plane size (``in_h*in_w``, once per instruction). Two set-up cycles per
instruction derive the plane size and ``stride*in_w``.

Area
----
CONV, MAXPOOL and GAP share one address walker (a nest of five loop counters; one adder serves
every level's address register, since one level steps per cycle) and one ACC write datapath.
Register widths come from the config's buffer sizes (:class:`_Widths`), relying on the bounds
that :func:`sqzhw.isa.check` (and the controller's checker) already enforce. The instruction is
not copied: at the ``cmd`` handshake each register takes the value it needs, already selected by
opcode (loop limits, pads, stride, base addresses, the weight count), so ``cmd.payload`` is read
only in the handshake cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
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
#: Bits of ``in_h``: the serial plane product (``AccelConfig.serial_products``) takes one SETUP
#: cycle per bit.
_PLANE_BITS = 10


def setup_extra(config: AccelConfig | None) -> int:
    """Extra SETUP cycles of every compute instruction: ``_PLANE_BITS - 1`` with
    ``serial_products``, else 0."""
    return _PLANE_BITS - 1 if config is not None and config.serial_products else 0


def _array_latency(config: AccelConfig) -> int:
    return config.rows + 1 if config.broadcast_array else config.rows + config.cols + 1


def conv_cycles(config: AccelConfig, cin_blocks: int, kernel3: bool, out_h: int, out_w: int) -> int:
    """Busy cycles of one CONV (exact, no stalls: the unit owns its ports)."""
    k = 3 if kernel3 else 1
    tiles, n = cin_blocks * k * k, out_h * out_w
    d = config.rows + config.cols - 2
    # Simulate the issue schedule: tile j may start once its weights are in (loaded the cycle after
    # tile j-2's last pixel + d) and 3 cycles after tile j-1 started.
    load, first, last = {}, {}, {}
    cycle = 2 + setup_extra(config)  # first run cycle (after SETUP and SETUP2): the loader reads tile 0
    if config.broadcast_array:
        # Weights come with each tile's first pixel: only the ACC read-modify-write gap limits.
        start = cycle
        for j in range(tiles):
            if j:
                start = max(start + n, start + _MIN_TILE_GAP)
        return start + n - 1 + _array_latency(config) + 3
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


class _Widths:
    """Register widths of the compute unit, derived from the config's buffer sizes.

    The unit only ever sees instructions that passed :func:`sqzhw.isa.check` (the controller's
    checker), which bounds every size by a buffer: a CONV's ``out_h*out_w <= acc_buf_entries``, a
    MAXPOOL's ``blocks*out_h*out_w <= out_buf_entries``, ``blocks*in_h*in_w`` (GAP:
    ``blocks*pixels``) ``<= act_buf_entries`` and a CONV's ``cin_blocks*k*k <= wgt_buf_tiles``.

    * ``addr``: ACT addresses are computed modulo ``2**addr`` (the ACT read port's width): a window
      tap that is read lies inside the buffer, so the wrapped sum is exact.
    * ``coord``: signed pixel coordinates, -2 up to the farthest window tap
      ``(out - 1)*stride + 2`` (or ``in_h``, which they are compared with).
    * ``levels``: ranges of the walker's loop counters ``l0, l1, l2, l3, b``.
    * ``gap_sum``: a GAP lane's running sum of at most ``act_buf_entries`` int8 values.
    """

    def __init__(self, config: AccelConfig):
        specs = buffer_specs(config)
        self.addr = specs["act"].addr_width
        self.acc = specs["acc"].addr_width
        self.wgt = specs["wgt"].addr_width
        E = config.act_buf_entries
        n_conv = min(1023, config.acc_buf_entries)   # out_h, out_w of a CONV (10-bit fields)
        n_pool = min(1023, config.out_buf_entries)   # out_h, out_w of a MAXPOOL
        far = max(2 * (n_conv - 1) + 2, 3 * (n_pool - 1) + 2, min(1023, E))
        self.coord = signed(far.bit_length() + 1)
        #: ``out*stride`` (the output part of a coordinate)
        self.coord_out = unsigned(max(2 * (n_conv - 1), 3 * (n_pool - 1), 1).bit_length())
        self.levels = (max(n_conv, 3, min(E, 65535)), max(n_conv, 3), max(n_pool, 3), max(n_pool, 3),
                       max(2, min(511, E)))
        self.gap_sum = min(32, Shape.cast(range(-128 * E, 127 * E + 1)).width)
        #: ADD's entry counters (count <= act_buf_entries).
        self.addr_span = Shape.cast(range(E)).width


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
        m.submodules.array = array = SystolicArray(cfg.rows, cfg.cols, cfg.broadcast_array)
        assert array.latency == self.array_latency
        if cfg.add_unit:
            # Requantized lanes of one ADD output entry, and their write strobe (ADD section).
            RL = cfg.add_requant_lanes
            m.submodules.requant = rq = Requantizer(RL, stall=False, per_vector=False)
            a_out_valid, a_out = Signal(), Signal(data.ArrayLayout(signed(8), L))

        act_lanes = data.ArrayLayout(signed(8), L)
        acc_lanes = data.ArrayLayout(signed(32), C)
        act_data = act_lanes(self.act_r.data)
        acc_old = acc_lanes(self.acc_r.data)

        state = Signal(_State)
        finish = Signal()  # the instruction's last buffer write happens this cycle
        m.d.comb += [
            self.cmd.ready.eq(state == _State.IDLE),
            self.busy.eq(state != _State.IDLE),
            self.act_r.en.eq(1), self.wgt_r.en.eq(1), self.param_r.en.eq(1), self.acc_r.en.eq(1),
        ]
        take = self.cmd.valid & self.cmd.ready
        with m.If(take):
            m.d.sync += state.eq(_State.SETUP)
        with m.If(finish):
            m.d.sync += state.eq(_State.IDLE)

        # ---- per-instruction values, latched at the handshake ------------------------------------
        # The instruction is not copied: each register below takes the value the unit uses, already
        # selected by opcode (and cut to the config's widths) from the controller's register, so the
        # opcode muxes sit in front of flip-flops (one logic cell per bit) and the unused fields
        # cost nothing. CONV and MAXPOOL share the offsets of in_addr, in_h, in_w,
        # cin_blocks/blocks, out_h, out_w (and GAP those of in_addr).
        w = _Widths(cfg)
        new = self.cmd.payload
        n_conv, n_pool, n_gap = (new.payload.conv, new.payload.maxpool, new.payload.gap)
        t_conv = new.opcode == isa.Opcode.CONV
        t_pool = new.opcode == isa.Opcode.MAXPOOL
        t_gap = new.opcode == isa.Opcode.GAP
        t_add = (new.opcode == isa.Opcode.ADD) if cfg.add_unit else Const(0)

        def latch(value, shape, name: str) -> Signal:
            reg = Signal(shape, name=name)
            with m.If(take):
                m.d.sync += reg.eq(value)
            return reg

        is_conv = latch(t_conv, 1, "is_conv")
        is_pool = latch(t_pool, 1, "is_pool")
        is_gap = latch(t_gap, 1, "is_gap")
        is_add = latch(t_add, 1, "is_add")
        in_h = latch(n_conv.in_h, 10, "in_h")
        in_w = latch(n_conv.in_w, 10, "in_w")
        pad_top = latch(Mux(t_conv, n_conv.pad_top, n_pool.pad_top), 2, "pad_top")
        pad_left = latch(Mux(t_conv, n_conv.pad_left, n_pool.pad_left), 2, "pad_left")
        stride = latch(Mux(t_conv, Cat(~n_conv.stride2, n_conv.stride2), n_pool.stride), 2, "stride")  # 1 to 3
        in_addr = latch(n_conv.in_addr, w.addr, "in_addr")
        pad_value = latch(n_conv.pad_value, signed(8), "pad_value")
        acc_base = latch(Mux(t_gap, n_gap.acc_addr, n_conv.acc_addr), w.acc, "acc_base")
        accumulate = latch(Mux(t_gap, n_gap.accumulate, n_conv.accumulate), 1, "accumulate")
        if cfg.add_unit:
            add = latch(new.payload.add, isa.AddFields, "add")
        # Loop limits of the window walker (see below), latched per level at the field's used width
        # (legal fields fit it); a loop ends when the incremented counter equals its limit.
        k_new = Mux(n_conv.kernel3, 3, 1)
        lim_vals = [Mux(t_conv, n_conv.out_w, Mux(t_pool, n_pool.kernel, n_gap.pixels)),
                    Mux(t_conv, n_conv.out_h, Mux(t_pool, n_pool.kernel, 1)),
                    Mux(t_conv, k_new, Mux(t_pool, n_pool.out_w, 1)),
                    Mux(t_conv, k_new, Mux(t_pool, n_pool.out_h, 1)),
                    Mux(t_gap, n_gap.blocks, n_conv.cin_blocks)]
        lims = [latch(v, Shape.cast(range(n)).width + 1, f"lim{i}")
                for i, (v, n) in enumerate(zip(lim_vals, w.levels))]
        plane = Signal(w.addr)   # in_h*in_w (GAP: pixels), modulo the ACT address range
        k_reg = Signal(w.addr)   # stride*in_w (MAXPOOL stride: 1 to 3)
        pk = Signal(range(_PLANE_BITS))    # serial_products: the in_h bit SETUP adds next
        if cfg.serial_products:
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += [plane.eq(0), pk.eq(0)]
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
            m.d.sync += k_reg.eq(Mux(stride[1], in_w << 1, 0) + Mux(stride[0], in_w, 0))
            with m.If(~is_conv & ~is_pool & ~is_gap & ~is_add):
                # Not a compute opcode (the controller never sends one): drop it, never hang.
                m.d.sync += state.eq(_State.IDLE)
        with m.If(setup2):
            with m.If(is_gap):
                m.d.sync += plane.eq(lims[0])   # GAP: pixels
            with m.If(is_conv):
                m.d.sync += state.eq(_State.CONV)
            with m.If(is_pool):
                m.d.sync += state.eq(_State.MAXPOOL)
            with m.If(is_gap):
                m.d.sync += state.eq(_State.GAP)
            with m.If(is_add):
                m.d.sync += state.eq(_State.ADD)

        # ============================== the window walker =================================
        # CONV, MAXPOOL and GAP walk the same nest of loops, b > l3 > l2 > l1 > l0, one ACT entry
        # per step:       l3    l2    l1    l0
        #   CONV          ky    kx    oy    ox     (a weight tile streams all pixels: l1, l0)
        #   MAXPOOL       oy    ox    ky    kx     (a window's taps: l1, l0)
        #   GAP           -     -     -     pixel
        # An l0/l2 step moves x (and the address) by its stride, an l1/l3 step moves y by its
        # stride and the address by stride*in_w, a b step moves the address by a plane. Each level
        # keeps the address (a1..a4) where its current iteration started; one level steps per
        # cycle, so one adder serves them all (a register just loads the sum).
        s_inner = Mux(is_conv, stride, 1)        # stride of l0 and l1
        s_outer = Mux(is_conv, 1, stride)        # stride of l2 and l3
        row_inner = Mux(is_conv, k_reg, in_w)    # address step of l1
        row_outer = Mux(is_conv, in_w, k_reg)    # address step of l3
        cnt = [Signal(range(n), name=f"l{i}") for i, n in enumerate(w.levels)]
        cnt[4].name = "lb"
        last = [(c + 1) == lim for c, lim in zip(cnt, lims)]
        inner_last = [Const(1)]                  # inner_last[i]: every level below i is at its end
        for i in range(4):
            inner_last.append(inner_last[-1] & last[i])
        final = inner_last[4] & last[4]
        step = [inner_last[i] & ~last[i] for i in range(5)]   # level i steps (one-hot, or none)
        addr, a1, a2, a3, a4 = (Signal(w.addr, name=n) for n in ("addr", "a1", "a2", "a3", "a4"))
        xo, yo = Signal(w.coord_out, name="xo"), Signal(w.coord_out, name="yo")
        kx = Mux(is_conv, cnt[2][:2], cnt[0][:2])
        ky = Mux(is_conv, cnt[3][:2], cnt[1][:2])
        x = Signal(w.coord)
        y = Signal(w.coord)
        m.d.comb += [x.eq(xo + (kx - pad_left)), y.eq(yo + (ky - pad_top))]
        in_range = (y >= 0) & (y < in_h) & (x >= 0) & (x < in_w)
        first_step = (cnt[0] == 0) & (cnt[1] == 0)   # CONV: first pixel of a tile; MAXPOOL: first tap
        done = Signal()     # the walk's last step has been issued
        advance = Signal()  # take one step this cycle
        moves = advance & ~final
        a_sum = Signal(w.addr)
        with m.If(setup2):
            # The first tap: in_addr - (pad_top*in_w + pad_left) (GAP: in_addr).
            top_left = Mux(is_gap, 0, Mux(pad_top == 2, in_w << 1, Mux(pad_top == 1, in_w, 0)) + pad_left)
            m.d.comb += a_sum.eq(in_addr - top_left)
        with m.Elif(step[0]):
            m.d.comb += a_sum.eq(addr + s_inner)
        with m.Elif(step[1]):
            m.d.comb += a_sum.eq(a1 + row_inner)
        with m.Elif(step[2]):
            m.d.comb += a_sum.eq(a2 + s_outer)
        with m.Elif(step[3]):
            m.d.comb += a_sum.eq(a3 + row_outer)
        with m.Else():
            m.d.comb += a_sum.eq(a4 + plane)
        for i, (a, c) in enumerate(zip((addr, a1, a2, a3, a4), cnt)):
            with m.If(setup2 | (moves & inner_last[i])):   # a level >= i steps
                m.d.sync += a.eq(a_sum)
            with m.If(setup2 | (moves & (inner_last[i + 1] if i < 4 else 0))):   # a level > i steps
                m.d.sync += c.eq(0)
            with m.Elif(advance & step[i]):
                m.d.sync += c.eq(c + 1)
        # Pixel coordinates: y = oy*s + ky - pad_top, x = ox*s + kx - pad_left. The output part
        # (yo = oy*s, xo = ox*s) is a register that its level steps by s and a higher level
        # clears; the kernel part is the small ky / kx counter (CONV: l3 / l2, MAXPOOL: l1 / l0).
        o_x_step = Mux(is_conv, step[0], step[2])
        o_x_clear = Mux(is_conv, inner_last[1], inner_last[3])
        o_y_step = Mux(is_conv, step[1], step[3])
        o_y_clear = Mux(is_conv, inner_last[2], inner_last[4])
        with m.If(setup2):
            m.d.sync += [done.eq(0), xo.eq(0), yo.eq(0)]
        with m.Elif(advance):
            with m.If(final):
                m.d.sync += done.eq(1)
            with m.If(~final & o_x_clear):
                m.d.sync += xo.eq(0)
            with m.Elif(o_x_step):
                m.d.sync += xo.eq(xo + stride)
            with m.If(~final & o_y_clear):
                m.d.sync += yo.eq(0)
            with m.Elif(o_y_step):
                m.d.sync += yo.eq(yo + stride)

        # ============================== CONV ==============================================
        # Tile j streams once weight tile j is in bank j % 2: ``ahead`` = tiles loaded - tiles
        # issued (0 to 2), so the tile index itself is never needed (broadcast_array: no banks,
        # waddr is the tile being streamed).
        running = state == _State.CONV
        waddr = Signal(w.wgt)                            # WGT entry read next
        first_tile = Signal()
        since_first = Signal(range(_MIN_TILE_GAP + 1))
        tile_last_pix = last[0] & last[1]
        gap_ok = ~first_step | first_tile | (since_first == _MIN_TILE_GAP)
        with m.If(take):
            m.d.sync += waddr.eq(n_conv.wgt_addr)
        with m.If(setup2):
            m.d.sync += [first_tile.eq(1), since_first.eq(0)]
        if cfg.broadcast_array:
            # The tile's weights are read with its first pixel and go straight into the array's
            # multiplier registers (SystolicArray broadcast variant): no loader, no banks.
            c_issue = running & ~done & gap_ok
            with m.If(c_issue & tile_last_pix):
                m.d.sync += [waddr.eq(waddr + 1), first_tile.eq(0)]
        else:
            w_left = Signal(range(cfg.wgt_buf_tiles + 1))   # weight tiles still to load
            ahead = Signal(2)
            pbank = Signal()        # bank of the tile being streamed
            d_max = max(cfg.rows + cfg.cols - 2, 0)
            drain = [Signal(range(d_max + 1), name=f"drain{i}") for i in range(2)]
            c_issue = running & ~done & (ahead != 0) & gap_ok
            wbank = pbank ^ ahead[0]
            c_wload = running & (w_left != 0) & (ahead != 2) & (Mux(wbank, drain[1], drain[0]) == 0)
            for i in range(2):
                with m.If(drain[i] != 0):
                    m.d.sync += drain[i].eq(drain[i] - 1)
            with m.If(take):   # the loader only runs in CONV, after SETUP
                m.d.sync += w_left.eq(Mux(n_conv.kernel3, (n_conv.cin_blocks << 3) + n_conv.cin_blocks,
                                          n_conv.cin_blocks))
            with m.If(setup2):
                m.d.sync += [ahead.eq(0), pbank.eq(0), drain[0].eq(0), drain[1].eq(0)]
            with m.If(c_wload):
                m.d.sync += [w_left.eq(w_left - 1), waddr.eq(waddr + 1)]
            with m.If(c_issue & tile_last_pix):
                m.d.sync += [pbank.eq(~pbank), first_tile.eq(0), ahead.eq(ahead + c_wload - 1)]
                for i in range(2):
                    with m.If(pbank == i):
                        m.d.sync += drain[i].eq(max(d_max - 1, 0))
            with m.Else():
                m.d.sync += ahead.eq(ahead + c_wload)
        with m.If(c_issue):
            with m.If(first_step):
                m.d.sync += since_first.eq(1)
            with m.Elif(since_first != _MIN_TILE_GAP):
                m.d.sync += since_first.eq(since_first + 1)
        with m.Elif(running & (since_first != 0) & (since_first != _MIN_TILE_GAP)):
            # Keep the saturating counter moving while the next tile waits.
            m.d.sync += since_first.eq(since_first + 1)

        # Stage 1: ACT and WGT data arrive; into the array.
        meta = data.StructLayout({"valid": 1, "first": 1, "overwrite": 1, "last": 1})
        c1 = Signal(meta)
        pad1 = Signal()
        m.d.sync += [
            c1.valid.eq(c_issue),
            c1.first.eq(first_step),
            c1.overwrite.eq(first_tile & ~accumulate),
            c1.last.eq(final),
            pad1.eq(~in_range),
        ]
        m.d.comb += [
            array.a.valid.eq(c1.valid),
            array.w.payload.tile.eq(self.wgt_r.data),
            self.array_active.eq(c1.valid),
        ]
        if cfg.broadcast_array:
            # A tile's first pixel brings its weights (c1.valid: only CONV pixels are valid).
            m.d.comb += array.w.valid.eq(c1.valid & c1.first)
        else:
            c1_bank, w1_valid, w1_bank = Signal(), Signal(), Signal()
            m.d.sync += [c1_bank.eq(pbank), w1_valid.eq(c_wload), w1_bank.eq(wbank)]
            m.d.comb += [
                array.a.payload.bank.eq(c1_bank),
                array.w.valid.eq(w1_valid),
                array.w.payload.bank.eq(w1_bank),
            ]
        for r in range(L):
            m.d.comb += array.a.payload.data[r].eq(Mux(pad1, pad_value, act_data[r]))

        # Metadata waits beside the array; the ACC read is issued one cycle before the sums leave.
        # Sums leave in pixel order, so the ACC address is counted there (from acc_addr at each
        # tile's first pixel) instead of travelling with them.
        delayed = c1
        for i in range(array.latency - 1):
            nxt = Signal(meta, name=f"cmeta{i}")
            m.d.sync += nxt.eq(delayed)
            delayed = nxt
        c_rd = delayed                      # cycle before the sums leave the array: read ACC
        c_out = Signal(meta)                # the sums are on array.o
        m.d.sync += c_out.eq(c_rd)

        # ============================== MAXPOOL ===========================================
        p_on = state == _State.MAXPOOL
        p_issue = p_on & ~done
        # Stage 1: the ACT entry arrives and is registered (act_q: the ACT block RAMs can sit far
        # from this logic, and their unregistered output is slow); stage 2: running maximum, and
        # at a window's last tap the OUT write of that maximum, straight from the comparison.
        p1_valid, p1_first, p1_lasttap, p1_last = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [p1_valid.eq(p_issue), p1_first.eq(first_step), p1_lasttap.eq(last[0] & last[1]),
                     p1_last.eq(final)]
        act_q = Signal(act_lanes, reset_less=True)
        p2_valid, p2_first, p2_pad, p2_lasttap, p2_final = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [act_q.eq(act_data), p2_valid.eq(p1_valid), p2_first.eq(p1_first), p2_pad.eq(pad1),
                     p2_lasttap.eq(p1_lasttap), p2_final.eq(p1_last)]
        run_max = Signal(act_lanes)
        new_max = Signal(act_lanes)
        for l in range(L):
            # -128 is max's identity: a padded tap keeps the running value, a first tap replaces it.
            better = ~p2_pad & (p2_first | (act_q[l] > run_max[l]))
            keep = Mux(p2_first, -128, run_max[l])
            m.d.comb += new_max[l].eq(Mux(better, act_q[l], keep))
        with m.If(p2_valid):
            m.d.sync += run_max.eq(new_max)
        p2_write, p2_last = Signal(), Signal()
        m.d.comb += [p2_write.eq(p2_valid & p2_lasttap), p2_last.eq(p2_valid & p2_final)]

        # ============================== GAP ===============================================
        g_on = state == _State.GAP
        g_issue = g_on & ~done
        g_kb = Signal(range(max(K, 2)))      # lane block of the current block
        first_blk = Signal()                 # the block being read is the instruction's first
        with m.If(setup2):
            m.d.sync += [g_kb.eq(0), first_blk.eq(1)]
        with m.If(g_issue & last[0]):
            m.d.sync += [g_kb.eq(Mux(g_kb == K - 1, 0, g_kb + 1)), first_blk.eq(0)]
        g1_valid, g1_first, g1_blast, g1_last, g1_firstblk = Signal(), Signal(), Signal(), Signal(), Signal()
        g1_kb = Signal.like(g_kb)
        m.d.sync += [g1_valid.eq(g_issue), g1_first.eq(cnt[0] == 0), g1_blast.eq(last[0]), g1_last.eq(final),
                     g1_kb.eq(g_kb), g1_firstblk.eq(first_blk)]
        # Running sums are only as wide as pixels*128 needs (pixels <= act_buf_entries); the ACC
        # update below sign-extends them and wraps modulo 2**32 like the golden model.
        g_run = Signal(data.ArrayLayout(signed(w.gap_sum), L))
        with m.If(g1_valid):
            for l in range(L):
                # The select after the adder shares the sum bit's LUT (see the ACC update below).
                m.d.sync += g_run[l].eq(Mux(g1_first, act_data[l], g_run[l] + act_data[l]))
        # Stage 2: the ACC entry is on the read port and g_run holds the block's sum (the next
        # block's first entry only replaces it at the end of this cycle).
        g2_write, g2_last = Signal(), Signal()
        g2_kb = Signal.like(g_kb)
        m.d.sync += [g2_write.eq(g1_valid & g1_blast), g2_last.eq(g1_valid & g1_last), g2_kb.eq(g1_kb)]

        # ============================== ACC read-modify-write (CONV and GAP) ==============
        # The ACC read address: acc_addr at a CONV tile's first pixel / GAP's first block, else
        # the entry after the previous one (GAP: after the entry's last lane block).
        r_next = Signal(w.acc)
        r_first = Mux(g_on, g1_firstblk, c_rd.first)
        r_addr = Mux(r_first, acc_base, r_next)
        with m.If(Mux(g_on, g1_valid & g1_blast, c_rd.valid)):
            m.d.sync += r_next.eq(r_addr + Mux(g_on, g1_kb == K - 1, 1))
        o_addr, wr_addr = Signal(w.acc), Signal(w.acc)
        m.d.sync += [o_addr.eq(r_addr), wr_addr.eq(o_addr)]
        # One adder per lane for both: CONV adds the sums to the old entry (or 0 when it
        # overwrites), GAP adds the block's sum to every lane block (only one is written).
        wr_valid, wr_last = Signal(), Signal()
        wr_en = Signal(K)
        wr_data = Signal(acc_lanes)
        all_blocks = (1 << K) - 1
        zero_old = Mux(g_on, ~accumulate, c_out.overwrite)
        for c in range(C):
            # Select after the adder, not before: on iCE40 the carry chain takes the raw operands
            # and the select shares the sum bit's LUT (zero-gating acc_old would cost a LUT a bit).
            new_c = Signal(signed(32), name=f"new{c}")
            m.d.comb += new_c.eq(Mux(g_on, g_run[c % L], array.o.payload[c]))
            m.d.sync += wr_data[c].eq(Mux(zero_old, new_c, acc_old[c] + new_c))
        m.d.sync += [wr_valid.eq(Mux(g_on, g2_write, c_out.valid)),   # = array.o.valid
                     wr_last.eq(Mux(g_on, g2_last, c_out.last)),
                     wr_en.eq(Mux(g_on, Const(1, K) << g2_kb, all_blocks))]

        m.d.comb += advance.eq(c_issue | p_issue | g_issue)

        def last_index(value, width: int, name: str) -> Signal:
            """``value - 1``, registered in SETUP, so the loop end is an equality test."""
            reg = Signal(width, name=name)
            with m.If(setup):
                m.d.sync += reg.eq(value - 1)
            return reg

        # ============================== ADD ===============================================
        # Left out with AccelConfig.add_unit = False (the checker then rejects ADD).
        # The OUT entry written next (MAXPOOL, ADD): out_addr at the handshake, then counted.
        o_ptr = Signal(buffer_specs(cfg)["out"].addr_width)
        with m.If(take):
            m.d.sync += o_ptr.eq(Mux(t_pool, n_pool.out_addr, new.payload.add.out_addr)
                                 if cfg.add_unit else n_pool.out_addr)
        with m.If(self.out_w.en):
            m.d.sync += o_ptr.eq(o_ptr + 1)
        if cfg.add_unit:
            o_cnt = Signal(range(cfg.out_buf_entries))   # OUT entries an ADD has written
            with m.If(setup):
                m.d.sync += o_cnt.eq(0)
            with m.If(self.out_w.en):
                m.d.sync += o_cnt.eq(o_cnt + 1)
            a_on = state == _State.ADD
            a_cnt1 = last_index(add.count, w.addr_span, "a_cnt1")
            a_i = Signal(w.addr_span)
            a_phase = Signal()
            a_done = Signal()
            # Reads start in SETUP2 (ADD needs no set-up products): that cycle pays for the
            # operand register in front of the multipliers below.
            a_issue = (a_on | (setup2 & is_add)) & ~a_done
            # The ACT address is a register (a_rd), so no adder sits in front of the buffer's
            # address pins: a_ptr / b_ptr are the next a and b entries.
            a_rd, a_ptr, b_ptr = (Signal(w.addr, name=n) for n in ("a_rd", "a_ptr", "b_ptr"))
            with m.If(setup):
                m.d.sync += [a_i.eq(0), a_phase.eq(0), a_done.eq(0),
                             a_rd.eq(add.a_addr), a_ptr.eq(add.a_addr + 1), b_ptr.eq(add.b_addr)]
            with m.If(a_issue):
                m.d.sync += a_phase.eq(~a_phase)
                with m.If(a_phase):
                    m.d.sync += [a_i.eq(a_i + 1), a_rd.eq(a_ptr), a_ptr.eq(a_ptr + 1)]
                    with m.If(a_i == a_cnt1):
                        m.d.sync += a_done.eq(1)
                with m.Else():
                    m.d.sync += [a_rd.eq(b_ptr), b_ptr.eq(b_ptr + 1)]
            # 1: the entry is on the read port; 2: it and its weight (ka, then kb) registered (the
            # multipliers' input registers); 3: one int8 x int16 product per lane, registered,
            # shared by the a and b halves; 4: a*ka (+ bias with a half-width requantizer) waits
            # in a_part for b*kb.
            a1_valid, a1_phase = Signal(), Signal()
            a2_valid, a2_phase, a3_valid, a3_phase = Signal(), Signal(), Signal(), Signal()
            a2_x = Signal(act_lanes)
            a2_k = Signal(signed(16))
            a3_prod = Signal(data.ArrayLayout(signed(24), L))
            a_part = Signal(data.ArrayLayout(signed(32), L))
            m.d.sync += [a1_valid.eq(a_issue), a1_phase.eq(a_phase),
                         a2_valid.eq(a1_valid), a2_phase.eq(a1_phase), a2_x.eq(act_data),
                         a2_k.eq(Mux(a1_phase, add.kb, add.ka)),
                         a3_valid.eq(a2_valid), a3_phase.eq(a2_phase)]
            params = data.ArrayLayout(isa.ParamLane, C)(self.param_r.data)
            halves = L // RL
            for l in range(L):
                m.d.sync += a3_prod[l].eq(a2_x[l] * a2_k)
                with m.If(a3_valid & ~a3_phase):
                    m.d.sync += a_part[l].eq(a3_prod[l] + (params[l].bias if halves == 2 else 0))
            ab_sum = [Signal(signed(32), name=f"ab_sum{l}") for l in range(L)]
            m.d.comb += [ab_sum[l].eq(a_part[l] + a3_prod[l]) for l in range(L)]
            b_in = a3_valid & a3_phase          # b*kb is in a3_prod: the entry's sums are complete
            m.d.comb += [
                rq.i.payload.zp_out.eq(add.zp_out),   # per_vector=False: held during the ADD
                rq.i.payload.relu.eq(add.relu),
                rq.o.ready.eq(1),
            ]
            if halves == 1:
                # 5: the sums, registered; the requantizer adds the bias.
                a4_valid = Signal()
                a4_acc = Signal(data.ArrayLayout(signed(32), L))
                m.d.sync += [a4_valid.eq(b_in)] + [a4_acc[l].eq(ab_sum[l]) for l in range(L)]
                m.d.comb += rq.i.valid.eq(a4_valid)
                for l in range(L):
                    m.d.comb += [rq.i.payload.acc[l].eq(a4_acc[l]), rq.i.payload.params[l].eq(params[l])]
                m.d.comb += [a_out_valid.eq(rq.o.valid), a_out.eq(rq.o.payload)]
            else:
                # Half-width requantizer: the low lanes' sums go in at once (their bias is in
                # a_part), the high lanes' a cycle later from a_hold, so the entry leaves it on the
                # same cycle as a full-width one would: the low half waits one cycle in a_lo.
                a_hold = Signal(data.ArrayLayout(signed(32), RL))
                hi_in = Signal()
                m.d.sync += [hi_in.eq(b_in)] + [a_hold[k].eq(ab_sum[RL + k]) for k in range(RL)]
                m.d.comb += rq.i.valid.eq(b_in | hi_in)
                for k in range(RL):
                    hi, lo, p = params[RL + k], params[k], rq.i.payload.params[k]
                    m.d.comb += [
                        rq.i.payload.acc[k].eq(Mux(hi_in, a_hold[k], ab_sum[k])),
                        p.bias.eq(0),
                        p.multiplier.eq(Mux(hi_in, hi.multiplier, lo.multiplier)),
                        p.shift.eq(Mux(hi_in, hi.shift, lo.shift)),
                    ]
                o_hi = Signal()                 # the requantizer's next output is a high half
                a_lo = Signal(data.ArrayLayout(signed(8), RL))
                with m.If(setup):
                    m.d.sync += o_hi.eq(0)
                with m.If(rq.o.valid):
                    m.d.sync += [o_hi.eq(~o_hi), a_lo.eq(rq.o.payload)]
                m.d.comb += [a_out_valid.eq(rq.o.valid & o_hi), a_out.eq(Cat(a_lo, rq.o.payload))]

        # ============================== shared ports ======================================
        m.d.comb += self.act_r.addr.eq(addr)
        if cfg.add_unit:
            with m.If(is_add):
                m.d.comb += self.act_r.addr.eq(a_rd)
        m.d.comb += [
            self.wgt_r.addr.eq(waddr),
            self.param_r.addr.eq(add.param_addr if cfg.add_unit else 0),
            self.acc_r.addr.eq(r_addr),
        ]
        # ACC writes: CONV (all lanes) or GAP (one lane block); OUT writes: MAXPOOL or ADD.
        with m.If(wr_valid):
            m.d.comb += [self.acc_w.en.eq(wr_en), self.acc_w.addr.eq(wr_addr),
                         self.acc_w.data.eq(wr_data), finish.eq(wr_last)]
        with m.If(p2_write):
            m.d.comb += [self.out_w.en.eq(1), self.out_w.addr.eq(o_ptr),
                         self.out_w.data.eq(new_max), finish.eq(p2_last)]
        if cfg.add_unit:
            with m.Elif(a_out_valid):
                m.d.comb += [self.out_w.en.eq(1), self.out_w.addr.eq(o_ptr),
                             self.out_w.data.eq(a_out), finish.eq(a_on & (o_cnt == a_cnt1))]
        return m
