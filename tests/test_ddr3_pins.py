"""DDR3 controller + each PHY's logic + a beat-level DRAM at the PHY's primitive inputs, end to end.

:class:`PinDRAM` stands in for the serializing/deserializing primitives, the board and the DRAM. It
reads what the PHY logic puts on its primitive inputs every ``sync`` cycle, moves it to the pins with
fixed latencies (:class:`PinTiming`), interprets the DDR3 commands per ``CK`` cycle with the CL/CWL
the controller programs in MR0/MR2, stores a write burst from the ``DQ`` beats CWL after the
``WRITE`` (only where ``DQ`` is driven inside a proper ``DQS`` burst with preamble and postamble, and
``DM`` low), and returns a read burst CL after the ``READ`` plus ``board_delay_beats`` onto the PHY's
``dq_i``, corrupting a lane whose capture delay (ECP5 ``READCLKSEL``, 7-series ``IDELAYE2`` tap) is
outside its data-valid window, or (ECP5) whose ``DQSBUFM`` read window was not open around the
burst's ``DQS`` preamble.

Only the relative latencies matter for the write path (command vs data primitives); for the read
path the absolute ones and ``board_delay_beats`` only ever appear as a sum, so each PHY's
:func:`designed_delay` is the board delay at which its designed capture (middle ``rd_cycle``,
bitslip 0) is right, and the sweep goes one ``sync`` cycle (4 beats) either side of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtl_gen import ecp5_ddr3, xc7_ddr3
from rtl_gen.ddr3 import MT41K64M16, DDR3Controller, DDR3Timing, calib_patterns
from rtl_gen.ddr3_phy_if import DDR3Command, DDR3PHYParams, phase_layout
from rtl_gen.testing import drive_word_ops

GEOMETRY = MT41K64M16
DQ, LANES = GEOMETRY.dq_bits, GEOMETRY.lanes
# Short init waits (as tests/test_ddr3.py) so init takes about 1000 cycles.
FAST = DDR3Timing(t_reset=200.0, t_cke=500.0, t_zqinit_ck=64, t_dllk_ck=64, t_refi=2000.0)
MHZ = 50.0
C = DDR3Command


@dataclass(frozen=True)
class PinTiming:
    """How a PHY's primitives move beats between its logic and the pins (``sync`` cycles).

    A value the logic presents in cycle ``n`` (sampled by the primitive at the end of ``n``) is on
    the pin in the pin cycle ``n + latency`` (4 beats, 2 ``CK`` cycles, slot/beat 0 first). A beat
    that arrives on the ``DQ`` pin in pin cycle ``m`` is on ``dq_i`` in cycle ``m + in_cycles``.
    """
    name: str
    #: Command/address/``CK``/``ODT`` output primitives.
    cmd_cycles: int
    #: ``DQ``/``DM``/``DQS`` output primitives and their tristate controls.
    dq_cycles: int
    #: ``DQ`` pin to ``dq_i`` (input gearbox, and the ECP5's ``DQSBUFM`` read FIFO).
    in_cycles: int
    #: ``DQS`` value per beat of a write burst as the logic presents it (``dqs_o`` bit 0 first):
    #: the pattern whose edges the DRAM sees centred in the ``DQ`` beats after the primitives'
    #: clock shift (ECP5 ``DQSW`` vs ``DQSW270``; 7-series ``sys2x_90`` vs ``sys2x``).
    dqs_burst: tuple[int, int, int, int]
    #: ECP5 only: the ``DQSBUFM`` read window presented in cycle ``w`` gates the ``DQS`` arriving in
    #: pin cycle ``w + window_lead``; None: the PHY has no read window (7-series: fabric capture).
    window_lead: int | None


#: ECP5. ``ODDRX2F`` (commands, ``CK``): 2 cycles (the SCLK word is registered, then shifted out on
#: ECLK). The ``DQ``-side gearboxes (``ODDRX2DQA``, ``ODDRX2DQSB``, ``TSHX2DQA``, ``TSHX2DQSA``),
#: clocked through the ``DQSBUFM``'s ``DQSW``/``DQSW270``, leave one SCLK earlier: the offset the
#: PHY's ``WRITE_ALIGN`` = 1 stands for, and the one open ECP5 DDR3 PHYs that run on these boards
#: build their write path on (data one SCLK after the CWL-rounded command). ``IDDRX2DQA`` with the
#: ``DQSBUFM`` read FIFO: 4 cycles. ``DQS`` burst ``D0..D3`` = 0, 1, 0, 1 (TN-02035 DDR3 write:
#: ``DQSW`` is ``DQSW270`` + 90 degrees). READ0/READ1 sampled in cycle ``w`` gate the ``DQS``
#: of pin cycle ``w + 1`` (registered once, then gating the ``DQS`` input).
ECP5_PINS = PinTiming("ecp5", cmd_cycles=2, dq_cycles=1, in_cycles=4, dqs_burst=(0, 1, 0, 1), window_lead=1)
#: 7-series. Every ``OSERDESE2`` (``DATA_WIDTH`` 4, DDR) has the same latency: 1 cycle (``CLKDIV``
#: loads the word, ``CLK`` shifts it out the next cycle); ``DQS``/``CK`` on ``sys2x_90`` only move
#: the edges a quarter clock. ``IDELAYE2`` + ``ISERDESE2`` (networking, 4 bits): 2 cycles. ``DQS``
#: burst 1, 0, 1, 0 (high in beats 0 and 2: rising edges in the middle of ``DQ`` beats 0 and 2).
XC7_PINS = PinTiming("xc7", cmd_cycles=1, dq_cycles=1, in_cycles=2, dqs_burst=(1, 0, 1, 0), window_lead=None)


def designed_delay(pins: PinTiming, params: DDR3PHYParams) -> int:
    """``board_delay_beats`` at which a read's first beat reaches ``dq_i`` at beat 0 of the cycle
    the PHY's designed capture (middle ``rd_cycle``, bitslip 0) takes it: ``READ_CAPTURE`` cycles
    after the command bits leave the PHY's command register, beyond CL in ``sync`` cycles."""
    capture = ecp5_ddr3.READ_CAPTURE if pins.name == "ecp5" else xc7_ddr3.READ_CAPTURE
    # The READ's slot makes CL end on a pin cycle boundary; beats from the command's pin cycle:
    beats = 4 * (capture - pins.cmd_cycles - pins.in_cycles)
    assert beats >= 0, f"{pins.name}: the stand-in's latencies exceed READ_CAPTURE"
    return beats


