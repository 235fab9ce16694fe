"""8N1 UART receiver and transmitter with ``lib.stream`` byte interfaces.

Both are parameterised by ``divisor``, clock cycles per bit (:func:`divisor_for` computes it from
the clock and the baud rate and refuses a rate it cannot hit within 2 %).

The receiver synchronises the pin with two flip-flops, takes a falling edge as a start bit,
re-checks it half a bit later (a glitch shorter than half a bit is ignored), samples the 8 data bits
(LSB first) and the stop bit in the middle of each bit, and hands the byte out on ``o`` only if
the stop bit is high; otherwise it pulses ``framing_error`` and drops the byte. Mid-bit sampling
from the start edge tolerates a baud mismatch of about +-4 % over the 9.5 bits to the stop sample.
The byte waits in an output register; a byte that completes while the previous one has not been
taken is dropped and pulses ``overrun`` (the protocol's CRC then catches the gap).

The host end of a board's UART is a USB-serial bridge (:class:`SerialBridge`), which makes only some
rates exactly; :func:`fastest_exact_baud` picks the fastest one the engine clock also divides exactly.
"""

from dataclasses import dataclass
from heapq import merge
from itertools import chain
from typing import Iterator

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for", "SerialBridge", "FT231X", "FT2232H", "SERIAL_ADAPTER",
           "fastest_exact_baud", "baud_text"]


