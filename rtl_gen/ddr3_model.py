"""Cycle-level model of a DDR3 PHY and its DRAM, in Amaranth so it also converts to Verilog.

:class:`DDR3Model` is the chip side of :class:`~rtl_gen.ddr3_phy_if.DDR3PHYSignature`: it takes
the two command slots of each ``sync`` cycle in order (slot 0 is the first ``tCK``), keeps bank/row
state and the mode registers, stores writes (``wr_en`` exactly ``write_latency`` cycles after the
``WRITE``, byte masks honoured) and returns reads on ``rd_data``/``rd_valid`` exactly
``read_latency`` cycles after ``rd_en``.

Every rule of :class:`~rtl_gen.ddr3.DDR3Timing` is checked in ``tCK`` (so the slot of each command
counts), with the burst-length-8 turnarounds the controller promises (READ to WRITE
``CL + tCCD + 2 - CWL``, WRITE to READ ``CWL + 4 + tWTR``, WRITE to PRECHARGE ``CWL + 4 + tWR``,
READ to PRECHARGE ``max(4, tRTP)``), plus the init order (RESET# low time, CKE after RESET#, tXPR,
MR2/MR3/MR1/MR0, ZQCL, tZQinit, tDLLK), the mode register contents (fixed BC4, the PHY's CL/CWL, AL
0) and the refresh interval. The first violation is held with the index of the offending command,
and all are counted. A test passes only if ``violation`` stays ``NONE``.

Read capture: a lane returns its stored bytes only when its ``rd_cycle`` equals ``good_cycle[lane]``,
its ``rd_bitslip`` equals ``good_bitslip[lane]``, its ``rd_delay`` lies in ``good_delays[lane]`` and all
three have been stable for ``settle_cycles``. Otherwise the lane's beats come back rotated by the
bitslip error and/or inverted (a delay outside the window), so a controller that calibrates wrongly
reads wrong data. A wrong ``rd_cycle`` captures the bus a whole cycle before or after the burst,
which holds no burst of this read: the model returns the lane's bytes XOR ``0xA5`` (early) or
``0x3C`` (late) whatever the bitslip and delay, so never the right bytes. A ``good_cycle`` outside
``0 .. read_cycles-1`` is a board no setting can read.

Storage is ``words`` words (a power of two) addressed ``{row, bank, colword}`` truncated to
``log2(words)`` bits; an ``ACTIVATE`` of a row beyond the modelled storage is the ``ALIAS``
violation, never a silent wrap.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ddr3 import MR_ORDER, MT41K256M16, DDR3Geometry, DDR3Timing
from .ddr3_phy_if import DDR3Command, DDR3PHYParams, DDR3PHYSignature

__all__ = ["Violation", "DDR3Model", "default_windows", "WRONG_CYCLE_EARLY", "WRONG_CYCLE_LATE"]


class Violation(enum.Enum, shape=5):
    NONE = 0
    INIT = 1           #: RESET#/CKE too early, a command in reset or before init, wrong MRS order, tDLLK
    MODE = 2           #: a mode register other than BC4, the PHY's CL/CWL, AL 0, DLL on, no MPR
    BANK_STATE = 3     #: ACTIVATE to an open bank, READ/WRITE to a closed one, REF/MRS/ZQ with a bank open
    T_RCD = 4
    T_RP = 5
    T_RAS = 6
    T_RC = 7
    T_RRD = 8
    T_FAW = 9
    T_WR = 10          #: WRITE to PRECHARGE: CWL + 4 + tWR
    T_WTR = 11         #: WRITE to READ: CWL + 4 + tWTR
    T_RTW = 12         #: READ to WRITE: CL + tCCD + 2 - CWL (the DQ bus turnaround)
    T_RTP = 13
    T_CCD = 14
    T_RFC = 15
    T_MRD = 16         #: MRS to MRS
    T_MOD = 17         #: MRS to any other command
    T_ZQ = 18          #: ZQCL to any command (tZQinit)
    T_XPR = 19         #: CKE high to the first command
    REFRESH_LATE = 20  #: more than 9 refresh intervals without a REFRESH (8 may be postponed)
    DATA = 21          #: wr_en not exactly write_latency after a WRITE, rd_en not with a READ
    ALIAS = 22         #: ACTIVATE of a row outside the modelled storage


#: What a lane with a wrong ``rd_cycle`` returns: its bytes XOR this (capture one cycle early, late).
WRONG_CYCLE_EARLY, WRONG_CYCLE_LATE = 0xA5, 0x3C


def default_windows(params: DDR3PHYParams, lanes: int) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...],
                                                                 tuple[int, ...]]:
    """Per-lane good bitslips, delay windows and ``rd_cycle`` settings that differ between lanes.

    Returns ``(bitslips, windows, cycles)``; lane 0's cycle is the designed ``read_cycles // 2``,
    the next lanes' the following ones (wrapping), so with ``read_cycles > 1`` a controller that
    does not scan ``rd_cycle`` per lane fails.
    """
    bitslips = tuple((lane + 1) % params.bitslips for lane in range(lanes))
    windows = []
    for lane in range(lanes):
        first = min(2 + lane, params.delays - 1)
        windows.append((first, min(first + 3, params.delays - 1)))
    cycles = tuple((params.read_cycles // 2 + lane) % params.read_cycles for lane in range(lanes))
    return bitslips, tuple(windows), cycles


class DDR3Model(wiring.Component):
    """PHY + DRAM behind :class:`~rtl_gen.ddr3_phy_if.DDR3PHYSignature` (see the module docstring).

    Parameters
    ----------
    geometry, timing, clock_mhz, phy_params : as the controller's
    words : int
        Modelled storage in words (power of two, from one row per bank to ``geometry.words``).
    good_bitslip : tuple of int, optional
        Per lane, the bitslip that captures correctly (default: :func:`default_windows`).
    good_delays : tuple of (first, last) or None, optional
        Per lane, the passing delays (inclusive); ``None`` for a lane where no delay works.
    good_cycle : tuple of int, optional
        Per lane, the ``rd_cycle`` that captures the burst (default: :func:`default_windows`); one
        value outside ``0 .. read_cycles-1`` on either side (``-1`` or ``read_cycles``) models a board
        whose reads return outside the scanned range.
    ready_after : int
        ``phy_ready`` rises after this many cycles.
    init : list of int, optional
        Initial storage contents.

    Members
    -------
    phy : In(DDR3PHYSignature(...))
    violation : Out(Violation)
        First violation seen (held).
    violation_cmd : Out(32)
        Index of the offending command (non-NOP commands counted from 0, slot 0 first).
    violation_bank : Out(bank_bits)
    violations : Out(32)
        Number of violations (commands, and cycles with a data/refresh/init pin violation).
    commands, reads, writes, activates, precharges, refreshes : Out(32)
        Command counters.
    """

    def __init__(self, geometry: DDR3Geometry = MT41K256M16, timing: DDR3Timing = DDR3Timing(),
                 clock_mhz: float = 50.0, phy_params: DDR3PHYParams = DDR3PHYParams(), *,
                 words: int = 1 << 12, good_bitslip: tuple[int, ...] | None = None,
                 good_delays: tuple[tuple[int, int] | None, ...] | None = None,
                 good_cycle: tuple[int, ...] | None = None, ready_after: int = 4,
                 init: list[int] | None = None):
        def bad(msg: str) -> ValueError:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            return ValueError(msg)

        lanes = geometry.lanes
        min_words = 1 << (geometry.colword_bits + geometry.bank_bits)
        if words & (words - 1) or not min_words <= words <= geometry.words:
            raise bad(f"DDR3Model: words = {words}: a power of two from one row per bank "
                      f"({min_words}) to {geometry.words}")
        d_bitslip, d_delays, d_cycle = default_windows(phy_params, lanes)
        good_bitslip = d_bitslip if good_bitslip is None else tuple(good_bitslip)
        good_delays = d_delays if good_delays is None else tuple(good_delays)
        good_cycle = d_cycle if good_cycle is None else tuple(good_cycle)
        if len(good_cycle) != lanes or not all(isinstance(c, int) and -1 <= c <= phy_params.read_cycles
                                               for c in good_cycle):
            raise bad(f"DDR3Model: good_cycle = {good_cycle}: one of -1..{phy_params.read_cycles} per lane "
                      f"({lanes} lanes; -1 and {phy_params.read_cycles} are outside the scanned range)")
        if len(good_bitslip) != lanes or not all(0 <= b < phy_params.bitslips for b in good_bitslip):
            raise bad(f"DDR3Model: good_bitslip = {good_bitslip}: one of 0..{phy_params.bitslips - 1} "
                      f"per lane ({lanes} lanes)")
        if len(good_delays) != lanes or not all(
                w is None or 0 <= w[0] <= w[1] < phy_params.delays for w in good_delays):
            raise bad(f"DDR3Model: good_delays = {good_delays}: (first, last) with "
                      f"0 <= first <= last < {phy_params.delays}, or None, per lane ({lanes} lanes)")
        if ready_after < 1:
            raise bad(f"DDR3Model: ready_after = {ready_after}: at least 1")
        self.geometry, self.timing, self.clock_mhz, self.params = geometry, timing, clock_mhz, phy_params
        self.ck = timing.ck(clock_mhz)
        self.cycles = timing.cycles(clock_mhz)
        self.words = words
        self.good_bitslip, self.good_delays, self.good_cycle = good_bitslip, good_delays, good_cycle
        self.ready_after = ready_after
        self.storage = Memory(shape=geometry.data_bits, depth=words, init=init or [])
        super().__init__({
            "phy": In(DDR3PHYSignature(dq_bits=geometry.dq_bits, bank_bits=geometry.bank_bits,
                                       addr_pins=geometry.addr_pins, params=phy_params)),
            "violation": Out(Violation),
            "violation_cmd": Out(32),
            "violation_bank": Out(geometry.bank_bits),
            "violations": Out(32),
            "commands": Out(32), "reads": Out(32), "writes": Out(32), "activates": Out(32),
            "precharges": Out(32), "refreshes": Out(32),
        })

    # -- the two slots of a cycle, in order -----------------------------------------------------

    def _slot(self, m: Module, i: int, st: dict, live, mode_ok_fn):
        """Check and execute slot ``i`` against state ``st`` (values at this tCK); return the
        violation code of the slot, its decoded command flags, whether it carried a command and
        the state one tCK later."""
        g, ck, p = self.geometry, self.ck, self.params
        nb = g.banks
        slot = self.phy.phases[i]
        C = DDR3Command
        attempted = slot.cs & (slot.cmd != C.NOP)
        executed = Signal(name=f"exec{i}")
        m.d.comb += executed.eq(attempted & live)
        is_ = {k: Signal(name=f"is_{k.name.lower()}{i}") for k in C if k != C.NOP}
        for k, s in is_.items():
            m.d.comb += s.eq(executed & (slot.cmd == k))
        bank = slot.ba
        a10 = slot.a[10]
        since = st["since"]

        def sel(key):
            return Array(since[f"{key}{b}"] for b in range(nb))[bank]

        is_pre, is_act = is_[C.PRECHARGE], is_[C.ACTIVATE]
        is_rd, is_wr = is_[C.READ], is_[C.WRITE]
        is_rw = is_rd | is_wr
        idle_cmd = is_[C.REFRESH] | is_[C.MODE] | is_[C.ZQ_CAL]
        pre_banks = Signal(nb, name=f"pre_banks{i}")
        m.d.comb += pre_banks.eq(Mux(is_pre & a10, (1 << nb) - 1, Mux(is_pre, Const(1, nb) << bank, 0)))
        open_ = st["open"]
        bank_open = open_.bit_select(bank, 1)
        step = st["step"]
        order_ok = Const(0)
        for k, mr in enumerate(MR_ORDER):
            order_ok = order_ok | ((step == k) & (bank == mr))
        row_bits_kept = (self.words.bit_length() - 1) - g.colword_bits - g.bank_bits
        rules = [
            (attempted & ~live, Violation.INIT),
            (executed & (since["cke"] < ck.xpr), Violation.T_XPR),
            (executed & (since["zq"] < ck.zqinit), Violation.T_ZQ),
            (is_[C.MODE] & ~mode_ok_fn(bank, slot.a), Violation.MODE),
            (is_[C.MODE] & (step < 4) & ~order_ok, Violation.INIT),
            (is_[C.ZQ_CAL] & (step < 4), Violation.INIT),
            ((is_act | is_rw | is_[C.REFRESH]) & (step != 5), Violation.INIT),
            (is_rw & (since["mr0"] < ck.dllk), Violation.INIT),
            (executed & (since["ref"] < ck.rfc), Violation.T_RFC),
            (is_[C.MODE] & (since["mrs"] < ck.mrd), Violation.T_MRD),
            (executed & ~is_[C.MODE] & (since["mrs"] < ck.mod), Violation.T_MOD),
            (is_act & bank_open, Violation.BANK_STATE),
            (is_rw & ~bank_open, Violation.BANK_STATE),
            (idle_cmd & (open_ != 0), Violation.BANK_STATE),
            (is_act & (sel("pre") < ck.rp), Violation.T_RP),
            (idle_cmd & Cat(*(since[f"pre{b}"] < ck.rp for b in range(nb))).any(), Violation.T_RP),
            (is_act & (sel("act") < ck.rc), Violation.T_RC),
            (is_act & (since["faw0"] < ck.rrd), Violation.T_RRD),
            (is_act & (since["faw3"] < ck.faw), Violation.T_FAW),
            (is_rw & (sel("act") < ck.rcd), Violation.T_RCD),
            (Cat(*(pre_banks[b] & open_[b] & (since[f"act{b}"] < ck.ras) for b in range(nb))).any(),
             Violation.T_RAS),
            (Cat(*(pre_banks[b] & (since[f"wr{b}"] < p.cwl + 4 + ck.wr) for b in range(nb))).any(),
             Violation.T_WR),
            (Cat(*(pre_banks[b] & (since[f"rd{b}"] < max(4, ck.rtp)) for b in range(nb))).any(),
             Violation.T_RTP),
            (is_rd & (since["rd"] < ck.ccd), Violation.T_CCD),
            (is_wr & (since["wr"] < ck.ccd), Violation.T_CCD),
            (is_rd & (since["wr"] < p.cwl + 4 + ck.wtr), Violation.T_WTR),
            (is_wr & (since["rd"] < p.cl + ck.ccd + 2 - p.cwl), Violation.T_RTW),
            (is_act & ((slot.a[:g.row_bits] >> row_bits_kept) != 0), Violation.ALIAS),
        ]
        code = Signal(Violation, name=f"code{i}")
        value = Const(Violation.NONE.value, 5)
        for broken, c in reversed(rules):
            value = Mux(broken, c.value, value)
        m.d.comb += code.eq(value)

        # -- next state: events reset their counter, then everything ages by one tCK --------------
        sat = self.sat
        nxt = {"since": {}}

        def age(name, event):
            s = Signal(range(sat + 1), name=f"{name}_s{i}")
            cur = Mux(event, 0, since[name])
            m.d.comb += s.eq(Mux(cur >= sat, sat, cur + 1))
            nxt["since"][name] = s

        for b in range(nb):
            age(f"act{b}", is_act & (bank == b))
            age(f"pre{b}", pre_banks[b])
            age(f"rd{b}", is_rd & (bank == b))
            age(f"wr{b}", is_wr & (bank == b))
        age("rd", is_rd)
        age("wr", is_wr)
        age("ref", is_[C.REFRESH])
        age("mrs", is_[C.MODE])
        age("zq", is_[C.ZQ_CAL])
        age("mr0", is_[C.MODE] & (bank == 0))
        age("cke", Const(0))
        # faw0 is the latest ACTIVATE, faw3 the fourth latest.
        age("faw0", is_act)
        for k in range(1, 4):
            s = Signal(range(sat + 1), name=f"faw{k}_s{i}")
            cur = Mux(is_act, since[f"faw{k - 1}"], since[f"faw{k}"])
            m.d.comb += s.eq(Mux(cur >= sat, sat, cur + 1))
            nxt["since"][f"faw{k}"] = s
        n_open = Signal(nb, name=f"open_s{i}")
        m.d.comb += n_open.eq((open_ & ~pre_banks) | Mux(is_act, Const(1, nb) << bank, 0))
        nxt["open"] = n_open
        rows = []
        for b in range(nb):
            r = Signal(g.row_bits, name=f"row{b}_s{i}")
            m.d.comb += r.eq(Mux(is_act & (bank == b), slot.a[:g.row_bits], st["rows"][b]))
            rows.append(r)
        nxt["rows"] = rows
        n_step = Signal(range(6), name=f"step_s{i}")
        m.d.comb += n_step.eq(Mux((is_[C.MODE] & (step < 4) & order_ok) | (is_[C.ZQ_CAL] & (step == 4)),
                                  step + 1, step))
        nxt["step"] = n_step
        return code, is_, attempted, nxt

    def elaborate(self, platform):
        m = Module()
        g, ck, cy, p = self.geometry, self.ck, self.cycles, self.params
        nb, lanes = g.banks, g.lanes
        phy = self.phy
        C = DDR3Command
        m.submodules.storage = self.storage

        # -- PHY up, RESET#/CKE ---------------------------------------------------------------------
        ready = Signal(range(self.ready_after + 1))
        with m.If(ready != self.ready_after):
            m.d.sync += ready.eq(ready + 1)
        m.d.comb += phy.phy_ready.eq(ready == self.ready_after)
        reset_low = Signal(range(cy.reset + 1))      # sync cycles with RESET# low
        cke_wait = Signal(range(cy.cke + 1))         # sync cycles with RESET# high, CKE low
        prev_reset_n, prev_cke = Signal(), Signal()
        m.d.sync += [prev_reset_n.eq(phy.reset_n), prev_cke.eq(phy.cke)]
        with m.If(~phy.reset_n & (reset_low != cy.reset)):
            m.d.sync += reset_low.eq(reset_low + 1)
        with m.If(phy.reset_n & ~phy.cke & (cke_wait != cy.cke)):
            m.d.sync += cke_wait.eq(cke_wait + 1)
        pin_bad = Signal()
        m.d.comb += pin_bad.eq((phy.reset_n & ~prev_reset_n & (reset_low < cy.reset)) |
                               (phy.cke & ~prev_cke & (cke_wait < cy.cke)) |
                               (phy.cke & ~phy.reset_n))
        live = phy.reset_n & phy.cke

        # -- state, in tCK since each event (held at the first slot of the cycle) ----------------
        self.sat = sat = max(ck.rcd, ck.rp, ck.ras, ck.rc, ck.rrd, ck.faw, ck.wtr + p.cwl + 4,
                             ck.wr + p.cwl + 4, ck.rtp + 4, ck.ccd, ck.mrd, ck.mod, ck.rfc, ck.xpr,
                             ck.zqinit, ck.dllk, p.cl + ck.ccd + 2) + 2
        names = [f"{k}{b}" for b in range(nb) for k in ("act", "pre", "rd", "wr")] + \
                ["rd", "wr", "ref", "mrs", "zq", "mr0", "cke", "faw0", "faw1", "faw2", "faw3"]
        regs = {n: Signal(range(sat + 1), init=sat, name=f"since_{n}") for n in names}
        open_reg = Signal(nb)
        rows_reg = [Signal(g.row_bits, name=f"row{b}") for b in range(nb)]
        step_reg = Signal(range(6))       # MR2, MR3, MR1, MR0, ZQCL done: 5 = initialised
        st0_since = dict(regs)
        st0_since["cke"] = Mux(phy.cke & ~prev_cke, 0, regs["cke"])   # CKE rises with slot 0
        st0 = {"since": st0_since, "open": open_reg, "rows": rows_reg, "step": step_reg}

        cl_bits = ((p.cl - 4) << 4) if p.cl <= 11 else (((p.cl - 12) << 4) | (1 << 2))

        def mode_ok(bank, a):
            mr0 = ((a[:2] == 0b10) & (a[3] == 0) & (a[7] == 0) &
                   ((a & 0b1110100) == cl_bits))
            mr1 = (a[0] == 0) & (a[3:5] == 0) & (a[7] == 0) & (a[12] == 0)
            mr2 = a[3:6] == p.cwl - 5
            mr3 = a[2] == 0
            return Mux(bank == 0, mr0, Mux(bank == 1, mr1, Mux(bank == 2, mr2, Mux(bank == 3, mr3, 0))))

        code0, is0, att0, st1 = self._slot(m, 0, st0, live, mode_ok)
        code1, is1, att1, st2 = self._slot(m, 1, st1, live, mode_ok)
        for n in names:
            m.d.sync += regs[n].eq(st2["since"][n])
        m.d.sync += [open_reg.eq(st2["open"]), step_reg.eq(st2["step"])]
        for b in range(nb):
            m.d.sync += rows_reg[b].eq(st2["rows"][b])

        # -- data -----------------------------------------------------------------------------------
        wl, rl = p.write_latency, p.read_latency
        abits = self.words.bit_length() - 1

        def index(i, st):
            slot = phy.phases[i]
            row = Array(st["rows"])[slot.ba]
            return Cat(slot.a[2:g.col_bits], slot.ba, row)[:abits]

        rd_now = is0[C.READ] | is1[C.READ]
        wr_now = is0[C.WRITE] | is1[C.WRITE]
        rd_index = Mux(is1[C.READ], index(1, st1), index(0, st0))
        wr_index = Mux(is1[C.WRITE], index(1, st1), index(0, st0))

        # Writes: expected wr_en write_latency cycles later, with the address.
        w_exp = [Signal(name=f"w_exp{k}") for k in range(wl)]
        w_addr = [Signal(abits, name=f"w_addr{k}") for k in range(wl)]
        m.d.sync += [w_exp[0].eq(wr_now), w_addr[0].eq(wr_index)]
        for k in range(1, wl):
            m.d.sync += [w_exp[k].eq(w_exp[k - 1]), w_addr[k].eq(w_addr[k - 1])]
        wp = self.storage.write_port(granularity=8)
        m.d.comb += [wp.addr.eq(w_addr[-1]), wp.data.eq(phy.wr_data),
                     wp.en.eq(Mux(phy.wr_en & w_exp[-1], ~phy.wr_mask, 0))]
        data_bad = (phy.wr_en != w_exp[-1]) | (phy.rd_en != rd_now)

        # Reads see every write whose WRITE came before the READ, and none after: those land
        # write_latency cycles after their command, so the storage is read write_latency cycles
        # after the READ (exact when read_latency > write_latency; else as late as the data
        # allows), then the data waits in the pipeline.
        rp = self.storage.read_port(domain="sync", transparent_for=(wp,))
        at = min(wl, rl - 1)
        r_valid = [Signal(name=f"r_valid{k}") for k in range(rl)]
        r_addr = [Signal(abits, name=f"r_addr{k}") for k in range(max(1, at))]
        r_data = [Signal(g.data_bits, name=f"r_data{k}") for k in range(rl - at - 1)]
        m.d.sync += [r_valid[0].eq(rd_now), r_addr[0].eq(rd_index)]
        for k in range(1, rl):
            m.d.sync += r_valid[k].eq(r_valid[k - 1])
        for k in range(1, at):
            m.d.sync += r_addr[k].eq(r_addr[k - 1])
        m.d.comb += [rp.addr.eq(rd_index if at == 0 else r_addr[at - 1]), rp.en.eq(1)]
        for k, d in enumerate(r_data):
            m.d.sync += d.eq(rp.data if k == 0 else r_data[k - 1])
        stored = r_data[-1] if r_data else rp.data
        m.d.comb += phy.rd_valid.eq(r_valid[-1])

        # Capture per lane: right cycle and bitslip, delay in the window, settled.
        for lane in range(lanes):
            rcyc, bslip, dly = phy.rd_cycle[lane], phy.rd_bitslip[lane], phy.rd_delay[lane]
            prev_c = Signal.like(rcyc, name=f"prev_cycle{lane}")
            prev_b = Signal.like(bslip, name=f"prev_bitslip{lane}")
            prev_d = Signal.like(dly, name=f"prev_delay{lane}")
            settled = Signal(range(p.settle_cycles + 1), name=f"settled{lane}")
            m.d.sync += [prev_c.eq(rcyc), prev_b.eq(bslip), prev_d.eq(dly)]
            changed = (rcyc != prev_c) | (bslip != prev_b) | (dly != prev_d)
            with m.If(changed):
                m.d.sync += settled.eq(0)
            with m.Elif(settled != p.settle_cycles):
                m.d.sync += settled.eq(settled + 1)
            win = self.good_delays[lane]
            in_window = Const(0) if win is None else (dly >= win[0]) & (dly <= win[1])
            delay_ok = in_window & (settled == p.settle_cycles) & ~changed
            beats = [stored.word_select(beat * lanes + lane, 8) for beat in range(4)]
            # A wrong bitslip starts the burst on another beat of the captured stream.
            slip = (bslip - self.good_bitslip[lane])[:2]
            rotated = [Array(beats)[(beat + slip)[:2]] for beat in range(4)]
            # Inverted: a delay outside the window, or a wrong bitslip that rotates by 4 beats.
            invert = ~delay_ok | ((bslip != self.good_bitslip[lane]) & (slip == 0))
            # A wrong cycle sees no burst of this read (the bitslip and delay do not matter then).
            good_c = self.good_cycle[lane]
            early = rcyc < good_c if good_c > 0 else Const(0)
            late = rcyc > good_c if good_c >= 0 else Const(1)
            wrong_cycle = Mux(early, WRONG_CYCLE_EARLY, Mux(late, WRONG_CYCLE_LATE, 0))
            for beat in range(4):
                captured = Mux(invert, ~rotated[beat], rotated[beat])
                byte = Mux(early | late, beats[beat] ^ wrong_cycle, captured)
                m.d.comb += phy.rd_data.word_select(beat * lanes + lane, 8).eq(Mux(r_valid[-1], byte, 0))

        # -- refresh interval (sync cycles), counted once initialised ----------------------------
        refi_limit = 9 * cy.refi
        since_refresh = Signal(range(refi_limit + 2))
        with m.If(is0[C.REFRESH] | is1[C.REFRESH]):
            m.d.sync += since_refresh.eq(0)
        with m.Elif((step_reg == 5) & (since_refresh <= refi_limit)):
            m.d.sync += since_refresh.eq(since_refresh + 1)
        late = since_refresh > refi_limit

        # -- violations: slot 0, slot 1, then the cycle's pin checks ----------------------------
        pin_code = Signal(Violation)
        m.d.comb += pin_code.eq(Mux(pin_bad, Violation.INIT,
                                    Mux(data_bad, Violation.DATA,
                                        Mux(late, Violation.REFRESH_LATE, Violation.NONE))))
        n_cmd0 = Mux(att0, 1, 0)
        first_code = Mux(code0 != Violation.NONE, code0, Mux(code1 != Violation.NONE, code1, pin_code))
        first_cmd = Mux(code0 != Violation.NONE, self.commands,
                        Mux(code1 != Violation.NONE, self.commands + n_cmd0, self.commands))
        first_bank = Mux(code0 != Violation.NONE, phy.phases[0].ba, phy.phases[1].ba)
        n_bad = (Mux(code0 != Violation.NONE, 1, 0) + Mux(code1 != Violation.NONE, 1, 0) +
                 Mux(pin_code != Violation.NONE, 1, 0))
        m.d.sync += self.violations.eq(self.violations + n_bad)
        with m.If((self.violation == Violation.NONE) & (first_code != Violation.NONE)):
            m.d.sync += [self.violation.eq(first_code), self.violation_cmd.eq(first_cmd),
                         self.violation_bank.eq(first_bank)]

        # -- counters -------------------------------------------------------------------------------
        def count(sig, k):
            m.d.sync += sig.eq(sig + Mux(is0[k], 1, 0) + Mux(is1[k], 1, 0))

        m.d.sync += self.commands.eq(self.commands + n_cmd0 + Mux(att1, 1, 0))
        count(self.reads, C.READ)
        count(self.writes, C.WRITE)
        count(self.activates, C.ACTIVATE)
        count(self.precharges, C.PRECHARGE)
        count(self.refreshes, C.REFRESH)
        return m
