"""ECP5 DDR3 PHY: the logic around the DDR primitives (write alignment, DQS preamble/postamble,
read window, rd_valid, bitslip, pause on a delay change) in simulation, the DDRDLLA/ECLK start-up
order, the parameters it reports, and the primitives it instantiates (RTLIL, no toolchain).

The primitives themselves cannot be simulated here: these tests pin down what the PHY feeds them
in which ``sync`` cycle, against the latencies :func:`rtl_gen.ecp5_ddr3.phy_params` reports.
"""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest
from amaranth.back import rtlil
from amaranth.hdl import IOPort
from amaranth.lib import io
from amaranth.sim import Simulator

from rtl_gen.ddr3_phy_if import DDR3Command, DDR3PHYParams
from rtl_gen.ecp5_ddr3 import (BITSLIPS, CMD_REG, PAUSE_CYCLES, READ_CAPTURE, READ_WINDOW, WRITE_ALIGN,
                               ECP5DDR3PHY, ECP5DDR3PHYLogic, ECP5DDRInit, phy_params)

PARAMS = phy_params()
DQ = 16


def _logic(params: DDR3PHYParams = PARAMS) -> ECP5DDR3PHYLogic:
    return ECP5DDR3PHYLogic(dq_bits=DQ, bank_bits=3, addr_pins=15, params=params)


def _run(dut, bench, cycles: int = 200) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run_until(1e-8 * cycles)


def test_params():
    """CL 6 / CWL 5: READ in phase 0, WRITE in phase 1; the latencies follow the pipeline."""
    p = phy_params()
    assert (p.cl, p.cwl, p.read_phase, p.write_phase) == (6, 5, 0, 1)
    assert p.write_latency == CMD_REG + 3 + WRITE_ALIGN - 1 == 4
    assert p.read_latency == CMD_REG + 3 + READ_CAPTURE + 2 == 13
    assert (p.bitslips, p.delays) == (4, 8) and p.settle_cycles > PAUSE_CYCLES
    assert phy_params(read_latency=14).read_latency == 14
    with pytest.raises(ValueError, match="read_latency = 2"):
        phy_params(read_latency=2)
    with pytest.raises(ValueError, match="cl = 4"):
        phy_params(cl=4)
    with pytest.raises(ValueError, match="write_latency = 2"):
        _logic(DDR3PHYParams())          # the contract's defaults are not this PHY's
    with pytest.raises(ValueError, match="bitslips = 8"):
        _logic(DDR3PHYParams(write_latency=4, read_latency=13, bitslips=8))


def test_write_burst_alignment():
    """A WRITE in phase 1 with its data ``write_latency`` cycles later: the command reaches the
    ODDRs one cycle later, the data beats (and mask) the DQ ODDRs CWL/2 + WRITE_ALIGN cycles after
    that, with DQ driven only then and DQS toggling only then, low one half cycle before (preamble)
    and after (postamble)."""
    dut = _logic()
    p = PARAMS
    t, seen = 5, {}
    data, mask = 0x0123_4567_89AB_CDEF, 0b1001_0110

    async def bench(ctx):
        c = dut.ctrl
        for n in range(30):
            ctx.set(c.phases[p.write_phase].cmd, DDR3Command.WRITE if n == t else DDR3Command.NOP)
            ctx.set(c.wr_en, n == t + p.write_latency)
            ctx.set(c.wr_data, data if n == t + p.write_latency else random.getrandbits(64))
            ctx.set(c.wr_mask, mask if n == t + p.write_latency else 0xFF)
            seen[n] = {"cmd": ctx.get(dut.cmd[p.write_phase].cmd), "dq": ctx.get(dut.dq_o), "dm": ctx.get(dut.dm_o),
                       "dq_t": ctx.get(dut.dq_t), "dqs": ctx.get(dut.dqs_o), "dqs_t": ctx.get(dut.dqs_t)}
            await ctx.tick()

    _run(dut, bench)
    cmd_at = [n for n, s in seen.items() if s["cmd"] == DDR3Command.WRITE]
    assert cmd_at == [t + CMD_REG]
    burst = t + CMD_REG + (p.write_phase + p.cwl) // 2 + WRITE_ALIGN
    driven = [n for n, s in seen.items() if s["dq_t"] == 0]
    assert driven == [burst], driven
    assert seen[burst]["dq"] == data and seen[burst]["dm"] == mask
    assert seen[burst]["dqs"] == 0b1010 and seen[burst]["dqs_t"] == 0b00
    assert seen[burst - 1]["dqs_t"] == 0b01 and seen[burst - 1]["dqs"] == 0     # preamble: 2nd half, low
    assert seen[burst + 1]["dqs_t"] == 0b10 and seen[burst + 1]["dqs"] == 0     # postamble: 1st half, low
    assert all(s["dqs_t"] == 0b11 for n, s in seen.items() if abs(n - burst) > 1)
    assert all(s["dqs"] == 0 for n, s in seen.items() if n != burst)


