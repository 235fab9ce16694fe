"""DDR3 PHY for the ECP5 (ECPIX-5, OrangeCrab): the chip side of :mod:`rtl_gen.ddr3_phy_if` on the
ECP5's DDR I/O primitives (Lattice FPGA-TN-02035, "ECP5 and ECP5-5G High-Speed I/O Interface").

Clocks (made by :class:`boards.common.BoardTop`): ``sys2x`` (ECLK, from an ``ECLKSYNCB``) runs at
twice ``sync`` (SCLK, ``CLKDIVF`` of ECLK, so the two are phase aligned), and ``init`` is a free
running clock that keeps going while the init sequence stops ECLK (and with it SCLK).

* ``CK`` = ECLK: an ``ODDRX2F`` driving ``D0..D3 = 0, 1, 0, 1``, so ``CK`` rises in the middle of
  each command bit; the resource's differential ``IO_TYPE`` (``SSTL15D_I``/``SSTL135D_I``) makes
  the N pin, only the P pin is driven.
* Command/address pins: an ``ODDRX2F`` each, ``D0 = D1 = phases[0]``, ``D2 = D3 = phases[1]``;
  ``ras``/``cas``/``we``/``cs`` are ``PinsN`` in the resources and the primitives bypass Amaranth's
  buffers, so the PHY inverts them itself (from each port's ``invert``). ``cs``/``rst`` are optional
  (the ECPIX-5 has neither).
* Per byte lane a ``DQSBUFM`` (delay code ``DDRDEL`` from one ``DDRDLLA``; ``READ0``/``READ1`` = the
  lane's read window, ``rd_en`` delayed; ``READCLKSEL`` = ``rd_delay``; ``PAUSE`` during DLL updates and
  ``rd_delay`` changes), ``ODDRX2DQSB`` + ``TSHX2DQSA`` for ``DQS``, ``ODDRX2DQA`` + ``TSHX2DQA`` out
  and ``DELAYG`` (``DQS_ALIGNED_X2``) + ``IDDRX2DQA`` in for each ``DQ``, ``ODDRX2DQA`` for ``DM``.

Read capture per byte lane: ``rd_cycle`` = ``c`` (``0 .. read_cycles-1``) opens the lane's read window
and takes its burst out of the ``IDDRX2DQA`` stream ``c - read_cycles // 2`` whole ``sync`` cycles
from the designed position (:data:`READ_WINDOW`, :data:`READ_CAPTURE`), then delays the burst
``read_cycles - 1 - c`` cycles, so ``rd_data``/``rd_valid`` keep one ``read_latency`` for every
setting; ``rd_bitslip`` picks the first beat out of two captures, ``rd_delay`` the ``DQSBUFM``'s
``READCLKSEL``. With the default :data:`READ_CYCLES` = 3 the calibration also finds a board whose
reads come back one cycle early or late, at the cost of ``read_latency`` one cycle longer than
without the scan (``read_cycles - 1 - read_cycles // 2`` cycles of the delay line).

The logic around the primitives is :class:`ECP5DDR3PHYLogic` (simulated in the tests) and the
DDRDLLA/ECLK start-up is :class:`ECP5DDRInit`; :func:`phy_params` says what the controller must
know (:class:`~rtl_gen.ddr3_phy_if.DDR3PHYParams`).

Timing of the I/O paths themselves (pins, DQS to DQ capture) is not checked by nextpnr: it comes
from the primitives' fixed structure and the read calibration.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, DomainRenamer, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import data, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from rtl_gen.ddr3_phy_if import (DDR3PHYParams, DDR3PHYSignature, check_phy_params, check_phy_pins, lane_bytes,
                                 phase_layout, port_pads)

__all__ = ["ECP5DDR3PHY", "ECP5DDR3PHYLogic", "ECP5DDRInit", "phy_params", "CMD_REG", "WRITE_ALIGN",
           "READ_CAPTURE", "READ_WINDOW", "READ_CYCLES"]

#: Register stage between the controller's ``phases`` and the ``ODDRX2F`` inputs (the pins are far
#: from the controller; every latency below counts it).
CMD_REG = 1
#: ``sync`` cycles between a ``WRITE``'s command bits entering the ``ODDRX2F``s and its first data
#: beat entering the ``ODDRX2DQA``s, beyond the CAS write latency rounded to ``sync`` cycles: the
#: DQ output gearbox (launched on ``DQSW270``) reaches the pin one SCLK sooner than the command
#: path's ``ODDRX2F``, so the data goes in one cycle later (as LiteDRAM's ECP5 PHY, proven on these
#: boards, does; tests/test_ddr3_pins.py states the primitive latencies this assumes).
WRITE_ALIGN = 1
#: ``sync`` cycles from a ``READ``'s command bits entering the ``ODDRX2F``s, beyond CL in ``sync``
#: cycles, until the burst's first beat is in the ``IDDRX2DQA`` outputs (``ODDRX2F``, board, DRAM,
#: ``DQSBUFM`` read FIFO and ``IDDRX2DQA`` gearbox), with the read window ``READ_WINDOW`` cycles
#: after the command: the designed setting ``rd_cycle = read_cycles // 2``. The read calibration
#: covers the remaining uncertainty: ``rd_bitslip`` (0..3 beats) and ``rd_delay`` within a ``sync``
#: cycle, ``rd_cycle`` whole cycles around it. Not measured on hardware yet: ``read_latency`` in
#: :func:`phy_params` moves every capture by whole cycles if a board needs more than the scan.
READ_CAPTURE = 7
#: The ``DQSBUFM`` read window (``READ0``/``READ1``) opens this many ``sync`` cycles after the
#: command bits, beyond CL in ``sync`` cycles (at the designed ``rd_cycle``), and stays open for
#: two cycles (TN-02035 "READ Pulse Positioning": asserted ahead of the returning DQS preamble).
READ_WINDOW = 1
#: Default ``read_cycles`` of :func:`phy_params`: the read window and capture of each lane one
#: ``sync`` cycle early (``rd_cycle`` 0), as designed (1) or one late (2); costs one cycle of
#: ``read_latency`` (the late setting's data must still come out in time).
READ_CYCLES = 3
#: Beats of history the bitslip chooses from (two ``IDDRX2DQA`` captures).
BITSLIPS = 4
#: ``READCLKSEL`` steps of the ``DQSBUFM``.
DELAYS = 8
#: ``sync`` cycles the ``DQSBUFM`` is paused after a lane's ``rd_delay`` changes.
PAUSE_CYCLES = 4


def _read_timing(cl: int, read_cycles: int) -> tuple[int, int]:
    """``(open_at, min_rl)``: ``sync`` cycles from a ``READ`` to its read window at ``rd_cycle`` 0, and
    the least ``read_latency`` whose capture at ``rd_cycle`` 0 is not before that window opens."""
    cl_sync = (cl % 2 + cl) // 2
    open_at = CMD_REG + cl_sync + READ_WINDOW - read_cycles // 2
    # rd_cycle 0 takes its first beat read_latency - 2 - (read_cycles - 1) cycles after the READ
    return open_at, open_at + read_cycles + 1


def phy_params(cl: int = 6, cwl: int = 5, *, read_latency: int | None = None,
               read_cycles: int = READ_CYCLES) -> DDR3PHYParams:
    """The :class:`DDR3PHYParams` of :class:`ECP5DDR3PHY` for CAS latencies ``cl``/``cwl``.

    ``write_latency`` = the command register + CWL rounded up to ``sync`` cycles (the ``WRITE`` goes
    in the phase that makes the burst start on a ``sync`` boundary) + :data:`WRITE_ALIGN` - the data
    register; ``read_latency`` (default: the command register + CL in ``sync`` cycles +
    :data:`READ_CAPTURE` + 2, the history and output registers of the bitslip, + ``read_cycles - 1
    - read_cycles // 2``, the delay a capture later than designed leaves out) may be given to move
    every capture by whole cycles on a board whose path differs by more than the ``rd_cycle`` scan.
    ``read_cycles`` (odd, so the designed setting is in the middle) is the ``rd_cycle`` range the
    calibration scans.
    """
    base = DDR3PHYParams(cl=cl, cwl=cwl)     # validates cl/cwl
    if not isinstance(read_cycles, int) or read_cycles < 1:
        raise ValueError(f"phy_params: read_cycles = {read_cycles!r}: at least 1")
    cl_sync = (base.read_phase + cl) // 2
    cwl_sync = (base.write_phase + cwl) // 2
    open_at, min_rl = _read_timing(cl, read_cycles)
    if open_at < 1:
        most = 2 * (CMD_REG + cl_sync + READ_WINDOW) - 1
        raise ValueError(f"phy_params: read_cycles = {read_cycles}: at most {most} at CL {cl} "
                         f"(rd_cycle 0 would open the read window before the READ)")
    default_rl = CMD_REG + cl_sync + READ_CAPTURE + 2 + read_cycles - 1 - read_cycles // 2
    if read_latency is None:
        read_latency = default_rl
    if read_latency < min_rl:
        raise ValueError(f"phy_params: read_latency = {read_latency}: at least {min_rl} with read_cycles = "
                         f"{read_cycles} (the read window must open first)")
    return DDR3PHYParams(cl=cl, cwl=cwl, read_latency=read_latency,
                         write_latency=CMD_REG + cwl_sync + WRITE_ALIGN - 1, read_cycles=read_cycles,
                         bitslips=BITSLIPS, delays=DELAYS, settle_cycles=PAUSE_CYCLES + 4)


class ECP5DDRInit(wiring.Component):
    """Start-up of the ECP5 DDR primitives, in its own (free running) clock domain ``sync``
    (renamed to ``init`` by :class:`ECP5DDR3PHY`): TN-02035's sequence after the ``DDRDLLA`` locks.

    ``reset`` starts high (the gearboxes and ``CLKDIVF`` wait in reset), then, ``step`` cycles
    apart: wait until ``lock`` has been high for ``step`` cycles; ``freeze`` the DLL; ``stop`` ECLK;
    release ``reset`` (SCLK restarts aligned to ECLK once ECLK runs); release ``stop``; release
    ``freeze``; ``pause`` the ``DQSBUFM``s; ``update`` (``UDDCNTLN`` low) the delay code; release
    ``update``; release ``pause``; ``done``.

    Members
    -------
    lock : In(1)       the ``DDRDLLA``'s ``LOCK`` (synchronised here)
    freeze, stop, reset, pause, update, done : Out(1)
    """

    STEPS = ("freeze", "stop", "release_reset", "release_stop", "release_freeze", "pause", "update",
             "release_update", "release_pause", "done")

    def __init__(self, step: int = 8):
        if step < 2:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            raise ValueError(f"ECP5DDRInit: step = {step!r}: at least 2 cycles")
        self.step = step
        super().__init__({"lock": In(1), "freeze": Out(1), "stop": Out(1), "reset": Out(1, init=1),
                          "pause": Out(1), "update": Out(1), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        lock = Signal()
        m.submodules.lock_sync = FFSynchronizer(self.lock, lock)
        timer = Signal(range(self.step + 1))
        stage = Signal(range(len(self.STEPS) + 2))   # 0: wait for lock, 1..: STEPS, then stay
        with m.If(stage == 0):
            # LOCK must stay high a whole step (it may chatter while the DLL settles).
            with m.If(~lock):
                m.d.sync += timer.eq(0)
            with m.Elif(timer == self.step - 1):
                m.d.sync += [timer.eq(0), stage.eq(1)]
            with m.Else():
                m.d.sync += timer.eq(timer + 1)
        with m.Elif(stage <= len(self.STEPS)):
            with m.If(timer == self.step - 1):
                m.d.sync += [timer.eq(0), stage.eq(stage + 1)]
                actions = {
                    "freeze": self.freeze.eq(1), "stop": self.stop.eq(1), "release_reset": self.reset.eq(0),
                    "release_stop": self.stop.eq(0), "release_freeze": self.freeze.eq(0),
                    "pause": self.pause.eq(1), "update": self.update.eq(1),
                    "release_update": self.update.eq(0), "release_pause": self.pause.eq(0),
                    "done": self.done.eq(1),
                }
                with m.Switch(stage):
                    for i, name in enumerate(self.STEPS):
                        with m.Case(i + 1):
                            m.d.sync += actions[name]
            with m.Else():
                m.d.sync += timer.eq(timer + 1)
        return m


class ECP5DDR3PHYLogic(wiring.Component):
    """Everything of :class:`ECP5DDR3PHY` in ``sync`` except the primitives: the command register,
    write data/enable alignment, ``DQS``/``DQ`` output enables with preamble and postamble, the
    per-lane read window, ``rd_valid`` and the per-lane capture (``rd_cycle`` delay, bitslip).

    The outputs are the primitives' inputs in the cycle SCLK samples them (a ``sync`` cycle's four
    beats, beat 0 = ``D0`` = first on the pin).

    Members
    -------
    ctrl : In(DDR3PHYSignature)     the controller side (``phy_ready`` driven by the PHY)
    cmd : Out(ArrayLayout(phase_layout, 2))  the registered command slots (active high)
    reset_n, cke, odt : Out(1)      registered with the commands
    dq_o : Out(4 * dq_bits)         ``ODDRX2DQA`` data, beat-major like ``wr_data``
    dm_o : Out(4 * lanes)           ``ODDRX2DQA`` data of ``DM`` (1 = masked), beat-major
    dq_t : Out(1)                   ``TSHX2DQA`` ``T0``/``T1`` (1 = high impedance)
    dqs_o : Out(4)                  ``ODDRX2DQSB`` data (the strobe in a write burst, else 0)
    dqs_t : Out(2)                  ``TSHX2DQSA`` ``T0``, ``T1`` (preamble/postamble included)
    read_window : Out(lanes)        per lane, ``DQSBUFM`` ``READ0``/``READ1`` (moved by ``rd_cycle``)
    pause : Out(lanes)              ``DQSBUFM`` ``PAUSE`` after a ``rd_delay`` change
    readclksel : Out(ArrayLayout(3, lanes))  registered ``rd_delay``
    dq_i : In(4 * dq_bits)          ``IDDRX2DQA`` ``Q0..Q3`` of every ``DQ``, beat-major
    """

    def __init__(self, *, dq_bits: int, bank_bits: int, addr_pins: int, params: DDR3PHYParams):
        self._MustUse__silence = True   # no 'never used' warning if a check below rejects it
        check_phy_params("ECP5DDR3PHYLogic", params, bitslips=BITSLIPS, delays=DELAYS,
                         write_latency=phy_params(params.cl, params.cwl).write_latency)
        open_at, min_rl = _read_timing(params.cl, params.read_cycles)
        if open_at < 1:
            raise ValueError(f"ECP5DDR3PHYLogic: params read_cycles = {params.read_cycles}: too many for CL "
                             f"{params.cl} (rd_cycle 0 would open the read window before the READ)")
        if params.read_latency < min_rl:
            raise ValueError(f"ECP5DDR3PHYLogic: params read_latency = {params.read_latency}: at least {min_rl}")
        self._MustUse__silence = False
        self.sig = DDR3PHYSignature(dq_bits=dq_bits, bank_bits=bank_bits, addr_pins=addr_pins, params=params)
        self.params = params
        lanes = dq_bits // 8
        self.dq_bits, self.lanes = dq_bits, lanes
        super().__init__({
            "ctrl": In(self.sig),
            "cmd": Out(data.ArrayLayout(phase_layout(bank_bits, addr_pins), 2)),
            "reset_n": Out(1), "cke": Out(1), "odt": Out(1),
            "dq_o": Out(4 * dq_bits), "dm_o": Out(4 * lanes), "dq_t": Out(1, init=1),
            "dqs_o": Out(4), "dqs_t": Out(2, init=0b11),
            "read_window": Out(lanes), "pause": Out(lanes), "readclksel": Out(data.ArrayLayout(3, lanes)),
            "dq_i": In(4 * dq_bits),
        })

    def elaborate(self, platform):
        m = Module()
        p, c = self.params, self.ctrl
        m.d.sync += [self.cmd.eq(c.phases), self.reset_n.eq(c.reset_n), self.cke.eq(c.cke), self.odt.eq(c.odt)]

        # Write: data and mask registered once (taken at WRITE + write_latency, as the contract
        # says), enables from wr_en so the controller's own timing decides the burst.
        oe, oe_prev = Signal(), Signal()
        m.d.sync += [self.dq_o.eq(c.wr_data), self.dm_o.eq(c.wr_mask), oe.eq(c.wr_en), oe_prev.eq(oe)]
        # DQS: driven low from the ECLK cycle before the burst (preamble, T1 of the previous SCLK)
        # to the one after it (postamble, T0 of the next); it toggles only inside the burst.
        preamble = c.wr_en & ~oe     # the burst starts in the next cycle
        postamble = oe_prev & ~oe
        m.d.comb += [self.dq_t.eq(~oe), self.dqs_o.eq(Mux(oe, 0b1010, 0)),
                     self.dqs_t[0].eq(~(oe | postamble)), self.dqs_t[1].eq(~(oe | preamble))]

        # Read: one delay line of rd_en gives the read windows and rd_valid.
        depth = p.read_latency
        line = Signal(depth)
        m.d.sync += line.eq(Cat(c.rd_en, line[:-1]))    # line[k]: rd_en k + 1 cycles ago
        open_at, _ = _read_timing(p.cl, p.read_cycles)  # at rd_cycle 0; rd_cycle c opens c later
        m.d.comb += c.rd_valid.eq(line[depth - 1])
        dq, lanes, rc = self.dq_bits, self.lanes, p.read_cycles
        for lane in range(lanes):
            with m.Switch(c.rd_cycle[lane]):
                for cyc in range(rc):
                    with m.Case(cyc):
                        at = open_at + cyc
                        m.d.comb += self.read_window[lane].eq(line[at - 1] | line[at])

        # Bitslip: per lane, 4 consecutive beats out of the last two captures (older first), then
        # rd_cycle c takes them out of a delay line read_cycles - 1 - c cycles later.
        prev = Signal.like(self.dq_i)
        m.d.sync += prev.eq(self.dq_i)
        for lane in range(lanes):
            hist = lane_bytes(prev, lane, dq) + lane_bytes(self.dq_i, lane, dq)
            slip = c.rd_bitslip[lane]
            delayed = [Signal(32, name=f"rd_burst{lane}_d{k}") for k in range(rc)]
            with m.Switch(slip):
                for s in range(BITSLIPS):
                    with m.Case(s):
                        m.d.sync += delayed[0].eq(Cat(*hist[s:s + 4]))
            for k in range(1, rc):
                m.d.sync += delayed[k].eq(delayed[k - 1])
            with m.Switch(c.rd_cycle[lane]):
                for cyc in range(rc):
                    with m.Case(cyc):
                        burst = delayed[rc - 1 - cyc]
                        m.d.comb += [c.rd_data[k * dq + 8 * lane:][:8].eq(burst[8 * k:][:8])
                                     for k in range(4)]

        # Capture delay: registered, and the DQSBUFM paused for a few cycles after a change.
        for lane in range(lanes):
            left = Signal(range(PAUSE_CYCLES + 1), name=f"pause_left{lane}")
            m.d.sync += self.readclksel[lane].eq(c.rd_delay[lane])
            with m.If(self.readclksel[lane] != c.rd_delay[lane]):
                m.d.sync += left.eq(PAUSE_CYCLES)
            with m.Elif(left != 0):
                m.d.sync += left.eq(left - 1)
            m.d.comb += self.pause[lane].eq((left != 0) | (self.readclksel[lane] != c.rd_delay[lane]))
        return m


class ECP5DDR3PHY(wiring.Component):
    """The ECP5 DDR3 PHY on an amaranth-boards ``ddr3`` resource (see the module docstring).

    Parameters
    ----------
    pins : the resource requested with ``dir="-"`` (subsignals ``clk``, ``clk_en``, ``we``, ``ras``,
        ``cas``, ``a``, ``ba``, ``dqs``, ``dq``, ``dm``, ``odt``, optionally ``cs`` and ``rst``)
    bank_bits, addr_pins : int
        The controller's geometry (``addr_pins`` may be fewer than the resource's ``a``: the rest
        are driven 0).
    params : DDR3PHYParams or None
        Default :func:`phy_params` ``()``.
    init_step : int
        ``init`` cycles between the steps of :class:`ECP5DDRInit`.

    Members
    -------
    ctrl : In(DDR3PHYSignature)   the controller's ``phy`` port connects here
    eclk_stop : Out(1)            to the ``ECLKSYNCB``'s ``STOP`` (``init`` domain)
    ddr_reset : Out(1)            to the ``CLKDIVF``'s ``RST`` (``init`` domain; also resets the
                                  primitives here)

    Domains used: ``sync``, ``sys2x`` (clocks only) and ``init``.
    """

    def __init__(self, pins, *, bank_bits: int, addr_pins: int, params: DDR3PHYParams | None = None,
                 init_step: int = 8):
        self._MustUse__silence = True   # no 'never used' warning if a check below rejects it
        params = params or phy_params()
        dq_bits = check_phy_pins("ECP5DDR3PHY", pins, bank_bits=bank_bits, addr_pins=addr_pins,
                                 not_inverted=("dq", "dqs", "dm"))
        self._MustUse__silence = False
        self.pins, self.params, self.init_step = pins, params, init_step
        self.logic = ECP5DDR3PHYLogic(dq_bits=dq_bits, bank_bits=bank_bits, addr_pins=addr_pins, params=params)
        super().__init__({"ctrl": In(self.logic.sig), "eclk_stop": Out(1), "ddr_reset": Out(1)})

    def elaborate(self, platform):
        m = Module()
        pins, lg = self.pins, self.logic
        m.submodules.logic = lg
        wiring.connect(m, wiring.flipped(self.ctrl), lg.ctrl)
        m.submodules.init = init = DomainRenamer("init")(ECP5DDRInit(self.init_step))
        m.d.comb += [self.eclk_stop.eq(init.stop), self.ddr_reset.eq(init.reset)]
        # phy_ready: the logic leaves it undriven, so the synchroniser is its only driver
        m.submodules.ready_sync = FFSynchronizer(init.done, lg.ctrl.phy_ready, o_domain="sync")
        rst = init.reset
        clocks = {"i_SCLK": ClockSignal("sync"), "i_ECLK": ClockSignal("sys2x"), "i_RST": rst}

        ddrdel, lock = Signal(), Signal()
        m.submodules.dll = Instance(
            "DDRDLLA", p_FORCE_MAX_DELAY="NO", i_CLK=ClockSignal("sys2x"), i_RST=ResetSignal("init"),
            i_UDDCNTLN=~init.update, i_FREEZE=init.freeze, o_DDRDEL=ddrdel, o_LOCK=lock)
        m.d.comb += init.lock.eq(lock)

        def out_pin(name: str, pad, d: list) -> None:
            """An ODDRX2F driving ``pad`` with beats ``d`` (D0 first)."""
            q = Signal(name=f"{name}_q")
            m.submodules[f"{name}_oddr"] = Instance("ODDRX2F", **clocks, **{f"i_D{k}": d[k] for k in range(4)},
                                                    o_Q=q)
            m.submodules[f"{name}_ob"] = Instance("OB", i_I=q, o_O=pad)

        # CK: rises mid-ECLK-cycle, in the middle of each command bit.
        ck, _, _ = port_pads(pins.clk)     # the P pin only: the IO_TYPE makes N
        out_pin("ck", ck[0], [Const(0), Const(1), Const(0), Const(1)])

        # Command/address: each phase on both halves of its CK cycle; pins inverted as the resource
        # says (the ODDRs bypass Amaranth's buffers, which would otherwise invert them).
        cmd = [lg.cmd[i] for i in range(2)]
        sources = {
            "we": [ph.cmd.as_value()[0] for ph in cmd], "cas": [ph.cmd.as_value()[1] for ph in cmd],
            "ras": [ph.cmd.as_value()[2] for ph in cmd], "ba": [ph.ba for ph in cmd],
            "a": [ph.a for ph in cmd], "clk_en": [lg.cke, lg.cke], "odt": [lg.odt, lg.odt],
        }
        if hasattr(pins, "cs"):
            sources["cs"] = [ph.cs for ph in cmd]
        if hasattr(pins, "rst"):
            # the resource's logical value is "reset asserted"
            sources["rst"] = [~lg.reset_n, ~lg.reset_n]
        for name, (v0, v1) in sources.items():
            pad, _, inv = port_pads(getattr(pins, name))
            for b in range(len(pad)):
                b0 = v0[b] if b < len(v0) else Const(0)
                b1 = v1[b] if b < len(v1) else Const(0)
                if inv[b]:
                    b0, b1 = ~b0, ~b1
                out_pin(f"{name}{b}", pad[b], [b0, b0, b1, b1])

        dq_pad, _, _ = port_pads(pins.dq)
        dqs_pad, _, _ = port_pads(pins.dqs)
        dm_pad, _, _ = port_pads(pins.dm)
        dq = lg.dq_bits
        dq_in = [[Signal(name=f"dq{j}_q{k}") for k in range(4)] for j in range(dq)]
        m.d.comb += lg.dq_i.eq(Cat(*(dq_in[j][k] for k in range(4) for j in range(dq))))
        for lane in range(lg.lanes):
            dqsr90, dqsw, dqsw270 = Signal(name=f"dqsr90_{lane}"), Signal(name=f"dqsw{lane}"), Signal(name=f"dqsw270_{lane}")
            rdpntr, wrpntr = Signal(3, name=f"rdpntr{lane}"), Signal(3, name=f"wrpntr{lane}")
            dqs_i, dqs_q, dqs_t = Signal(name=f"dqs{lane}_i"), Signal(name=f"dqs{lane}_o"), Signal(name=f"dqs{lane}_t")
            # LI/LO delay adjustments: the values ECP5 DDR3 designs on these boards run with.
            m.submodules[f"dqsbuf{lane}"] = Instance(
                "DQSBUFM", p_DQS_LI_DEL_ADJ="MINUS", p_DQS_LI_DEL_VAL=1, p_DQS_LO_DEL_ADJ="MINUS",
                p_DQS_LO_DEL_VAL=4, **clocks, i_DDRDEL=ddrdel, i_PAUSE=init.pause | lg.pause[lane],
                i_DQSI=dqs_i, i_READ0=lg.read_window[lane], i_READ1=lg.read_window[lane],
                **{f"i_READCLKSEL{k}": lg.readclksel[lane][k] for k in range(3)},
                **{f"i_DYNDELAY{k}": 0 for k in range(8)},
                # static delays: LOADN low keeps the DDRDEL-controlled default
                i_RDLOADN=0, i_RDMOVE=0, i_RDDIRECTION=1, i_WRLOADN=0, i_WRMOVE=0, i_WRDIRECTION=1,
                o_DQSR90=dqsr90, o_DQSW=dqsw, o_DQSW270=dqsw270,
                **{f"o_RDPNTR{k}": rdpntr[k] for k in range(3)}, **{f"o_WRPNTR{k}": wrpntr[k] for k in range(3)})
            m.submodules[f"dqs{lane}_oddr"] = Instance(
                "ODDRX2DQSB", **clocks, i_DQSW=dqsw, **{f"i_D{k}": lg.dqs_o[k] for k in range(4)}, o_Q=dqs_q)
            m.submodules[f"dqs{lane}_tsh"] = Instance(
                "TSHX2DQSA", **clocks, i_DQSW=dqsw, i_T0=lg.dqs_t[0], i_T1=lg.dqs_t[1], o_Q=dqs_t)
            m.submodules[f"dqs{lane}_bb"] = Instance("BB", i_I=dqs_q, i_T=dqs_t, o_O=dqs_i, io_B=dqs_pad[lane])
            # DM: output only, beats of this lane's mask bit
            dm_q = Signal(name=f"dm{lane}_q")
            m.submodules[f"dm{lane}_oddr"] = Instance(
                "ODDRX2DQA", **clocks, i_DQSW270=dqsw270,
                **{f"i_D{k}": lg.dm_o[k * lg.lanes + lane] for k in range(4)}, o_Q=dm_q)
            m.submodules[f"dm{lane}_ob"] = Instance("OB", i_I=dm_q, o_O=dm_pad[lane])
            for j in range(8 * lane, 8 * lane + 8):
                o, t, i, i_del = (Signal(name=f"dq{j}_{s}") for s in ("o", "t", "i", "del"))
                m.submodules[f"dq{j}_oddr"] = Instance(
                    "ODDRX2DQA", **clocks, i_DQSW270=dqsw270, **{f"i_D{k}": lg.dq_o[k * dq + j] for k in range(4)},
                    o_Q=o)
                m.submodules[f"dq{j}_tsh"] = Instance(
                    "TSHX2DQA", **clocks, i_DQSW270=dqsw270, i_T0=lg.dq_t, i_T1=lg.dq_t, o_Q=t)
                m.submodules[f"dq{j}_bb"] = Instance("BB", i_I=o, i_T=t, o_O=i, io_B=dq_pad[j])
                m.submodules[f"dq{j}_delay"] = Instance("DELAYG", p_DEL_MODE="DQS_ALIGNED_X2", i_A=i, o_Z=i_del)
                m.submodules[f"dq{j}_iddr"] = Instance(
                    "IDDRX2DQA", **clocks, i_DQSR90=dqsr90, i_D=i_del,
                    **{f"i_RDPNTR{k}": rdpntr[k] for k in range(3)}, **{f"i_WRPNTR{k}": wrpntr[k] for k in range(3)},
                    **{f"o_Q{k}": dq_in[j][k] for k in range(4)})
        return m

