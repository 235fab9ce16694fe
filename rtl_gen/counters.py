"""Hardware performance counters, in :class:`sqzhw.isa.Counter` order.

One 32-bit counter per :class:`~sqzhw.isa.Counter`, cleared by ``clear`` (the accepted start) and
incremented by one in every cycle its event bit is high. They wrap at 2**32 (43 s at 100 MHz for
``CYCLES``); the driver reads them after each run.
"""

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sqzhw import isa

__all__ = ["N_COUNTERS", "counters_layout", "Counters"]

N_COUNTERS = len(isa.Counter)


def counters_layout() -> data.ArrayLayout:
    """Shape of the engine's ``counters`` port: ``N_COUNTERS`` x 32 bits, index = ``isa.Counter``."""
    return data.ArrayLayout(32, N_COUNTERS)


class Counters(wiring.Component):
    """Event counters.

    Members
    -------
    clear : ``In(1)``
        Reset every counter to 0 (takes priority over events of the same cycle).
    events : ``In(N_COUNTERS)``
        Bit ``isa.Counter.X.value`` counts ``X`` this cycle.

    Parameters
    ----------
    external : iterable of isa.Counter
        Counters another unit already keeps (the engine's ``INSNS`` is the controller's retired
        count); their outputs here are 0 and their event bits are ignored.
    counters : ``Out(counters_layout())``
    """

    clear: In(1)
    events: In(N_COUNTERS)
    counters: Out(counters_layout())

    def __init__(self, external=()):
        #: Counters kept elsewhere (the engine drives their slots): no register here, output 0.
        self.external = frozenset(isa.Counter(c) for c in external)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        for c in isa.Counter:
            if c in self.external:
                continue
            value = self.counters[c.value]
            with m.If(self.clear):
                m.d.sync += value.eq(0)
            with m.Elif(self.events[c.value]):
                m.d.sync += value.eq(value + 1)
        return m
