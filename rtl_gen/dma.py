"""The engine's DMA: the LOAD and STORE units and the read-port arbiter shared by fetch and LOAD.

:class:`ReadArbiter` merges two requesters onto the external ``rd_cmd`` stream and routes ``rd_data``
back to whichever asked, in request order (a FIFO of 1-bit tags, ``AccelConfig.max_reads`` deep,
bounds the reads in flight: 16 by default, 2 where the memory never has more). Fetch has priority: its requests are bounded by its small queue, while a LOAD may
stream thousands of words and would otherwise starve the prefetch of the instructions that could run
beside it. A granted request keeps the grant until its handshake, so ``rd_cmd`` is stable while valid.

:class:`LoadUnit` executes ``LOAD``: it walks the ``rows x row_len`` entries row by row, issuing one
word-address read per cycle (many in flight), and writes each returning bus word straight into its
slice of the target entry through a write port with bus-word granularity (so no entry-wide assembly
register). It always accepts read data, so the shared read port never blocks on it. It keeps at
most ``max_reads`` reads in flight itself (in the engine the arbiter's tag FIFO is full by then too).

Addresses: the LOAD and STORE address arithmetic (row base, stride, word in row) and the word
addresses they emit have :func:`word_addr_bits` bits, from ``AccelConfig.ext_addr_bits``. That is
exact: the controller rejects an access reaching past ``mem_bytes``, and the engine clamps
``mem_bytes`` to ``2**ext_addr_bits`` (:func:`sqzhw.isa.mem_limit`), so every legal row lies below
it. (The address of the row after the last may wrap; it is never used.)

:class:`StoreUnit` executes ``STORE``: it reads source entries (OUT or ACC, synchronous memories),
for ``ACC_REQUANT`` pushes lanes ``lane_block*L .. +L`` with their parameter lanes through a
:class:`~rtl_gen.requant.Requantizer`, queues the results, and emits one bus word per cycle with its
address. The parameters are not copied into registers: the PARAM read port (``param_rs``) addresses
the instruction's entry (or, with a compact PARAM buffer, the row of the lane group the
requantizer takes next, :func:`rtl_gen.buffers.compact_param`) while the lanes pass. The output
queue holds activation-entry-sized chunks (``rows`` bytes): an ``ACC`` entry is read ``4*K`` times
(``K = cols/rows``), one chunk each, as fast as the bus takes the words. The requantizer has ``AccelConfig.store_lanes`` lanes (``requant_lanes``; ``rows`` by
default); with ``R < L`` lanes an entry goes through it in ``P = L / R`` consecutive cycles (lanes
``0..R-1`` first) and reads are issued ``P`` cycles apart, so it costs ``4*R`` multipliers instead of
``4*L``. Each queue entry carries a tag (a second block RAM of the :class:`RamQueue`, written as the
entry is read) marking the last entry of a row, so the write side keeps no row count: its address
steps by one word, and to the next row's base after a tagged entry's last word. It is done when
every entry read has been written (the queue credits).

STORE cycles (no ``wr`` back-pressure): ``n = rows*row_len`` entries take ``n*words`` write cycles
(``words`` = bus words per stored entry) for OUT and ACC, and ``n*max(P, words)`` for ACC_REQUANT,
plus a fixed start-up (parameter read, memory read, requantizer latency). Reads are issued against
credits of the output queue, so nothing is ever dropped and a stalled ``wr`` stream only stops the
reads.

Both units follow the controller's contract (``rtl_gen.control``): ``cmd`` is accepted only when
idle, ``busy`` is high from the cycle after the handshake until the last buffer write (LOAD) or the
last ``wr`` handshake (STORE).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sqzhw import isa
from sqzhw.config import PARAM_LANE_BYTES, AccelConfig

from .buffers import NO_INIT_ATTR, PARAM_USED_BITS, buffer_specs, compact_param, param_lane_bits
from .requant import Requantizer

__all__ = ["MAX_READS", "RamQueue", "ReadArbiter", "LoadUnit", "StoreUnit", "word_addr_bits",
           "write_layout"]

#: Reads in flight on the shared external read port at most, by default (``AccelConfig.max_reads``).
MAX_READS = 16


def write_layout(config: AccelConfig) -> data.StructLayout:
    """Payload of the engine's ``wr`` stream: word address and data."""
    return data.StructLayout({"addr": 32, "data": config.ext_data_bits})


