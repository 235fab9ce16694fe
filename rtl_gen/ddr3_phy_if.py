"""The contract between the DDR3 controller and a DDR3 PHY (the ECP5 one, or the simulation model).

The PHY runs the DRAM clock (``CK``) at twice the controller's ``sync`` clock, so each ``sync``
cycle carries two command slots (``phases[0]`` goes out on the first ``CK`` cycle, ``phases[1]``
on the second) and four data beats per ``DQ`` pin (``4 * dq_bits`` bits, beat 0 in the low bits:
one burst-chop-4 burst).

Time on this interface is counted in ``sync`` cycles from the cycle whose ``phases`` carry a
``READ``/``WRITE`` (:class:`DDR3PHYParams`):

* a ``WRITE`` in cycle ``t`` takes its data from ``wr_data``/``wr_mask`` in cycle
  ``t + write_latency`` (``wr_en`` high in that cycle; the PHY drives ``DQS``/``DQ`` around it);
* a ``READ`` in cycle ``t`` has ``rd_en`` high in cycle ``t``, and its four beats come back on
  ``rd_data`` with ``rd_valid`` in cycle ``t + read_latency`` (the PHY's internal delay line), correct
  once the read capture of each byte lane is calibrated.

``READ``/``WRITE`` go in the phase that aligns the burst to a ``sync`` cycle: with an even CAS
latency (CL) ``READ`` goes in phase 0, with an odd one in phase 1 (the same for ``WRITE`` and CWL);
:meth:`DDR3PHYParams.read_phase` / :meth:`write_phase` say which.

Read calibration: each byte lane's capture is set by ``rd_cycle[lane]`` (whole ``sync`` cycles,
``0 .. read_cycles-1``: with setting ``c`` the PHY opens the lane's read window and captures its
burst ``c`` cycles later than with 0, and delays it ``c`` cycles less, so ``rd_data``/``rd_valid``
keep their ``read_latency``; the board as designed needs ``read_cycles // 2``, so a board whose
reads return a cycle early or late still calibrates), ``rd_bitslip[lane]`` (which beat of the
captured stream starts a burst, ``0 .. bitslips-1``) and ``rd_delay[lane]`` (the capture clock's
delay step, ``0 .. delays-1``); a new setting takes effect ``settle_cycles`` after it changes. The
controller writes a known pattern, scans every setting, and picks per lane the centre of the longest
window of delays that return it (:class:`rtl_gen.ddr3.DDR3Controller`).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DDR3Command", "DDR3PHYParams", "DDR3PHYSignature", "phase_layout", "check_phy_params",
           "check_phy_pins", "port_pads", "lane_bytes"]


class DDR3Command(enum.Enum, shape=3):
    """DDR3 commands as ``{we, cas, ras}`` asserted (bit 0 = we; active high here, the pins are
    active low). ``ZQ_CAL`` is ``{we}`` alone (``ZQCL`` with ``A10`` high, ``ZQCS`` with it low)."""
    NOP = 0b000
    ZQ_CAL = 0b001
    READ = 0b010
    WRITE = 0b011
    ACTIVATE = 0b100
    PRECHARGE = 0b101
    REFRESH = 0b110
    MODE = 0b111


def phase_layout(bank_bits: int, addr_pins: int) -> data.StructLayout:
    """One command slot: ``cs`` (chip select asserted), ``cmd``, ``ba``, ``a``."""
    return data.StructLayout({"cs": 1, "cmd": DDR3Command, "ba": bank_bits, "a": addr_pins})


@dataclass(frozen=True)
class DDR3PHYParams:
    """What a PHY tells the controller about its timing (see the module docstring).

    Parameters
    ----------
    cl, cwl : int
        CAS read and write latency the DRAM is programmed with (in ``CK`` cycles).
    read_latency : int
        ``sync`` cycles from a ``READ``'s cycle to its data on ``rd_data``.
    write_latency : int
        ``sync`` cycles from a ``WRITE``'s cycle to the cycle its data must be on ``wr_data``.
    read_cycles : int
        Whole-cycle read capture offsets per byte lane (``rd_cycle``); 1 = none to scan.
    bitslips, delays : int
        Read calibration settings per byte lane.
    settle_cycles : int
        ``sync`` cycles a new ``rd_bitslip``/``rd_delay`` needs before reads use it.
    """
    cl: int = 6
    cwl: int = 5
    read_latency: int = 8
    write_latency: int = 2
    read_cycles: int = 1
    bitslips: int = 4
    delays: int = 8
    settle_cycles: int = 8

    def __post_init__(self) -> None:
        if not 5 <= self.cl <= 14 or not 5 <= self.cwl <= 10:
            raise ValueError(f"DDR3PHYParams: cl = {self.cl}, cwl = {self.cwl}: DDR3 has CL 5..14, CWL 5..10")
        for name in ("read_latency", "write_latency", "read_cycles", "bitslips", "delays", "settle_cycles"):
            if getattr(self, name) < 1:
                raise ValueError(f"DDR3PHYParams.{name} = {getattr(self, name)}: must be at least 1")

    @property
    def read_phase(self) -> int:
        """Command slot for ``READ``: the burst starts on a ``sync`` cycle boundary."""
        return self.cl % 2

    @property
    def write_phase(self) -> int:
        """Command slot for ``WRITE``."""
        return self.cwl % 2


class DDR3PHYSignature(wiring.Signature):
    """The controller side of a DDR3 PHY (``Out`` = driven by the controller).

    Members
    -------
    reset_n : Out(1)            the DRAM's ``RESET#`` (active low, as on the pin)
    cke : Out(1)
    odt : Out(1)
    phases : Out(ArrayLayout(phase_layout, 2))
    wr_en : Out(1)
    wr_data : Out(4 * dq_bits)
    wr_mask : Out(4 * dq_bits // 8)     1 = byte not written
    rd_en : Out(1)
    rd_valid : In(1)
    rd_data : In(4 * dq_bits)
    rd_cycle : Out(ArrayLayout(range(read_cycles), lanes))
    rd_bitslip : Out(ArrayLayout(range(bitslips), lanes))
    rd_delay : Out(ArrayLayout(range(delays), lanes))
    phy_ready : In(1)            the PHY's clocks and delay lines are up (commands before it are lost)
    """

    def __init__(self, *, dq_bits: int, bank_bits: int, addr_pins: int, params: DDR3PHYParams):
        if dq_bits % 8 or dq_bits <= 0:
            raise ValueError(f"DDR3PHYSignature: dq_bits = {dq_bits}: a multiple of 8")
        self.dq_bits, self.bank_bits, self.addr_pins, self.params = dq_bits, bank_bits, addr_pins, params
        lanes = dq_bits // 8
        super().__init__({
            "reset_n": Out(1), "cke": Out(1), "odt": Out(1),
            "phases": Out(data.ArrayLayout(phase_layout(bank_bits, addr_pins), 2)),
            "wr_en": Out(1), "wr_data": Out(4 * dq_bits), "wr_mask": Out(4 * lanes),
            "rd_en": Out(1), "rd_valid": In(1), "rd_data": In(4 * dq_bits),
            "rd_cycle": Out(data.ArrayLayout(range(params.read_cycles), lanes)),
            "rd_bitslip": Out(data.ArrayLayout(range(params.bitslips), lanes)),
            "rd_delay": Out(data.ArrayLayout(range(params.delays), lanes)),
            "phy_ready": In(1),
        })

    @property
    def lanes(self) -> int:
        return self.dq_bits // 8


def check_phy_params(owner: str, params: DDR3PHYParams, *, bitslips: int, delays: int, write_latency: int) -> None:
    """For an FPGA PHY (``owner`` names it in the message): ``params`` must have the PHY's own
    calibration ranges and the write latency its pipeline gives at ``params.cwl``."""
    if params.bitslips != bitslips or params.delays != delays:
        raise ValueError(f"{owner}: params bitslips = {params.bitslips}, delays = {params.delays}: "
                         f"this PHY has {bitslips} and {delays}")
    if params.write_latency != write_latency:
        raise ValueError(f"{owner}: params write_latency = {params.write_latency}: this PHY takes write data "
                         f"{write_latency} cycles after the WRITE at CWL {params.cwl}")


def check_phy_pins(owner: str, pins, *, bank_bits: int, addr_pins: int, not_inverted: tuple[str, ...],
                   differential: tuple[str, ...] = ()) -> int:
    """An amaranth-boards ``ddr3`` resource (requested with ``dir="-"``) against the controller's
    geometry: a whole number of byte lanes with a ``dqs`` and a ``dm`` each, enough address pins,
    the bank pins; ``not_inverted`` subsignals must not be (the PHY cannot invert them),
    ``differential`` ones must be pairs. Returns the DQ width."""
    from amaranth.lib import io

    dq_bits = len(pins.dq)
    lanes = dq_bits // 8
    if dq_bits % 8 or dq_bits == 0:
        raise ValueError(f"{owner}: pins.dq has {dq_bits} pins: a multiple of 8")
    for name in ("dqs", "dm"):
        if len(getattr(pins, name)) != lanes:
            raise ValueError(f"{owner}: pins.{name} has {len(getattr(pins, name))} pins: one per byte lane ({lanes})")
    if addr_pins > len(pins.a):
        raise ValueError(f"{owner}: addr_pins = {addr_pins}: the resource has {len(pins.a)} address pins")
    if bank_bits != len(pins.ba):
        raise ValueError(f"{owner}: bank_bits = {bank_bits}: the resource has {len(pins.ba)} bank pins")
    for name in not_inverted:
        if any(getattr(pins, name).invert):
            raise ValueError(f"{owner}: pins.{name} is inverted: not supported")
    for name in differential:
        if not isinstance(getattr(pins, name), io.DifferentialPort):
            raise ValueError(f"{owner}: pins.{name} is single-ended: DDR3 has a differential {name}")
    return dq_bits


def port_pads(port) -> tuple[object, object | None, tuple[bool, ...]]:
    """For an FPGA PHY's primitives: the P and N (``None`` if single-ended) pads of a port of the
    ``ddr3`` resource, and its per-bit inversions (primitives bypass Amaranth's buffers)."""
    from amaranth.lib import io

    if isinstance(port, io.DifferentialPort):
        return port.p, port.n, tuple(port.invert)
    return port.io, None, tuple(port.invert)


def lane_bytes(value, lane: int, dq_bits: int) -> list:
    """The four bytes of byte lane ``lane`` in a beat-major ``4 * dq_bits`` value, beat 0 first."""
    return [value[k * dq_bits + 8 * lane:][:8] for k in range(4)]
