"""Hardware performance counters, in :class:`sqzhw.isa.Counter` order.

One 32-bit counter per :class:`~sqzhw.isa.Counter`, cleared by ``clear`` (the accepted start) and
incremented by one in every cycle its event bit is high. They wrap at 2**32 (43 s at 100 MHz for
``CYCLES``); the driver reads them after each run.

:class:`Counters` holds them in registers (a 32-bit port per counter, the engine's ``counters``);
:class:`CounterRAM` keeps the same exact counts with their high bits in one block RAM and a
one-counter read port (the iCEBreaker system, where 256 counter flip-flops and the host link's
read-out mux do not fit).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib.memory import Memory
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sqzhw import isa

from .buffers import NO_INIT_ATTR

__all__ = ["N_COUNTERS", "counters_layout", "Counters", "CounterRAM"]

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


class CounterRAM(wiring.Component):
    """The same exact 32-bit event counters, with their high bits in one block RAM (iCE40 area).

    Each counter keeps its low :attr:`LOW_BITS` bits and a pending carry in flip-flops; the high 28
    bits of every counter live in one RAM row (index = ``isa.Counter`` value). A round robin visits
    one row per cycle (read, then add the pending carry and write back), every counter once per
    ``2**p_bits`` <= 16 cycles: the low bits overflow at most every 16 cycles, so no carry waits
    behind another. ``clear`` cannot clear the RAM at once: the round robin's next ``2**p_bits``
    visits (one of every row) write 0 instead (and reads see 0 until then); so do the first ones
    after a reset. No incrementer per counter beyond 4 bits, no 288-bit
    read-out mux: the host link reads one counter at a time through the RAM.

    Read-out: hold ``sel``; ``valid`` is high in the cycle the round robin has row ``sel`` on the
    RAM's output (within ``2**p_bits`` cycles), and ``value`` is then the exact count of the events
    before that cycle (high bits + pending carry from the write-back adder, low bits), the same value
    :class:`Counters` holds in that cycle. An external counter's ``value`` is ``ext[sel]``, valid at
    once.

    Parameters
    ----------
    external : iterable of isa.Counter
        Counters kept elsewhere (the engine's ``INSNS``): read from ``ext``, their events ignored.

    Members
    -------
    clear : ``In(1)``
        Reset every counter to 0 (takes priority over events of the same cycle).
    events : ``In(N_COUNTERS)``
        Bit ``isa.Counter.X.value`` counts ``X`` this cycle.
    ext : ``In(counters_layout())``
        Values of the external counters (other slots unused).
    sel : ``In(range(N_COUNTERS))``
        Counter to read.
    value : ``Out(32)``, valid : ``Out(1)``
        Its value, in the cycles ``valid`` is high (undefined in the others).
    """

    LOW_BITS = 4

    clear: In(1)
    events: In(N_COUNTERS)
    ext: In(counters_layout())
    sel: In(range(N_COUNTERS))
    value: Out(32)
    valid: Out(1)

    def __init__(self, external=()):
        self.external = frozenset(isa.Counter(c) for c in external)
        self.internal = [c for c in isa.Counter if c not in self.external]
        #: The round robin's address bits: it visits every row below 2**p_bits.
        self.p_bits = max(1, max((c.value for c in self.internal), default=0).bit_length())
        if 1 << self.p_bits > 1 << self.LOW_BITS:
            raise ValueError(f"CounterRAM: counter index {max(c.value for c in self.internal)} needs a round "
                             f"robin longer than the {1 << self.LOW_BITS}-cycle low-bit overflow")
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        lb, hb = self.LOW_BITS, 32 - self.LOW_BITS
        if not self.internal:
            for c in self.external:
                with m.If(self.sel == c.value):
                    m.d.comb += [self.value.eq(self.ext[c.value]), self.valid.eq(1)]
            return m
        rows = 1 << self.p_bits
        # The row written (p_q) is never the row read (p): no read/write collision logic, and the
        # read register has no power-up value (the block RAM's output register has none).
        m.submodules.high = high = Memory(shape=hb, depth=rows, init=[], attrs={"no_rw_check": 1})
        wp, rp = high.write_port(), high.read_port(domain="comb")
        p = Signal(self.p_bits)                  # row read this cycle
        p_q = Signal(self.p_bits)                # row on the RAM's output, written back this cycle
        rdata = Signal(hb, reset_less=True, attrs={NO_INIT_ATTR: 1})
        m.d.sync += [p.eq(p + 1), p_q.eq(p), rdata.eq(rp.data)]
        m.d.comb += rp.addr.eq(p)

        low = [Signal(lb, name=f"low{i}") for i in range(rows)]
        pending = Signal(rows)                   # a low-bit overflow not yet added to the row
        # After a clear (and a reset: the RAM keeps its contents) the round robin's next `rows`
        # visits are the first of every row: they write 0 (plus a new carry), and reads see 0.
        sweep = Signal(init=1)
        sweep_last = Signal(self.p_bits, init=rows - 1)   # the sweep's last row
        with m.If(self.clear):
            m.d.sync += [sweep.eq(1), sweep_last.eq(p_q)]
        with m.Elif(p_q == sweep_last):
            m.d.sync += sweep.eq(0)
        new_high = Signal(hb)
        carry = pending.bit_select(p_q, 1)
        # the mux after the incrementer: one LUT per bit with the carry chain on the RAM data
        m.d.comb += new_high.eq(Mux(sweep, carry, rdata + carry))
        m.d.comb += [wp.addr.eq(p_q), wp.data.eq(new_high), wp.en.eq(1)]

        internal = {c.value for c in self.internal}
        for i in range(rows):
            if i not in internal:
                continue
            visit = p_q == i
            ev = self.events[i]
            with m.If(self.clear):
                m.d.sync += [low[i].eq(0), pending[i].eq(0)]
            with m.Else():
                with m.If(ev):
                    m.d.sync += low[i].eq(low[i] + 1)
                # a new carry wins over the visit that applies the previous one
                with m.If(ev & (low[i] == (1 << lb) - 1)):
                    m.d.sync += pending[i].eq(1)
                with m.Elif(visit):
                    m.d.sync += pending[i].eq(0)

        low_q = Signal(lb)
        with m.Switch(p_q):
            for i in sorted(internal):
                with m.Case(i):
                    m.d.comb += low_q.eq(low[i])
        # `value` is not gated by `valid` (the reader samples it when `valid` is high)
        m.d.comb += [self.value.eq(Cat(low_q, new_high)), self.valid.eq(self.sel == p_q)]
        for c in self.external:
            with m.If(self.sel == c.value):
                m.d.comb += [self.value.eq(self.ext[c.value]), self.valid.eq(1)]
        return m
