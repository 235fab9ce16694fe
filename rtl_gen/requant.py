"""The requantizer: int32 accumulators plus bias to int8 activations, one vector per cycle.

RTL twin of :func:`sqzhw.quant.requantize`, lane by lane::

    M, n = effective_params(params[j].multiplier, params[j].shift)
    y[j] = requantize(wrap_int32(acc[j] + params[j].bias), M, n, zp_out, relu)

Used by the STORE unit (``ACC_REQUANT``, ``AccelConfig.store_lanes`` lanes: ``rows``, or fewer
for a lane-serial STORE) and by the compute unit's ADD (``AccelConfig.add_requant_lanes``
lanes: ``rows``, or ``rows // 2`` taking an entry's halves in turn).

Pipeline (``LATENCY`` register stages, all moving together; the whole pipe stalls while the output
is valid and not ready, so ``i.ready`` is ``~o.valid | o.ready``):

1. ``s = acc + bias`` (int32 wrap);
2. four 16x16-bit partial products of ``s`` and ``multiplier`` (16-bit halves), each one ECP5
   ``MULT18X18D`` / iCE40 ``SB_MAC16`` with registered inputs (stage 1) and outputs (stage 2);
   each has operands of one signedness (so yosys does not split it), so ``hl`` takes the high half
   of ``s`` unsigned and ``corr = (s < 0) ? m_lo : 0`` restores the sign in stage 3;
3. ``plo = ll + (lh << 16)``, ``phi = hl + ((hh - corr) << 16)``; 4. ``p = plo + (phi << 16)``:
   the exact product (63 bits signed);
5. of ``2*p >> (shift & 56)`` only the 17 low bits (all the fine shift can reach) and whether any
   bit above them differs from the sign; 6. ``>> (shift & 7)``, saturated to 10 bits (``w``);
7. ``y = clamp(((w + 1) >> 1) + zp_out, zp_out if relu else -128, 127)``.

Every register is as wide as its operand's exact range (no 64-bit intermediate is registered).

``((2p >> n) + 1) >> 1`` equals ``(p + ((1 << n) >> 1)) >> n`` for every ``n >= 0`` (floor of a floor),
so rounding is half toward +infinity exactly as :func:`sqzhw.quant.round_shift`, with no 64-bit
rounding adder in front of the barrel shifter. Saturating ``w`` to ``[-512, 511]`` changes no
result: ``w >= 509`` gives ``y = 127`` and ``w <= -512`` gives ``y = lo`` for every ``zp_out``
(``-128 <= zp_out <= 127``). Stage 7 adds ``2*zp_out + 1`` and halves (one adder), and compares
without a comparator: with ReLU ``total < zp_out`` is ``w <= -2``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sqzhw import isa, quant
from sqzhw.config import AccelConfig

__all__ = ["Requantizer", "requant_input_layout"]


def requant_input_layout(lanes: int) -> data.StructLayout:
    """Payload of :attr:`Requantizer.i` for ``lanes`` lanes."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(32), lanes),
        "params": data.ArrayLayout(isa.ParamLane, lanes),
        "zp_out": signed(8),
        "relu": 1,
    })


