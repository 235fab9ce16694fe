"""DDR3 PHY for Xilinx 7-series HR banks (Arty A7): the chip side of :mod:`rtl_gen.ddr3_phy_if` on
``OSERDESE2``/``ISERDESE2``/``IDELAYE2`` (Xilinx UG471, "7 Series FPGAs SelectIO Resources").

Clocks (made by :class:`boards.common.BoardTop` from one MMCM, each on a BUFG): ``sync`` (the
serdes' ``CLKDIV``), ``sys2x`` at twice ``sync`` and phase aligned with it (``CLK``), ``sys2x_90``:
``sys2x`` shifted by 90 degrees, a quarter ``CK`` period, and ``idelay_ref`` at 200 MHz for the
``IDELAYCTRL``.

* Every output pin is an ``OSERDESE2`` (``DATA_RATE_OQ="DDR"``, ``DATA_WIDTH=4``, ``D1`` = beat 0
  = first on the pin) clocked by ``sys2x``/``sync``, except ``DQS`` and ``CK``, clocked by
  ``sys2x_90``: ``DQS`` edges then sit in the middle of the ``DQ`` bits (the DRAM samples write data
  on them), and ``CK`` (``1, 0, 1, 0`` into an ``OBUFDS``) rises on the very edges ``DQS`` rises on,
  so the first write ``DQS`` edge comes exactly CWL clocks after the ``WRITE``'s ``CK`` edge
  (tDQSS 0; with ``CK`` on ``sys2x`` it would be a quarter clock off, at the limit of the
  +-0.25 tCK rule). The price is the command setup time: ``CK`` rises a quarter clock after each
  command bit starts (setup 0.25 tCK, hold 0.75 tCK: 1.25 ns and 3.75 ns at CK = 200 MHz, far above
  the DRAM's few hundred ps).
* Command/address pins: ``D1 = D2 = phases[0]``, ``D3 = D4 = phases[1]``; ``ras``/``cas``/``we``/
  ``cs``/``rst`` are ``PinsN`` in the resource and the primitives bypass Amaranth's buffers, so the
  PHY inverts them itself (from each port's ``invert``).
* ``DQ``: ``OSERDESE2`` with a per-beat tristate (``DATA_RATE_TQ="DDR"``, ``TRISTATE_WIDTH=4``) ->
  ``IOBUF`` -> ``IDELAYE2`` (``VAR_LOAD``: ``rd_delay`` loaded through ``CNTVALUEIN`` with ``LD``,
  32 taps of 1 / (64 * 200 MHz) = 78 ps, one ``DQ`` bit at CK = 200 MHz) -> ``ISERDESE2``
  (``NETWORKING``, DDR, width 4, ``CLK`` = ``sys2x``, ``CLKB`` = ``sys2x`` inverted in the cell,
  ``CLKDIV`` = ``sync``; ``Q4`` is the oldest bit). Reads are captured by the FPGA's own clock
  through the calibrated delay, not by the returning ``DQS`` (only driven, for writes).
* ``DQS``: ``OSERDESE2`` with the same per-beat tristate (preamble and postamble) -> ``IOBUFDS``.
* ``DM``: ``OSERDESE2`` -> ``OBUF``. One ``IDELAYCTRL`` (its ``RDY`` gates ``phy_ready``).

Whole-beat and whole-cycle read alignment (``rd_bitslip``, ``rd_cycle``) is fabric logic in
:class:`XC7DDR3PHYLogic`, simulated in the tests; :func:`phy_params` says what the controller must
know (:class:`~rtl_gen.ddr3_phy_if.DDR3PHYParams`).

No write leveling: the Arty has one x16 chip a few centimetres from the FPGA, with ``CK`` and both
``DQS`` pairs routed point to point and of similar length (no fly-by chain of chips whose ``DQS``
would have to be delayed chip by chip), and the PHY launches ``DQS`` on the ``CK`` edges, so tDQSS
is met by construction; the HR banks of the Artix-7 have no ``ODELAYE2`` to level with anyway.

The I/O timing itself (the ``OSERDESE2`` and ``ISERDESE2`` latencies, board delays, the read eye) is
not checked by any tool here: :data:`READ_CAPTURE` is an estimate that the read calibration
(``rd_cycle`` one cycle either way, ``rd_bitslip``, ``rd_delay``) makes up for.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import data, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from rtl_gen.ddr3_phy_if import (DDR3PHYParams, DDR3PHYSignature, check_phy_params, check_phy_pins, lane_bytes,
                                 phase_layout, port_pads)

__all__ = ["XC7DDR3PHY", "XC7DDR3PHYLogic", "phy_params", "CMD_REG", "READ_CAPTURE", "READ_PIPE", "BITSLIPS",
           "DELAYS", "READ_CYCLES", "IDELAYCTRL_RESET_CYCLES", "IDELAY_REF_MHZ", "DOMAINS"]

#: Register stage between the controller's ``phases`` and the ``OSERDESE2`` inputs; every latency
#: below counts it.
CMD_REG = 1
#: ``sync`` cycles from a ``READ``'s command bits at the ``OSERDESE2`` inputs, beyond CL in ``sync``
#: cycles, until the burst's first beat is in the ``ISERDESE2`` outputs with ``rd_cycle`` at its
#: middle setting. An estimate: ``OSERDESE2`` about one ``CK`` cycle, ``CK`` a quarter clock after
#: the command, pads and board about half a clock both ways, ``IDELAYE2`` up to one beat, the
#: ``ISERDESE2`` one to two ``sync`` cycles; ``rd_cycle`` covers one cycle either way, the bitslip
#: the beats within a cycle.
READ_CAPTURE = 4
#: ``sync`` cycles of fabric between a burst's last beat in the ``ISERDESE2`` outputs and
#: ``rd_data`` (beyond the ``rd_cycle`` delay): the history register the bitslip reads, the
#: bitslip's register and the ``rd_data`` register.
READ_PIPE = 3
#: Beats of history the bitslip chooses from (two ``ISERDESE2`` captures).
BITSLIPS = 4
#: ``IDELAYE2`` taps (``CNTVALUEIN`` is 5 bits).
DELAYS = 32
#: Whole-cycle capture offsets the calibration scans per lane (the contract's ``read_cycles``).
READ_CYCLES = 3
#: ``IDELAYCTRL`` reference clock (MHz): 200 gives taps of 78 ps.
IDELAY_REF_MHZ = 200.0
#: ``sync`` cycles the ``IDELAYCTRL`` is held in reset after the ``sync`` reset (it needs at least
#: 52 ns, with its reference clock running: 16 cycles are enough up to 300 MHz).
IDELAYCTRL_RESET_CYCLES = 16
#: Clock domains :class:`XC7DDR3PHY` uses (the board makes them).
DOMAINS = ("sync", "sys2x", "sys2x_90", "idelay_ref")


def phy_params(cl: int = 6, cwl: int = 5, *, read_latency: int | None = None,
               read_cycles: int = READ_CYCLES) -> DDR3PHYParams:
    """The :class:`DDR3PHYParams` of :class:`XC7DDR3PHY` for CAS latencies ``cl``/``cwl``.

    ``write_latency`` = the command register + CWL rounded up to ``sync`` cycles (the ``WRITE``
    goes in the phase that starts the burst on a ``sync`` boundary) - the data register: command
    and data leave through ``OSERDESE2``s of the same latency. ``read_latency`` (default: the command
    register + CL in ``sync`` cycles + :data:`READ_CAPTURE` + :data:`READ_PIPE` + the ``rd_cycle``
    delay line behind the middle setting) may be given to move the designed capture by whole
    cycles on a board whose path differs; ``read_cycles`` = 1 turns the ``rd_cycle`` scan off.
    """
    base = DDR3PHYParams(cl=cl, cwl=cwl, read_cycles=read_cycles)   # validates cl/cwl/read_cycles
    cl_sync = (base.read_phase + cl) // 2
    cwl_sync = (base.write_phase + cwl) // 2
    tail = READ_PIPE + (read_cycles - 1 - read_cycles // 2)
    if read_latency is None:
        read_latency = CMD_REG + cl_sync + READ_CAPTURE + tail
    least = _min_read_latency(cl_sync, read_cycles)
    if read_latency < least:
        raise ValueError(f"phy_params: read_latency = {read_latency}: at least {least} (the burst cannot "
                         f"come back before CL has passed)")
    return DDR3PHYParams(cl=cl, cwl=cwl, read_latency=read_latency, write_latency=CMD_REG + cwl_sync - 1,
                         read_cycles=read_cycles, bitslips=BITSLIPS, delays=DELAYS, settle_cycles=8)


def _min_read_latency(cl_sync: int, read_cycles: int) -> int:
    """The earliest capture: the first beat in the ``ISERDESE2`` outputs CL after the command
    leaves the register, at the earliest ``rd_cycle``."""
    return CMD_REG + cl_sync + 1 + READ_PIPE + read_cycles - 1


class XC7DDR3PHYLogic(wiring.Component):
    """Everything of :class:`XC7DDR3PHY` in ``sync`` except the primitives: the command register,
    write data and per-beat output enables (``DQS`` preamble/postamble), the read capture (bitslip
    over the last two captures, ``rd_cycle`` delay line, ``rd_valid``), the ``IDELAYE2`` loads and
    the ``IDELAYCTRL`` reset and ready.

    The outputs are the ``OSERDESE2`` inputs in the cycle ``CLKDIV`` samples them (a ``sync``
    cycle's four beats, bit/beat 0 = ``D1``/``T1`` = first on the pin).

    Members
    -------
    ctrl : In(DDR3PHYSignature)     the controller side
    cmd : Out(ArrayLayout(phase_layout, 2))  the registered command slots (active high)
    reset_n, cke, odt : Out(1)      registered with the commands
    dq_o : Out(4 * dq_bits)         ``DQ`` data, beat-major like ``wr_data``
    dm_o : Out(4 * lanes)           ``DM`` data (1 = masked), beat-major
    dq_t : Out(4)                   ``DQ`` tristate per beat (1 = high impedance)
    dqs_o : Out(4)                  ``DQS`` data per beat (the strobe in a write burst, else 0)
    dqs_t : Out(4)                  ``DQS`` tristate per beat (preamble/postamble included)
    idelay_ld : Out(lanes)          ``IDELAYE2`` ``LD`` of the lane's ``DQ``s (one cycle per change)
    idelay_cnt : Out(ArrayLayout(5, lanes))  ``CNTVALUEIN`` (registered ``rd_delay``)
    idelayctrl_rst : Out(1)         ``IDELAYCTRL`` ``RST``
    idelayctrl_rdy : In(1)          ``IDELAYCTRL`` ``RDY`` (asynchronous, synchronised here)
    dq_i : In(4 * dq_bits)          ``ISERDESE2`` outputs of every ``DQ``, beat-major (beat 0 = ``Q4``)
    """

    def __init__(self, *, dq_bits: int, bank_bits: int, addr_pins: int, params: DDR3PHYParams):
        self._MustUse__silence = True   # no 'never used' warning if a check below rejects it
        check_phy_params("XC7DDR3PHYLogic", params, bitslips=BITSLIPS, delays=DELAYS,
                         write_latency=phy_params(params.cl, params.cwl).write_latency)
        cl_sync = (params.read_phase + params.cl) // 2
        least = _min_read_latency(cl_sync, params.read_cycles)
        if params.read_latency < least:
            raise ValueError(f"XC7DDR3PHYLogic: params read_latency = {params.read_latency}: at least {least}")
        self._MustUse__silence = False
        self.sig = DDR3PHYSignature(dq_bits=dq_bits, bank_bits=bank_bits, addr_pins=addr_pins, params=params)
        self.params = params
        lanes = dq_bits // 8
        self.dq_bits, self.lanes = dq_bits, lanes
        super().__init__({
            "ctrl": In(self.sig),
            "cmd": Out(data.ArrayLayout(phase_layout(bank_bits, addr_pins), 2)),
            "reset_n": Out(1), "cke": Out(1), "odt": Out(1),
            "dq_o": Out(4 * dq_bits), "dm_o": Out(4 * lanes), "dq_t": Out(4, init=0b1111),
            "dqs_o": Out(4), "dqs_t": Out(4, init=0b1111),
            "idelay_ld": Out(lanes), "idelay_cnt": Out(data.ArrayLayout(5, lanes)),
            "idelayctrl_rst": Out(1, init=1), "idelayctrl_rdy": In(1),
            "dq_i": In(4 * dq_bits),
        })

    def elaborate(self, platform):
        m = Module()
        p, c = self.params, self.ctrl
        dq, lanes = self.dq_bits, self.lanes
        m.d.sync += [self.cmd.eq(c.phases), self.reset_n.eq(c.reset_n), self.cke.eq(c.cke), self.odt.eq(c.odt)]

        # -- write: data and mask registered (taken at WRITE + write_latency, as the contract
        # says); the enables follow wr_en, so the controller's own timing decides the burst.
        oe, oe_prev = Signal(), Signal()
        m.d.sync += [self.dq_o.eq(c.wr_data), self.dm_o.eq(c.wr_mask), oe.eq(c.wr_en), oe_prev.eq(oe)]
        # DQS: high in beats 0 and 2 of a burst (rising edges on the first and third bit's
        # middle, sys2x_90), driven low for the CK cycle before it (preamble: beats 2-3 of the
        # previous cycle) and after it (postamble: beats 0-1 of the next); between two bursts one
        # cycle apart both fill the gap, so DQS stays driven.
        preamble = c.wr_en & ~oe
        postamble = oe_prev & ~oe
        drive = Signal(4)
        m.d.comb += [
            drive.eq(Mux(oe, 0b1111, 0) | Mux(preamble, 0b1100, 0) | Mux(postamble, 0b0011, 0)),
            self.dqs_t.eq(~drive), self.dqs_o.eq(Mux(oe, 0b0101, 0)),
            self.dq_t.eq(Mux(oe, 0, 0b1111)),
        ]

        # -- read: rd_valid is rd_en read_latency cycles later.
        rl = p.read_latency
        line = Signal(rl)
        m.d.sync += line.eq(Cat(c.rd_en, line[:-1]))    # line[k]: rd_en k + 1 cycles ago
        m.d.comb += c.rd_valid.eq(line[rl - 1])

        # Per lane: 4 consecutive beats out of the last two captures (bitslip), then a delay line
        # that holds a lane captured rd_cycle cycles later for rd_cycle cycles less.
        prev = Signal.like(self.dq_i)
        m.d.sync += prev.eq(self.dq_i)
        rc = p.read_cycles
        for lane in range(lanes):
            hist = lane_bytes(prev, lane, dq) + lane_bytes(self.dq_i, lane, dq)
            slipped = [Signal(32, name=f"slipped{lane}_{k}") for k in range(rc)]
            with m.Switch(c.rd_bitslip[lane]):
                for s in range(BITSLIPS):
                    with m.Case(s):
                        m.d.sync += slipped[0].eq(Cat(*hist[s:s + 4]))
            for k in range(1, rc):
                m.d.sync += slipped[k].eq(slipped[k - 1])
            out = Signal(32, name=f"rd_lane{lane}")
            if rc == 1:
                m.d.sync += out.eq(slipped[0])
            else:
                with m.Switch(c.rd_cycle[lane]):
                    for cyc in range(rc):
                        with m.Case(cyc):
                            m.d.sync += out.eq(slipped[rc - 1 - cyc])
            for k in range(4):
                m.d.comb += c.rd_data[k * dq + 8 * lane:][:8].eq(out[8 * k:][:8])

        # -- IDELAYE2: CNTVALUEIN follows rd_delay one cycle later, LD pulses in that cycle (and
        # once after reset, so a reset that leaves rd_delay = 0 also resets the taps).
        for lane in range(lanes):
            ld = Signal(init=1, name=f"idelay_ld{lane}")
            m.d.sync += [self.idelay_cnt[lane].eq(c.rd_delay[lane]), ld.eq(self.idelay_cnt[lane] != c.rd_delay[lane])]
            m.d.comb += self.idelay_ld[lane].eq(ld)

        # -- IDELAYCTRL: reset for a while after ours, then ready once RDY says so.
        hold = Signal(range(IDELAYCTRL_RESET_CYCLES + 1), init=IDELAYCTRL_RESET_CYCLES)
        with m.If(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        m.d.comb += self.idelayctrl_rst.eq(hold != 0)
        rdy = Signal()
        m.submodules.rdy_sync = FFSynchronizer(self.idelayctrl_rdy, rdy)
        m.d.comb += c.phy_ready.eq(rdy & (hold == 0))
        return m


class XC7DDR3PHY(wiring.Component):
    """The 7-series DDR3 PHY on an amaranth-boards ``ddr3`` resource (see the module docstring).

    Parameters
    ----------
    pins : the resource requested with ``dir="-"`` (subsignals ``clk``, ``clk_en``, ``we``, ``ras``,
        ``cas``, ``a``, ``ba``, ``dqs``, ``dq``, ``dm``, ``odt``, optionally ``cs`` and ``rst``)
    bank_bits, addr_pins : int
        The controller's geometry (``addr_pins`` may be fewer than the resource's ``a``: the rest
        are driven 0).
    params : DDR3PHYParams or None
        Default :func:`phy_params` ``()``.

    Members
    -------
    ctrl : In(DDR3PHYSignature)   the controller's ``phy`` port connects here

    Domains used: ``sync``, ``sys2x``, ``sys2x_90`` and ``idelay_ref`` (:data:`DOMAINS`; all but
    ``sync`` for their clocks only).
    """

    def __init__(self, pins, *, bank_bits: int, addr_pins: int, params: DDR3PHYParams | None = None):
        self._MustUse__silence = True   # no 'never used' warning if a check below rejects it
        params = params or phy_params()
        dq_bits = check_phy_pins("XC7DDR3PHY", pins, bank_bits=bank_bits, addr_pins=addr_pins,
                                 not_inverted=("dq", "dqs", "dm", "clk"), differential=("clk", "dqs"))
        self._MustUse__silence = False
        self.pins, self.params = pins, params
        self.logic = XC7DDR3PHYLogic(dq_bits=dq_bits, bank_bits=bank_bits, addr_pins=addr_pins, params=params)
        super().__init__({"ctrl": In(self.logic.sig)})

    def elaborate(self, platform):
        m = Module()
        pins, lg = self.pins, self.logic
        m.submodules.logic = lg
        wiring.connect(m, wiring.flipped(self.ctrl), lg.ctrl)
        rst = ResetSignal("sync")
        clocks = {"i_CLKDIV": ClockSignal("sync"), "i_RST": rst}

        def oserdes(name: str, d: list, *, clk: str = "sys2x", t: list | None = None) -> tuple[Signal, Signal]:
            """An OSERDESE2 sending beats ``d`` (beat 0 first), with per-beat tristate ``t``."""
            oq, tq = Signal(name=f"{name}_oq"), Signal(name=f"{name}_tq")
            tri = {"p_DATA_RATE_TQ": "DDR", "p_TRISTATE_WIDTH": 4, "i_TCE": 1,
                   **{f"i_T{k + 1}": t[k] for k in range(4)}, "o_TQ": tq} if t is not None else \
                  {"p_DATA_RATE_TQ": "BUF", "p_TRISTATE_WIDTH": 1, "i_TCE": 0,
                   **{f"i_T{k + 1}": 0 for k in range(4)}}
            m.submodules[f"{name}_oserdes"] = Instance(
                "OSERDESE2", p_DATA_RATE_OQ="DDR", p_DATA_WIDTH=4, p_SERDES_MODE="MASTER", p_INIT_OQ=0,
                p_INIT_TQ=1, p_SRVAL_OQ=0, p_SRVAL_TQ=1, p_TBYTE_CTL="FALSE", p_TBYTE_SRC="FALSE",
                i_CLK=ClockSignal(clk), **clocks, i_OCE=1,
                **{f"i_D{k + 1}": d[k] for k in range(4)}, **{f"i_D{k + 1}": 0 for k in range(4, 8)},
                i_SHIFTIN1=0, i_SHIFTIN2=0, i_TBYTEIN=0, **tri, o_OQ=oq)
            return oq, tq

        # CK: on sys2x_90, rising where DQS rises (see the module docstring).
        ck_p, ck_n, _ = port_pads(pins.clk)
        ck, _ = oserdes("ck", [Const(1), Const(0), Const(1), Const(0)], clk="sys2x_90")
        m.submodules.ck_obufds = Instance("OBUFDS", i_I=ck, o_O=ck_p[0], o_OB=ck_n[0])

        # Command/address: each phase on both beats of its CK cycle; pins inverted as the resource
        # says (the primitives bypass Amaranth's buffers, which would otherwise invert them).
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
                q, _ = oserdes(f"{name}{b}", [b0, b0, b1, b1])
                m.submodules[f"{name}{b}_obuf"] = Instance("OBUF", i_I=q, o_O=pad[b])

        # IDELAYCTRL: calibrates every IDELAYE2's taps against idelay_ref.
        rdy = Signal()
        m.submodules.idelayctrl = Instance("IDELAYCTRL", i_REFCLK=ClockSignal("idelay_ref"),
                                           i_RST=lg.idelayctrl_rst, o_RDY=rdy)
        m.d.comb += lg.idelayctrl_rdy.eq(rdy)

        dq_pad, _, _ = port_pads(pins.dq)
        dqs_p, dqs_n, _ = port_pads(pins.dqs)
        dm_pad, _, _ = port_pads(pins.dm)
        dq = lg.dq_bits
        q = [[Signal(name=f"dq{j}_q{k}") for k in range(4)] for j in range(dq)]   # q[j][k]: beat k
        m.d.comb += lg.dq_i.eq(Cat(*(q[j][k] for k in range(4) for j in range(dq))))
        dq_t = [lg.dq_t[k] for k in range(4)]
        for lane in range(lg.lanes):
            s, st = oserdes(f"dqs{lane}", [lg.dqs_o[k] for k in range(4)], clk="sys2x_90",
                            t=[lg.dqs_t[k] for k in range(4)])
            m.submodules[f"dqs{lane}_iobufds"] = Instance("IOBUFDS", i_I=s, i_T=st, io_IO=dqs_p[lane],
                                                          io_IOB=dqs_n[lane])
            dm, _ = oserdes(f"dm{lane}", [lg.dm_o[k * lg.lanes + lane] for k in range(4)])
            m.submodules[f"dm{lane}_obuf"] = Instance("OBUF", i_I=dm, o_O=dm_pad[lane])
            for j in range(8 * lane, 8 * lane + 8):
                o, t = oserdes(f"dq{j}", [lg.dq_o[k * dq + j] for k in range(4)], t=dq_t)
                i, i_del = Signal(name=f"dq{j}_i"), Signal(name=f"dq{j}_del")
                m.submodules[f"dq{j}_iobuf"] = Instance("IOBUF", i_I=o, i_T=t, o_O=i, io_IO=dq_pad[j])
                m.submodules[f"dq{j}_idelay"] = Instance(
                    "IDELAYE2", p_IDELAY_TYPE="VAR_LOAD", p_DELAY_SRC="IDATAIN", p_IDELAY_VALUE=0,
                    p_REFCLK_FREQUENCY=IDELAY_REF_MHZ, p_HIGH_PERFORMANCE_MODE="TRUE", p_SIGNAL_PATTERN="DATA",
                    p_CINVCTRL_SEL="FALSE", p_PIPE_SEL="FALSE",
                    i_C=ClockSignal("sync"), i_CE=0, i_INC=0, i_LD=lg.idelay_ld[lane], i_LDPIPEEN=0,
                    i_CNTVALUEIN=lg.idelay_cnt[lane], i_CINVCTRL=0, i_REGRST=0, i_DATAIN=0,
                    i_IDATAIN=i, o_DATAOUT=i_del)
                # Q4 holds the oldest of the four bits: beat 0.
                m.submodules[f"dq{j}_iserdes"] = Instance(
                    "ISERDESE2", p_DATA_RATE="DDR", p_DATA_WIDTH=4, p_INTERFACE_TYPE="NETWORKING",
                    p_SERDES_MODE="MASTER", p_NUM_CE=1, p_IOBDELAY="IFD", p_OFB_USED="FALSE",
                    p_DYN_CLKDIV_INV_EN="FALSE", p_DYN_CLK_INV_EN="FALSE", p_IS_CLKB_INVERTED=1,
                    i_CLK=ClockSignal("sys2x"), i_CLKB=ClockSignal("sys2x"), **clocks, i_CLKDIVP=0,
                    i_OCLK=0, i_OCLKB=0, i_CE1=1, i_CE2=1, i_BITSLIP=0, i_D=0, i_DDLY=i_del,
                    i_DYNCLKDIVSEL=0, i_DYNCLKSEL=0, i_OFB=0, i_SHIFTIN1=0, i_SHIFTIN2=0,
                    **{f"o_Q{4 - k}": q[j][k] for k in range(4)})
        return m