def test_back_to_back_writes_keep_dqs_driven():
    """Two bursts in consecutive cycles: DQS stays driven between them (no postamble/preamble gap)."""
    dut = _logic()
    seen = {}

    async def bench(ctx):
        for n in range(20):
            ctx.set(dut.ctrl.wr_en, n in (5, 6))
            seen[n] = (ctx.get(dut.dq_t), ctx.get(dut.dqs_t), ctx.get(dut.dqs_o))
            await ctx.tick()

    _run(dut, bench)
    assert [n for n, s in seen.items() if s[0] == 0] == [6, 7]
    assert seen[5][1] == 0b01 and seen[6][1] == seen[7][1] == 0 and seen[8][1] == 0b10
    assert seen[6][2] == seen[7][2] == 0b1010


def _beats(word: int) -> list[int]:
    return [(word >> (DQ * k)) & ((1 << DQ) - 1) for k in range(4)]


@pytest.mark.parametrize("slips", [(0, 0), (1, 3), (3, 2), (2, 0)])
def test_read_capture_bitslip_and_valid(slips):
    """A READ: the read window is open two cycles, CL/2 + READ_WINDOW after the command reaches the
    ODDRs; a burst whose first beat is at beat ``slip`` of the capture READ_CAPTURE cycles after
    that (the rest in the next capture) comes out whole with ``rd_bitslip = slip``, in the cycle
    ``rd_valid`` is high, ``read_latency`` after the READ. Each lane slips on its own."""
    dut = _logic()
    p = PARAMS
    rng = random.Random(sum(slips))
    t = 4
    burst = rng.getrandbits(4 * DQ)
    first_q = t + CMD_REG + (p.read_phase + p.cl) // 2 + READ_CAPTURE
    # the IDDR output stream, per cycle: per lane, the burst's beats start at beat slip[lane]
    stream = {n: [rng.getrandbits(DQ) for _ in range(4)] for n in range(40)}
    for lane, slip in enumerate(slips):
        lane_mask = 0xFF << (8 * lane)
        for k, beat in enumerate(_beats(burst)):
            pos = slip + k
            cyc, b = first_q + pos // 4, pos % 4
            stream[cyc][b] = (stream[cyc][b] & ~lane_mask) | (beat & lane_mask)
    seen = {}

    async def bench(ctx):
        c = dut.ctrl
        for lane, slip in enumerate(slips):
            ctx.set(c.rd_bitslip[lane], slip)
        for n in range(40):
            ctx.set(c.rd_en, n == t)
            ctx.set(dut.dq_i, sum(v << (DQ * k) for k, v in enumerate(stream[n])))
            seen[n] = (ctx.get(dut.read_window), ctx.get(c.rd_valid), ctx.get(c.rd_data))
            await ctx.tick()

    _run(dut, bench)
    window_at = t + CMD_REG + (p.read_phase + p.cl) // 2 + READ_WINDOW
    assert [n for n, s in seen.items() if s[0]] == [window_at, window_at + 1]
    assert [n for n, s in seen.items() if s[1]] == [t + p.read_latency]
    assert seen[t + p.read_latency][2] == burst, f"{seen[t + p.read_latency][2]:#x} != {burst:#x}"


def test_wrong_bitslip_gives_other_data():
    """The calibration relies on it: a bitslip one off returns a different word."""
    dut = _logic()
    p = PARAMS
    t, burst = 3, 0x1122_3344_5566_7788
    first_q = t + CMD_REG + (p.read_phase + p.cl) // 2 + READ_CAPTURE
    got = {}

    async def bench(ctx):
        for slip in range(BITSLIPS):
            ctx.set(dut.ctrl.rd_bitslip[0], slip)
            ctx.set(dut.ctrl.rd_bitslip[1], slip)
            for n in range(30):
                ctx.set(dut.ctrl.rd_en, n == t)
                ctx.set(dut.dq_i, burst if n == first_q else 0xFFFF_FFFF_FFFF_FFFF if n == first_q + 1 else 0)
                if ctx.get(dut.ctrl.rd_valid):
                    got[slip] = ctx.get(dut.ctrl.rd_data)
                await ctx.tick()

    _run(dut, bench, 200)
    assert got[0] == burst and len(set(got.values())) == BITSLIPS, {k: hex(v) for k, v in got.items()}


def test_delay_change_pauses_its_lane():
    """A new ``rd_delay`` reaches READCLKSEL one cycle later, with that lane's PAUSE high from the
    change for PAUSE_CYCLES + 1 cycles; the other lane is not paused."""
    dut = _logic()
    seen = {}

    async def bench(ctx):
        for n in range(20):
            ctx.set(dut.ctrl.rd_delay[1], 5 if n >= 3 else 0)
            seen[n] = (ctx.get(dut.pause), ctx.get(dut.readclksel[1]))
            await ctx.tick()

    _run(dut, bench)
    assert [n for n, s in seen.items() if s[0] & 0b10] == list(range(3, 3 + PAUSE_CYCLES + 1))
    assert all(not s[0] & 0b01 for s in seen.values())
    assert [s[1] for s in seen.values()][:5] == [0, 0, 0, 0, 5]
    assert PARAMS.settle_cycles > PAUSE_CYCLES + 1


