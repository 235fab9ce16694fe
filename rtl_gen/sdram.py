"""SDR SDRAM controller with the engine's word interface (ULX3S: 16-bit IS42S16160-class parts).

The controller serves the same three streams as the engine's memory ports (``rd_cmd`` word
addresses, ``rd_data`` in request order, ``wr`` address+data complete at the handshake), one request
at a time in arrival order, with an open-row policy per bank and burst length 1. Reads to an open
row issue one ``READ`` per cycle (the read data pipeline is credit-counted into a FIFO), so a
sequential stream reaches one word per cycle apart from row changes and refresh;
:func:`throughput_model` gives the cycles per word the bench uses.

Word address mapping is ``{row, bank, column}`` (column lowest), so a sequential stream that leaves
a row continues in the next bank.

Timing is given in nanoseconds (:class:`SDRAMTiming`) and converted to cycles of the controller
clock with :meth:`SDRAMTiming.cycles`; the cycle-level model in :mod:`rtl_gen.sdram_model` checks
every constraint against the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SDRAMGeometry", "SDRAMTiming", "SDRAMCycles", "SDRAMCommand", "SDRAMSignature",
           "SDRAMController", "throughput_model", "IS42S16160"]


@dataclass(frozen=True)
class SDRAMGeometry:
    """Organisation of one SDR SDRAM chip (or a set of chips used as one, same pins).

    Parameters
    ----------
    data_bits : int
        Width of ``DQ`` (one word of the word interface).
    bank_bits, row_bits, col_bits : int
        Address bits of bank, row and column.
    """
    data_bits: int = 16
    bank_bits: int = 2
    row_bits: int = 13
    col_bits: int = 9

    def __post_init__(self) -> None:
        if self.data_bits % 8 or self.data_bits <= 0:
            raise ValueError(f"SDRAMGeometry.data_bits = {self.data_bits!r}: must be a multiple of 8")
        if not 9 <= self.col_bits <= 12 or not 11 <= self.row_bits <= 14 or not 1 <= self.bank_bits <= 2:
            raise ValueError(f"SDRAMGeometry {self}: column 9..12, row 11..14 and bank 1..2 bits "
                             f"are the SDR SDRAM range")

    @property
    def addr_pins(self) -> int:
        """Width of the ``A`` bus (the row address; A10 is the auto-precharge/all-banks bit)."""
        return max(self.row_bits, 11)

    @property
    def word_bits(self) -> int:
        """Bits of a word address."""
        return self.bank_bits + self.row_bits + self.col_bits

    @property
    def words(self) -> int:
        return 1 << self.word_bits

    @property
    def size_bytes(self) -> int:
        return self.words * self.data_bits // 8

    @property
    def banks(self) -> int:
        return 1 << self.bank_bits

    def split(self, word_addr: int) -> tuple[int, int, int]:
        """``(bank, row, col)`` of a word address (Python side of the mapping)."""
        col = word_addr & ((1 << self.col_bits) - 1)
        bank = (word_addr >> self.col_bits) & ((1 << self.bank_bits) - 1)
        row = (word_addr >> (self.col_bits + self.bank_bits)) & ((1 << self.row_bits) - 1)
        return bank, row, col


@dataclass(frozen=True)
class SDRAMTiming:
    """Datasheet timing of an SDR SDRAM, in nanoseconds unless named ``_ck`` (clock cycles).

    The defaults are those of the IS42S16160G-7 (ULX3S), with CAS latency 2 (legal up to 100 MHz at
    -7 speed; use 3 above).
    """
    cas_latency: int = 2
    t_rcd: float = 15.0      #: ACTIVE to READ/WRITE
    t_rp: float = 15.0       #: PRECHARGE to ACTIVE/REFRESH
    t_ras: float = 42.0      #: ACTIVE to PRECHARGE (min)
    t_rc: float = 60.0       #: ACTIVE to ACTIVE, same bank; also REFRESH to REFRESH/ACTIVE (t_rfc)
    t_rrd: float = 14.0      #: ACTIVE to ACTIVE, different banks
    t_wr: float = 14.0       #: last write data to PRECHARGE
    t_rfc: float = 60.0      #: REFRESH period
    t_refi: float = 7812.5   #: average refresh interval (64 ms / 8192 rows)
    t_mrd_ck: int = 2        #: MODE REGISTER SET to any command
    t_init: float = 200_000.0  #: power-up wait with NOPs before the init sequence
    init_refreshes: int = 8  #: AUTO REFRESH commands in the init sequence (datasheets: 2 or 8)

    def __post_init__(self) -> None:
        if self.cas_latency not in (2, 3):
            raise ValueError(f"SDRAMTiming.cas_latency = {self.cas_latency!r}: must be 2 or 3")

    def cycles(self, clock_mhz: float) -> "SDRAMCycles":
        """Every constraint as a whole number of cycles at ``clock_mhz`` (rounded up, at least 1)."""
        period = 1000.0 / clock_mhz

        def ck(ns: float) -> int:
            return max(1, math.ceil(ns / period - 1e-9))

        return SDRAMCycles(cl=self.cas_latency, rcd=ck(self.t_rcd), rp=ck(self.t_rp), ras=ck(self.t_ras),
                           rc=ck(self.t_rc), rrd=ck(self.t_rrd), wr=max(2, ck(self.t_wr)),
                           rfc=ck(self.t_rfc), refi=int(self.t_refi / period), mrd=self.t_mrd_ck,
                           init=ck(self.t_init), init_refreshes=self.init_refreshes)


@dataclass(frozen=True)
class SDRAMCycles:
    """:class:`SDRAMTiming` in clock cycles (see there for the meaning of each)."""
    cl: int
    rcd: int
    rp: int
    ras: int
    rc: int
    rrd: int
    wr: int
    rfc: int
    refi: int
    mrd: int
    init: int
    init_refreshes: int


#: The ULX3S part (32 MiB, 4 banks x 8192 rows x 512 columns x 16 bits).
IS42S16160 = SDRAMGeometry(data_bits=16, bank_bits=2, row_bits=13, col_bits=9)


class SDRAMCommand(enum.Enum, shape=3):
    """SDRAM commands as ``{ras, cas, we}`` asserted (active high here; the pins are active low)."""
    NOP = 0b000
    BURST_TERM = 0b001
    READ = 0b010
    WRITE = 0b011
    ACTIVE = 0b100
    PRECHARGE = 0b101
    REFRESH = 0b110
    MODE = 0b111


class SDRAMSignature(wiring.Signature):
    """The controller side of the SDRAM pins (active-high controls; ``dq`` split in o/oe/i).

    Members
    -------
    cke, cs : Out(1)
    cmd : Out(SDRAMCommand)   ``{ras, cas, we}`` asserted
    ba : Out(bank_bits)
    a : Out(addr_pins)
    dq_o, dq_oe : Out(data_bits), Out(1)
    dqm : Out(data_bits // 8)   byte masks (1 = masked)
    dq_i : In(data_bits)
    """

    def __init__(self, geometry: SDRAMGeometry):
        self.geometry = geometry
        super().__init__({
            "cke": Out(1), "cs": Out(1), "cmd": Out(SDRAMCommand),
            "ba": Out(geometry.bank_bits), "a": Out(geometry.addr_pins),
            "dq_o": Out(geometry.data_bits), "dq_oe": Out(1), "dqm": Out(geometry.data_bits // 8),
            "dq_i": In(geometry.data_bits),
        })


def mode_register(cas_latency: int) -> int:
    """Mode register value: burst length 1, sequential, CAS latency, single-location writes."""
    return (cas_latency << 4) | (1 << 9)


def throughput_model(geometry: SDRAMGeometry, timing: SDRAMTiming, clock_mhz: float) -> dict[str, float]:
    """Cycles per word the controller needs, from its scheduling rules.

    Returns a dict with ``seq_read``, ``seq_write`` (long sequential streams: one word per cycle,
    plus a row change every ``2**col_bits`` words and the refresh share), ``random_read`` and
    ``random_write`` (every access to a new row of the same bank: precharge, activate, access,
    bounded below by tRC), ``refresh_share`` (fraction of cycles lost to refresh) and
    ``seq_read_mb_s`` (sequential read bandwidth in MB/s).
    """
    c = timing.cycles(clock_mhz)
    # A refresh closes all rows (precharge-all, tRP) and blocks for tRFC, every tREFI.
    refresh_share = (c.rp + c.rfc + 1) / c.refi
    row_len = 1 << geometry.col_bits
    # Row change in a sequential stream goes to the next bank (closed after init or a refresh):
    # ACTIVE, wait tRCD, then access; the old row stays open.
    row_change = c.rcd + (c.rrd if c.rrd > c.rcd else 0)
    seq_read = (row_len + row_change) / row_len / (1 - refresh_share)
    seq_write = seq_read
    # Random: the addressed bank holds another row: PRECHARGE (after tRAS since ACT / tWR after a
    # write), ACTIVE after tRP, access after tRCD. ACT-to-ACT of one bank is at least tRC.
    random_read = max(c.rc, c.rp + c.rcd + 1, c.ras + c.rp) / (1 - refresh_share)
    random_write = max(c.rc, c.rp + c.rcd + c.wr + 1, c.ras + c.rp) / (1 - refresh_share)
    bytes_per_word = geometry.data_bits // 8
    return {"seq_read": seq_read, "seq_write": seq_write, "random_read": random_read,
            "random_write": random_write, "refresh_share": refresh_share,
            "seq_read_mb_s": clock_mhz * bytes_per_word / seq_read,
            "random_read_mb_s": clock_mhz * bytes_per_word / random_read}


class SDRAMController(wiring.Component):
    """SDR SDRAM controller serving the engine's word interface.

    Parameters
    ----------
    geometry : SDRAMGeometry
    timing : SDRAMTiming
    clock_mhz : float
        Frequency of the ``sync`` domain (timing is rounded up to it).
    read_delay : int or None
        Cycles from the cycle the controller decides a ``READ`` to the cycle ``sdram.dq_i`` holds
        its data. ``None``: ``cas_latency + 1`` (command registered in the controller, the SDRAM
        clocked by the same edge, ``dq_i`` taken straight from the pins: the cycle model's wiring).
        Boards add their I/O register stages.
    read_fifo_depth : int
        Read data buffered for a stalled ``rd_data`` consumer; bounds reads in flight.

    Members
    -------
    rd_cmd : In(stream.Signature(32))
        Word address to read.
    rd_data : Out(stream.Signature(data_bits))
        Read data in request order.
    wr : In(stream.Signature(StructLayout({"addr": 32, "data": data_bits})))
        Word write, complete at the handshake (a later read returns it).
    sdram : Out(SDRAMSignature(geometry))
        The chip's pins.
    init_done : Out(1)
        The init sequence finished; requests are accepted from then on.
    refresh_count : Out(32)
        Refreshes issued (observability for tests and the bench).
    """

    def __init__(self, geometry: SDRAMGeometry = IS42S16160, timing: SDRAMTiming = SDRAMTiming(),
                 clock_mhz: float = 50.0, *, read_delay: int | None = None, read_fifo_depth: int = 8):
        self.geometry = geometry
        self.timing = timing
        self.clock_mhz = clock_mhz
        self.cycles = timing.cycles(clock_mhz)
        if clock_mhz > 143:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            raise ValueError(f"SDRAMController: clock_mhz = {clock_mhz}: SDR SDRAM runs at most 143 MHz")
        if timing.cas_latency == 2 and clock_mhz > 100:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            raise ValueError(f"SDRAMController: CAS latency 2 is specified up to 100 MHz, "
                             f"clock_mhz = {clock_mhz}; use SDRAMTiming(cas_latency=3)")
        self.read_delay = timing.cas_latency + 1 if read_delay is None else read_delay
        if self.read_delay < timing.cas_latency + 1:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            raise ValueError(f"SDRAMController: read_delay = {read_delay} is below cas_latency + 1")
        if read_fifo_depth < 2:
            self._MustUse__silence = True  # not built: no 'created but never used' warning
            raise ValueError(f"SDRAMController: read_fifo_depth = {read_fifo_depth}: at least 2")
        self.read_fifo_depth = read_fifo_depth
        d = geometry.data_bits
        super().__init__({
            "rd_cmd": In(stream.Signature(32)),
            "rd_data": Out(stream.Signature(d)),
            "wr": In(stream.Signature(data.StructLayout({"addr": 32, "data": d}))),
            "sdram": Out(SDRAMSignature(geometry)),
            "init_done": Out(1),
            "refresh_count": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        g, c = self.geometry, self.cycles
        nb = g.banks

        # -- command register: everything the pins see is registered ---------------------------
        cmd = Signal(SDRAMCommand)
        ba = Signal(g.bank_bits)
        a = Signal(g.addr_pins)
        dq_o = Signal(g.data_bits)
        dq_oe = Signal()
        m.d.sync += [cmd.eq(SDRAMCommand.NOP), dq_oe.eq(0)]  # default each cycle, overridden below
        m.d.comb += [
            self.sdram.cke.eq(1), self.sdram.cs.eq(1), self.sdram.cmd.eq(cmd),
            self.sdram.ba.eq(ba), self.sdram.a.eq(a), self.sdram.dq_o.eq(dq_o),
            self.sdram.dq_oe.eq(dq_oe), self.sdram.dqm.eq(0),
        ]

        # -- timers: "cycles until allowed", loaded with max(current, new) ---------------------
        def timer(name, limit):
            return Signal(range(limit + 1), name=name)

        tmax = max(c.rc, c.ras, c.rp, c.rcd, c.wr, c.rfc, c.mrd, c.rrd, c.cl + 2) + 1
        t_act = [timer(f"t_act{b}", tmax) for b in range(nb)]    # tRP after PRE, tRC after ACT
        t_rw = [timer(f"t_rw{b}", tmax) for b in range(nb)]      # tRCD after ACT
        t_pre = [timer(f"t_pre{b}", tmax) for b in range(nb)]    # tRAS after ACT, tWR after WRITE
        t_any = timer("t_any", tmax)                             # tRFC after REF, tMRD after MRS
        t_rrd = timer("t_rrd", tmax)                             # ACT to ACT, any banks
        t_wbus = timer("t_wbus", tmax)                           # READ data off the bus before WRITE
        # Each timer counts down to 0; a load later in this function (inside the FSM) overrides
        # the countdown when it asks for longer (Amaranth: the last assignment wins).
        for t in (*t_act, *t_rw, *t_pre, t_any, t_rrd, t_wbus):
            m.d.sync += t.eq(Mux(t != 0, t - 1, 0))

        def load(t, n):
            """The next command constrained by ``t`` may issue ``n`` cycles after this one."""
            m.d.sync += t.eq(Mux(t > n, t - 1, n - 1))

        # -- bank state ------------------------------------------------------------------------
        open_ = Signal(nb)
        open_row = [Signal(g.row_bits, name=f"open_row{b}") for b in range(nb)]

        # -- refresh interval ------------------------------------------------------------------
        refi = Signal(range(c.refi + 1), init=c.refi)
        refresh_due = Signal()
        with m.If(refi == 0):
            m.d.sync += [refi.eq(c.refi), refresh_due.eq(1)]
        with m.Else():
            m.d.sync += refi.eq(refi - 1)

        # -- read data path: credit-counted FIFO ----------------------------------------------
        rfifo = m.submodules.rfifo = fifo.SyncFIFOBuffered(width=g.data_bits, depth=self.read_fifo_depth)
        outstanding = Signal(range(self.read_fifo_depth + 1))
        rd_pipe = Signal(self.read_delay)
        issue_read = Signal()
        m.d.sync += rd_pipe.eq(Mux(issue_read, 1, 0) | (rd_pipe << 1))
        m.d.comb += [rfifo.w_en.eq(rd_pipe[-1]), rfifo.w_data.eq(self.sdram.dq_i),
                     self.rd_data.payload.eq(rfifo.r_data), self.rd_data.valid.eq(rfifo.r_rdy),
                     rfifo.r_en.eq(self.rd_data.ready)]
        rd_pop = self.rd_data.valid & self.rd_data.ready
        m.d.sync += outstanding.eq(outstanding + issue_read - rd_pop)
        read_credit = outstanding < self.read_fifo_depth

        # -- request decode --------------------------------------------------------------------
        is_write = Signal()   # the head request is the write (writes first when both wait)
        m.d.comb += is_write.eq(self.wr.valid)
        req_valid = self.wr.valid | self.rd_cmd.valid
        addr = Mux(is_write, self.wr.payload.addr, self.rd_cmd.payload)
        col = addr[:g.col_bits]
        bank = addr[g.col_bits:g.col_bits + g.bank_bits]
        row = addr[g.col_bits + g.bank_bits:g.word_bits]

        def bank_sel(values):
            return Mux(bank == 0, values[0], values[1]) if nb == 2 else \
                Mux(bank[1], Mux(bank[0], values[3], values[2]), Mux(bank[0], values[1], values[0]))

        hit = open_.bit_select(bank, 1) & (bank_sel(open_row) == row)
        bank_open = open_.bit_select(bank, 1)

        all_pre_ok = Signal()
        all_act_ok = Signal()
        m.d.comb += [all_pre_ok.eq(Cat(*(t == 0 for t in t_pre)).all()),
                     all_act_ok.eq(Cat(*(t == 0 for t in t_act)).all())]

        def a10_col(col_value):
            # Column address on A with A10 = 0 (no auto-precharge).
            return col_value.as_unsigned() if g.col_bits < 10 else \
                (col_value[:10] | (col_value[10:] << 11))

        init_step = Signal(range(c.init_refreshes + 3))
        init_wait = Signal(range(c.init + 1), init=c.init)

        with m.FSM(name="ctrl"):
            with m.State("POWERUP"):
                # NOPs with CKE high for the power-up time, then PRECHARGE ALL.
                with m.If(init_wait != 0):
                    m.d.sync += init_wait.eq(init_wait - 1)
                with m.Else():
                    m.d.sync += [cmd.eq(SDRAMCommand.PRECHARGE), a.eq(1 << 10)]
                    for b in range(nb):
                        load(t_act[b], c.rp)
                    m.next = "INIT_REFRESH"
            with m.State("INIT_REFRESH"):
                with m.If(all_act_ok & (t_any == 0)):
                    with m.If(init_step == c.init_refreshes):
                        m.d.sync += [cmd.eq(SDRAMCommand.MODE), ba.eq(0),
                                     a.eq(mode_register(self.timing.cas_latency))]
                        load(t_any, c.mrd)
                        m.next = "RUN"
                    with m.Else():
                        m.d.sync += [cmd.eq(SDRAMCommand.REFRESH), init_step.eq(init_step + 1)]
                        load(t_any, c.rfc)
                        for b in range(nb):
                            load(t_act[b], c.rfc)
            with m.State("RUN"):
                m.d.comb += self.init_done.eq(1)
                with m.If(t_any != 0):
                    pass
                with m.Elif(refresh_due):
                    # Close every bank, then one AUTO REFRESH.
                    with m.If(open_ != 0):
                        with m.If(all_pre_ok):
                            m.d.sync += [cmd.eq(SDRAMCommand.PRECHARGE), a.eq(1 << 10), open_.eq(0)]
                            for b in range(nb):
                                load(t_act[b], c.rp)
                    with m.Elif(all_act_ok):
                        m.d.sync += [cmd.eq(SDRAMCommand.REFRESH), refresh_due.eq(0),
                                     self.refresh_count.eq(self.refresh_count + 1)]
                        load(t_any, c.rfc)
                        for b in range(nb):
                            load(t_act[b], c.rfc)
                with m.Elif(req_valid):
                    with m.If(hit):
                        with m.If(is_write):
                            with m.If((bank_sel(t_rw) == 0) & (t_wbus == 0)):
                                m.d.sync += [cmd.eq(SDRAMCommand.WRITE), ba.eq(bank), a.eq(a10_col(col)),
                                             dq_o.eq(self.wr.payload.data), dq_oe.eq(1)]
                                m.d.comb += self.wr.ready.eq(1)
                                for b in range(nb):
                                    with m.If(bank == b):
                                        load(t_pre[b], c.wr)
                        with m.Else():
                            with m.If((bank_sel(t_rw) == 0) & read_credit):
                                m.d.sync += [cmd.eq(SDRAMCommand.READ), ba.eq(bank), a.eq(a10_col(col))]
                                m.d.comb += [self.rd_cmd.ready.eq(1), issue_read.eq(1)]
                                # The read's data occupies DQ CL cycles later: a WRITE (which drives
                                # DQ with its command) waits until one idle cycle after it.
                                load(t_wbus, c.cl + 2)
                    with m.Elif(bank_open):
                        with m.If(bank_sel(t_pre) == 0):
                            m.d.sync += [cmd.eq(SDRAMCommand.PRECHARGE), ba.eq(bank), a.eq(0)]
                            for b in range(nb):
                                with m.If(bank == b):
                                    m.d.sync += open_[b].eq(0)
                                    load(t_act[b], c.rp)
                    with m.Else():
                        with m.If((bank_sel(t_act) == 0) & (t_rrd == 0)):
                            m.d.sync += [cmd.eq(SDRAMCommand.ACTIVE), ba.eq(bank), a.eq(row)]
                            load(t_rrd, c.rrd)
                            for b in range(nb):
                                with m.If(bank == b):
                                    m.d.sync += [open_[b].eq(1), open_row[b].eq(row)]
                                    load(t_act[b], c.rc)
                                    load(t_rw[b], c.rcd)
                                    load(t_pre[b], c.ras)

        return m