def _lane_bytes(word16: int) -> list[int]:
    return [(word16 >> (8 * lane)) & 0xFF for lane in range(LANES)]


@dataclass
class PinDRAM:
    """Beat-level primitives + board + DRAM (see the module docstring), a Python model run as an
    Amaranth testbench beside the design.

    Parameters
    ----------
    logic : ECP5DDR3PHYLogic or XC7DDR3PHYLogic
    pins : PinTiming
    board_delay_beats : int
        Beats from the DRAM's read data (CL after the ``READ`` on ``CK``) to the FPGA's ``DQ`` pins.
    good_delays : per lane (first, last) capture delay settings that sample the data eye.
    write_fault_beats : int
        Fault injection: the DRAM samples write ``DQ`` this many beats late (0: correct).
    """
    logic: object
    pins: PinTiming
    board_delay_beats: int
    good_delays: tuple[tuple[int, int], ...]
    write_fault_beats: int = 0
    seed: int = 0
    errors: list[str] = field(default_factory=list)
    writes: int = 0
    reads: int = 0
    mr: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.layout = phase_layout(GEOMETRY.bank_bits, GEOMETRY.addr_pins)
        self.store: dict[tuple[int, int, int], int] = {}   # (bank, row, column) -> 16-bit beat
        self.open_rows: dict[int, int] = {}
        self.hist: dict[int, dict] = {}                    # presented cycle -> sample
        self.pending_writes: list[tuple[int, int, int, int]] = []   # (first beat, bank, row, col)
        self.pending_reads: list[tuple[int, int, int, int]] = []
        self.returning: dict[int, tuple[int, int]] = {}    # FPGA pin beat -> (16-bit value, burst start)
        self.dram_busy: set[int] = set()                   # DRAM-side beats the DRAM drives DQ
        self.window_hist: dict[int, int] = {}              # presented cycle -> read_window bits
        self.taps = [0] * LANES                            # XC7 IDELAYE2 tap per lane
        self.odt_ck: dict[int, int] = {}                   # CK cycle -> ODT at the pin
        self.first_error_cycle: int | None = None

    def error(self, n: int, msg: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"cycle {n}: {msg}")
        if self.first_error_cycle is None:
            self.first_error_cycle = n

    # -- per-beat views of the presented output words -------------------------------------------

    def _beat(self, p: int):
        """``(dq, dq driven, dm, dqs, dqs driven)`` on the pins at pin beat ``p``, or None if that
        beat was not presented (yet)."""
        s = self.hist.get(p // 4 - self.pins.dq_cycles)
        if s is None:
            return None
        k = p % 4
        dq = (s["dq_o"] >> (DQ * k)) & ((1 << DQ) - 1)
        dm = (s["dm_o"] >> (LANES * k)) & ((1 << LANES) - 1)
        if self.pins.name == "ecp5":
            dq_on = not s["dq_t"]
            dqs_on = not (s["dqs_t"] >> (k // 2)) & 1
        else:
            dq_on = not (s["dq_t"] >> k) & 1
            dqs_on = not (s["dqs_t"] >> k) & 1
        return dq, dq_on, dm, (s["dqs_o"] >> k) & 1, dqs_on

    # -- DRAM -----------------------------------------------------------------------------------

    def _command(self, n: int, ck: int, slot: int) -> None:
        lay = self.layout
        f = {name: (slot >> lay[name].offset) & ((1 << lay[name].width) - 1)
             for name in ("cs", "cmd", "ba", "a")}
        if not f["cs"] or f["cmd"] == C.NOP.value:
            return
        cmd, ba, a = C(f["cmd"]), f["ba"], f["a"]
        if cmd == C.MODE:
            self.mr[ba] = a
            if ba == 0 and a & 0b11 != 0b10:
                self.error(n, f"MR0 = {a:#x}: burst length not fixed BC4")
            if ba == 1 and (a >> 3) & 0b11:
                self.error(n, f"MR1 = {a:#x}: additive latency not 0")
        elif cmd == C.ACTIVATE:
            if ba in self.open_rows:
                self.error(n, f"ACTIVATE bank {ba}: already open")
            self.open_rows[ba] = a & ((1 << GEOMETRY.row_bits) - 1)
        elif cmd == C.PRECHARGE:
            if a >> 10 & 1:
                self.open_rows.clear()
            else:
                self.open_rows.pop(ba, None)
        elif cmd in (C.REFRESH, C.ZQ_CAL):
            if self.open_rows:
                self.error(n, f"{cmd.name} with banks {sorted(self.open_rows)} open")
        elif cmd in (C.READ, C.WRITE):
            if 0 not in self.mr or 2 not in self.mr:
                self.error(n, f"{cmd.name} before MR0/MR2")
                return
            if ba not in self.open_rows:
                self.error(n, f"{cmd.name} to closed bank {ba}")
                return
            col = a & ((1 << GEOMETRY.col_bits) - 1) & ~0b11
            if cmd == C.WRITE:
                first = 2 * (ck + self.cwl) + self.write_fault_beats
                self.pending_writes.append((first, ba, self.open_rows[ba], col))
            else:
                start = 2 * (ck + self.cl)
                self.dram_busy.update(range(start - 2, start + 5))   # preamble .. postamble
                self.pending_reads.append((start, ba, self.open_rows[ba], col))

    @property
    def cl(self) -> int:
        a = self.mr[0]
        return ((a >> 4) & 7) + (12 if a & 0b100 else 4)

    @property
    def cwl(self) -> int:
        return ((self.mr[2] >> 3) & 7) + 5

    def _finish_write(self, n: int, b: int, bank: int, row: int, col: int) -> None:
        """Store the burst whose first beat is on the pins at beat ``b`` (all beats presented)."""
        self.writes += 1
        beats = [self._beat(p) for p in range(b - 2, b + 6)]
        ok_dqs = all(x[4] for x in beats) and all(beats[i][3] == 0 for i in (0, 1, 6, 7)) and \
            tuple(beats[2 + k][3] for k in range(4)) == self.pins.dqs_burst
        if not ok_dqs:
            self.error(n, f"write bank {bank} row {row} col {col}: DQS not a burst around beat {b}: "
                          f"{[(x[3], x[4]) for x in beats]}")
        wck = (b - self.write_fault_beats) // 2 - self.cwl      # the WRITE's CK cycle
        odt_need = range(wck + 1, wck + 5)    # ODTLon = CWL - 2: RTT_NOM from preamble to postamble
        if not all(self.odt_ck.get(k) for k in odt_need):
            self.error(n, f"write at CK {wck}: ODT not high at CK {list(odt_need)}")
        for k in range(4):
            dq, dq_on, dm, _, _ = beats[2 + k]
            key = (bank, row, col + k)
            old = self.store.get(key, 0)
            new = 0
            for lane in range(LANES):
                byte = (old >> (8 * lane)) & 0xFF
                if not dm >> lane & 1:
                    byte = (dq >> (8 * lane)) & 0xFF if dq_on and ok_dqs else self.rng.getrandbits(8)
                new |= byte << (8 * lane)
            if not dq_on:
                self.error(n, f"write bank {bank} row {row} col {col}: DQ not driven at beat {b + k}")
            self.store[key] = new

    def _sample(self, ctx) -> dict:
        lg = self.logic
        s = {"cmd": ctx.get(lg.cmd.as_value()), "cke": ctx.get(lg.cke), "reset_n": ctx.get(lg.reset_n),
             "odt": ctx.get(lg.odt), "dq_o": ctx.get(lg.dq_o), "dm_o": ctx.get(lg.dm_o),
             "dq_t": ctx.get(lg.dq_t), "dqs_o": ctx.get(lg.dqs_o), "dqs_t": ctx.get(lg.dqs_t)}
        if self.pins.name == "ecp5":
            s.update(window=ctx.get(lg.read_window), pause=ctx.get(lg.pause),
                     sel=[ctx.get(lg.readclksel[i]) for i in range(LANES)])
        else:
            s.update(ld=ctx.get(lg.idelay_ld), cnt=[ctx.get(lg.idelay_cnt[i]) for i in range(LANES)])
        return s

    def _lane_ok(self, n: int, s: dict, lane: int, start: int) -> bool:
        """Whether lane ``lane`` captures the burst starting at FPGA pin beat ``start`` right."""
        lo, hi = self.good_delays[lane]
        if self.pins.name == "ecp5":
            if s["pause"] >> lane & 1 or not lo <= s["sel"][lane] <= hi:
                return False
            # DQSBUFM: READ0/1 must have been high for the pin cycles of the preamble and first beat.
            for pin_cycle in {(start - 2) // 4, start // 4}:
                if not self.window_hist.get(pin_cycle - self.pins.window_lead, 0) >> lane & 1:
                    return False
            return True
        return lo <= self.taps[lane] <= hi

    async def run(self, ctx) -> None:
        """The per-cycle loop (``sim.add_testbench``; runs until the simulation ends)."""
        pins, lg = self.pins, self.logic
        n = 0
        while True:
            s = self._sample(ctx)
            self.hist[n] = s
            self.hist.pop(n - 40, None)
            if pins.name == "ecp5":
                self.window_hist[n] = s["window"]
            # Commands reach the pins cmd_cycles later: slot i on CK cycle 2 * (n + cmd_cycles) + i.
            pin = n + pins.cmd_cycles
            for i in range(2):
                self.odt_ck[2 * pin + i] = s["odt"]
            self.odt_ck.pop(2 * pin - 200, None)
            if s["reset_n"] and s["cke"]:
                w = self.layout.size
                for i in range(2):
                    self._command(n, 2 * pin + i, (s["cmd"] >> (w * i)) & ((1 << w) - 1))
            # FPGA drives DQ at pin beats 4 * (n + dq_cycles) + k: never while the DRAM does.
            for k in range(4):
                p = 4 * (n + pins.dq_cycles) + k
                if self._beat(p)[1] and p in self.dram_busy:
                    self.error(n, f"DQ driven by both the FPGA and the DRAM at beat {p}")
            # Writes whose postamble has been presented.
            last = 4 * (n + pins.dq_cycles) + 3
            for wr in [w for w in self.pending_writes if w[0] + 5 <= last]:
                self.pending_writes.remove(wr)
                self._finish_write(n, *wr)
            # Reads: take the data once every write before them is stored.
            for rd in [r for r in self.pending_reads if r[0] <= last - 8]:
                self.pending_reads.remove(rd)
                self.reads += 1
                start, bank, row, col = rd
                at = start + self.board_delay_beats
                for k in range(4):
                    if at + k in self.returning:
                        self.error(n, f"read bursts overlap at beat {at + k}")
                    self.returning[at + k] = (self.store.get((bank, row, col + k), 0), at)
            # dq_i of this cycle: pin beats 4 * (n - in_cycles) + k.
            if pins.name == "xc7":
                for lane in range(LANES):
                    if s["ld"] >> lane & 1:
                        self.taps[lane] = s["cnt"][lane]
            word = 0
            for k in range(4):
                p = 4 * (n - pins.in_cycles) + k
                value, start = self.returning.pop(p, (None, None))
                if value is None:
                    beat = self.rng.getrandbits(DQ)      # nobody drives DQ: noise
                else:
                    beat = 0
                    for lane, byte in enumerate(_lane_bytes(value)):
                        if not self._lane_ok(n, s, lane, start):
                            byte = self.rng.getrandbits(8)    # sampled off the eye / not gated in
                        beat |= byte << (8 * lane)
                word |= beat << (DQ * k)
            ctx.set(lg.dq_i, word)
            stale = [p for p in self.returning if p < 4 * (n - pins.in_cycles)]
            if stale:
                self.error(n, f"read beats {stale} were due on dq_i before they were produced")
                for p in stale:
                    del self.returning[p]
            await ctx.tick()
            n += 1


PHYS = {
    "ecp5": (ecp5_ddr3.ECP5DDR3PHYLogic, ecp5_ddr3.phy_params, ECP5_PINS, ((2, 5), (3, 6))),
    "xc7": (xc7_ddr3.XC7DDR3PHYLogic, xc7_ddr3.phy_params, XC7_PINS, ((6, 17), (11, 24))),
}


class System(wiring.Component):
    """DDR3Controller wired to a PHY's logic (the primitives are :class:`PinDRAM`)."""

    def __init__(self, logic_cls, params: DDR3PHYParams):
        self.ctrl = DDR3Controller(GEOMETRY, FAST, MHZ, params)
        self.logic = logic_cls(dq_bits=DQ, bank_bits=GEOMETRY.bank_bits, addr_pins=GEOMETRY.addr_pins,
                               params=params)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl, m.submodules.logic = self.ctrl, self.logic
        wiring.connect(m, self.ctrl.phy, self.logic.ctrl)
        return m


INIT_LIMIT = {"ecp5": 6000, "xc7": 16000}    # init (~1000) + calibration scan (2900 / 12000)


def run_system(phy: str, *, delta: int = 0, ops=(), write_fault_beats: int = 0, seed: int = 1,
               pins: PinTiming | None = None):
    """Init + calibrate + ``ops`` at ``board_delay_beats`` = designed + ``delta`` (``pins``: other
    primitive latencies than the PHY's, to inject a fault); returns a dict
    with the outcome (``ok``, ``error``, per lane ``cycle``/``bitslip``/``delay``, ``expected``,
    ``got``, the model's ``errors`` and counts, ``cycles``)."""
    logic_cls, params_fn, phy_pins, good = PHYS[phy]
    pins = pins or phy_pins
    params = params_fn()
    dut = System(logic_cls, params)
    c, lg = dut.ctrl, dut.logic
    dram = PinDRAM(lg, pins, designed_delay(pins, params) + delta, good, write_fault_beats, seed)
    out: dict = {"expected": [], "got": []}
    rng = random.Random(seed)
    n_reads = sum(op[0] == "r" for op in ops)

    async def bench(ctx):
        if phy == "ecp5":
            ctx.set(lg.ctrl.phy_ready, 1)        # ECP5DDR3PHY's start-up synchroniser drives it
        else:
            ctx.set(lg.idelayctrl_rdy, 1)
        limit = INIT_LIMIT[phy]
        for cycle in range(limit):
            if ctx.get(c.init_done) or ctx.get(c.calib_error):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"{phy}: neither init_done nor calib_error after {limit} cycles")
        out.update(ok=ctx.get(c.calib_ok), error=ctx.get(c.calib_error), cycles=cycle,
                   cycle=[ctx.get(c.phy.rd_cycle[i]) for i in range(LANES)],
                   bitslip=[ctx.get(c.phy.rd_bitslip[i]) for i in range(LANES)],
                   delay=[ctx.get(c.phy.rd_delay[i]) for i in range(LANES)])
        if out["ok"] and ops:
            p0, p1 = calib_patterns(DQ)
            ref = {0: p0, 1: p1}
            out["expected"] = await drive_word_ops(ctx, c, ops, ref, rng, 0.2)
            limit = 40 * len(ops) + 200
            for _ in range(limit):
                if len(out["got"]) >= n_reads:
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"{phy}: {len(out['got'])}/{n_reads} reads back after {limit} cycles")
        out["finished"] = True

    async def collector(ctx):
        while True:
            ctx.set(c.rd_data.ready, rng.random() >= 0.2)
            _, _, valid, ready, payload = await ctx.tick().sample(c.rd_data.valid, c.rd_data.ready,
                                                                   c.rd_data.payload)
            if valid and ready:
                out["got"].append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6 / MHZ)
    sim.add_testbench(bench)
    sim.add_testbench(dram.run, background=True)
    sim.add_testbench(collector, background=True)
    sim.run()
    out.update(errors=dram.errors, writes=dram.writes, reads=dram.reads, board_delay=dram.board_delay_beats)
    return out


def _check_traffic(out):
    assert out["ok"] and not out["error"], out
    assert out["errors"] == [], out["errors"]
    assert len(out["got"]) == len(out["expected"]), (len(out["got"]), len(out["expected"]))
    for i, ((addr, want), value) in enumerate(zip(out["expected"], out["got"])):
        assert value == want, f"read {i} of word {addr:#x}: got {value:#018x}, want {want:#018x}"



def _ops(rng: random.Random, n: int) -> list:
    """Random word reads/writes over clustered addresses (row hits, bank changes, row misses);
    the two calibration words are left alone."""
    hot = [rng.randrange(2, 1 << 12) for _ in range(24)]
    ops = []
    for _ in range(n):
        addr = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(2, GEOMETRY.words)
        ops.append(("w", addr, rng.getrandbits(GEOMETRY.data_bits)) if rng.random() < 0.45 else ("r", addr))
    return ops


@pytest.mark.parametrize("phy", ["ecp5", "xc7"])
def test_init_calibrate_and_random_traffic(phy):
    """(a) init and calibration end in calib_ok at the designed capture (middle rd_cycle, bitslip
    0, the centre of each lane's delay window); (b) random full-word writes and reads (the front
    end has no byte masks: DM must stay low) read back exactly through the pins, with no protocol
    error in the stand-in (DQS bursts, DQ/ODT enables, bus turnarounds, bank states)."""
    _, params_fn, _, good = PHYS[phy]
    mid = params_fn().read_cycles // 2
    out = run_system(phy, ops=_ops(random.Random(7), 300), seed=7)
    _check_traffic(out)
    assert out["cycle"] == [mid] * LANES and out["bitslip"] == [0] * LANES, out
    assert out["delay"] == [(lo + hi) // 2 for lo, hi in good], out
    assert out["writes"] >= 100 and out["reads"] >= 100, (out["writes"], out["reads"])


SWEEP = range(-4, 5)      # one sync cycle either side of the designed board delay


@pytest.mark.parametrize("phy", ["ecp5", "xc7"])
def test_board_delay_sweep(phy):
    """(c) Every board delay within a cycle either side of the designed one calibrates and reads back;
    the (rd_cycle, bitslip) picked is the one that beat offset needs, and grows with the delay."""
    mid = PHYS[phy][1]().read_cycles // 2
    picked = {}
    for delta in SWEEP:
        ops = [("w", 40 + delta, 0x0123_4567_89AB_CDEF ^ (delta & 0xFF)), ("r", 40 + delta), ("r", 0)]
        out = run_system(phy, delta=delta, ops=ops, seed=delta + 10)
        _check_traffic(out)
        picked[out["board_delay"]] = [(cy, bs) for cy, bs in zip(out["cycle"], out["bitslip"])]
        want = divmod(4 * mid + delta, 4)
        assert picked[out["board_delay"]] == [want] * LANES, (delta, picked)
    print(f"\n{phy}: board_delay_beats -> [(rd_cycle, rd_bitslip)] per lane: {picked}")
    order = [picked[d] for d in sorted(picked)]
    assert order == sorted(order) and len({tuple(p) for p in order}) == len(order), picked


@pytest.mark.parametrize("phy", ["ecp5", "xc7"])
@pytest.mark.parametrize("where", ["early", "late"])
def test_board_delay_out_of_reach_is_calib_error(phy, where):
    """(c) One beat beyond what rd_cycle x bitslip reaches on either side: calib_error, no hang
    (run_system fails if neither init_done nor calib_error rises in time)."""
    p = PHYS[phy][1]()
    mid = p.read_cycles // 2
    # reachable: 4 * (rd_cycle - mid) + bitslip beats from the designed delay
    delta = -4 * mid - 1 if where == "early" else 4 * (p.read_cycles - 1 - mid) + p.bitslips
    out = run_system(phy, delta=delta)
    assert out["error"] and not out["ok"], out
    assert out["errors"] == [], out["errors"]


@pytest.mark.parametrize("phy", ["ecp5", "xc7"])
@pytest.mark.parametrize("fault", ["dq-sampled-a-beat-late", "dq-primitives-a-cycle-slower"])
def test_write_path_fault_fails(phy, fault):
    """(d) The checks can fail: a DRAM that samples write DQ one beat late sees the burst's last beat
    undriven; DQ/DQS primitives one cycle slower than the stand-in's (for the ECP5: as slow as
    ODDRX2F, i.e. a PHY without WRITE_ALIGN) put the whole burst a cycle late. Either way the
    stand-in reports it and the calibration pattern never reads back (calib_error)."""
    pins = PHYS[phy][2]
    if fault == "dq-sampled-a-beat-late":
        out = run_system(phy, write_fault_beats=1)
    else:
        out = run_system(phy, pins=replace(pins, dq_cycles=pins.dq_cycles + 1))
    assert any("DQ not driven" in e for e in out["errors"]), out["errors"]
    assert out["error"] and not out["ok"], out
