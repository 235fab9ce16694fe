"""The weight-stationary systolic array of int8 x int8 MACs.

``rows x cols`` processing elements; PE ``(r, c)`` holds two weights (banks 0 and 1) for input lane
``r`` and output lane ``c``. Activations enter from the left, row ``r`` delayed by ``r`` cycles (the
skew), and move one PE to the right per cycle together with a bank-select bit; partial sums move one
PE down per cycle; the bottom row's sums are delayed ``cols - 1 - c`` cycles (the de-skew) so that
all ``cols`` sums of one activation vector leave together::

    o[c] = sum over r of a[r] * W[bank][r][c]

PE pipeline (what yosys maps onto one ECP5 ``MULT18X18D`` with input and output registers)::

    a_reg  <= a from the left          w_reg <= bank ? w1 : w0      (input registers)
    prod   <= a_reg * w_reg                                          (output register)
    psum   <= psum from above + prod

Timing contract (cycles are clock edges; "at cycle t" = presented during cycle t):

* an activation vector at cycle ``t`` gives its sums on ``o`` at cycle ``t + LATENCY`` with
  ``LATENCY = rows + cols + 1``; the array never stalls (``a`` and ``o`` are always ready), so
  bubbles (``a.valid = 0``) simply travel through;
* PE ``(r, c)`` reads its weight bank at cycle ``t + r + c`` for the vector of cycle ``t``;
* a tile presented on ``w`` at cycle ``y`` replaces bank ``w.bank`` of row 0's PEs at the end of
  cycle ``y`` and of every other row's PEs at the end of cycle ``y + 1`` (rows ``>= 1`` load from
  registered copies of the tile row and of the load enables, so that no enable net reaches more
  than one row). So the tile may be loaded at cycle ``y`` if ``y <= t_first - 1`` (``t_first``: the
  first vector that uses the new tile; PE ``(0, 0)`` reads it at ``t_first``, rows ``>= 1`` at
  ``t_first + 1`` or later) and ``y >= t_last + max(cols - 1, rows + cols - 3)`` (``t_last``: the
  last vector that uses the old tile of that bank; row 0 reads it up to ``t_last + cols - 1``, the
  last row up to ``t_last + rows + cols - 2``). With double buffering, a tile switch costs no bubble
  when the tile in between streams at least :attr:`SystolicArray.min_tile_cycles`
  ``= max(cols - 1, rows + cols - 3)`` vectors (the compute unit waits ``rows + cols - 2``, one
  cycle more than needed).

Broadcast variant (``SystolicArray(rows, cols, broadcast=True)``, ``rows <= 2``, for iCE40
``SB_MAC16`` DSPs; ``AccelConfig.broadcast_array``): row ``r``'s activation goes to every PE of the
row at once (no skew), row 0's registered products feed row 1's adder directly (no partial-sum
register in row 0), and each PE has one weight, in the multiplier's input register: a tile on
``w`` at cycle ``t`` (``w.bank`` is ignored) is used by the vector of cycle ``t`` and every later
one. So ``LATENCY = rows + 1``, all ``cols`` sums leave together without a de-skew, and a tile
switch never costs a bubble (:attr:`SystolicArray.min_tile_cycles` ``= 0``)::

    a_reg <= a          w_reg <= w if w.valid else w_reg               (input registers)
    prod  <= a_reg * w_reg                                             (multiplier register)
    o     <= prod[0][c] + prod[1][c]   (rows = 2; rows = 1: o = prod)  (output register)

Partial sums are ``psum_bits`` wide (enough for ``rows`` products of int8 x int8, proven from the
operand ranges below), sign-extended to int32 at the output.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SystolicArray", "tile_layout", "REPLICA_ATTR", "KEEP_REPLICAS"]

#: Attribute of registers that are deliberate copies of one another (the per-row weight load
#: enables): they exist to split a high-fanout net, so synthesis must not merge them back.
REPLICA_ATTR = "sqzhw_replica"
#: Yosys command (run right after reading the design, before ``synth_*``) that marks the flip-flop
#: cells driving :data:`REPLICA_ATTR` wires ``keep``: ``opt_merge`` merges identical cells unless
#: both are ``keep``, and Amaranth puts a Signal's attributes on the wire only.
KEEP_REPLICAS = f"setattr -set keep 1 a:{REPLICA_ATTR} %ci1:+$dff[Q] t:$dff %i"

#: Extreme int8 x int8 products.
_PROD_MIN, _PROD_MAX = 127 * -128, -128 * -128


def tile_layout(rows: int, cols: int) -> data.ArrayLayout:
    """A weight tile: ``tile[r][c]`` (bits ``8*(r*cols + c)``) weighs input lane ``r`` into output
    lane ``c``; the bit layout of one WGT buffer entry."""
    return data.ArrayLayout(data.ArrayLayout(signed(8), cols), rows)


class SystolicArray(wiring.Component):
    """``rows x cols`` weight-stationary int8 systolic array with double-buffered weights.

    Parameters
    ----------
    rows : int
        Input lanes (activation vector width).
    cols : int
        Output lanes (sums per vector).
    broadcast : bool
        The broadcast variant of the module docstring (``rows <= 2``).

    Members
    -------
    a : ``In(stream.Signature(StructLayout({"data": ArrayLayout(signed(8), rows), "bank": 1}),
        always_ready=True))``
        Activation vectors; ``bank`` selects the weight bank the vector is multiplied with.
    w : ``In(stream.Signature(StructLayout({"tile": tile_layout(rows, cols), "bank": 1}),
        always_ready=True))``
        Weight tile loads into bank ``bank`` of every PE (see the module docstring for when).
    o : ``Out(stream.Signature(ArrayLayout(signed(32), cols), always_ready=True))``
        The sums of each valid input vector, :attr:`latency` cycles later, in input order.
    """

    def __init__(self, rows: int, cols: int, broadcast: bool = False):
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"SystolicArray: {name} must be a positive integer, got {value!r}")
        if broadcast and rows > 2:
            raise ValueError(f"SystolicArray: broadcast needs rows <= 2, got {rows}")
        self.rows, self.cols, self.broadcast = rows, cols, broadcast
        #: Cycles from an input vector to its sums on ``o``.
        self.latency = rows + 1 if broadcast else rows + cols + 1
        #: Vectors a tile must stream for the next tile switch to cost no bubble.
        self.min_tile_cycles = 0 if broadcast else max(cols - 1, rows + cols - 3)
        #: Width of the partial sums inside the array.
        self.psum_shape = Shape.cast(range(_PROD_MIN * rows, _PROD_MAX * rows + 1))
        super().__init__({
            "a": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(8), rows), "bank": 1}), always_ready=True)),
            "w": In(stream.Signature(data.StructLayout({
                "tile": tile_layout(rows, cols), "bank": 1}), always_ready=True)),
            "o": Out(stream.Signature(data.ArrayLayout(signed(32), cols), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        if self.broadcast:
            self._broadcast(m)
            return m

        # Skew: row r enters r cycles late, with its bank bit.
        a_in, b_in = [], []
        for r in range(rows):
            a_prev, b_prev = self.a.payload.data[r], self.a.payload.bank
            for k in range(r):
                a_d = Signal(signed(8), name=f"skew_a{r}_{k}", reset_less=True)
                b_d = Signal(name=f"skew_b{r}_{k}", reset_less=True)
                m.d.sync += [a_d.eq(a_prev), b_d.eq(b_prev)]
                a_prev, b_prev = a_d, b_d
            a_in.append(a_prev)
            b_in.append(b_prev)

        # Weight loads. Row 0 loads straight from ``w`` (its PE (0, 0) reads a new tile first).
        # Rows >= 1 load one cycle later, from a registered copy of their tile row, with their own
        # registered pair of bank enables: each enable then drives only one row's cols*8 flip-flop
        # enables (one net to every PE's bank did not meet 50 MHz on the ECP5-85F). The copies are
        # identical, so they carry REPLICA_ATTR for the board builds to keep them apart.
        load = [[self.w.valid & ~self.w.payload.bank, self.w.valid & self.w.payload.bank]]
        load_tile = [self.w.payload.tile[0]]
        for r in range(1, rows):
            en = [Signal(name=f"wload{b}_r{r}", attrs={REPLICA_ATTR: 1}) for b in range(2)]
            row = Signal(data.ArrayLayout(signed(8), cols), name=f"wtile_r{r}", reset_less=True)
            m.d.sync += [en[0].eq(load[0][0]), en[1].eq(load[0][1]), row.eq(self.w.payload.tile[r])]
            load.append(en)
            load_tile.append(row)

        psum_above = [None] * cols
        for r in range(rows):
            a_left, b_left = a_in[r], b_in[r]
            for c in range(cols):
                w0 = Signal(signed(8), name=f"w0_{r}_{c}", reset_less=True)
                w1 = Signal(signed(8), name=f"w1_{r}_{c}", reset_less=True)
                with m.If(load[r][0]):
                    m.d.sync += w0.eq(load_tile[r][c])
                with m.If(load[r][1]):
                    m.d.sync += w1.eq(load_tile[r][c])
                a_reg = Signal(signed(8), name=f"a_{r}_{c}", reset_less=True)
                b_reg = Signal(name=f"b_{r}_{c}", reset_less=True)
                w_reg = Signal(signed(8), name=f"wsel_{r}_{c}", reset_less=True)
                prod = Signal(signed(16), name=f"prod_{r}_{c}", reset_less=True)
                # Only the last row's sums may go without a reset: yosys' ice40_dsp would
                # otherwise claim one flip-flop as a MAC's output and the next row's C/D input
                # register at once (and drop MACs).
                psum = Signal(self.psum_shape, name=f"psum_{r}_{c}", reset_less=(r == rows - 1))
                m.d.sync += [
                    a_reg.eq(a_left),
                    b_reg.eq(b_left),
                    w_reg.eq(Mux(b_left, w1, w0)),
                    prod.eq(a_reg * w_reg),
                    psum.eq(prod if r == 0 else psum_above[c] + prod),
                ]
                psum_above[c] = psum
                a_left, b_left = a_reg, b_reg

        # De-skew: column c waits cols-1-c cycles so a vector's sums leave together.
        for c in range(cols):
            value = psum_above[c]
            for k in range(cols - 1 - c):
                d = Signal(self.psum_shape, name=f"deskew{c}_{k}", reset_less=True)
                m.d.sync += d.eq(value)
                value = d
            m.d.comb += self.o.payload[c].eq(value)

        self._valid(m)
        return m

    def _valid(self, m):
        valid = self.a.valid
        for k in range(self.latency):
            d = Signal(name=f"valid_d{k}")
            m.d.sync += d.eq(valid)
            valid = d
        m.d.comb += self.o.valid.eq(valid)

    def _broadcast(self, m):
        rows, cols = self.rows, self.cols
        prods = []
        for r in range(rows):
            row = []
            for c in range(cols):
                a_reg = Signal(signed(8), name=f"a_{r}_{c}", reset_less=True)
                w_reg = Signal(signed(8), name=f"w_{r}_{c}", reset_less=True)
                # Both rows' products meet in one adder, which either MAC may absorb: ``keep``
                # stops yosys' ice40_dsp from also claiming the other MAC's product register as
                # its C/D input register (it then drops that MAC and leaves C/D undefined).
                prod = Signal(signed(16), name=f"prod_{r}_{c}", reset_less=True,
                              attrs={"keep": 1} if rows == 2 else {})
                m.d.sync += [a_reg.eq(self.a.payload.data[r]), prod.eq(a_reg * w_reg)]
                with m.If(self.w.valid):   # the multiplier's input register with its hold input
                    m.d.sync += w_reg.eq(self.w.payload.tile[r][c])
                row.append(prod)
            prods.append(row)
        for c in range(cols):
            if rows == 2:
                psum = Signal(self.psum_shape, name=f"psum_{c}", reset_less=True)
                m.d.sync += psum.eq(prods[0][c] + prods[1][c])
            else:
                psum = prods[0][c]
            m.d.comb += self.o.payload[c].eq(psum)
        self._valid(m)