class Requantizer(wiring.Component):
    """Fully pipelined ``lanes``-wide requantizer with stream input and output.

    Parameters
    ----------
    config_or_lanes : AccelConfig or int
        An :class:`~sqzhw.config.AccelConfig` (``rows`` lanes) or the lane count.
    stall : bool
        ``True`` (the default): the pipe stalls while the output is valid and not ready. ``False``:
        ``i.ready`` is always high and the user must take every output (``o.ready`` high); the
        registers then need no enable (the STORE unit reserves queue room for every read).
    per_vector : bool
        ``True`` (the default): ``zp_out`` and ``relu`` travel with each vector. ``False``: they are
        taken from the input at the last stage, so they must be held while vectors are in the pipe
        (a STORE instruction's constants).
    m31_zero : bool
        ``True``: the user guarantees bit 31 of every multiplier field is 0 (the STORE's compact
        PARAM buffer, whose LOAD clears it), so ``s_hi * m_hi`` takes multiplier bits 31:16 as one
        signed register that yosys moves whole into the SB_MAC16 (a zero-extended 15-bit one
        stays in logic cells). ``False`` (the default): bit 31 is ignored, as
        :func:`sqzhw.quant.effective_params` says.

    Members
    -------
    i : ``In(stream.Signature(requant_input_layout(lanes)))``
        Accumulators (bias not yet added), per-lane parameters, output zero point and ReLU flag.
    o : ``Out(stream.Signature(ArrayLayout(signed(8), lanes)))``
        Requantized lanes, in input order, :attr:`LATENCY` cycles after the input handshake when
        the output is never stalled.
    """

    #: Register stages from an input handshake to the output (without back-pressure).
    LATENCY = 7

    def __init__(self, config_or_lanes: AccelConfig | int, *, stall: bool = True, per_vector: bool = True,
                 m31_zero: bool = False):
        lanes = config_or_lanes.rows if isinstance(config_or_lanes, AccelConfig) else config_or_lanes
        if not isinstance(lanes, int) or lanes <= 0:
            raise ValueError(f"Requantizer: lanes must be a positive integer, got {lanes!r}")
        self.lanes = lanes
        self.stall = stall
        self.per_vector = per_vector
        self.m31_zero = m31_zero
        super().__init__({
            "i": In(stream.Signature(requant_input_layout(lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(8), lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        n_stages = self.LATENCY
        valid = [Signal(name=f"valid{k}") for k in range(n_stages)]
        advance = Signal()
        m.d.comb += [
            advance.eq(~valid[-1] | self.o.ready if self.stall else 1),
            self.i.ready.eq(advance),
            self.o.valid.eq(valid[-1]),
        ]
        with m.If(advance):
            m.d.sync += valid[0].eq(self.i.valid)
            m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, n_stages)]

        # Values used after stage 1 travel beside the lanes, as far as they are needed.
        def carry(value, shape, name, depth=n_stages):
            regs = [Signal(shape, name=f"{name}{k}", reset_less=True) for k in range(depth)]
            with m.If(advance):
                m.d.sync += regs[0].eq(value)
                m.d.sync += [regs[k].eq(regs[k - 1]) for k in range(1, depth)]
            return regs

        if self.per_vector:
            zp_last = carry(self.i.payload.zp_out, signed(8), "zp")[5]
            relu_last = carry(self.i.payload.relu, 1, "relu")[5]
        else:
            zp_last, relu_last = self.i.payload.zp_out, self.i.payload.relu

        WB = 10            # w's bits: saturating w to them changes no result (module docstring)
        WIN = WB + 7       # the coarse window: all the fine shift (0..7) can reach
        for j in range(self.lanes):
            lane = self.i.payload.params[j]
            # quant.effective_params: shift clamped to MAX_SHIFT, multiplier bits 30:0 (below).
            n_eff = Mux(lane.shift > quant.MAX_SHIFT, quant.MAX_SHIFT, lane.shift)[:6]
            # Each half only as far as it is used (stage 5: n // 8, stage 6: n % 8).
            coarse = carry(n_eff[3:], unsigned(3), f"coarse_{j}_", depth=4)[3]
            f7 = carry(n_eff[:3], unsigned(3), f"fine_{j}_", depth=5)[4]
            # Data registers have no reset (only the valid bits need one): a reset would keep yosys
            # from moving them into the iCE40 SB_MAC16's own registers.
            def reg(shape, name):
                return Signal(shape, name=f"{name}_{j}", reset_less=True)
            # 1: bias add (int32 wrap) and the multiplier, registered (the DSP input registers).
            s = reg(signed(32), "s")
            m_lo = reg(unsigned(16), "m_lo")   # two registers: yosys moves m_hi's into the DSPs
            m_hi = reg(unsigned(15), "m_hi")
            m_hi_s = reg(signed(16), "m_hi_s") if self.m31_zero else m_hi
            # 2: partial products (the DSP pipeline registers). Each is one whole 16x16 product of
            # operands of one signedness, so no DSP is split into a DSP plus fabric logic: hl takes
            # the high half of s as unsigned, and corr (s < 0 ? m_lo : 0) makes hh3 signed again.
            ll = reg(unsigned(32), "ll")
            lh = reg(unsigned(31), "lh")
            hl = reg(unsigned(32), "hl")
            hh = reg(signed(31), "hh")
            corr = reg(unsigned(16), "corr")
            # 3: plo = ll + (lh << 16), phi = hl + ((hh - corr) << 16) (= s_hi * M); 4: the sum. No
            # register only copies a product and no adder is narrow enough for yosys' ice40_dsp to
            # pull it into an SB_MAC16 (both misbuild: the 16x16 pipeline register 2 and the
            # adder's carry out lose their drivers).
            plo = reg(unsigned(48), "plo")
            phi = reg(signed(48), "phi")
            prod = reg(signed(63), "prod")                    # |s * M| < 2**62
            # 5: the WIN bits of 2p >> (n & 56) the fine shift can reach, and whether any bit above
            # them differs from the sign; 6: fine shift and saturation; 7: the int8 result.
            win = reg(WIN, "win")
            bad = reg(1, "bad")
            neg = reg(1, "neg")
            w = reg(signed(WB), "w")
            y = reg(signed(8), "y")

            s_lo, s_hi = s[:16], s[16:].as_signed()
            s_hi_u = s[16:]         # s_hi * m_lo = s_hi_u * m_lo - (s < 0) * (m_lo << 16)

            # Stage 5 logic: byte-coarse window of 2p (64 bits), sign-extended past the top.
            p2 = Cat(Const(0, 1), prod)                     # 2p, bit 63 is the sign
            sign = prod[-1]
            ext = Cat(p2, sign.replicate(8 * 7 + WIN - 64))
            differs = Signal(64, name=f"differs_{j}")
            m.d.comb += differs.eq(p2 ^ sign.replicate(64))
            win_next = Signal(WIN, name=f"win_next_{j}")
            bad_next = Signal(name=f"bad_next_{j}")
            # A shift (yosys: log shifter, 3 levels of 2:1 muxes) costs fewer LUT4s than a case.
            m.d.comb += win_next.eq(ext >> (coarse * 8))
            with m.Switch(coarse):
                for c in range(8):
                    with m.Case(c):
                        top = differs[WIN + 8 * c:]         # empty (no bad bit) for c >= 6
                        m.d.comb += bad_next.eq(top.any() if len(top) else 0)
            # Stage 6 logic: fine shift (n & 7) inside the window; saturate to WB bits: beyond that
            # every result clamps the same way (module docstring).
            fine = Signal(WIN, name=f"fine_{j}")
            m.d.comb += fine.eq(win >> f7)                 # bits WB.. unused, so no sign fill needed
            win_differs = win ^ neg.replicate(WIN)
            hi_bad = Signal(name=f"hi_bad_{j}")
            with m.Switch(f7):
                for f in range(8):
                    with m.Case(f):
                        m.d.comb += hi_bad.eq(win_differs[WB - 1 + f:].any())
            overflow = bad | hi_bad
            # ((w + 1) >> 1) + zp = (w + 2*zp + 1) >> 1: one adder, the +1 a constant bit.
            total = Signal(signed(WB + 1), name=f"total_{j}")   # |total| <= 384
            m.d.comb += total.eq((w + Cat(Const(1, 1), zp_last).as_signed()) >> 1)
            lo = Mux(relu_last, zp_last, -128)
            # total < lo without a comparator: with ReLU (lo = zp) that is (w + 1) >> 1 < 0, i.e.
            # w <= -2; without, total < -128. total > 127 only reads total's top bits.
            below = Mux(relu_last, w[-1] & ~w[:-1].all(), total[-1] & ~total[7:].all())
            above = ~total[-1] & total[7:].any()
            with m.If(advance):
                m.d.sync += [
                    s.eq(self.i.payload.acc[j] + lane.bias),
                    m_lo.eq(lane.multiplier[:16]), m_hi.eq(lane.multiplier[16:31]),
                    *([m_hi_s.eq(lane.multiplier[16:32])] if self.m31_zero else []),
                    ll.eq(s_lo * m_lo),
                    lh.eq(s_lo * m_hi),
                    hl.eq(s_hi_u * m_lo),
                    hh.eq(s_hi * m_hi_s),
                    corr.eq(Mux(s[31], m_lo, 0)),
                    plo.eq(ll + (lh << 16)),
                    phi.eq(hl + ((hh - corr) << 16)),
                    prod.eq(plo + (phi << 16)),
                    win.eq(win_next), bad.eq(bad_next), neg.eq(sign),
                    w.eq(Mux(overflow, Mux(neg, -(1 << (WB - 1)), (1 << (WB - 1)) - 1), fine[:WB].as_signed())),
                    y.eq(Mux(above, 127, Mux(below, lo, total[:8]))),
                ]
            m.d.comb += self.o.payload[j].eq(y)
        return m
