"""DDR3 controller with the engine's word interface (ECPIX-5, OrangeCrab: 16-bit MT41K parts).

The front end is the one of :class:`~rtl_gen.sdram.SDRAMController` (``rd_cmd`` word addresses,
``rd_data`` in request order, ``wr`` address+data complete at the handshake), with a *word* of
``4 * dq_bits`` bits: one burst-chop-4 burst (four beats of the ``DQ`` bus, four columns). Requests
are served one at a time in arrival order (writes first when both wait), with an open-row policy per
bank; reads are credit-counted into a FIFO as in the SDR controller.

The back end is :class:`~rtl_gen.ddr3_phy_if.DDR3PHYSignature`: two command slots per ``sync``
cycle (the DRAM clock is twice ``sync``). The controller puts one command per ``sync`` cycle in one
slot: ``READ``/``WRITE`` in the PHY's :attr:`~rtl_gen.ddr3_phy_if.DDR3PHYParams.read_phase` /
``write_phase``, everything else in phase 0. Every constraint is converted from ``tCK`` to ``sync``
cycles for the pair of phases it links (:func:`sync_cycles`), so nothing is lost to rounding twice.
Turnarounds (read-to-write, write-to-read, tWR, tRTP) use the burst-length-8 figures: conservative
and simple, and the model in :mod:`rtl_gen.ddr3_model` checks the same figures.

Word address mapping is ``{row, bank, colword}`` (colword lowest, column = ``4 * colword``), so a
sequential stream that leaves a row continues in the next bank.

After the init sequence (RESET#, CKE, MR2, MR3, MR1, MR0, ZQCL) the controller calibrates the read
capture: it writes two pattern words (at ``calib_word``, :attr:`DDR3Controller.CALIB_WORDS` words that
the memory's users must leave alone: :class:`boards.common.SystemTop` puts them at the top of the
memory and tells the host a size without them), reads them back for every whole-cycle offset
(``rd_cycle``), bitslip and delay setting (all lanes set together; delay fastest, ``rd_cycle``
slowest), and picks per byte lane the centre of the longest window of passing delays over all
(cycle, bitslip) pairs (the first found of equally long ones). A window never spans two (cycle,
bitslip) pairs. The scan takes ``read_cycles * bitslips * delays`` settings of about
``settle_cycles + read_latency + 8`` cycles each (the ECP5 PHY at CL 6: 3 x 4 x 8 settings, about
2,900 cycles; 920 without the ``rd_cycle`` scan).
``init_done`` rises only after a successful calibration; ``calib_error`` says when a lane found no
window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .ddr3_phy_if import DDR3Command, DDR3PHYParams, DDR3PHYSignature

__all__ = ["DDR3Geometry", "DDR3Timing", "DDR3Cycles", "DDR3Controller", "MT41K256M16", "MT41K128M16", "MT41K64M16",
           "mode_registers", "write_recovery", "sync_cycles", "calib_patterns", "window_layout",
           "throughput_model", "MR_ORDER"]


@dataclass(frozen=True)
class DDR3Geometry:
    """Organisation of one DDR3 chip (or chips used as one, same command pins).

    Parameters
    ----------
    dq_bits : int
        Width of ``DQ``; a word of the front end is four beats: ``4 * dq_bits`` bits.
    bank_bits, row_bits, col_bits : int
        Address bits of bank (DDR3: 3), row and column.
    """
    dq_bits: int = 16
    bank_bits: int = 3
    row_bits: int = 15
    col_bits: int = 10

    def __post_init__(self) -> None:
        if self.dq_bits % 8 or not 8 <= self.dq_bits <= 64:
            raise ValueError(f"DDR3Geometry.dq_bits = {self.dq_bits!r}: a multiple of 8 from 8 to 64")
        if self.bank_bits != 3:
            raise ValueError(f"DDR3Geometry.bank_bits = {self.bank_bits!r}: DDR3 has 8 banks (3 bits)")
        if not 12 <= self.row_bits <= 16:
            raise ValueError(f"DDR3Geometry.row_bits = {self.row_bits!r}: DDR3 has 12..16 row bits")
        if self.col_bits != 10:
            raise ValueError(f"DDR3Geometry.col_bits = {self.col_bits!r}: the controller drives A[9:0] "
                             f"(x8/x16 DDR3 parts have 10 column bits)")

    @property
    def addr_pins(self) -> int:
        """Width of the ``A`` bus: the row address, at least A0..A12 (the mode registers use A12)."""
        return max(self.row_bits, 13)

    @property
    def colword_bits(self) -> int:
        """Bits of the burst index within a row (a word is 4 columns)."""
        return self.col_bits - 2

    @property
    def word_bits(self) -> int:
        """Bits of a word address."""
        return self.bank_bits + self.row_bits + self.colword_bits

    @property
    def data_bits(self) -> int:
        """Bits of one word (one burst-chop-4 burst)."""
        return 4 * self.dq_bits

    @property
    def words(self) -> int:
        return 1 << self.word_bits

    @property
    def size_bytes(self) -> int:
        return self.words * self.data_bits // 8

    @property
    def banks(self) -> int:
        return 1 << self.bank_bits

    @property
    def lanes(self) -> int:
        return self.dq_bits // 8

    def split(self, word_addr: int) -> tuple[int, int, int]:
        """``(bank, row, col)`` of a word address, ``col`` the DRAM column (``4 * colword``)."""
        colword = word_addr & ((1 << self.colword_bits) - 1)
        bank = (word_addr >> self.colword_bits) & ((1 << self.bank_bits) - 1)
        row = (word_addr >> (self.colword_bits + self.bank_bits)) & ((1 << self.row_bits) - 1)
        return bank, row, colword * 4


#: ECPIX-5: 4 Gb x16, 8 banks x 32768 rows x 1024 columns (512 MiB).
MT41K256M16 = DDR3Geometry(dq_bits=16, bank_bits=3, row_bits=15, col_bits=10)
#: Arty A7: 2 Gb x16 (MT41K128M16JT-125), 8 banks x 16384 rows x 1024 columns (256 MiB).
MT41K128M16 = DDR3Geometry(dq_bits=16, bank_bits=3, row_bits=14, col_bits=10)
#: OrangeCrab r0.2: 1 Gb x16, 8 banks x 8192 rows x 1024 columns (128 MiB).
MT41K64M16 = DDR3Geometry(dq_bits=16, bank_bits=3, row_bits=13, col_bits=10)


@dataclass(frozen=True)
class DDR3Timing:
    """Datasheet timing of a DDR3 part, in nanoseconds; ``*_ck`` fields in DRAM clocks (``tCK``).

    A rule given as ``max(n tCK, x ns)`` has both fields. The defaults are those of the MT41K*-107
    (DDR3-1866), used far below its rated clock. ``t_rfc`` depends on the density (260 ns for 4 Gb,
    110 ns for 1 Gb). ``t_reset``, ``t_cke``, ``t_zqinit_ck`` and ``t_dllk_ck`` are the init waits:
    tests shorten them (the model checks the same values).
    """
    t_rcd: float = 13.75     #: ACTIVATE to READ/WRITE
    t_rp: float = 13.75      #: PRECHARGE to ACTIVATE/REFRESH
    t_ras: float = 35.0      #: ACTIVATE to PRECHARGE (min)
    t_rc: float = 48.75      #: ACTIVATE to ACTIVATE, same bank
    t_rrd: float = 7.5       #: ACTIVATE to ACTIVATE, different banks ...
    t_rrd_ck: int = 4        #: ... at least this many tCK
    t_faw: float = 40.0      #: four ACTIVATEs in a window
    t_wr: float = 15.0       #: write recovery: end of write data to PRECHARGE
    t_wtr: float = 7.5       #: end of write data to READ ...
    t_wtr_ck: int = 4
    t_rtp: float = 7.5       #: READ to PRECHARGE ...
    t_rtp_ck: int = 4
    t_ccd_ck: int = 4        #: READ to READ, WRITE to WRITE
    t_mrd_ck: int = 4        #: MODE to MODE
    t_mod: float = 15.0      #: MODE to any other command ...
    t_mod_ck: int = 12
    t_rfc: float = 260.0     #: REFRESH to any command
    t_refi: float = 7800.0   #: average refresh interval
    t_xpr_extra: float = 10.0  #: tXPR = max(5 tCK, tRFC + this): CKE high to the first command
    t_xpr_ck: int = 5
    t_zqinit_ck: int = 512   #: ZQCL (init) to any command
    t_dllk_ck: int = 512     #: MR0 with DLL reset to READ/WRITE
    t_reset: float = 200_000.0   #: RESET# low at power-up
    t_cke: float = 500_000.0     #: RESET# high to CKE high

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"DDR3Timing.{f.name} = {value!r}: must be positive")

    def ck(self, clock_mhz: float) -> DDR3Cycles:
        """Every constraint in DRAM clocks (``tCK`` = half the ``sync`` period), rounded up.

        ``refi`` is rounded down (an interval, not a wait); ``reset`` and ``cke`` are the power-up
        waits in ``tCK`` as well.
        """
        if not clock_mhz > 0:
            raise ValueError(f"DDR3Timing.ck: clock_mhz = {clock_mhz!r}: must be positive")
        tck = 1000.0 / (2 * clock_mhz)

        def n(ns: float, at_least: int = 1) -> int:
            return max(at_least, math.ceil(ns / tck - 1e-9))

        return DDR3Cycles(
            rcd=n(self.t_rcd), rp=n(self.t_rp), ras=n(self.t_ras), rc=n(self.t_rc),
            rrd=n(self.t_rrd, self.t_rrd_ck), faw=n(self.t_faw), wr=n(self.t_wr),
            wtr=n(self.t_wtr, self.t_wtr_ck), rtp=n(self.t_rtp, self.t_rtp_ck), ccd=self.t_ccd_ck,
            mrd=self.t_mrd_ck, mod=n(self.t_mod, self.t_mod_ck), rfc=n(self.t_rfc),
            refi=int(self.t_refi / tck), xpr=n(self.t_rfc + self.t_xpr_extra, self.t_xpr_ck),
            zqinit=self.t_zqinit_ck, dllk=self.t_dllk_ck, reset=n(self.t_reset), cke=n(self.t_cke))

    def cycles(self, clock_mhz: float) -> DDR3Cycles:
        """Every constraint in ``sync`` cycles (two ``tCK``), rounded up; ``refi`` rounded down.

        Valid between two commands in the same phase; the controller converts each rule for the
        phases it links with :func:`sync_cycles`.
        """
        c = self.ck(clock_mhz)
        out = {f.name: -(-getattr(c, f.name) // 2) for f in fields(c)}
        out["refi"] = c.refi // 2
        return DDR3Cycles(**out)


@dataclass(frozen=True)
class DDR3Cycles:
    """:class:`DDR3Timing` as whole clock cycles (``tCK`` or ``sync``, see the method used)."""
    rcd: int
    rp: int
    ras: int
    rc: int
    rrd: int
    faw: int
    wr: int
    wtr: int
    rtp: int
    ccd: int
    mrd: int
    mod: int
    rfc: int
    refi: int
    xpr: int
    zqinit: int
    dllk: int
    reset: int
    cke: int


def sync_cycles(n_ck: int, from_phase: int, to_phase: int) -> int:
    """``sync`` cycles from a command in slot ``from_phase`` to one in ``to_phase`` that are at
    least ``n_ck`` DRAM clocks apart (at least 1: one command per ``sync`` cycle)."""
    return max(1, -(-(n_ck + from_phase - to_phase) // 2))


#: Mode registers in init order (JEDEC: MR2, MR3, MR1, MR0).
MR_ORDER = (2, 3, 1, 0)
#: Write recovery values MR0 can encode (A11:A9 = 1..7, 0 = 16).
_WR_CODES = {5: 1, 6: 2, 7: 3, 8: 4, 10: 5, 12: 6, 14: 7, 16: 0}


def write_recovery(timing: DDR3Timing, clock_mhz: float) -> int:
    """The smallest write recovery (``tCK``) MR0 can encode that covers ``tWR`` (at least 5)."""
    need = max(5, timing.ck(clock_mhz).wr)
    for wr in sorted(_WR_CODES):
        if wr >= need:
            return wr
    raise ValueError(f"DDR3: t_wr = {timing.t_wr} ns is {need} tCK at clock_mhz = {clock_mhz}: "
                     f"MR0 encodes at most 16")


def mode_registers(params: DDR3PHYParams, timing: DDR3Timing, clock_mhz: float) -> dict[int, int]:
    """``{register: value}`` for MR0..MR3 (the one place the mode bits are chosen).

    MR0: fixed burst chop 4, sequential, CL of ``params``, DLL reset, write recovery
    (:func:`write_recovery`). MR1: DLL on, RZQ/6 drive, RTT_NOM RZQ/4, AL 0. MR2: CWL of
    ``params``, no dynamic ODT. MR3: 0 (no MPR).
    """
    cl = params.cl
    cl_bits = ((cl - 4) << 4) if cl <= 11 else (((cl - 12) << 4) | (1 << 2))
    mr0 = 0b10 | cl_bits | (1 << 8) | (_WR_CODES[write_recovery(timing, clock_mhz)] << 9)
    mr1 = 1 << 2                  # RTT_NOM = RZQ/4 (A9,A6,A2 = 001); A1,A5 = 00: RZQ/6 drive
    mr2 = (params.cwl - 5) << 3   # CWL on A5:A3
    return {0: mr0, 1: mr1, 2: mr2, 3: 0}


def calib_patterns(dq_bits: int) -> tuple[int, int]:
    """The two calibration words: every byte of a word differs from the others (a wrong bitslip
    moves bytes between beats) and the two words differ everywhere (stale data fails)."""
    nbytes = dq_bits // 2   # 4 beats of dq_bits

    def word(k: int) -> int:
        # i * 0x3B is a permutation of bytes (odd multiplier): all bytes of a word differ.
        return sum((((i * 0x3B) + 0x17 + k * 0x80) ^ 0x5A) % 256 << (8 * i) for i in range(nbytes))

    return word(0), word(1)


def window_layout(params: DDR3PHYParams) -> data.StructLayout:
    """Calibration result of one lane: the whole-cycle offset (``rd_cycle``), the bitslip and the
    first/last passing delay (``cycle`` has no bits when ``read_cycles`` is 1)."""
    return data.StructLayout({"cycle": range(params.read_cycles), "bitslip": range(params.bitslips),
                              "first": range(params.delays), "last": range(params.delays)})


def throughput_model(geometry: DDR3Geometry, timing: DDR3Timing, clock_mhz: float,
                     params: DDR3PHYParams = DDR3PHYParams()) -> dict[str, float]:
    """``sync`` cycles per word the controller needs, from its scheduling rules.

    Returns a dict with ``seq_read``, ``seq_write`` (long sequential streams: one burst per tCCD,
    plus an ACTIVATE to the next bank at a row change and the refresh share), ``random_read`` /
    ``random_write`` (every access to another row of the same bank), ``refresh_share`` (fraction
    of cycles lost to refresh), ``seq_read_mb_s`` and ``random_read_mb_s``.
    """
    ck = timing.ck(clock_mhz)
    rp_, wp_ = params.read_phase, params.write_phase
    ccd_r = sync_cycles(ck.ccd, rp_, rp_)
    ccd_w = sync_cycles(ck.ccd, wp_, wp_)
    rcd = max(sync_cycles(ck.rcd, 0, rp_), sync_cycles(ck.rcd, 0, wp_))
    rtp = sync_cycles(ck.rtp, rp_, 0)
    wrec = sync_cycles(params.cwl + 4 + ck.wr, wp_, 0)
    rp = sync_cycles(ck.rp, 0, 0)
    ras = sync_cycles(ck.ras, 0, 0)
    rc = sync_cycles(ck.rc, 0, 0)
    rfc = sync_cycles(ck.rfc, 0, 0)
    refi = ck.refi // 2
    # A refresh after a read: wait tRTP, PRECHARGE all, tRP, REFRESH, tRFC, ACTIVATE, tRCD, READ;
    # the stream would have issued the READ ccd cycles after the last one anyway.
    lost = rtp + rp + rfc + rcd - ccd_r
    refresh_share = lost / refi
    row_len = 1 << geometry.colword_bits
    # Row change: the next bank is closed (init or refresh closed it): ACTIVATE right after the
    # last READ, the READ tRCD later.
    row_change = max(0, 1 + rcd - ccd_r)
    seq_read = (ccd_r + row_change / row_len) / (1 - refresh_share)
    seq_write = (ccd_w + max(0, 1 + rcd - ccd_w) / row_len) / (1 - refresh_share)
    random_read = max(rc, ras + rp, rcd + rtp + rp) / (1 - refresh_share)
    random_write = max(rc, ras + rp, rcd + wrec + rp) / (1 - refresh_share)
    bytes_per_word = geometry.data_bits // 8
    return {"seq_read": seq_read, "seq_write": seq_write, "random_read": random_read,
            "random_write": random_write, "refresh_share": refresh_share,
            "seq_read_mb_s": clock_mhz * bytes_per_word / seq_read,
            "random_read_mb_s": clock_mhz * bytes_per_word / random_read}


class DDR3Controller(wiring.Component):
    """DDR3 controller serving the engine's word interface (see the module docstring).

    Parameters
    ----------
    geometry : DDR3Geometry
    timing : DDR3Timing
    clock_mhz : float
        Frequency of the ``sync`` domain; the DRAM clock is twice it.
    phy_params : DDR3PHYParams
        Latencies, command phases and calibration settings of the PHY.
    read_fifo_depth : int
        Read data buffered for a stalled ``rd_data`` consumer; bounds reads in flight.
    calib_word : int
        First of the :attr:`CALIB_WORDS` word addresses the read calibration writes its patterns to
        (overwritten at every controller reset).

    Members
    -------
    rd_cmd : In(stream.Signature(32))
        Word address to read.
    rd_data : Out(stream.Signature(4 * dq_bits))
        Read data in request order.
    wr : In(stream.Signature(StructLayout({"addr": 32, "data": 4 * dq_bits})))
        Word write, complete at the handshake (a later read returns it).
    phy : Out(DDR3PHYSignature(...))
    init_done : Out(1)
        Init and read calibration finished; requests are accepted from then on.
    refresh_count : Out(32)
        Refreshes issued.
    calib_ok, calib_error : Out(1)
        Calibration finished with a window on every lane / with no window on some lane (then
        ``init_done`` stays low).
    calib_windows : Out(ArrayLayout(window_layout(phy_params), lanes))
        Per lane: chosen ``rd_cycle`` and bitslip and the first/last passing delay (the delay used
        is the centre).
    """

    #: Words the read calibration writes (two patterns).
    CALIB_WORDS = 2

    def __init__(self, geometry: DDR3Geometry = MT41K256M16, timing: DDR3Timing = DDR3Timing(),
                 clock_mhz: float = 50.0, phy_params: DDR3PHYParams = DDR3PHYParams(), *,
                 read_fifo_depth: int = 8, calib_word: int = 0):
        def bad(msg: str) -> ValueError:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            return ValueError(msg)

        if not 0 < clock_mhz <= 466.5:
            raise bad(f"DDR3Controller: clock_mhz = {clock_mhz!r}: from 0 to 466.5 MHz "
                      f"(DRAM clock at most 933 MHz, DDR3-1866)")
        if read_fifo_depth < 2:
            raise bad(f"DDR3Controller: read_fifo_depth = {read_fifo_depth!r}: at least 2")
        if not 0 <= calib_word <= geometry.words - self.CALIB_WORDS:
            raise bad(f"DDR3Controller: calib_word = {calib_word!r}: from 0 to "
                      f"{geometry.words - self.CALIB_WORDS} (the chip has {geometry.words} words)")
        self.calib_word = calib_word
        try:
            self.mode = mode_registers(phy_params, timing, clock_mhz)
        except ValueError as e:
            raise bad(str(e)) from None
        self.geometry, self.timing, self.clock_mhz, self.params = geometry, timing, clock_mhz, phy_params
        self.ck = timing.ck(clock_mhz)
        self.cycles = timing.cycles(clock_mhz)
        self.read_fifo_depth = read_fifo_depth
        self.patterns = calib_patterns(geometry.dq_bits)
        d = geometry.data_bits
        super().__init__({
            "rd_cmd": In(stream.Signature(32)),
            "rd_data": Out(stream.Signature(d)),
            "wr": In(stream.Signature(data.StructLayout({"addr": 32, "data": d}))),
            "phy": Out(DDR3PHYSignature(dq_bits=geometry.dq_bits, bank_bits=geometry.bank_bits,
                                        addr_pins=geometry.addr_pins, params=phy_params)),
            "init_done": Out(1),
            "refresh_count": Out(32),
            "calib_ok": Out(1),
            "calib_error": Out(1),
            "calib_windows": Out(data.ArrayLayout(window_layout(phy_params), geometry.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        g, p, ck, cy = self.geometry, self.params, self.ck, self.cycles
        nb = g.banks
        rph, wph = p.read_phase, p.write_phase
        S = sync_cycles
        phy = self.phy

        # Each rule in sync cycles for the phases it links (BL8 turnarounds, see module docstring).
        s_rcd = max(S(ck.rcd, 0, rph), S(ck.rcd, 0, wph))
        s_rp, s_ras, s_rc, s_rrd = S(ck.rp, 0, 0), S(ck.ras, 0, 0), S(ck.rc, 0, 0), S(ck.rrd, 0, 0)
        s_faw, s_rfc = S(ck.faw, 0, 0), S(ck.rfc, 0, 0)
        s_rtp = S(max(4, ck.rtp), rph, 0)
        s_wrp = S(p.cwl + 4 + ck.wr, wph, 0)                 # WRITE to PRECHARGE
        s_rr, s_ww = S(ck.ccd, rph, rph), S(ck.ccd, wph, wph)
        s_wtr = S(p.cwl + 4 + ck.wtr, wph, rph)              # WRITE to READ
        s_rtw = S(p.cl + ck.ccd + 2 - p.cwl, rph, wph)       # READ to WRITE
        s_mrd, s_mod = S(ck.mrd, 0, 0), S(ck.mod, 0, 0)
        s_xpr = S(ck.xpr, 0, 0)
        s_zq = S(max(ck.zqinit, ck.dllk), 0, 0)   # ZQCL to anything; covers tDLLK from MR0 too

        # -- command register: one command per cycle, in its slot ------------------------------
        cmd = Signal(DDR3Command)
        cmd_phase = Signal()
        ba = Signal(g.bank_bits)
        a = Signal(g.addr_pins)
        rd_en = Signal()
        reset_n = Signal(init=0)
        cke = Signal(init=0)
        m.d.sync += [cmd.eq(DDR3Command.NOP), rd_en.eq(0)]   # default each cycle, overridden below
        for i in range(2):
            slot = phy.phases[i]
            m.d.comb += [slot.cs.eq(1), slot.cmd.eq(Mux(cmd_phase == i, cmd, DDR3Command.NOP)),
                         slot.ba.eq(ba), slot.a.eq(a)]
        m.d.comb += [phy.reset_n.eq(reset_n), phy.cke.eq(cke), phy.rd_en.eq(rd_en)]

        def issue(kind: DDR3Command, bank=0, addr=0):
            phase = rph if kind == DDR3Command.READ else wph if kind == DDR3Command.WRITE else 0
            m.d.sync += [cmd.eq(kind), cmd_phase.eq(phase), ba.eq(bank), a.eq(addr)]
            if kind == DDR3Command.READ:
                m.d.sync += rd_en.eq(1)

        # -- timers: "cycles until allowed", loaded with max(current, new) ---------------------
        tmax = max(s_rcd, s_rp, s_ras, s_rc, s_rrd, s_faw, s_rfc, s_rtp, s_wrp, s_rr, s_ww, s_wtr,
                   s_rtw) + 1

        def timer(name):
            return Signal(range(tmax + 1), name=name)

        t_act = [timer(f"t_act{b}") for b in range(nb)]    # tRP after PRE, tRC after ACT, tRFC
        t_rw = [timer(f"t_rw{b}") for b in range(nb)]      # tRCD after ACT
        t_pre = [timer(f"t_pre{b}") for b in range(nb)]    # tRAS, tRTP, write recovery
        t_read, t_write = timer("t_read"), timer("t_write")  # tCCD and the bus turnarounds
        t_rrd = timer("t_rrd")
        t_faw = [timer(f"t_faw{i}") for i in range(4)]     # the last four ACTIVATEs
        for t in (*t_act, *t_rw, *t_pre, t_read, t_write, t_rrd, *t_faw):
            m.d.sync += t.eq(Mux(t != 0, t - 1, 0))

        def load(t, n):
            """The next command constrained by ``t`` may issue ``n`` cycles after this one."""
            m.d.sync += t.eq(Mux(t > n, t - 1, n - 1))

        # -- init waits --------------------------------------------------------------------------
        wait = Signal(range(max(cy.reset, cy.cke, s_xpr, s_mrd, s_mod, s_zq) + 1))
        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)

        def start_wait(n):
            m.d.sync += wait.eq(max(0, n - 1))

        # -- bank state ------------------------------------------------------------------------
        open_ = Signal(nb)
        open_row = Array(Signal(g.row_bits, name=f"open_row{b}") for b in range(nb))

        # -- refresh interval ------------------------------------------------------------------
        refi = Signal(range(cy.refi + 1), init=cy.refi)
        refresh_due = Signal()
        with m.If(refi == 0):
            m.d.sync += [refi.eq(cy.refi), refresh_due.eq(1)]
        with m.Else():
            m.d.sync += refi.eq(refi - 1)

        # -- write data: presented write_latency cycles after the WRITE on the pins -------------
        # The WRITE is decided one cycle before the pins show it: write_latency + 1 stages.
        wl = p.write_latency
        w_en = [Signal(name=f"w_en{i}") for i in range(wl + 1)]
        w_data = [Signal(g.data_bits, name=f"w_data{i}") for i in range(wl + 1)]
        issue_write = Signal()
        write_data = Signal(g.data_bits)
        m.d.sync += [w_en[0].eq(issue_write), w_data[0].eq(write_data)]
        for i in range(1, wl + 1):
            m.d.sync += [w_en[i].eq(w_en[i - 1]), w_data[i].eq(w_data[i - 1])]
        m.d.comb += [phy.wr_en.eq(w_en[wl]), phy.wr_data.eq(w_data[wl]), phy.wr_mask.eq(0)]
        # ODT on for the written burst (RTT_NOM), off otherwise (reads come back unterminated
        # by the DRAM's own ODT).
        odt = Signal(range(wl + 5))
        with m.If(issue_write):
            m.d.sync += odt.eq(wl + 4)
        with m.Elif(odt != 0):
            m.d.sync += odt.eq(odt - 1)
        m.d.comb += phy.odt.eq(odt != 0)

        # -- read data path: credit-counted FIFO ----------------------------------------------
        calibrating = Signal(init=1)
        rfifo = m.submodules.rfifo = fifo.SyncFIFOBuffered(width=g.data_bits, depth=self.read_fifo_depth)
        outstanding = Signal(range(self.read_fifo_depth + 1))
        issue_read = Signal()
        m.d.comb += [rfifo.w_en.eq(phy.rd_valid & ~calibrating), rfifo.w_data.eq(phy.rd_data),
                     self.rd_data.payload.eq(rfifo.r_data), self.rd_data.valid.eq(rfifo.r_rdy),
                     rfifo.r_en.eq(self.rd_data.ready)]
        rd_pop = self.rd_data.valid & self.rd_data.ready
        m.d.sync += outstanding.eq(outstanding + (issue_read & ~calibrating) - rd_pop)
        read_credit = calibrating | (outstanding < self.read_fifo_depth)

        # -- request source: calibration first, then the host -----------------------------------
        req_valid, req_write, req_accept = Signal(), Signal(), Signal()
        req_addr = Signal(32)
        cal_valid, cal_write = Signal(), Signal()
        cal_addr = Signal(1)
        with m.If(calibrating):
            m.d.comb += [req_valid.eq(cal_valid), req_write.eq(cal_write), req_addr.eq(self.calib_word + cal_addr),
                         write_data.eq(Mux(cal_addr, self.patterns[1], self.patterns[0]))]
        with m.Else():
            m.d.comb += [req_valid.eq(self.wr.valid | self.rd_cmd.valid), req_write.eq(self.wr.valid),
                         req_addr.eq(Mux(self.wr.valid, self.wr.payload.addr, self.rd_cmd.payload)),
                         write_data.eq(self.wr.payload.data),
                         self.wr.ready.eq(req_accept & req_write),
                         self.rd_cmd.ready.eq(req_accept & ~req_write)]
        cwb = g.colword_bits
        colword = req_addr[:cwb]
        bank = req_addr[cwb:cwb + g.bank_bits]
        row = req_addr[cwb + g.bank_bits:g.word_bits]
        bank_open = open_.bit_select(bank, 1)
        hit = bank_open & (open_row[bank] == row)
        col_a = Cat(Const(0, 2), colword)       # column = 4 * colword on A[9:0], A10 = 0 (no AP)

        all_pre_ok = Cat(*(t == 0 for t in t_pre)).all()
        all_act_ok = Cat(*(t == 0 for t in t_act)).all()
        sel = {k: Array(v) for k, v in (("act", t_act), ("rw", t_rw), ("pre", t_pre))}

        mr_step = Signal(range(4))
        run = Signal()

        with m.FSM(name="ctrl"):
            with m.State("PHY_WAIT"):
                with m.If(phy.phy_ready):
                    start_wait(cy.reset)
                    m.next = "RESET"
            with m.State("RESET"):
                # RESET# low for t_reset, then high; CKE low for t_cke more.
                with m.If(wait == 0):
                    m.d.sync += reset_n.eq(1)
                    start_wait(cy.cke)
                    m.next = "CKE"
            with m.State("CKE"):
                with m.If(wait == 0):
                    m.d.sync += cke.eq(1)
                    start_wait(s_xpr)
                    m.next = "MRS"
            with m.State("MRS"):
                with m.If(wait == 0):
                    m.d.sync += mr_step.eq(mr_step + 1)
                    for i, mr in enumerate(MR_ORDER):
                        with m.If(mr_step == i):
                            issue(DDR3Command.MODE, mr, self.mode[mr])
                    with m.If(mr_step == len(MR_ORDER) - 1):
                        start_wait(s_mod)
                        m.next = "ZQ"
                    with m.Else():
                        start_wait(s_mrd)
            with m.State("ZQ"):
                with m.If(wait == 0):
                    issue(DDR3Command.ZQ_CAL, 0, 1 << 10)   # ZQCL (A10 high)
                    start_wait(s_zq)
                    m.next = "ZQ_WAIT"
            with m.State("ZQ_WAIT"):
                with m.If(wait == 0):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += run.eq(1)
                with m.If(refresh_due):
                    # Close every bank, then one REFRESH.
                    with m.If(open_ != 0):
                        with m.If(all_pre_ok):
                            issue(DDR3Command.PRECHARGE, 0, 1 << 10)
                            m.d.sync += open_.eq(0)
                            for b in range(nb):
                                load(t_act[b], s_rp)
                    with m.Elif(all_act_ok):
                        issue(DDR3Command.REFRESH)
                        m.d.sync += [refresh_due.eq(0), self.refresh_count.eq(self.refresh_count + 1)]
                        for b in range(nb):
                            load(t_act[b], s_rfc)
                with m.Elif(req_valid):
                    with m.If(hit):
                        with m.If(req_write):
                            with m.If((sel["rw"][bank] == 0) & (t_write == 0)):
                                issue(DDR3Command.WRITE, bank, col_a)
                                m.d.comb += [req_accept.eq(1), issue_write.eq(1)]
                                load(t_write, s_ww)
                                load(t_read, s_wtr)
                                for b in range(nb):
                                    with m.If(bank == b):
                                        load(t_pre[b], s_wrp)
                        with m.Else():
                            with m.If((sel["rw"][bank] == 0) & (t_read == 0) & read_credit):
                                issue(DDR3Command.READ, bank, col_a)
                                m.d.comb += [req_accept.eq(1), issue_read.eq(1)]
                                load(t_read, s_rr)
                                load(t_write, s_rtw)
                                for b in range(nb):
                                    with m.If(bank == b):
                                        load(t_pre[b], s_rtp)
                    with m.Elif(bank_open):
                        with m.If(sel["pre"][bank] == 0):
                            issue(DDR3Command.PRECHARGE, bank, 0)
                            for b in range(nb):
                                with m.If(bank == b):
                                    m.d.sync += open_[b].eq(0)
                                    load(t_act[b], s_rp)
                    with m.Else():
                        with m.If((sel["act"][bank] == 0) & (t_rrd == 0) & (t_faw[3] == 0)):
                            issue(DDR3Command.ACTIVATE, bank, row)
                            load(t_rrd, s_rrd)
                            m.d.sync += t_faw[0].eq(s_faw - 1)
                            for i in range(1, 4):
                                m.d.sync += t_faw[i].eq(Mux(t_faw[i - 1] != 0, t_faw[i - 1] - 1, 0))
                            for b in range(nb):
                                with m.If(bank == b):
                                    m.d.sync += [open_[b].eq(1), open_row[b].eq(row)]
                                    load(t_act[b], s_rc)
                                    load(t_rw[b], s_rcd)
                                    load(t_pre[b], s_ras)

        self._calibration(m, run, calibrating, cal_valid, cal_write, cal_addr, req_accept)
        return m

    def _calibration(self, m: Module, run, calibrating, cal_valid, cal_write, cal_addr, req_accept):
        """Read capture calibration (module docstring): drives ``rd_cycle``/``rd_bitslip``/``rd_delay``."""
        g, p, phy = self.geometry, self.params, self.phy
        lanes = g.lanes
        cyc = Signal(range(p.read_cycles))    # setting under test, all lanes together
        bs = Signal(range(p.bitslips))
        dl = Signal(range(p.delays))
        settle = Signal(range(p.settle_cycles + 1))
        step = Signal(2)                      # requests issued for this setting
        rx = Signal(2)                        # read data returned for this setting
        lane_pass = Signal(lanes)
        run_start = [Signal(range(p.delays), name=f"run_start{i}") for i in range(lanes)]
        run_len = [Signal(range(p.delays + 1), name=f"run_len{i}") for i in range(lanes)]
        best_len = [Signal(range(p.delays + 1), name=f"best_len{i}") for i in range(lanes)]
        win = self.calib_windows
        done = Signal()
        m.d.comb += self.init_done.eq(done)

        # Data coming back: compare each lane's bytes of all four beats with the pattern.
        with m.If(phy.rd_valid & calibrating):
            m.d.sync += rx.eq(rx + 1)
            want = Mux(rx[0], self.patterns[1], self.patterns[0])
            for lane in range(lanes):
                ok = Cat(*(phy.rd_data.word_select(beat * lanes + lane, 8) ==
                           want.word_select(beat * lanes + lane, 8) for beat in range(4))).all()
                with m.If(~ok):
                    m.d.sync += lane_pass[lane].eq(0)

        with m.FSM(name="calib"):
            with m.State("IDLE"):
                with m.If(run):
                    m.next = "WRITE"
            with m.State("WRITE"):
                # Pattern 0 to word 0, pattern 1 to word 1.
                m.d.comb += [cal_valid.eq(1), cal_write.eq(1), cal_addr.eq(step[0])]
                with m.If(req_accept):
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == 1):
                        m.next = "SET"
            with m.State("SET"):
                for lane in range(lanes):
                    m.d.sync += [phy.rd_cycle[lane].eq(cyc), phy.rd_bitslip[lane].eq(bs),
                                 phy.rd_delay[lane].eq(dl)]
                m.d.sync += [settle.eq(p.settle_cycles), step.eq(0), rx.eq(0),
                             lane_pass.eq((1 << lanes) - 1)]
                m.next = "SETTLE"
            with m.State("SETTLE"):
                m.d.sync += settle.eq(settle - 1)
                with m.If(settle == 1):
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [cal_valid.eq(1), cal_addr.eq(step[0])]
                with m.If(req_accept):
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == 1):
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(rx == 2):
                    m.next = "EVAL"
            with m.State("EVAL"):
                last_delay = dl == p.delays - 1
                last_bitslip = bs == p.bitslips - 1
                for lane in range(lanes):
                    with m.If(lane_pass[lane]):
                        start = Mux(run_len[lane] == 0, dl, run_start[lane])
                        m.d.sync += [run_len[lane].eq(run_len[lane] + 1), run_start[lane].eq(start)]
                        with m.If(run_len[lane] + 1 > best_len[lane]):
                            m.d.sync += [best_len[lane].eq(run_len[lane] + 1), win[lane].cycle.eq(cyc),
                                         win[lane].bitslip.eq(bs), win[lane].first.eq(start),
                                         win[lane].last.eq(dl)]
                    with m.Else():
                        m.d.sync += run_len[lane].eq(0)
                    with m.If(last_delay):   # a window does not continue into the next bitslip/cycle
                        m.d.sync += run_len[lane].eq(0)
                m.d.sync += dl.eq(Mux(last_delay, 0, dl + 1))
                with m.If(last_delay):
                    m.d.sync += bs.eq(Mux(last_bitslip, 0, bs + 1))
                    with m.If(last_bitslip):
                        m.d.sync += cyc.eq(cyc + 1)
                with m.If(last_delay & last_bitslip & (cyc == p.read_cycles - 1)):
                    m.next = "PICK"
                with m.Else():
                    m.next = "SET"
            with m.State("PICK"):
                found = Cat(*(best_len[lane] != 0 for lane in range(lanes))).all()
                for lane in range(lanes):
                    m.d.sync += [phy.rd_cycle[lane].eq(win[lane].cycle),
                                 phy.rd_bitslip[lane].eq(win[lane].bitslip),
                                 phy.rd_delay[lane].eq((win[lane].first + win[lane].last) >> 1)]
                m.d.sync += settle.eq(p.settle_cycles)
                with m.If(found):
                    m.next = "APPLY"
                with m.Else():
                    m.next = "ERROR"
            with m.State("APPLY"):
                m.d.sync += settle.eq(settle - 1)
                with m.If(settle == 1):
                    m.d.sync += calibrating.eq(0)
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.calib_ok.eq(1), done.eq(1)]
            with m.State("ERROR"):
                # No window on some lane: the memory is unusable; say so and serve nothing.
                m.d.comb += self.calib_error.eq(1)
