"""Cycle-level SDR SDRAM model for simulation, written in Amaranth so it also converts to Verilog.

:class:`SDRAMModel` sits on the pin side of :class:`~rtl_gen.sdram.SDRAMController` (same
``sync`` clock: the chip samples the controller's registered command at the next edge) and
behaves like the chip: bank/row state, mode register (CAS latency 2 or 3, burst length 1), reads
returning data CAS-latency edges after the command, byte-masked writes. It checks every timing
rule of :class:`~rtl_gen.sdram.SDRAMTiming` (tRCD, tRP, tRAS, tRC, tRRD, tWR, tRFC, tMRD, the
refresh interval, the power-up wait and init order) and bus contention, and reports the first
violation (sticky) with the command index and bank, plus a count of all of them. A test passes
only if ``violation`` stays ``NONE``.

Storage is ``words`` words (a power of two) addressed ``{row, bank, column}`` truncated to
``log2(words)`` bits; an access to a row beyond the modelled storage is the ``ALIAS`` violation,
never a silent wrap.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .sdram import IS42S16160, SDRAMCommand, SDRAMGeometry, SDRAMSignature, SDRAMTiming

__all__ = ["Violation", "SDRAMModel"]


class Violation(enum.Enum, shape=4):
    NONE = 0
    INIT = 1           #: a command before the power-up wait, access before MODE, ACTIVE before 2 REFRESH
    MODE = 2           #: mode register with a CAS latency other than 2/3 or a burst length other than 1
    BANK_STATE = 3     #: ACTIVE to an open bank, READ/WRITE to a closed one, REFRESH/MODE with a bank open
    T_RCD = 4
    T_RP = 5
    T_RAS = 6
    T_RC = 7
    T_RRD = 8
    T_WR = 9
    T_RFC = 10
    T_MRD = 11
    REFRESH_LATE = 12  #: more than 9 refresh intervals without a REFRESH (8 may be postponed)
    BUS_CONFLICT = 13  #: the controller drives DQ while the chip returns read data
    ALIAS = 14         #: access to a row outside the modelled storage


class SDRAMModel(wiring.Component):
    """The chip side of :class:`~rtl_gen.sdram.SDRAMSignature`.

    Parameters
    ----------
    geometry, timing : as the controller's
    clock_mhz : float
        Clock of the ``sync`` domain; timing is checked in whole cycles at it.
    words : int
        Modelled storage in words (power of two, at most ``geometry.words``).
    init : list of int, optional
        Initial storage contents (word index = truncated ``{row, bank, col}``).

    Members
    -------
    sdram : In(SDRAMSignature(geometry))
    violation : Out(Violation)
        First violation seen (held).
    violation_bank : Out(bank_bits)
    violation_cmd : Out(32)
        Index of the offending command (non-NOP commands counted from 0).
    violations : Out(32)
        Number of commands that broke a rule.
    commands, reads, writes, activates, refreshes : Out(32)
        Command counters.
    """

    def __init__(self, geometry: SDRAMGeometry = IS42S16160, timing: SDRAMTiming = SDRAMTiming(),
                 clock_mhz: float = 50.0, *, words: int = 1 << 14, init: list[int] | None = None):
        if words & (words - 1) or not (1 << (geometry.col_bits + geometry.bank_bits)) <= words <= geometry.words:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            raise ValueError(f"SDRAMModel: words = {words}: a power of two from one row per bank "
                             f"({1 << (geometry.col_bits + geometry.bank_bits)}) to {geometry.words}")
        self.geometry, self.timing, self.clock_mhz = geometry, timing, clock_mhz
        self.cycles = timing.cycles(clock_mhz)
        self.words = words
        self.storage = Memory(shape=geometry.data_bits, depth=words, init=init or [])
        super().__init__({
            "sdram": In(SDRAMSignature(geometry)),
            "violation": Out(Violation),
            "violation_bank": Out(geometry.bank_bits),
            "violation_cmd": Out(32),
            "violations": Out(32),
            "commands": Out(32), "reads": Out(32), "writes": Out(32), "activates": Out(32),
            "refreshes": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        g, c = self.geometry, self.cycles
        nb = g.banks
        p = self.sdram
        m.submodules.storage = self.storage

        active = p.cke & p.cs
        cmd = Mux(active, p.cmd, SDRAMCommand.NOP)
        is_ = {k: Signal(name=f"is_{k.name.lower()}") for k in SDRAMCommand}
        for k, s in is_.items():
            m.d.comb += s.eq(cmd == k)
        any_cmd = ~is_[SDRAMCommand.NOP]
        bank = p.ba
        a10 = p.a[10]

        # -- "cycles since" counters, saturating, starting saturated --------------------------
        sat = max(c.rc, c.ras, c.rp, c.rcd, c.wr, c.rfc, c.mrd, c.rrd) + 1

        # "Cycles since" counts the command's own edge: 1 in the cycle after it, so a command N
        # cycles later sees N.
        def since(name):
            s = Signal(range(sat + 1), init=sat, name=name)
            m.d.sync += s.eq(Mux(s == sat, sat, s + 1))
            return s

        since_act = [since(f"since_act{b}") for b in range(nb)]
        since_pre = [since(f"since_pre{b}") for b in range(nb)]
        since_wr = [since(f"since_wr{b}") for b in range(nb)]
        since_ref = since("since_ref")
        since_mrs = since("since_mrs")
        since_any_act = since("since_any_act")
        powerup = Signal(range(c.init + 1))
        with m.If(powerup != c.init):
            m.d.sync += powerup.eq(powerup + 1)
        mode_set = Signal()
        init_refs = Signal(2)
        cl = Signal(2, init=self.timing.cas_latency)
        open_ = Signal(nb)
        rows = [Signal(g.row_bits, name=f"row{b}") for b in range(nb)]
        refi_limit = 9 * c.refi
        since_refresh = Signal(range(refi_limit + 2))

        def sel(values):
            out = values[0]
            for b in range(1, nb):
                out = Mux(bank == b, values[b], out)
            return out

        bank_open = open_.bit_select(bank, 1)
        row_now = sel(rows)

        # -- rules, in priority order: (broken, code) -----------------------------------------
        is_pre_all = is_[SDRAMCommand.PRECHARGE] & a10
        pre_banks = Mux(is_pre_all, Const((1 << nb) - 1, nb),
                        Mux(is_[SDRAMCommand.PRECHARGE], Const(1, nb) << bank, 0))
        ras_bad = Cat(*(pre_banks[b] & open_[b] & (since_act[b] < c.ras) for b in range(nb))).any()
        wr_bad = Cat(*(pre_banks[b] & (since_wr[b] < c.wr) for b in range(nb))).any()
        rp_all_bad = Cat(*(since_pre[b] < c.rp for b in range(nb))).any()
        is_rw = is_[SDRAMCommand.READ] | is_[SDRAMCommand.WRITE]
        is_act = is_[SDRAMCommand.ACTIVE]
        needs_idle = is_[SDRAMCommand.REFRESH] | is_[SDRAMCommand.MODE]
        row_bits_kept = (self.words.bit_length() - 1) - g.col_bits - g.bank_bits
        alias = Signal()
        m.d.comb += alias.eq(Mux(is_act, p.a[:g.row_bits], 0) >> row_bits_kept != 0)
        mode_ok = (p.a[:3] == 0) & ((p.a[4:7] == 2) | (p.a[4:7] == 3))
        driving = Signal()   # the chip drives DQ this cycle (read data)
        rules = [
            (any_cmd & (powerup != c.init), Violation.INIT),
            (is_rw & ~mode_set, Violation.INIT),
            (is_act & (init_refs < 2), Violation.INIT),
            (is_[SDRAMCommand.MODE] & ~mode_ok, Violation.MODE),
            (any_cmd & (since_ref < c.rfc), Violation.T_RFC),
            (any_cmd & (since_mrs < c.mrd), Violation.T_MRD),
            (is_act & bank_open, Violation.BANK_STATE),
            (is_rw & ~bank_open, Violation.BANK_STATE),
            (needs_idle & (open_ != 0), Violation.BANK_STATE),
            (is_act & (sel(since_pre) < c.rp), Violation.T_RP),
            (needs_idle & rp_all_bad, Violation.T_RP),
            (is_act & (sel(since_act) < c.rc), Violation.T_RC),
            (is_act & (since_any_act < c.rrd), Violation.T_RRD),
            (is_rw & (sel(since_act) < c.rcd), Violation.T_RCD),
            (ras_bad, Violation.T_RAS),
            (wr_bad, Violation.T_WR),
            (mode_set & (since_refresh > refi_limit), Violation.REFRESH_LATE),
            (p.dq_oe & driving, Violation.BUS_CONFLICT),
            (alias, Violation.ALIAS),
        ]
        code_now = Signal(Violation)
        for broken, code in reversed(rules):
            code_now = Mux(broken, code, code_now)
        now = Signal(Violation)
        m.d.comb += now.eq(code_now)

        with m.If(now != Violation.NONE):
            m.d.sync += self.violations.eq(self.violations + 1)
            with m.If(self.violation == Violation.NONE):
                m.d.sync += [self.violation.eq(now), self.violation_bank.eq(bank),
                             self.violation_cmd.eq(self.commands)]

        # -- state updates --------------------------------------------------------------------
        with m.If(any_cmd):
            m.d.sync += self.commands.eq(self.commands + 1)
        with m.If(mode_set):
            m.d.sync += since_refresh.eq(Mux(since_refresh > refi_limit, since_refresh, since_refresh + 1))
        for b in range(nb):
            with m.If(pre_banks[b]):
                m.d.sync += [open_[b].eq(0), since_pre[b].eq(1)]
        with m.If(is_act):
            m.d.sync += [since_any_act.eq(1), self.activates.eq(self.activates + 1)]
            for b in range(nb):
                with m.If(bank == b):
                    m.d.sync += [open_[b].eq(1), rows[b].eq(p.a[:g.row_bits]), since_act[b].eq(1)]
        with m.If(is_[SDRAMCommand.REFRESH]):
            m.d.sync += [since_ref.eq(1), since_refresh.eq(0), self.refreshes.eq(self.refreshes + 1)]
            with m.If(init_refs != 3):
                m.d.sync += init_refs.eq(init_refs + 1)
        with m.If(is_[SDRAMCommand.MODE]):
            m.d.sync += [since_mrs.eq(1), mode_set.eq(1), cl.eq(p.a[4:6])]

        # -- data ---------------------------------------------------------------------------------
        index = Cat(p.a[:g.col_bits], bank, row_now)[:self.words.bit_length() - 1]
        wp = self.storage.write_port(granularity=8)
        rp = self.storage.read_port(domain="sync", transparent_for=(wp,))
        is_wr = is_[SDRAMCommand.WRITE] & bank_open
        m.d.comb += [wp.addr.eq(index), wp.data.eq(p.dq_o),
                     wp.en.eq(Mux(is_wr, ~p.dqm, 0)), rp.addr.eq(index), rp.en.eq(1)]
        with m.If(is_[SDRAMCommand.WRITE]):
            m.d.sync += self.writes.eq(self.writes + 1)
            for b in range(nb):
                with m.If(bank == b):
                    m.d.sync += since_wr[b].eq(1)
        with m.If(is_[SDRAMCommand.READ]):
            m.d.sync += self.reads.eq(self.reads + 1)
        # Read data: the port's output follows the command edge; one more register per CAS
        # latency step beyond 1 puts it on DQ for the edge CL after the command.
        r0 = Signal()
        r1, d1 = Signal(), Signal(g.data_bits)
        r2, d2 = Signal(), Signal(g.data_bits)
        m.d.sync += [r0.eq(is_[SDRAMCommand.READ] & bank_open), r1.eq(r0), d1.eq(rp.data),
                     r2.eq(r1), d2.eq(d1)]
        m.d.comb += [driving.eq(Mux(cl == 3, r2, r1)),
                     p.dq_i.eq(Mux(driving, Mux(cl == 3, d2, d1), 0))]
        return m
