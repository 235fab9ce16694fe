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

from rtl_gen.ddr3_phy_if import DDR3Command, DDR3PHYParams
from rtl_gen.ecp5_ddr3 import (BITSLIPS, CMD_REG, ECP5DDR3PHY, PAUSE_CYCLES, READ_CAPTURE, READ_CYCLES,
                               READ_WINDOW, WRITE_ALIGN, ECP5DDR3PHYLogic, ECP5DDRInit, phy_params)
from rtl_gen.testing import run_testbench

PARAMS = phy_params()
DQ = 16
MID = PARAMS.read_cycles // 2     # the designed rd_cycle: today's READ_WINDOW/READ_CAPTURE timing


def _logic(params: DDR3PHYParams = PARAMS) -> ECP5DDR3PHYLogic:
    return ECP5DDR3PHYLogic(dq_bits=DQ, bank_bits=3, addr_pins=15, params=params)


def test_params():
    """CL 6 / CWL 5: READ in phase 0, WRITE in phase 1; the latencies follow the pipeline."""
    p = phy_params()
    assert (p.cl, p.cwl, p.read_phase, p.write_phase) == (6, 5, 0, 1)
    assert p.write_latency == CMD_REG + 3 + WRITE_ALIGN - 1 == 4
    # one cycle more than without the rd_cycle scan: the late setting's delay line stage
    assert p.read_cycles == READ_CYCLES == 3
    assert p.read_latency == CMD_REG + 3 + READ_CAPTURE + 2 + 1 == 14
    assert phy_params(read_cycles=1).read_latency == 13
    assert (p.bitslips, p.delays) == (4, 8) and p.settle_cycles > PAUSE_CYCLES
    assert phy_params(read_latency=15).read_latency == 15
    with pytest.raises(ValueError, match="read_latency = 2"):
        phy_params(read_latency=2)
    # rd_cycle 0 captures read_cycles - 1 cycles before rd_cycle 2: still after its window opens
    with pytest.raises(ValueError, match="read_latency = 7: at least 8 with read_cycles = 3"):
        phy_params(read_latency=7)
    with pytest.raises(ValueError, match="read_cycles = 0"):
        phy_params(read_cycles=0)
    with pytest.raises(ValueError, match="read_cycles = 10"):
        phy_params(read_cycles=10)
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

    run_testbench(dut, bench)
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

    run_testbench(dut, bench)
    assert [n for n, s in seen.items() if s[0] == 0] == [6, 7]
    assert seen[5][1] == 0b01 and seen[6][1] == seen[7][1] == 0 and seen[8][1] == 0b10
    assert seen[6][2] == seen[7][2] == 0b1010


def _beats(word: int) -> list[int]:
    return [(word >> (DQ * k)) & ((1 << DQ) - 1) for k in range(4)]


@pytest.mark.parametrize("params", [PARAMS, phy_params(read_cycles=1),
                                    phy_params(cl=7, cwl=6, read_cycles=5)],
                         ids=["rc3", "rc1", "rc5-odd-cl"])
