"""DDR3 controller against the cycle-level PHY+DRAM model (Amaranth simulation).

Random reads and writes with random idle cycles and read back-pressure: every read returns the last
value written (a dict is the reference), and the model reports no violation. Read calibration must
find the model's capture window (whole-cycle offset, bitslip, delays) on every lane, and report a
lane without one. The model's checks are themselves tested by driving it with deliberately wrong
command sequences.
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtl_gen.ddr3 import (MT41K64M16, MT41K256M16, DDR3Controller, DDR3Geometry, DDR3Timing,
                          calib_patterns, mode_registers, throughput_model)
from rtl_gen.ddr3_model import WRONG_CYCLE_EARLY, WRONG_CYCLE_LATE, DDR3Model, Violation, default_windows
from rtl_gen.ddr3_phy_if import DDR3Command, DDR3PHYParams
from rtl_gen.testing import collect_quietly, drive_word_ops, wait_for

# Short init waits and refresh interval so tests see init and many refreshes in few cycles.
FAST = DDR3Timing(t_reset=200.0, t_cke=500.0, t_zqinit_ck=64, t_dllk_ck=64, t_refi=2000.0)
PARAMS = DDR3PHYParams()          # CL 6 (READ in slot 0), CWL 5 (WRITE in slot 1)
WORDS = 1 << 12                   # 2 rows in each of the 8 banks
MHZ = 50.0
INIT_LIMIT = 5000                 # cycles for init + calibration (FAST: about 1000, 3000 with 3 read cycles)
# Three whole-cycle read offsets to scan (rd_cycle 0..2), as the ECP5 PHY has.
PARAMS3 = DDR3PHYParams(read_cycles=3)


class Pair(wiring.Component):
    """Controller wired to the model, as on the board but with the model in place of PHY+DRAM."""

    def __init__(self, geometry=MT41K64M16, timing=FAST, clock_mhz=MHZ, params=PARAMS, words=WORDS,
                 calib_word=0, **model_kw):
        self.ctrl = DDR3Controller(geometry, timing, clock_mhz, params, calib_word=calib_word)
        self.model = DDR3Model(geometry, timing, clock_mhz, params, words=words, **model_kw)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl, m.submodules.model = self.ctrl, self.model
        wiring.connect(m, self.ctrl.phy, self.model.phy)
        return m


def run_traffic(ops, geometry=MT41K64M16, timing=FAST, clock_mhz=MHZ, idle=0.3, backpressure=0.3,
                seed=1, words=WORDS, params=PARAMS, calib_word=0, **model_kw):
    """Run ``ops`` ([("w", addr, data) | ("r", addr)]) through the pair (``model_kw`` to the
    model); return (expected, got, info) with info the cycles after ``init_done`` and the model's
    counters."""
    dut = Pair(geometry, timing, clock_mhz, params, words=words, calib_word=calib_word, **model_kw)
    c, m = dut.ctrl, dut.model
    rng = random.Random(seed)
    expected: list[tuple[int, int]] = []
    got: list[int] = []
    n_reads = sum(op[0] == "r" for op in ops)
    p0, p1 = calib_patterns(geometry.dq_bits)

    info = {}
    now = [0]   # cycles since the start, counted by the sampler

    async def issuer(ctx):
        await wait_for(ctx, c.init_done, INIT_LIMIT, "init_done")
        start, refreshes0 = now[0], ctx.get(m.refreshes)
        ref: dict[int, int] = {calib_word: p0, calib_word + 1: p1}   # calibration wrote its patterns there
        expected.extend(await drive_word_ops(ctx, c, ops, ref, rng, idle))
        while len(got) < n_reads:
            await ctx.tick()
        info.update(cycles=now[0] - start, violation=ctx.get(m.violation), violations=ctx.get(m.violations),
                    violation_cmd=ctx.get(m.violation_cmd), refreshes=ctx.get(m.refreshes) - refreshes0,
                    refresh_count=ctx.get(c.refresh_count), model_refreshes=ctx.get(m.refreshes),
                    activates=ctx.get(m.activates))

    async def collector(ctx):
        if not backpressure:
            ctx.set(c.rd_data.ready, 1)
            return
        while len(got) < n_reads:
            ctx.set(c.rd_data.ready, rng.random() >= backpressure)
            await ctx.tick()

    async def sampler(ctx):
        async for _clk, _rst, valid, ready, payload in ctx.tick().sample(
                c.rd_data.valid, c.rd_data.ready, c.rd_data.payload):
            now[0] += 1
            if valid and ready:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6 / clock_mhz)
    sim.add_testbench(issuer)
    sim.add_testbench(collector)
    sim.add_process(sampler)
    budget = INIT_LIMIT + 200 + 40 * len(ops)
    sim.run_until((budget / clock_mhz) * 1e-6)
    assert "cycles" in info, f"traffic did not finish within {budget} cycles " \
                             f"({len(got)}/{n_reads} reads returned)"
    return expected, got, info


def check(expected, got, info):
    assert info["violation"] == Violation.NONE, \
        f"DDR3 model saw {info['violation']} at command {info['violation_cmd']} " \
        f"({info['violations']} violations)"
    assert len(got) == len(expected)
    for i, ((addr, want), value) in enumerate(zip(expected, got)):
        assert value == want, f"read {i} of word {addr:#x}: got {value:#018x}, want {want:#018x}"


# Odd CL / even CWL move READ to slot 1 and WRITE to slot 0; other PHY latencies.
ODD = DDR3PHYParams(cl=7, cwl=6, read_latency=7, write_latency=3, bitslips=2, delays=6, settle_cycles=3)


# The ECPIX-5 case calibrates at the top of the memory, where SystemTop puts it.
@pytest.mark.parametrize("geometry,params,calib_word", [(MT41K64M16, PARAMS, 0), (MT41K256M16, ODD, WORDS - 2)],
                         ids=["orangecrab", "ecpix5-odd-cl-calib-at-top"])
def test_random_traffic(geometry, params, calib_word):
    rng = random.Random(geometry.row_bits)
    # Clustered addresses: many row hits, bank changes and row misses in the same bank.
    hot = [rng.randrange(WORDS) for _ in range(32)]
    ops = []
    for _ in range(350):
        addr = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(WORDS)
        if rng.random() < 0.45:
            ops.append(("w", addr, rng.randrange(1 << 64)))
        else:
            ops.append(("r", addr))
    expected, got, info = run_traffic(ops, geometry=geometry, seed=geometry.row_bits, params=params,
                                      calib_word=calib_word)
    check(expected, got, info)
    assert info["refreshes"] >= 10, f"refresh ran {info['refreshes']} times during traffic"
    assert info["refresh_count"] == info["model_refreshes"], "controller and model count refreshes apart"


def test_back_to_back_no_stalls():
    """Writes then reads of a sequential block across row and bank changes, no idle cycles,
    consumer always ready."""
    n = 280   # 256 words per row: crosses a bank change
    ops = [("w", 100 + i, (i * 0x9E3779B97F4A7C15) & (2**64 - 1)) for i in range(n)] + \
          [("r", 100 + i) for i in range(n)]
    expected, got, info = run_traffic(ops, idle=0, backpressure=0)
    check(expected, got, info)


def run_calibration(limit=INIT_LIMIT, **model_kw):
    """Init + calibration only; returns the controller's calibration outputs and the model's state."""
    dut = Pair(**model_kw)
    c, m = dut.ctrl, dut.model
    out = {}

    async def bench(ctx):
        for _ in range(limit):
            if ctx.get(c.init_done) or ctx.get(c.calib_error):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"neither init_done nor calib_error after {limit} cycles")
        # Stay a while: init_done must not rise later after an error; no host request accepted.
        ctx.set(c.rd_cmd.valid, 1)
        ctx.set(c.rd_cmd.payload, 5)
        for _ in range(300):
            out.setdefault("rd_ready", 0)
            out["rd_ready"] |= ctx.get(c.rd_cmd.ready)
            out.setdefault("init_done_seen", 0)
            out["init_done_seen"] |= ctx.get(c.init_done)
            await ctx.tick()
        ctx.set(c.rd_cmd.valid, 0)
        out.update(ok=ctx.get(c.calib_ok), error=ctx.get(c.calib_error), init_done=ctx.get(c.init_done),
                   windows=[(w.cycle, w.bitslip, w.first, w.last) for w in
                            (ctx.get(c.calib_windows)[i] for i in range(MT41K64M16.lanes))],
                   cycle=[ctx.get(c.phy.rd_cycle[i]) for i in range(MT41K64M16.lanes)],
                   bitslip=[ctx.get(c.phy.rd_bitslip[i]) for i in range(MT41K64M16.lanes)],
                   delay=[ctx.get(c.phy.rd_delay[i]) for i in range(MT41K64M16.lanes)],
                   violation=ctx.get(m.violation))

    sim = Simulator(dut)
    sim.add_clock(1e-6 / MHZ)
    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize("bitslips,delays", [
    ((1, 2), ((2, 5), (3, 6))),      # the model's defaults
    ((0, 3), ((0, 7), (6, 6))),      # all delays pass / a single one at the top
    ((3, 0), ((0, 0), (1, 4))),      # a single one at the bottom
])
def test_calibration_finds_centre(bitslips, delays):
    out = run_calibration(good_bitslip=bitslips, good_delays=delays)
    assert out["violation"] == Violation.NONE, out["violation"]
    assert out["ok"] and not out["error"] and out["init_done"], out
    for lane, (b, (first, last)) in enumerate(zip(bitslips, delays)):
        assert out["windows"][lane] == (0, b, first, last), (lane, out["windows"])
        assert out["bitslip"][lane] == b, (lane, out["bitslip"])
        assert out["delay"][lane] == (first + last) // 2, (lane, out["delay"])


# Per lane (good_cycle, good_bitslip, good_delays): every rd_cycle 0..2 on some lane, lanes differ.
CYCLE_CASES = [
    ((0, 2), (1, 2), ((2, 5), (3, 6))),
    ((2, 1), (3, 0), ((0, 7), (6, 6))),
    ((1, 0), (0, 3), ((0, 0), (1, 4))),
]


@pytest.mark.parametrize("cycles,bitslips,delays", CYCLE_CASES, ids=["c0c2", "c2c1", "c1c0"])
def test_calibration_finds_cycle_and_centre(cycles, bitslips, delays):
    """With three whole-cycle offsets to scan, each lane gets its own rd_cycle, bitslip and centre."""
    out = run_calibration(params=PARAMS3, good_cycle=cycles, good_bitslip=bitslips, good_delays=delays)
    assert out["violation"] == Violation.NONE, out["violation"]
    assert out["ok"] and not out["error"] and out["init_done"], out
    for lane, (cyc, b, (first, last)) in enumerate(zip(cycles, bitslips, delays)):
        assert out["windows"][lane] == (cyc, b, first, last), (lane, out["windows"])
        assert (out["cycle"][lane], out["bitslip"][lane]) == (cyc, b), (lane, out)
        assert out["delay"][lane] == (first + last) // 2, (lane, out["delay"])


@pytest.mark.parametrize("cycles,bitslips,delays", CYCLE_CASES, ids=["c0c2", "c2c1", "c1c0"])
def test_traffic_after_cycle_calibration(cycles, bitslips, delays):
    """After calibrating per-lane rd_cycle, random traffic reads back what was written."""
    rng = random.Random(sum(cycles))
    ops = [("w", a, rng.randrange(1 << 64)) for a in range(4, 40)]
    for _ in range(80):
        addr = rng.randrange(4, 40)
        ops.append(("r", addr) if rng.random() < 0.7 else ("w", addr, rng.randrange(1 << 64)))
    expected, got, info = run_traffic(ops, params=PARAMS3, seed=sum(cycles), good_cycle=cycles,
                                      good_bitslip=bitslips, good_delays=delays)
    check(expected, got, info)


def test_traffic_after_calibration_ecp5_params():
    """The ECP5 PHY's parameters (read_cycles 3, its latencies) with the model's default per-lane
    capture (lanes on rd_cycle 1 and 2): calibration and traffic work."""
    from rtl_gen.ecp5_ddr3 import phy_params
    params = phy_params()
    assert params.read_cycles == 3 and default_windows(params, 2)[2] == (1, 2)
    rng = random.Random(5)
    ops = [("w", a, rng.randrange(1 << 64)) for a in range(8, 24)] + [("r", a) for a in range(8, 24)]
    check(*run_traffic(ops, params=params, seed=5))


def test_calibration_failure_is_visible():
    """A lane where no delay works: calib_error, never init_done, no request accepted."""
    out = run_calibration(good_bitslip=(1, 2), good_delays=((2, 5), None))
    assert out["error"] and not out["ok"], out
    assert not out["init_done_seen"] and not out["rd_ready"], out
    assert out["violation"] == Violation.NONE, out["violation"]


@pytest.mark.parametrize("params,cycles", [(PARAMS3, (1, 3)), (PARAMS3, (-1, 0)), (PARAMS, (1, 0))],
                         ids=["late-beyond-scan", "early-beyond-scan", "no-scan-late"])
def test_calibration_fails_when_the_cycle_is_out_of_range(params, cycles):
    """A lane whose reads return outside the scanned rd_cycle range: calib_error (no hang, no
    calib_ok, no init_done, no request accepted)."""
    out = run_calibration(params=params, good_cycle=cycles)
    assert out["error"] and not out["ok"], out
    assert not out["init_done_seen"] and not out["rd_ready"], out
    assert out["violation"] == Violation.NONE, out["violation"]


def test_throughput_matches_model():
    """Measured cycles per word of long sequential and same-bank random streams are what
    throughput_model says (real refresh interval)."""
    timing = DDR3Timing(t_reset=200.0, t_cke=500.0, t_zqinit_ck=64, t_dllk_ck=64)
    model = throughput_model(MT41K64M16, timing, MHZ, PARAMS)
    n = 520   # three rows (two bank changes), several refreshes
    _, got, info = run_traffic([("r", i) for i in range(n)], timing=timing, idle=0, backpressure=0)
    assert info["violation"] == Violation.NONE, info
    seq = info["cycles"] / n
    print(f"sequential read: {seq:.3f} cycles/word, model {model['seq_read']:.3f}")
    assert seq == pytest.approx(model["seq_read"], rel=0.05), (seq, model)
    _, got, info = run_traffic([("w", i, i) for i in range(n // 2)], timing=timing, idle=0, backpressure=0)
    assert info["violation"] == Violation.NONE, info
    seqw = info["cycles"] / (n // 2)
    print(f"sequential write: {seqw:.3f} cycles/word, model {model['seq_write']:.3f}")
    assert seqw == pytest.approx(model["seq_write"], rel=0.05), (seqw, model)
    # Same bank, another row every access: PRECHARGE, ACTIVATE, READ each time.
    row_stride = 1 << (MT41K64M16.colword_bits + MT41K64M16.bank_bits)
    rng = random.Random(3)
    ops = [("r", (i % 4) * row_stride + rng.randrange(256)) for i in range(80)]
    _, _, info = run_traffic(ops, timing=timing, idle=0, backpressure=0, words=1 << 13)
    assert info["violation"] == Violation.NONE, info
    rand = info["cycles"] / len(ops)
    print(f"same-bank random read: {rand:.3f} cycles/word, model {model['random_read']:.3f}")
    assert rand == pytest.approx(model["random_read"], rel=0.10), (rand, model)


# -- the model's checks ----------------------------------------------------------------------------

# Slow parts so that every rule spans a few tCK at 50 MHz (tCK = 10 ns): tRCD 5, tRP 4, tRAS 4,
# tRC 12, tRRD 4, tFAW 20, tWR 2, tWTR 4, tRTP 4, tCCD 4, tMRD 4, tMOD 12, tRFC 26, tXPR 27.
SLOW = DDR3Timing(t_reset=100.0, t_cke=100.0, t_zqinit_ck=16, t_dllk_ck=16, t_refi=1000.0,
                  t_rcd=45.0, t_rp=40.0, t_rc=120.0, t_faw=200.0)
C = DDR3Command
WP, RP = PARAMS.write_phase, PARAMS.read_phase


def init_events(timing=SLOW, *, mrs=None, mrd_gap=None, mod_gap=None, xpr_gap=None, zq_gap=None):
    """The init sequence as (cycles after the previous event, what) with the minimum waits."""
    ck, cy = timing.ck(MHZ), timing.cycles(MHZ)
    mode = mode_registers(PARAMS, timing, MHZ)
    if mrs is not None:
        mode.update(mrs)

    def half(n):
        return -(-n // 2)

    ev = [(cy.reset, ("pins", 1, 0)), (cy.cke, ("pins", 1, 1))]
    gap = half(ck.xpr) if xpr_gap is None else xpr_gap
    for mr in (2, 3, 1, 0):
        ev.append((gap, ("cmd", 0, C.MODE, mr, mode[mr])))
        gap = half(ck.mrd) if mrd_gap is None else mrd_gap
    ev.append((half(ck.mod) if mod_gap is None else mod_gap, ("cmd", 0, C.ZQ_CAL, 0, 1 << 10)))
    ev.append((half(max(ck.zqinit, ck.dllk)) if zq_gap is None else zq_gap, ("idle",)))
    return ev


def run_model(events, *, timing=SLOW, tail=20, wr_en=True, words=WORDS, wr_data=0, full=False, params=PARAMS,
              **model_kw):
    """Drive the model alone with ``events`` ((cycles after the previous one, what): ("pins",
    reset_n, cke), ("cmd", slot, command, bank, address), ("capture", bitslips, delays[, cycles]),
    ("idle",)); READ raises ``rd_en`` in its cycle and WRITE ``wr_en`` (with ``wr_data``)
    write_latency later (unless ``wr_en`` is False). Returns the first violation, or with ``full``
    a dict of it and the read data returned ``[(cycle, data)]``."""
    dut = DDR3Model(MT41K64M16, timing, MHZ, params, words=words, **model_kw)
    sched: dict[int, list] = {}
    t = 0
    for dt, what in events:
        t += dt
        sched.setdefault(t, []).append(what)
    end = t + tail
    out = {}

    async def bench(ctx):
        p = dut.phy
        writes = set()
        out["reads"] = []
        ctx.set(p.wr_data, wr_data)
        for cyc in range(end):
            for i in range(2):
                ctx.set(p.phases[i].cs, 0)
                ctx.set(p.phases[i].cmd, C.NOP)
            ctx.set(p.rd_en, 0)
            for what in sched.get(cyc, []):
                if what[0] == "pins":
                    ctx.set(p.reset_n, what[1])
                    ctx.set(p.cke, what[2])
                elif what[0] == "capture":
                    for lane, (b, d) in enumerate(zip(what[1], what[2])):
                        ctx.set(p.rd_bitslip[lane], b)
                        ctx.set(p.rd_delay[lane], d)
                    for lane, c in enumerate(what[3] if len(what) > 3 else ()):
                        ctx.set(p.rd_cycle[lane], c)
                elif what[0] == "cmd":
                    _, slot, cmd, ba, a = what
                    ctx.set(p.phases[slot].cs, 1)
                    ctx.set(p.phases[slot].cmd, cmd)
                    ctx.set(p.phases[slot].ba, ba)
                    ctx.set(p.phases[slot].a, a)
                    if cmd == C.READ:
                        ctx.set(p.rd_en, 1)
                    if cmd == C.WRITE and wr_en:
                        writes.add(cyc + params.write_latency)
            ctx.set(p.wr_en, cyc in writes)
            if ctx.get(p.rd_valid):
                out["reads"].append((cyc, ctx.get(p.rd_data)))
            await ctx.tick()
        out["v"] = ctx.get(dut.violation)
        out["n"] = ctx.get(dut.violations)

    sim = Simulator(dut)
    sim.add_clock(1e-6 / MHZ)
    sim.add_testbench(bench)
    sim.run()
    return out if full else out["v"]


def cmd(dt, command, ba=0, a=0, slot=None):
    if slot is None:
        slot = RP if command == C.READ else WP if command == C.WRITE else 0
    return dt, ("cmd", slot, command, ba, a)


def test_model_accepts_legal_sequence():
    """Minimum distances everywhere (in tCK: the slots count) give no violation."""
    ck = SLOW.ck(MHZ)
    assert (ck.rcd, ck.rp, ck.ras, ck.rc, ck.rrd, ck.faw) == (5, 4, 4, 12, 4, 20)
    ok = init_events() + [
        cmd(0, C.ACTIVATE, 0, 1),
        cmd(2, C.READ, 0, 0),              # slot 0, 4 tCK: too early for tRCD 5 ...
    ]
    assert run_model(ok) == Violation.T_RCD
    ok[-1] = cmd(2, C.READ, 0, 0, slot=1)   # ... slot 1, 5 tCK: legal
    assert run_model(ok + [cmd(2, C.READ, 0, 4, slot=1),            # tCCD 4
                           cmd(4, C.WRITE, 0, 8),                   # CL + 6 - CWL = 7 <= 8
                           cmd(7, C.READ, 0, 0, slot=1),            # CWL + 4 + tWTR = 13 <= 14
                           cmd(2, C.PRECHARGE, 0, 0),               # tRTP 4 (slot 1 to 0: 3) ...
                           ]) == Violation.T_RTP
    assert run_model(ok + [cmd(3, C.PRECHARGE, 0, 0), cmd(4, C.ACTIVATE, 0, 0),
                           cmd(3, C.WRITE, 0, 0), cmd(6, C.PRECHARGE, 0, 0),   # CWL + 4 + tWR = 11 <= 11
                           cmd(2, C.REFRESH), cmd(13, C.ACTIVATE, 1, 1)]) == Violation.NONE


def test_model_read_capture():
    """The model returns the stored word exactly read_latency cycles after the READ only with each
    lane's good bitslip, a delay in its window and the setting settled; otherwise that lane's bytes
    are wrong (and only that lane's)."""
    word, _ = calib_patterns(16)
    good_b, good_d = (1, 2), (2, 3)     # the model's defaults: lane 0 (1, 2..5), lane 1 (2, 3..6)
    settle = PARAMS.settle_cycles
    assert settle <= PARAMS.read_latency, "the settling case below needs settle_cycles <= read_latency"

    def read_with(bitslips, delays, late=None):
        ev = init_events() + [(0, ("capture", bitslips, delays)), cmd(0, C.ACTIVATE, 0, 0),
                              cmd(3, C.WRITE, 0, 0), cmd(7, C.READ, 0, 0)]
        read_cycle = sum(dt for dt, _ in ev)
        if late is not None:    # another setting right after the READ: not settled at its data
            ev.append((1, ("capture", *late)))
        out = run_model(ev, wr_data=word, full=True, tail=PARAMS.read_latency + 4)
        assert out["v"] == Violation.NONE, out["v"]
        assert [c for c, _ in out["reads"]] == [read_cycle + PARAMS.read_latency], out["reads"]
        data = out["reads"][0][1]
        return [all(((data ^ word) >> (8 * (beat * 2 + lane))) & 0xFF == 0 for beat in range(4))
                for lane in range(2)]

    assert read_with(good_b, good_d) == [True, True]
    assert read_with((0, 2), good_d) == [False, True]           # lane 0 bitslip wrong
    assert read_with(good_b, (2, 7)) == [True, False]           # lane 1 delay outside 3..6
    assert read_with(good_b, (5, 6)) == [True, True]            # last delays of both windows
    assert read_with(good_b, (1, 6)) == [False, True]           # lane 0 delay below 2..5
    assert read_with(good_b, good_d, late=(good_b, (2, 4))) == [True, False]   # lane 1 settling


def test_model_read_capture_cycle():
    """With read_cycles 3 a lane also needs its good rd_cycle: one early or late returns none of
    the right bytes (XOR the model's early/late garbage, whatever the bitslip and delay), a changed
    rd_cycle must settle, and a good cycle outside 0..2 never reads right."""
    word, _ = calib_patterns(16)
    good_b, good_d = (1, 2), (2, 3)     # the model's default bitslips, delays in both windows
    p = PARAMS3

    def read_with(cycles, bitslips=good_b, late=(), good_cycle=(0, 2)):
        ev = init_events() + [(0, ("capture", bitslips, good_d, cycles)), cmd(0, C.ACTIVATE, 0, 0),
                              cmd(3, C.WRITE, 0, 0), cmd(7, C.READ, 0, 0)]
        read_cycle = sum(dt for dt, _ in ev)
        for setting in late:    # rd_cycle changes in the cycles after the READ: not settled at its data
            ev.append((1, ("capture", bitslips, good_d, setting)))
        out = run_model(ev, wr_data=word, full=True, tail=p.read_latency + 4, params=p, good_cycle=good_cycle)
        assert out["v"] == Violation.NONE, out["v"]
        assert [c for c, _ in out["reads"]] == [read_cycle + p.read_latency], out["reads"]
        data = out["reads"][0][1]
        return [[((data ^ word) >> (8 * (beat * 2 + lane))) & 0xFF for beat in range(4)] for lane in range(2)]

    assert read_with((0, 2)) == [[0] * 4, [0] * 4]
    assert read_with((1, 2)) == [[WRONG_CYCLE_LATE] * 4, [0] * 4]     # lane 0 one late
    assert read_with((0, 1)) == [[0] * 4, [WRONG_CYCLE_EARLY] * 4]    # lane 1 one early
    assert read_with((0, 0))[1] == [WRONG_CYCLE_EARLY] * 4            # lane 1 two early
    # a wrong bitslip on top of a wrong cycle still gives no right byte
    assert read_with((2, 2), bitslips=(0, 2))[0] == [WRONG_CYCLE_LATE] * 4
    assert p.settle_cycles <= p.read_latency, "the settling case needs settle_cycles <= read_latency"
    settling = read_with((0, 2), late=[(0, 1), (0, 2)])               # lane 1 away and back: settling
    assert settling[0] == [0] * 4 and settling[1] != [0] * 4, settling
    for cycles in ((0, 0), (1, 1), (2, 2)):                           # 3 and -1: outside the scan
        assert all(all(x != 0 for x in lane) for lane in read_with(cycles, good_cycle=(3, -1))), cycles


def test_model_rejects_bad_commands():
    """Each violation of the model fires on a command sequence that breaks its rule."""
    init = init_events()
    act = [cmd(0, C.ACTIVATE, 0, 0)]
    seen = {}

    def expect(events, want, **kw):
        got = run_model(events, **kw)
        assert got == want, f"expected {want}, got {got}"
        seen[want] = True

    expect(init + act + [cmd(3, C.READ, 0, 0)], Violation.NONE)
    expect([(2, ("cmd", 0, C.MODE, 2, 0))], Violation.INIT)                      # in reset
    expect(init[:2] + [(20, ("cmd", 0, C.ACTIVATE, 0, 0))], Violation.INIT)    # before MRS
    expect(init_events(mrs={0: mode_registers(PARAMS, SLOW, MHZ)[0] & ~0b11}), Violation.MODE)  # BL8
    expect(init_events(mrs={2: 1 << 3}), Violation.MODE)                         # CWL 6, not 5
    expect(init + [cmd(0, C.READ, 0, 0)], Violation.BANK_STATE)
    expect(init + act + [cmd(1, C.READ, 0, 0)], Violation.T_RCD)
    expect(init + act + [cmd(2, C.PRECHARGE), cmd(1, C.ACTIVATE, 0, 0)], Violation.T_RP)
    expect(init + act + [cmd(1, C.PRECHARGE)], Violation.T_RAS)
    expect(init + act + [cmd(2, C.PRECHARGE), cmd(2, C.ACTIVATE, 0, 0)], Violation.T_RC)
    expect(init + act + [cmd(1, C.ACTIVATE, 1, 0)], Violation.T_RRD)
    expect(init + act + [cmd(2, C.ACTIVATE, b, 0) for b in range(1, 5)], Violation.T_FAW)
    expect(init + act + [cmd(3, C.WRITE), cmd(3, C.PRECHARGE)], Violation.T_WR)
    expect(init + act + [cmd(3, C.WRITE), cmd(3, C.READ)], Violation.T_WTR)
    expect(init + act + [cmd(3, C.READ), cmd(2, C.WRITE)], Violation.T_RTW)
    expect(init + act + [cmd(3, C.READ), cmd(1, C.PRECHARGE)], Violation.T_RTP)
    expect(init + act + [cmd(3, C.READ), cmd(1, C.READ)], Violation.T_CCD)
    expect(init + [cmd(0, C.REFRESH), cmd(5, C.ACTIVATE, 0, 0)], Violation.T_RFC)
    expect(init_events(mrd_gap=1), Violation.T_MRD)
    expect(init_events(mod_gap=2), Violation.T_MOD)
    expect(init_events(zq_gap=1) + act, Violation.T_ZQ)
    expect(init_events(xpr_gap=1), Violation.T_XPR)
    expect(init, Violation.REFRESH_LATE, tail=9 * SLOW.cycles(MHZ).refi + 20)
    expect(init + act + [cmd(3, C.WRITE)], Violation.DATA, wr_en=False)
    expect(init + [cmd(0, C.ACTIVATE, 0, 2)], Violation.ALIAS)                 # 2 rows per bank
    missing = [v for v in Violation if v not in seen]
    assert not missing, f"no test sequence for {missing}"


def test_mode_registers():
    # CL 6, CWL 5 at 50 MHz (tCK 10 ns): WR 5 (tWR 15 ns = 2 tCK, the smallest code is 5).
    mr = mode_registers(DDR3PHYParams(cl=6, cwl=5), DDR3Timing(), 50.0)
    assert mr == {0: 0b001_1_0_010_0_0_10, 1: 0b100, 2: 0, 3: 0}, {k: bin(v) for k, v in mr.items()}
    # CL 13 uses A2; tWR 15 ns at 400 MHz sync (tCK 1.25 ns) is 12 tCK.
    mr = mode_registers(DDR3PHYParams(cl=13, cwl=9), DDR3Timing(), 400.0)
    assert (mr[0] >> 4) & 7 == 1 and (mr[0] >> 2) & 1 == 1 and (mr[0] >> 9) & 7 == 6
    assert mr[2] == 4 << 3


def test_bad_parameters():
    with pytest.raises(ValueError, match="row_bits = 20"):
        DDR3Geometry(row_bits=20)
    with pytest.raises(ValueError, match="bank_bits = 2"):
        DDR3Geometry(bank_bits=2)
    with pytest.raises(ValueError, match="t_rcd = -1"):
        DDR3Timing(t_rcd=-1)
    with pytest.raises(ValueError, match="clock_mhz = 500"):
        DDR3Controller(MT41K64M16, FAST, 500.0)
    with pytest.raises(ValueError, match="read_fifo_depth = 1"):
        DDR3Controller(MT41K64M16, FAST, 50.0, read_fifo_depth=1)
    with pytest.raises(ValueError, match=f"calib_word = {MT41K64M16.words - 1}"):
        DDR3Controller(MT41K64M16, FAST, 50.0, calib_word=MT41K64M16.words - 1)
    with pytest.raises(ValueError, match="t_wr"):
        DDR3Controller(MT41K64M16, DDR3Timing(t_wr=60.0), 400.0)
    with pytest.raises(ValueError, match="words = 1000"):
        DDR3Model(MT41K64M16, FAST, 50.0, words=1000)
    with pytest.raises(ValueError, match="good_delays"):
        DDR3Model(MT41K64M16, FAST, 50.0, good_delays=((3, 2), (0, 1)))
    with pytest.raises(ValueError, match="good_bitslip"):
        DDR3Model(MT41K64M16, FAST, 50.0, good_bitslip=(4, 0))
    with pytest.raises(ValueError, match=r"good_cycle = \(4, 0\)"):
        DDR3Model(MT41K64M16, FAST, 50.0, PARAMS3, good_cycle=(4, 0))
    with pytest.raises(ValueError, match="good_cycle"):
        DDR3Model(MT41K64M16, FAST, 50.0, PARAMS3, good_cycle=(1,))


def test_system_keeps_calibration_words_from_the_host():
    """SystemTop calibrates at the top of the DDR3 memory and reports the size below it."""
    from boards.common import SystemTop
    from sqzhw.config import load_config
    cfg = load_config("ecpix5")
    for memory in ("ddr3", "ddr3-model"):
        top = SystemTop(cfg, memory, link="stream", engine="standin")
        sizes = top.mem_words, top.mem_bytes
        del top
        collect_quietly()   # the top is never elaborated
        assert sizes[1] == (sizes[0] - DDR3Controller.CALIB_WORDS) * cfg.ext_bytes, memory