def _shift(config: AccelConfig) -> int:
    """log2 of the bus word in bytes: byte address -> word address."""
    return (config.ext_bytes - 1).bit_length()


def _last_word(row_len, words: int):
    """``row_len * words - 1`` (``row_len >= 1``, a legal instruction's): the last word of a row,
    registered at the handshake so the per-cycle compare has no decrement. A power-of-two
    ``words`` is a concatenation, no adder."""
    if words & (words - 1) == 0:
        return Cat(Const(words - 1, (words - 1).bit_length()), row_len - 1)
    return (row_len - 1) * words + (words - 1)


def word_addr_bits(config: AccelConfig) -> int:
    """Bits of an external word address the engine drives (the rest of its 32-bit memory
    command addresses are 0): ``ext_addr_bits`` less the bus word's byte bits."""
    return config.ext_addr_bits - _shift(config)


class RamQueue(wiring.Component):
    """First-word-fall-through queue in a block RAM, with the timing of :class:`fifo.SyncFIFO`.

    An entry written in cycle ``t`` is at ``r_data`` with ``r_rdy`` in cycle ``t + 1``, as in
    ``SyncFIFO`` (whose memory is flip-flops: an iCE40 logic cell per bit). The RAM's read port is
    synchronous and addressed with the head the queue will have after this cycle's pop; an entry
    written to that very address in the same cycle (the queue was empty after the pop) is taken
    from a bypass register instead, so the RAM need not be read-transparent.

    With ``tag_width > 0`` each entry also has a tag, written ahead of it into a second block RAM:
    the ``n``-th ``t_en`` writes the tag of the ``n``-th entry written, at least one cycle before
    that entry's ``w_en``; the user keeps at most ``depth`` tags ahead of the reads. ``r_tag`` is the
    head's tag while ``r_rdy``.

    Members
    -------
    w_data, w_en, w_rdy, r_data, r_en, r_rdy :
        As :class:`amaranth.lib.fifo.SyncFIFO`.
    t_data, t_en, r_tag :
        Tags (only with ``tag_width > 0``).
    """

    def __init__(self, *, width: int, depth: int, tag_width: int = 0):
        self.width, self.depth, self.tag_width = width, depth, tag_width
        members = {
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
        }
        if tag_width:
            members.update({"t_data": In(tag_width), "t_en": In(1), "r_tag": Out(tag_width)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        D = self.depth
        # As rtl_gen.buffers: an asynchronous port and a register without reset, which yosys merges
        # into a block RAM read port without old-data emulation (no_rw_check; the bypass below
        # covers the one read that meets a write).
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=D, init=[],
                                               attrs={"ram_style": "block", "no_rw_check": 1})
        wp, rp = mem.write_port(), mem.read_port(domain="comb")
        rd_data = Signal(self.width, reset_less=True, attrs={NO_INIT_ATTR: 1})
        level = Signal(range(D + 1))
        w_ptr = Signal(range(D))
        r_ptr = Signal(range(D))
        bypass = Signal()
        bypass_data = Signal(self.width, reset_less=True)

        def succ(ptr):
            return Mux(ptr == D - 1, 0, ptr + 1)

        do_w = self.w_en & self.w_rdy
        do_r = self.r_en & self.r_rdy
        r_next = Mux(do_r, succ(r_ptr), r_ptr)
        m.d.comb += [
            self.w_rdy.eq(level != D), self.r_rdy.eq(level != 0),
            wp.addr.eq(w_ptr), wp.data.eq(self.w_data), wp.en.eq(do_w),
            rp.addr.eq(r_next),
            self.r_data.eq(Mux(bypass, bypass_data, rd_data)),
        ]
        m.d.sync += [
            rd_data.eq(rp.data),
            level.eq(level + do_w - do_r),
            bypass.eq(do_w & (w_ptr == r_next)),
            bypass_data.eq(self.w_data),
        ]
        with m.If(do_w):
            m.d.sync += w_ptr.eq(succ(w_ptr))
        with m.If(do_r):
            m.d.sync += r_ptr.eq(r_next)
        if self.tag_width:
            # Read at the same head address as the data; a tag is never read in the cycle it is
            # written for its entry (the entry comes a cycle later), so no bypass is needed.
            m.submodules.tags = tags = memory.Memory(shape=self.tag_width, depth=D, init=[],
                                                     attrs={"ram_style": "block", "no_rw_check": 1})
            twp, trp = tags.write_port(), tags.read_port(domain="comb")
            t_ptr = Signal(range(D))
            rd_tag = Signal(self.tag_width, reset_less=True, attrs={NO_INIT_ATTR: 1})
            m.d.comb += [twp.addr.eq(t_ptr), twp.data.eq(self.t_data), twp.en.eq(self.t_en),
                         trp.addr.eq(r_next), self.r_tag.eq(rd_tag)]
            m.d.sync += rd_tag.eq(trp.data)
            with m.If(self.t_en):
                m.d.sync += t_ptr.eq(succ(t_ptr))
        return m


class ReadArbiter(wiring.Component):
    """Two read requesters (``fetch`` first) on one in-order read port.

    Members
    -------
    fetch_cmd, load_cmd : ``In(stream.Signature(32))``
    fetch_data, load_data : ``Out(stream.Signature(ext_data_bits))``
    rd_cmd : ``Out(stream.Signature(32))``
    rd_data : ``In(stream.Signature(ext_data_bits))``
    stall : ``Out(1)``
        A request waits for ``rd_cmd.ready`` or a read in flight has no data this cycle.
    idle : ``Out(1)``
        No read in flight.

    Only the low :func:`word_addr_bits` bits of the request addresses are forwarded (the rest are
    0): the fetch and LOAD never request past ``mem_bytes``, which the engine clamps to
    ``2**ext_addr_bits``. ``max_reads`` (default ``config.max_reads``) is the tag FIFO's depth.
    """

    def __init__(self, config: AccelConfig, max_reads: int | None = None):
        self.max_reads = config.max_reads if max_reads is None else max_reads
        self.addr_bits = word_addr_bits(config)
        word = stream.Signature(config.ext_data_bits)
        super().__init__({
            "fetch_cmd": In(stream.Signature(32)), "load_cmd": In(stream.Signature(32)),
            "fetch_data": Out(word), "load_data": Out(word),
            "rd_cmd": Out(stream.Signature(32)), "rd_data": In(word),
            "stall": Out(1), "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.tags = tags = fifo.SyncFIFO(width=1, depth=self.max_reads)

        locked = Signal()           # a request was offered and not yet taken: keep its grant
        grant_load = Signal()
        choose_load = Mux(locked, grant_load, ~self.fetch_cmd.valid)
        m.d.comb += [
            self.rd_cmd.valid.eq(Mux(choose_load, self.load_cmd.valid, self.fetch_cmd.valid) & tags.w_rdy),
            self.rd_cmd.payload[:self.addr_bits].eq(Mux(choose_load, self.load_cmd.payload[:self.addr_bits],
                                                        self.fetch_cmd.payload[:self.addr_bits])),
            self.load_cmd.ready.eq(choose_load & self.rd_cmd.ready & tags.w_rdy),
            self.fetch_cmd.ready.eq(~choose_load & self.rd_cmd.ready & tags.w_rdy),
            tags.w_data.eq(choose_load),
            tags.w_en.eq(self.rd_cmd.valid & self.rd_cmd.ready),
        ]
        m.d.sync += [locked.eq(self.rd_cmd.valid & ~self.rd_cmd.ready), grant_load.eq(choose_load)]

        to_load = tags.r_data[0]
        m.d.comb += [
            self.fetch_data.payload.eq(self.rd_data.payload),
            self.load_data.payload.eq(self.rd_data.payload),
            self.fetch_data.valid.eq(self.rd_data.valid & tags.r_rdy & ~to_load),
            self.load_data.valid.eq(self.rd_data.valid & tags.r_rdy & to_load),
            self.rd_data.ready.eq(tags.r_rdy & Mux(to_load, self.load_data.ready, self.fetch_data.ready)),
            tags.r_en.eq(self.rd_data.valid & self.rd_data.ready),
            self.idle.eq(~tags.r_rdy),
            self.stall.eq((self.rd_cmd.valid & ~self.rd_cmd.ready) | (tags.r_rdy & ~self.rd_data.valid)),
        ]
        return m


class LoadUnit(wiring.Component):
    """The LOAD unit: external memory -> ACT, WGT or PARAM, one bus word per cycle.

    Members
    -------
    cmd : ``In(stream.Signature(isa.Instruction))``
        A legality-checked LOAD.
    busy : ``Out(1)``
    rd_cmd : ``Out(stream.Signature(32))``, rd_data : ``In(stream.Signature(ext_data_bits))``
        Its share of the read port (data always accepted).
    act_w, wgt_w, param_w : ``In(WritePort.Signature)``
        Buffer write ports (bus-word granularity).

    ``max_reads`` (default ``config.max_reads``): reads it keeps in flight at most.
    """

    def __init__(self, config: AccelConfig, max_reads: int | None = None):
        self.config = config
        self.max_reads = config.max_reads if max_reads is None else max_reads
        self.specs = buffer_specs(config)
        members = {
            "cmd": In(stream.Signature(isa.Instruction)), "busy": Out(1),
            "rd_cmd": Out(stream.Signature(32)), "rd_data": In(stream.Signature(config.ext_data_bits)),
        }
        for name in ("act", "wgt", "param"):
            members[self.specs[name].writer] = In(self.specs[name].write_signature())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        E = c.ext_data_bits
        # Bus words per buffer row in external memory (a compact PARAM row is store_lanes whole lanes).
        words = {t: self.specs[n].width // E for t, n in
                 ((isa.LoadTarget.ACT, "act"), (isa.LoadTarget.WGT, "wgt"), (isa.LoadTarget.PARAM, "param"))}
        compact = compact_param(c)
        if compact:
            lane_words = PARAM_LANE_BYTES * 8 // E          # words per lane in external memory
            used_words = param_lane_bits(c) // E           # of which the row keeps these
            words[isa.LoadTarget.PARAM] = c.store_lanes * lane_words
        max_words = max(words.values())

        f = self.cmd.payload.payload.load
        param_row = f.sram_addr * (c.cols // c.store_lanes) if compact else f.sram_addr
        target = Signal(isa.LoadTarget)
        # isa.check keeps rows * row_len within the target buffer, so counters need no more bits.
        depth = max(c.act_buf_entries, c.wgt_buf_tiles, c.param_buf_entries)
        rows_left = Signal(range(depth))           # rows still to request after the current one
        # Bus words per row: isa.check keeps row_len within the target's depth.
        word_in_row = Signal(range(max(c.act_buf_entries * words[isa.LoadTarget.ACT],
                                       c.wgt_buf_tiles * words[isa.LoadTarget.WGT],
                                       c.param_buf_entries * (c.param_entry_bytes * 8 // E))))
        last_word = Signal.like(word_in_row)       # bus words per row - 1
        WA = word_addr_bits(c)                     # legal rows lie below 2**ext_addr_bits
        row_base = Signal(WA)                      # word address of the current row
        stride = Signal(WA)                        # in words
        issuing = Signal()
        outstanding = Signal(range(self.max_reads + 1))
        full = Signal()                            # max_reads in flight after this cycle
        entry = Signal(max(self.specs[n].addr_width for n in ("act", "wgt", "param")))  # row written
        k = Signal(range(max_words))               # word within it
        wpe = Signal(range(max_words + 1))

        m.d.comb += [self.cmd.ready.eq(~issuing & (outstanding == 0)),
                     self.busy.eq(issuing | (outstanding != 0))]
        with m.If(self.cmd.valid & self.cmd.ready):
            t = f.target
            m.d.sync += [
                target.eq(t), rows_left.eq(f.rows - 1), word_in_row.eq(0), issuing.eq(1),
                row_base.eq(f.dram_addr >> _shift(c)), stride.eq(f.dram_stride >> _shift(c)),
                last_word.eq(Mux(t == isa.LoadTarget.ACT, _last_word(f.row_len, words[isa.LoadTarget.ACT]),
                                 Mux(t == isa.LoadTarget.WGT, _last_word(f.row_len, words[isa.LoadTarget.WGT]),
                                     _last_word(f.row_len, c.param_entry_bytes * 8 // E)))),
                wpe.eq(Mux(t == isa.LoadTarget.ACT, words[isa.LoadTarget.ACT],
                           Mux(t == isa.LoadTarget.WGT, words[isa.LoadTarget.WGT],
                               words[isa.LoadTarget.PARAM]))),
                entry.eq(Mux(t == isa.LoadTarget.PARAM, param_row, f.sram_addr)), k.eq(0),
            ]

        # Requests: row by row, word by word.
        m.d.comb += [self.rd_cmd.valid.eq(issuing & ~full),
                     self.rd_cmd.payload.eq((row_base + word_in_row)[:WA])]
        issued = self.rd_cmd.valid & self.rd_cmd.ready
        with m.If(issued):
            with m.If(word_in_row == last_word):
                m.d.sync += [word_in_row.eq(0), row_base.eq(row_base + stride), rows_left.eq(rows_left - 1)]
                with m.If(rows_left == 0):
                    m.d.sync += issuing.eq(0)
            with m.Else():
                m.d.sync += word_in_row.eq(word_in_row + 1)

        # Data: each word into its slice of the entry; entries are consecutive across rows.
        m.d.comb += self.rd_data.ready.eq(1)
        received = self.rd_data.valid & self.rd_data.ready
        # `full` is a register so that rd_cmd.valid stays two flip-flops and a gate.
        next_outstanding = outstanding + issued - received
        m.d.sync += [outstanding.eq(next_outstanding), full.eq(next_outstanding == self.max_reads)]
        with m.If(received):
            with m.If(k == wpe - 1):
                m.d.sync += [k.eq(0), entry.eq(entry + 1)]
            with m.Else():
                m.d.sync += k.eq(k + 1)
        for t, name in ((isa.LoadTarget.ACT, "act"), (isa.LoadTarget.WGT, "wgt"),
                        (isa.LoadTarget.PARAM, "param")):
            port = getattr(self, self.specs[name].writer)
            n = self.specs[name].width // E
            slots = [self.rd_data.payload] * n
            if compact and t == isa.LoadTarget.PARAM:
                # Multiplier bit 31 (lane bit 63) is kept as 0: quant.effective_params ignores it,
                # and the STORE's requantizer then needs no sign-fill (Requantizer m31_zero).
                word, bit = divmod(63, E)
                clear = Cat(self.rd_data.payload[:bit], Const(0, 1), self.rd_data.payload[bit + 1:])
                slots = [clear if j % used_words == word else slots[j] for j in range(n)]
            m.d.comb += [
                port.addr.eq(entry),
                port.data.eq(Cat(*slots)),
            ]
            we = received & (target == t)
            if compact and t == isa.LoadTarget.PARAM:
                # Word k of the row's lanes: lane k // lane_words, kept if among its used words.
                m.d.comb += port.en.eq(Cat(
                    we & (k == j // used_words * lane_words + j % used_words) for j in range(n)))
            elif n == 1:
                m.d.comb += port.en.eq(we.replicate(len(port.en)))
            else:
                m.d.comb += port.en.eq(Mux(we, 1 << k, 0))
        return m


class StoreUnit(wiring.Component):
    """The STORE unit: OUT / ACC / ACC_REQUANT -> external memory, one bus word per cycle.

    Members
    -------
    cmd : ``In(stream.Signature(isa.Instruction))``
        A legality-checked STORE (the DRAM window was checked by the controller).
    busy : ``Out(1)``
    wr : ``Out(stream.Signature(write_layout(config)))``
    out_rs, acc_rs, param_rs : ``In(ReadPort.Signature)``
        Buffer read ports.
    write_stall : ``Out(1)``
        ``wr`` is valid and not ready.
    Parameter lanes are used as :func:`sqzhw.quant.effective_params` defines: multiplier bits 30:0,
    ``min(shift, 62)``, so any parameter bytes are well defined.
    """

    #: Output queue depth in entries: covers read + requantizer latency at one entry per cycle.
    QUEUE = Requantizer.LATENCY + 4

    def __init__(self, config: AccelConfig):
        self.config = config
        self.specs = buffer_specs(config)
        P = config.rows // config.store_lanes
        #: Queue depth: :attr:`QUEUE`; a lane-serial requantizer takes an entry every ``P`` cycles,
        #: so fewer entries are in flight and fewer cover the same latency.
        self.queue_depth = self.QUEUE if P == 1 else max(4, -(-(Requantizer.LATENCY + 4 + P) // P) + 1)
        super().__init__({
            "cmd": In(stream.Signature(isa.Instruction)), "busy": Out(1),
            "wr": Out(stream.Signature(write_layout(config))),
            "out_rs": In(self.specs["out"].read_signature()),
            "acc_rs": In(self.specs["acc"].read_signature()),
            "param_rs": In(self.specs["param"].read_signature()),
            "write_stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        E, L, K = c.ext_data_bits, c.rows, c.lane_blocks
        act_words = c.act_entry_bytes * 8 // E
        acc_words = c.acc_entry_bytes * 8 // E
        S = isa.StoreSource

        f = self.cmd.payload.payload.store
        source = Signal(S)
        # isa.check keeps rows * row_len within the source buffer, so counters need no more bits.
        depth = max(c.out_buf_entries, c.acc_buf_entries)
        sram = Signal(max(self.specs["out"].addr_width, self.specs["acc"].addr_width))
        rd_rows_left = Signal(range(depth))
        rd_col = Signal(range(depth))
        last_col = Signal(range(depth))            # row_len - 1
        reading = Signal()
        WA = word_addr_bits(c)                     # legal rows lie below 2**ext_addr_bits
        row_base = Signal(WA)
        stride = Signal(WA)
        wr_addr = Signal(WA)                       # word address of the next write
        lane_block = Signal(3)
        zp_out = Signal(8)
        relu = Signal()

        R = c.store_lanes                          # requantizer lanes (AccelConfig.requant_lanes)
        P = L // R                                 # cycles per requantized entry
        compact = compact_param(c)
        # PARAM row of the first lane group (a whole entry unless compact_param); the parameters are
        # read from the buffer as the lanes pass, so no register holds them.
        param_base = Signal(self.specs["param"].addr_width)
        if compact:
            base = f.param_addr * (c.cols // R) + f.lane_block * (L // R)
        else:
            base = f.param_addr
        # Never stalled (the queue has room for every read) and zp_out/relu are the instruction's.
        # A compact PARAM buffer holds multiplier bit 31 as 0 (LoadUnit clears it).
        m.submodules.requant = rq = Requantizer(R, stall=False, per_vector=False, m31_zero=compact)
        # The queue holds activation-entry-sized chunks: an ACC entry is read 4*K times, one chunk
        # each (as fast as the bus takes them), so the queue is not acc-entry wide.
        width = c.act_entry_bytes * 8
        chunks = acc_words // act_words            # = 4 * K
        # In a block RAM: as flip-flops the queue costs an iCE40 logic cell per bit.
        # Each entry's tag says whether it ends a row (set as it is read): the write side needs no
        # row counting of its own.
        m.submodules.queue = queue = RamQueue(width=width, depth=self.queue_depth, tag_width=1)
        credits = Signal(range(self.queue_depth + 1))    # entries read and not yet fully written out

        with m.FSM(name="store"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [
                        source.eq(f.source), sram.eq(f.sram_addr), rd_rows_left.eq(f.rows - 1),
                        rd_col.eq(0), last_col.eq(f.row_len - 1),
                        row_base.eq(f.dram_addr >> _shift(c)), stride.eq(f.dram_stride >> _shift(c)),
                        wr_addr.eq(f.dram_addr >> _shift(c)),
                        param_base.eq(base), lane_block.eq(f.lane_block),
                        zp_out.eq(f.zp_out), relu.eq(f.relu),
                    ]
                    with m.If(f.source == S.ACC_REQUANT):
                        m.next = "PARAM"
                    with m.Else():
                        m.d.sync += reading.eq(1)
                        m.next = "RUN"
            with m.State("PARAM"):
                # Two cycles before the first read (param_rs addresses the first lane group).
                m.next = "PARAM_DATA"
            with m.State("PARAM_DATA"):
                m.d.sync += reading.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                # Done when everything read has been written (credits count those entries).
                with m.If(~reading & (credits == 0)):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(reading | (credits != 0) | ~self.cmd.ready)
        # busy above counts PARAM/PARAM_DATA too (cmd.ready is low outside IDLE).

        # -- reads, against queue credits ------------------------------------------------------------
        requant = source == S.ACC_REQUANT
        issue = Signal()
        if P == 1:
            m.d.comb += issue.eq(reading & (credits < self.queue_depth))
        else:
            # Lane-serial: a requantized entry takes P requantizer cycles, so reads are P apart.
            cool = Signal(range(P))
            m.d.comb += issue.eq(reading & (credits < self.queue_depth) & (cool == 0))
            with m.If(issue & requant):
                m.d.sync += cool.eq(P - 1)
            with m.Elif(cool != 0):
                m.d.sync += cool.eq(cool - 1)
        m.d.comb += [self.out_rs.addr.eq(sram), self.acc_rs.addr.eq(sram), self.acc_rs.en.eq(issue)]
        chunk = Signal(range(chunks))              # chunk of the ACC entry read this cycle
        chunk_rd = Signal.like(chunk)              # ... and of the data on the read port
        m.d.sync += chunk_rd.eq(chunk)
        next_entry = (source != S.ACC) | (chunk == chunks - 1)
        with m.If(issue & (source == S.ACC)):
            m.d.sync += chunk.eq(Mux(next_entry, 0, chunk + 1))
        # Every read becomes one queue entry, in order: its tag marks the last of a row.
        m.d.comb += [queue.t_en.eq(issue), queue.t_data.eq(next_entry & (rd_col == last_col))]
        with m.If(issue & next_entry):
            m.d.sync += sram.eq(sram + 1)
            with m.If(rd_col == last_col):
                m.d.sync += [rd_col.eq(0), rd_rows_left.eq(rd_rows_left - 1)]
                with m.If(rd_rows_left == 0):
                    m.d.sync += reading.eq(0)
            with m.Else():
                m.d.sync += rd_col.eq(rd_col + 1)
        rvalid = Signal()
        m.d.sync += rvalid.eq(issue)

        # Parameters of the lane group the requantizer takes next cycle (raw fields: the Requantizer
        # applies quant.effective_params).
        if compact:
            lane_bits = param_lane_bits(c)
            row = self.param_rs.data
            row_lanes = [row[j * lane_bits:j * lane_bits + PARAM_USED_BITS] for j in range(R)]
            params_now = Signal(data.ArrayLayout(isa.ParamLane, R))
            for j, bits in enumerate(row_lanes):
                m.d.comb += [params_now[j].bias.eq(bits[0:32]), params_now[j].multiplier.eq(bits[32:64]),
                             params_now[j].shift.eq(bits[64:72])]
            if P > 1:
                # Rows of groups 0..P-1 are addressed in the cycles of the read and the P-1 after it.
                pnext = Signal(range(P))
                with m.If(issue & requant):
                    m.d.sync += pnext.eq(1)
                with m.Elif(pnext != 0):
                    m.d.sync += pnext.eq(pnext + 1)    # wraps to 0 after P-1 (P is a power of 2)
                m.d.comb += self.param_rs.addr.eq(param_base + Mux(issue, 0, pnext))
            else:
                m.d.comb += self.param_rs.addr.eq(param_base)
        else:
            m.d.comb += self.param_rs.addr.eq(param_base)
            lanes = data.ArrayLayout(data.ArrayLayout(isa.ParamLane, L), K)(self.param_rs.data)
            params = lanes[lane_block] if K > 1 else lanes[0]

        acc_lanes = data.ArrayLayout(data.ArrayLayout(32, L), K)(self.acc_rs.data)
        mine = acc_lanes[lane_block] if K > 1 else acc_lanes[0]
        acc_chunk = data.ArrayLayout(width, chunks)(self.acc_rs.data)[chunk_rd]
        m.d.comb += [
            rq.i.payload.zp_out.eq(zp_out),
            rq.i.payload.relu.eq(relu),
            # The queue always has room for what was read (credits), so the requantizer never stalls.
            rq.o.ready.eq(queue.w_rdy),
        ]
        if P == 1:
            m.d.comb += [
                rq.i.valid.eq(rvalid & requant),
                rq.i.payload.acc.eq(mine),
                rq.i.payload.params.eq(params_now if compact else params),
                queue.w_en.eq(Mux(requant, rq.o.valid, rvalid)),
                queue.w_data.eq(Mux(requant, rq.o.payload.as_value(),
                                    Mux(source == S.ACC, acc_chunk, self.out_rs.data))),
            ]
        else:
            # Group g = lanes g*R .. g*R+R-1: group 0 straight from the read port, groups 1..P-1
            # in the next cycles: the ACC read port keeps its data (its `en` is high only when a read
            # is issued, and reads are P apart; the requantizer never stalls).
            groups = data.ArrayLayout(data.ArrayLayout(32, R), P)
            feed = Signal(range(P))                # group fed next (0: none pending)
            feed_next = Signal.like(feed)          # wraps to 0 after group P-1 (P is a power of 2)
            m.d.comb += feed_next.eq(Mux(rvalid & requant, 1, Mux(feed != 0, feed + 1, 0)))
            m.d.sync += feed.eq(feed_next)
            group_in = groups(mine.as_value())[feed]
            if P <= 4:
                # A group holds whole chunks (cpg of them): one group mux serves the requantizer and
                # the ACC chunk, with a registered select (no logic in front of the wide mux).
                cpg = 4 // P
                gsel = Signal(range(K * P))
                m.d.sync += gsel.eq(Mux(requant, lane_block * P + feed_next if K > 1 else feed_next,
                                        chunk // cpg))
                group_in = data.ArrayLayout(data.ArrayLayout(32, R), K * P)(self.acc_rs.data)[gsel]
                acc_chunk = (data.ArrayLayout(width, cpg)(group_in.as_value())[chunk_rd[:cpg.bit_length() - 1]]
                             if cpg > 1 else group_in.as_value())
            if not compact:
                params_now = data.ArrayLayout(data.ArrayLayout(isa.ParamLane, R), P)(params)[feed]
            # Results leave in group order: shift them into one entry, lowest lanes first.
            out_part = Signal(range(P))
            assembled = Signal(8 * L)
            entry = Cat(assembled[8 * R:], rq.o.payload.as_value())
            last_part = out_part == P - 1
            with m.If(rq.o.valid & rq.o.ready):
                m.d.sync += [assembled.eq(entry), out_part.eq(out_part + 1)]
            m.d.comb += [
                rq.i.valid.eq((rvalid & requant) | (feed != 0)),
                rq.i.payload.acc.eq(group_in),
                rq.i.payload.params.eq(params_now),
                queue.w_en.eq(Mux(requant, rq.o.valid & last_part, rvalid)),
                queue.w_data.eq(Mux(requant, entry,
                                    Mux(source == S.ACC, acc_chunk, self.out_rs.data))),
            ]

        # -- writes: the queue head, one bus word at a time --------------------------------------------
        k = Signal(range(act_words))
        wpe = act_words
        words = data.ArrayLayout(E, width // E)(queue.r_data)
        m.d.comb += [
            self.wr.valid.eq(queue.r_rdy),
            self.wr.payload.data.eq(words[k]),
            self.wr.payload.addr.eq(wr_addr),
            self.write_stall.eq(self.wr.valid & ~self.wr.ready),
        ]
        sent = self.wr.valid & self.wr.ready
        popped = sent & (k == wpe - 1)
        m.d.comb += queue.r_en.eq(popped)
        m.d.sync += credits.eq(credits + issue - popped)
        with m.If(sent):
            m.d.sync += k.eq(Mux(k == wpe - 1, 0, k + 1))
            with m.If(popped & queue.r_tag):       # the row's last word: on to the next row
                m.d.sync += [row_base.eq(row_base + stride), wr_addr.eq(row_base + stride)]
            with m.Else():
                m.d.sync += wr_addr.eq(wr_addr + 1)
        return m