@pytest.mark.parametrize("cycles,slips", [
    ("mid", (0, 0)), ("mid", (1, 3)), ("mid", (3, 2)), ("mid", (2, 0)),   # the designed cycle
    ("first,last", (1, 3)), ("last,first", (0, 2)), ("first,first", (3, 3)), ("last,last", (2, 1)),
])
def test_read_capture_cycle_bitslip_and_valid(params, cycles, slips):
    """A READ: each lane's read window is open two cycles, CL/2 + READ_WINDOW + (rd_cycle -
    read_cycles // 2) after the command reaches the ODDRs; a burst whose first beat is at beat
    ``slip`` of the capture READ_CAPTURE + (rd_cycle - read_cycles // 2) cycles after that (the rest
    in the next capture) comes out whole with that ``rd_cycle`` and ``rd_bitslip = slip``, in the
    cycle ``rd_valid`` is high, ``read_latency`` after the READ, whatever ``rd_cycle`` is. Each lane
    moves and slips on its own."""
    dut = _logic(params)
    p = params
    mid = p.read_cycles // 2
    pick = {"mid": mid, "first": 0, "last": p.read_cycles - 1}
    cyc = [pick[name] for name in cycles.split(",")] if "," in cycles else [pick[cycles]] * 2
    rng = random.Random(sum(slips) + 10 * sum(cyc))
    t = 4
    burst = rng.getrandbits(4 * DQ)
    first_q = [t + CMD_REG + (p.read_phase + p.cl) // 2 + READ_CAPTURE + c - mid for c in cyc]
    # the IDDR output stream, per cycle: per lane, the burst's beats start at beat slip[lane]
    stream = {n: [rng.getrandbits(DQ) for _ in range(4)] for n in range(50)}
    for lane, slip in enumerate(slips):
        lane_mask = 0xFF << (8 * lane)
        for k, beat in enumerate(_beats(burst)):
            pos = slip + k
            n, b = first_q[lane] + pos // 4, pos % 4
            stream[n][b] = (stream[n][b] & ~lane_mask) | (beat & lane_mask)
    seen = {}

    async def bench(ctx):
        c = dut.ctrl
        for lane, slip in enumerate(slips):
            ctx.set(c.rd_bitslip[lane], slip)
            ctx.set(c.rd_cycle[lane], cyc[lane])
        for n in range(50):
            ctx.set(c.rd_en, n == t)
            ctx.set(dut.dq_i, sum(v << (DQ * k) for k, v in enumerate(stream[n])))
            seen[n] = (ctx.get(dut.read_window), ctx.get(c.rd_valid), ctx.get(c.rd_data))
            await ctx.tick()

    run_testbench(dut, bench, 300)
    for lane in range(2):
        window_at = t + CMD_REG + (p.read_phase + p.cl) // 2 + READ_WINDOW + cyc[lane] - mid
        assert [n for n, s in seen.items() if s[0] >> lane & 1] == [window_at, window_at + 1], lane
    assert [n for n, s in seen.items() if s[1]] == [t + p.read_latency]
    assert seen[t + p.read_latency][2] == burst, f"{seen[t + p.read_latency][2]:#x} != {burst:#x}"


def test_wrong_bitslip_or_cycle_gives_other_data():
    """The calibration relies on it: every (rd_cycle, rd_bitslip) but the right one returns a
    different word (a capture one cycle early/late sees the bus around the burst)."""
    dut = _logic()
    p = PARAMS
    t, burst = 3, 0x1122_3344_5566_7788
    first_q = t + CMD_REG + (p.read_phase + p.cl) // 2 + READ_CAPTURE
    got = {}

    async def bench(ctx):
        for cyc in range(p.read_cycles):
            for slip in range(BITSLIPS):
                for lane in range(2):
                    ctx.set(dut.ctrl.rd_cycle[lane], cyc)
                    ctx.set(dut.ctrl.rd_bitslip[lane], slip)
                for n in range(30):
                    ctx.set(dut.ctrl.rd_en, n == t)
                    ones = 0xFFFF_FFFF_FFFF_FFFF
                    ctx.set(dut.dq_i, burst if n == first_q else ones if n == first_q + 1 else 0)
                    if ctx.get(dut.ctrl.rd_valid):
                        got[cyc, slip] = ctx.get(dut.ctrl.rd_data)
                    await ctx.tick()

    run_testbench(dut, bench, 30 * BITSLIPS * p.read_cycles + 10)
    assert len(got) == BITSLIPS * p.read_cycles, sorted(got)
    assert got[MID, 0] == burst and len(set(got.values())) == len(got), {k: hex(v) for k, v in got.items()}


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

    run_testbench(dut, bench)
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

    run_testbench(dut, bench, 400)
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
    text = rtlil.convert(ECP5DDR3PHY(pins, bank_bits=3, addr_pins=13 if cs_rst else 15), name="top")
    cells = _cells(text)
    # each lane's DQSBUFM opens its own read window (rd_cycle moves them apart)
    for lane in range(2):
        block = text.split(f"cell \\DQSBUFM \\dqsbuf{lane}\n")[1].split("\n  end")[0]
        assert f"connect \\READ0 \\read_window [{lane}]" in block, block
        assert f"connect \\READ1 \\read_window [{lane}]" in block, block
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
