"""A register slice for ``lib.stream`` interfaces: cuts every combinational path through it.

Between two components whose valid/ready handshakes are combinational (the engine, the memory
arbiter and the SDRAM controller), the round trip ``valid -> ready`` crosses all of them in one
cycle and sets the clock. A :class:`SkidBuffer` between them registers the forward path (``valid``
and ``payload``) and the backward path (``ready``), so each side sees only flip-flops, and it keeps
full throughput: one transfer per cycle in steady state, because the second ("skid") register
catches the transfer that was already under way when the consumer stalled.

Behaviour: transfers leave in the order they arrived, none is lost or repeated; the output becomes
valid one cycle after an input transfer; ``i.ready`` depends only on registers.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Two-entry, full-throughput register slice.

    Parameters
    ----------
    payload_shape : ShapeLike
        The streams' payload shape.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
    o : ``Out(stream.Signature(payload_shape))``
    """

    def __init__(self, payload_shape):
        self.payload_shape = payload_shape
        super().__init__({
            "i": In(stream.Signature(payload_shape)),
            "o": Out(stream.Signature(payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        # `main` drives the output; `skid` holds the one transfer accepted while the output stalled.
        main_valid = Signal()
        main_data = Signal(self.payload_shape)
        skid_valid = Signal()
        skid_data = Signal(self.payload_shape)

        m.d.comb += [
            self.o.valid.eq(main_valid),
            self.o.payload.eq(main_data),
            self.i.ready.eq(~skid_valid),   # a register: the backward path is cut
        ]
        take_in = self.i.valid & self.i.ready
        out_free = ~main_valid | self.o.ready   # `main` is empty or leaves this cycle

        with m.If(out_free):
            with m.If(skid_valid):
                m.d.sync += [main_valid.eq(1), main_data.eq(skid_data), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [main_valid.eq(take_in), main_data.eq(self.i.payload)]
        with m.Elif(take_in):
            # Output stalled and `main` full: the arriving transfer waits in `skid`.
            m.d.sync += [skid_valid.eq(1), skid_data.eq(self.i.payload)]
        return m