def divisor_for(clk_hz: float, baud: int, tolerance: float = 0.02) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; :class:`ValueError` if the rounding error
    exceeds ``tolerance`` or the clock is too slow (fewer than 4 cycles per bit)."""
    if baud <= 0 or clk_hz <= 0:
        raise ValueError(f"clock {clk_hz!r} Hz and baud {baud!r} must be positive")
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"a {clk_hz / 1e6:g} MHz clock is too slow for {baud} baud "
                         f"(needs at least 4 cycles per bit)")
    error = abs(clk_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"{baud} baud at {clk_hz / 1e6:g} MHz: divisor {divisor} is off by "
                         f"{error:.1%} (more than {tolerance:.0%})")
    return divisor


@dataclass(frozen=True)
class SerialBridge:
    """The USB-serial bridge at the host end of a board's UART, and the rates it makes exactly.

    FTDI bridges divide a base clock (``base_hz``: 3 MHz on the full-speed FT232R/FT231X, 12 MHz
    on the hi-speed FT2232H/FT232H) by ``n + k/8`` (``n`` 2 to 16383, ``k`` 0 to 7) or by 1 or
    1.5 (the two special divisors: 3 and 2 Mbaud on the FT231X, 12 and 8 Mbaud on the FT2232H).
    A bridge without ``base_hz`` (an adapter of unknown make) makes exactly only its ``rates``.

    Parameters
    ----------
    name : str
    max_baud : int
        The bridge's fastest rate.
    base_hz : int or None
        FTDI baud base clock (divided by 1, 1.5 or ``n + k/8``).
    rates : tuple of int
        Further rates (the only ones without ``base_hz``).
    """
    name: str
    max_baud: int
    base_hz: int | None = None
    rates: tuple[int, ...] = ()

    def exact_rates(self) -> Iterator[int]:
        """Every rate the bridge makes exactly, fastest first (rounded to whole baud)."""
        ftdi: Iterator[int] = iter(())
        if self.base_hz:
            fractional = (n + k / 8 for n in range(2, 1 << 14) for k in range(8))
            ftdi = (round(self.base_hz / d) for d in chain((1.0, 1.5), fractional))
        last = None
        for rate in merge(ftdi, sorted(set(self.rates), reverse=True), reverse=True):
            if rate <= self.max_baud and rate != last:
                yield rate
            last = rate


#: The ULX3S's bridge: full-speed FTDI, up to 3 Mbaud (3 MHz / (n + k/8), and 3 and 2 Mbaud).
FT231X = SerialBridge("FTDI FT231X", 3_000_000, base_hz=3_000_000)
#: The iCEBreaker's, Arty A7's and ECPIX-5's bridge: hi-speed FTDI, up to 12 Mbaud (12 MHz / (n + k/8),
#: and 12 and 8 Mbaud).
FT2232H = SerialBridge("FTDI FT2232H", 12_000_000, base_hz=12_000_000)
#: A USB-serial adapter on header pins (the OrangeCrab has no bridge of its own): 1 Mbaud, which the
#: common adapters (FTDI, CP2102, CH340) all make.
SERIAL_ADAPTER = SerialBridge("USB-serial adapter", 1_000_000, rates=(1_000_000,))


def fastest_exact_baud(bridge: SerialBridge, clk_hz: float, *, min_cycles: int = 9,
                       tolerance: float = 1e-3) -> int:
    """The fastest rate ``bridge`` makes exactly that ``clk_hz`` divides into a whole number of at
    least ``min_cycles`` cycles per bit, within ``tolerance`` (0.1 %: a rate the clock misses by
    more, however little, buys a few percent and costs receiver margin).

    ``min_cycles``: the receiver samples mid-bit from the start edge it sees through a two-stage
    synchroniser, a cycle of jitter that nine cycles per bit keep well inside the bit.
    :class:`ValueError` if no rate fits.
    """
    if clk_hz <= 0 or min_cycles < 4:
        raise ValueError(f"clock {clk_hz!r} Hz must be positive and min_cycles {min_cycles!r} at least 4")
    for rate in bridge.exact_rates():
        divisor = round(clk_hz / rate)
        if divisor >= min_cycles and abs(clk_hz / divisor - rate) <= tolerance * rate:
            return rate
    raise ValueError(f"no rate of the {bridge.name} that a {clk_hz / 1e6:g} MHz clock divides exactly "
                     f"(within {tolerance:.1%}, at least {min_cycles} cycles per bit)")


def baud_text(baud: int) -> str:
    """``2000000`` -> ``"2 Mbaud"``, ``115200`` -> ``"115.2 kbaud"``."""
    if baud >= 1_000_000:
        return f"{baud / 1e6:.4g} Mbaud"
    return f"{baud / 1e3:.4g} kbaud" if baud >= 1000 else f"{baud} baud"


def _check_divisor(divisor: int) -> None:
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor must be an integer of at least 4 clock cycles per bit, got {divisor!r}")


class UARTRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    rx : In(1)
        The serial line (idle high), asynchronous.
    o : Out(stream.Signature(8))
        Received bytes.
    framing_error : Out(1)
        One-cycle pulse: a byte whose stop bit was low (dropped).
    overrun : Out(1)
        One-cycle pulse: a byte dropped because ``o`` was not taken in time.
    """

    def __init__(self, divisor: int) -> None:
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        pin = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, pin, init=1)

        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(range(9))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~pin):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(pin):
                        m.next = "IDLE"     # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], pin)),  # LSB first
                                 timer.eq(self.divisor - 1), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(pin):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                # Wait for the line to go idle again before hunting for a start bit.
                with m.If(pin):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; taken when the previous byte's stop bit has been sent.
    tx : Out(1)
        The serial line (idle high).
    busy : Out(1)
        A byte is being sent.
    """

    def __init__(self, divisor: int) -> None:
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        timer = Signal(range(self.divisor))
        # start bit, 8 data bits, stop bit, shifted out LSB first
        shreg = Signal(10, init=0x3FF)
        left = Signal(range(11))

        m.d.comb += [self.busy.eq(left != 0), self.i.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(1 << 9 | self.i.payload << 1), left.eq(10),
                             timer.eq(self.divisor - 1), self.tx.eq(0)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(1 << 9 | shreg >> 1), self.tx.eq(shreg[1]), left.eq(left - 1),
                         timer.eq(self.divisor - 1)]
            with m.If(left == 1):
                m.d.sync += self.tx.eq(1)
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