def test_init_sequence_order():
    """The start-up waits for a steady LOCK (a glitch restarts the wait), then freeze, stop,
    release reset, release stop, release freeze, pause, update, release update, release pause,
    done, in that order and ``step`` cycles apart; reset is high from the start."""
    dut = ECP5DDRInit(step=3)
    events: list[tuple[int, str]] = []
    names = ("freeze", "stop", "reset", "pause", "update", "done")

    async def bench(ctx):
        prev = {k: ctx.get(getattr(dut, k)) for k in names}
        assert prev["reset"] == 1 and prev["done"] == 0
        for n in range(200):
            ctx.set(dut.lock, n >= 10 and n != 13)     # a one-cycle glitch while settling
            now = {k: ctx.get(getattr(dut, k)) for k in names}
            for k in names:
                if now[k] != prev[k]:
                    events.append((n, f"{k}{'+' if now[k] else '-'}"))
            prev = now
            if now["done"]:
                return
            await ctx.tick()
        raise AssertionError(f"init not done in 200 cycles: {events}")

    _run(dut, bench, 400)
    order = [e for _, e in events]
    assert order == ["freeze+", "stop+", "reset-", "stop-", "freeze-", "pause+", "update+", "update-", "pause-",
                     "done+"], order
    times = [n for n, _ in events]
    assert all(b - a == 3 for a, b in zip(times[:-1], times[1:])), events
    assert times[0] > 13 + 3, "the LOCK glitch must restart the wait"


def _fake_pins(cs_rst: bool):
    """Ports shaped like amaranth-boards' ``ddr3`` resources requested with ``dir="-"``."""
    def se(name, n, invert=False):
        return io.SingleEndedPort(IOPort(n, name=name), invert=invert)

    def diff(name, n):
        return io.DifferentialPort(IOPort(n, name=f"{name}_p"), IOPort(n, name=f"{name}_n"))

    pins = SimpleNamespace(clk=diff("clk", 1), clk_en=se("cke", 1), we=se("we", 1, True), ras=se("ras", 1, True),
                           cas=se("cas", 1, True), a=se("a", 16 if cs_rst else 15), ba=se("ba", 3),
                           dqs=diff("dqs", 2), dq=se("dq", 16), dm=se("dm", 2), odt=se("odt", 1))
    if cs_rst:
        pins.cs, pins.rst = se("cs", 1, True), se("rst", 1, True)
    return pins


def _cells(text: str) -> Counter:
    return Counter(line.split()[1][1:] for line in text.splitlines() if line.strip().startswith("cell \\"))


@pytest.mark.parametrize("cs_rst", [False, True], ids=["ecpix5-like", "orangecrab-like"])
def test_phy_instantiates_the_ecp5_primitives(cs_rst):
    """One ODDRX2F per command/address pin and CK, per lane a DQSBUFM with its DQS/DM cells, per DQ
    the output, tristate, delay and input cells; optional ``cs``/``rst`` pins only when present."""
    pins = _fake_pins(cs_rst)
    cells = _cells(rtlil.convert(ECP5DDR3PHY(pins, bank_bits=3, addr_pins=13 if cs_rst else 15), name="top"))
    cmd_pins = 1 + 3 + len(pins.a) + 3 + 2 + (2 if cs_rst else 0)    # CK, we/ras/cas, a, ba, cke/odt
    assert cells["ODDRX2F"] == cmd_pins
    assert cells["DDRDLLA"] == 1 and cells["DQSBUFM"] == 2
    assert cells["ODDRX2DQSB"] == cells["TSHX2DQSA"] == 2
    assert cells["ODDRX2DQA"] == 16 + 2 and cells["TSHX2DQA"] == 16
    assert cells["DELAYG"] == cells["IDDRX2DQA"] == 16
    assert cells["BB"] == 16 + 2 and cells["OB"] == cmd_pins + 2


def test_phy_rejects_mismatched_pins():
    pins = _fake_pins(False)
    with pytest.raises(ValueError, match="addr_pins = 16"):
        ECP5DDR3PHY(pins, bank_bits=3, addr_pins=16)
    with pytest.raises(ValueError, match="bank_bits = 2"):
        ECP5DDR3PHY(pins, bank_bits=2, addr_pins=15)
    pins.dm = io.SingleEndedPort(IOPort(1, name="dm1"))
    with pytest.raises(ValueError, match="pins.dm has 1 pins"):
        ECP5DDR3PHY(pins, bank_bits=3, addr_pins=15)
    with pytest.raises(ValueError, match="step = 1"):
        ECP5DDRInit(step=1)
