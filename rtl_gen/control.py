"""The engine's front end: instruction fetch, legality check, in-order dispatch and the error status.

:class:`Checker` is the pipelined RTL twin of :func:`sqzhw.isa.check`: the same rules in the same
order (the first violation found decides the :class:`~sqzhw.isa.ErrorCode`), followed by the DRAM
range rules that :func:`~sqzhw.isa.check` leaves to the engine (a LOAD's reads below ``mem_bytes``,
a STORE's writes inside ``[wr_lo, wr_hi)``). Its tests compare it with :func:`~sqzhw.isa.check` on
fuzzed words.

:class:`Fetch` reads 128-bit instructions from external memory (``128 / ext_data_bits`` bus words
each, lowest word first) into a small prefetch queue. It reserves a queue slot before it requests an
instruction, so it always accepts the read data it asked for and never blocks the shared read port.
Fetching instruction ``insn_count`` is ``FETCH_RANGE``; an instruction whose bytes reach past
``mem_bytes`` (or any, when ``insn_addr`` is not word aligned) is ``DRAM_RANGE``, as in the golden
model. Neither is reported until the dispatcher actually reaches that
instruction, so prefetching never raises an error a program would not hit.

:class:`Controller` runs the program: ``start`` latches the run parameters and clears the status; each
instruction is popped from the queue, checked (``Checker.LATENCY`` cycles, pipelined; the
instruction waits in ``cur``), and dispatched when its unit and the units named in its ``wait``
flags are idle. A unit contract: ``busy`` is high from the cycle after its ``cmd`` handshake until
every effect of the instruction is complete (buffer writes done, external writes handshaken).
``END`` waits for all units and then sets ``done``. On an error the controller dispatches nothing
more, lets the units finish the (legal) instructions they hold and the fetch drain its outstanding
reads, and only then sets ``error``/``error_pc`` and drops ``busy``: the memory then holds exactly
the effects of the instructions before the failing one, as in the golden model.

Worst case (no hang): once memory answers every request, a unit finishes an instruction in at most
``rows * row_len * words_per_entry`` bus transfers (LOAD/STORE) or the compute unit's bounded loop
count; fetch has at most ``QUEUE_DEPTH * 128 / ext_data_bits`` reads outstanding. So ``busy`` falls a
bounded number of cycles after an error or END.
"""


from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sqzhw import isa
from sqzhw.config import AccelConfig

__all__ = ["Checker", "Fetch", "Controller", "QUEUE_DEPTH"]

#: Instructions the fetch unit may hold or have in flight.
QUEUE_DEPTH = 4


def _row_bytes_load(config: AccelConfig, target, row_len):
    """Bytes of one LOAD row (a mux of constant products, so no multiplier is built)."""
    return Mux(target == isa.LoadTarget.ACT.value, row_len * config.act_entry_bytes,
               Mux(target == isa.LoadTarget.WGT.value, row_len * config.wgt_tile_bytes,
                   row_len * config.param_entry_bytes))


def _row_bytes_store(config: AccelConfig, source, row_len):
    """Bytes of one STORE row: raw ACC entries are ``cols*4`` bytes, OUT and requantized ``rows``."""
    return Mux(source == isa.StoreSource.ACC.value, row_len * config.acc_entry_bytes,
               row_len * config.act_entry_bytes)


def _misaligned(value, ext_bytes: int):
    bits = (ext_bytes - 1).bit_length()
    return value[:bits] != 0 if bits else Const(0)


class Checker(wiring.Component):
    """Pipelined legality check of one instruction: :func:`sqzhw.isa.check` plus DRAM ranges.

    The inputs must be held stable; :attr:`code` is valid :attr:`LATENCY` clock edges after they
    last changed and stays valid while they do not change. The work is split so that no register
    stage holds more than one multiplier or one wide add-and-compare (this used to be the engine's
    critical path on ECP5):

    1. the products ``rows*row_len`` / ``in_h*in_w`` / ``blocks*pixels`` and
       ``(rows-1)*dram_stride`` / ``out_h*out_w``, each on one shared multiplier, and the bytes of
       one LOAD/STORE row;
    2. ``blocks * plane`` products (CONV/MAXPOOL) and the DRAM end address of LOAD/STORE;
    3. every ``start + count > depth`` and DRAM-range comparison, as one registered flag each;
    4. the priority of the rules (the first violation wins), into :attr:`code`.

    The ``blocks * plane`` products only need the low ``depth.bit_length()`` bits of ``plane``: with
    ``blocks >= 1`` (a zero is ``BAD_FIELD`` earlier in the priority) a ``plane`` of ``2**w`` or more
    already exceeds the buffer. That keeps each such multiplier within one 18x18 DSP.

    With ``AccelConfig.serial_products`` the four products are computed without multipliers, MSB
    first with one adder each: stages 1 and 2 take :data:`SERIAL_A_BITS` and :data:`SERIAL_B_BITS`
    cycles, started by a ``start`` pulse in the clock edge that loads ``insn``; :attr:`code` is
    then valid :attr:`latency` = ``SERIAL_A_BITS + SERIAL_B_BITS + 2`` edges after that edge (the
    controller reads it exactly then).

    Parameters
    ----------
    config : AccelConfig

    Members
    -------
    insn : ``In(isa.Instruction)``
        The instruction word.
    start : ``In(1)``
        High in the cycle whose clock edge loads a new ``insn`` (only used with
        ``serial_products``).
    mem_bytes, wr_lo, wr_hi : ``In(32)``
        External memory size and the writable window of the run.
    code : ``Out(isa.ErrorCode)``
        ``NONE`` when the instruction may execute, else the first violation's code.
    """

    #: Clock edges from stable inputs to a valid :attr:`code` (with multipliers).
    LATENCY = 4
    #: Serial stage 1 iterates over the bits of rows / blocks / in_h / rows-1 / out_h (<= 10 bits).
    SERIAL_A_BITS = 10
    #: Serial stage 2 iterates over the bits of cin_blocks / blocks (9 bits).
    SERIAL_B_BITS = 9

    insn: In(isa.Instruction)
    start: In(1)
    mem_bytes: In(32)
    wr_lo: In(32)
    wr_hi: In(32)
    code: Out(isa.ErrorCode)

    def __init__(self, config: AccelConfig):
        self.config = config
        #: Clock edges from the ``start`` edge (or stable inputs) to a valid :attr:`code`.
        self.latency = (self.SERIAL_A_BITS + self.SERIAL_B_BITS + 2 if config.serial_products
                        else self.LATENCY)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        c = self.config
        E, K = c.ext_bytes, c.lane_blocks
        insn = self.insn
        opcode = insn.opcode.as_value()
        ld, st = insn.payload.load, insn.payload.store
        cv, mp = insn.payload.conv, insn.payload.maxpool
        gp, ad = insn.payload.gap, insn.payload.add
        Op = isa.Opcode
        E_ = isa.ErrorCode

        is_ls = (opcode == Op.LOAD.value) | (opcode == Op.STORE.value)
        is_conv = opcode == Op.CONV.value
        is_mp = opcode == Op.MAXPOOL.value
        is_gap = opcode == Op.GAP.value

        # LOAD and STORE share the positions of rows/row_len/dram_addr/dram_stride/sram_addr.
        assert all(isa.LoadFields.as_shape()[n].offset == isa.StoreFields.as_shape()[n].offset
                   for n in ("sram_addr", "dram_addr", "rows", "row_len", "dram_stride"))
        sp_h = Mux(is_conv, cv.in_h, mp.in_h)
        sp_w = Mux(is_conv, cv.in_w, mp.in_w)
        sp_oh = Mux(is_conv, cv.out_h, mp.out_h)
        sp_ow = Mux(is_conv, cv.out_w, mp.out_w)
        sp_blocks = Mux(is_conv, cv.cin_blocks, mp.blocks)
        target = ld.target.as_value()
        source = st.source.as_value()

        # Stage 1: shared multipliers, their inputs muxed by opcode (no opcode needs both at once).
        p1 = Signal(26)   # LOAD/STORE rows*row_len, CONV/MAXPOOL in_h*in_w, GAP blocks*pixels
        p2 = Signal(32)   # LOAD/STORE (rows-1)*dram_stride, CONV/MAXPOOL out_h*out_w
        row_bytes = Signal(32)
        taps = Signal(13)  # CONV weight tiles: cin_blocks * k * k
        # (rows-1) * dram_stride: the low 18 stride bits on one 18x18 DSP, the top 4 by shift-and-add
        # in LUTs (a second DSP for a 10x4 product would be a waste on the DSP-bound ulx3s build).
        p2_a = Mux(is_ls, (ld.rows - 1)[:10], sp_oh)
        p1_a = Mux(is_ls, ld.rows, Mux(is_gap, gp.blocks, sp_h))
        p1_b = Mux(is_ls, ld.row_len, Mux(is_gap, gp.pixels, sp_w))
        serial = c.serial_products
        if not serial:
            p2_lo = p2_a * Mux(is_ls, ld.dram_stride[:18], sp_ow)
            p2_hi = Signal(14)
            stride_hi = ld.dram_stride[18:]
            m.d.comb += p2_hi.eq(sum(Mux(is_ls & stride_hi[i], p2_a << i, 0) for i in range(len(stride_hi))))
            m.d.sync += [p1.eq(p1_a * p1_b), p2.eq(p2_lo + (p2_hi << 18))]
        m.d.sync += [
            row_bytes.eq(Mux(opcode == Op.LOAD.value, _row_bytes_load(c, target, ld.row_len),
                             _row_bytes_store(c, source, ld.row_len))),
            # * 9 as a shift and an add: no multiplier for a constant.
            taps.eq(Mux(cv.kernel3, (cv.cin_blocks << 3) + cv.cin_blocks, cv.cin_blocks)),
        ]

        # Stage 2: blocks * plane on the low bits that matter (see the class docstring).
        w_act = c.act_buf_entries.bit_length()
        w_out = c.out_buf_entries.bit_length()
        p3 = Signal(9 + w_act)   # blocks * in_h*in_w (CONV/MAXPOOL), valid when p3_big is 0
        p4 = Signal(9 + w_out)   # blocks * out_h*out_w (MAXPOOL), valid when p4_big is 0
        p3_big, p4_big = Signal(), Signal()
        end = Signal(34)         # one past the last DRAM byte touched (LOAD/STORE)
        m.d.sync += [
            p3_big.eq(p1[w_act:] != 0), p4_big.eq(p2[w_out:] != 0),
            end.eq(ld.dram_addr + p2 + row_bytes),
        ]
        if not serial:
            m.d.sync += [p3.eq(sp_blocks * p1[:w_act]), p4.eq(sp_blocks * p2[:w_out])]
        else:
            # Shift-and-add, most significant multiplier bit first: x = 2*x + (bit ? b : 0).
            A, B = self.SERIAL_A_BITS, self.SERIAL_B_BITS
            step = Signal(range(A + B + 1), init=A + B)     # A + B: idle, results final
            with m.If(self.start):
                m.d.sync += [step.eq(0), p1.eq(0), p2.eq(0), p3.eq(0), p4.eq(0)]
            with m.Elif(step < A):
                bit = (A - 1 - step)[:4]
                m.d.sync += [
                    p1.eq((p1 << 1) + Mux(p1_a.bit_select(bit, 1), p1_b, 0)),
                    p2.eq((p2 << 1) + Mux(p2_a.bit_select(bit, 1), Mux(is_ls, ld.dram_stride, sp_ow), 0)),
                    step.eq(step + 1),
                ]
            with m.Elif(step < A + B):
                bit = (A + B - 1 - step)[:4]
                take = sp_blocks.bit_select(bit, 1)
                m.d.sync += [
                    p3.eq((p3 << 1) + Mux(take, p1[:w_act], 0)),
                    p4.eq((p4 << 1) + Mux(take, p2[:w_out], 0)),
                    step.eq(step + 1),
                ]

        # Stage 3: one registered flag per range comparison.
        def over(start, count, depth):
            return start + count > depth

        load_depth = Mux(target == isa.LoadTarget.ACT.value, c.act_buf_entries,
                         Mux(target == isa.LoadTarget.WGT.value, c.wgt_buf_tiles, c.param_buf_entries))
        in_addr = Mux(is_conv, cv.in_addr, mp.in_addr)
        # GAP: acc_addr + ceil(blocks / K) > depth  <=>  blocks > (depth - acc_addr) * K
        room = Signal(range(-(1 << 16), c.acc_buf_entries + 1))
        m.d.comb += room.eq(c.acc_buf_entries - gp.acc_addr)
        f_load_buf, f_out_buf, f_acc_buf = Signal(), Signal(), Signal()
        f_mem, f_window = Signal(), Signal()
        f_in, f_wgt, f_acc, f_pool_out = Signal(), Signal(), Signal(), Signal()
        f_gap_in, f_gap_acc, f_add = Signal(), Signal(), Signal()
        m.d.sync += [
            f_load_buf.eq(over(ld.sram_addr, p1, load_depth)),
            f_out_buf.eq(over(st.sram_addr, p1, c.out_buf_entries)),
            f_acc_buf.eq(over(st.sram_addr, p1, c.acc_buf_entries)),
            f_mem.eq(end > self.mem_bytes),
            f_window.eq((st.dram_addr < self.wr_lo) | (end > self.wr_hi)),
            f_in.eq(p3_big | over(in_addr, p3, c.act_buf_entries)),
            f_wgt.eq(over(cv.wgt_addr, taps, c.wgt_buf_tiles)),
            f_acc.eq(over(cv.acc_addr, p2, c.acc_buf_entries)),
            f_pool_out.eq(p4_big | over(mp.out_addr, p4, c.out_buf_entries)),
            f_gap_in.eq(over(gp.in_addr, p1, c.act_buf_entries)),
            f_gap_acc.eq((room < 0) | (gp.blocks > room * K)),
            f_add.eq(over(ad.a_addr, ad.count, c.act_buf_entries)
                     | over(ad.b_addr, ad.count, c.act_buf_entries)
                     | over(ad.out_addr, ad.count, c.out_buf_entries)),
        ]

        # Stage 4: the rules in isa.check's order; the first violation decides the code.
        code = Signal(isa.ErrorCode)
        m.d.sync += self.code.eq(code)
        with m.If(opcode > max(o.value for o in Op)):
            m.d.comb += code.eq(E_.BAD_OPCODE)

        with m.Elif(is_ls):
            with m.If((ld.rows == 0) | (ld.row_len == 0)):
                m.d.comb += code.eq(E_.BAD_FIELD)
            with m.Elif(_misaligned(ld.dram_addr, E) | _misaligned(ld.dram_stride, E)):
                m.d.comb += code.eq(E_.DRAM_ALIGN)
            with m.Elif(opcode == Op.LOAD.value):
                with m.If(target > max(t.value for t in isa.LoadTarget)):
                    m.d.comb += code.eq(E_.BAD_FIELD)
                with m.Elif(f_load_buf):
                    m.d.comb += code.eq(E_.BUF_RANGE)
                with m.Elif(f_mem):
                    m.d.comb += code.eq(E_.DRAM_RANGE)
            with m.Else():  # STORE
                requant = source == isa.StoreSource.ACC_REQUANT.value
                with m.If(source > max(s.value for s in isa.StoreSource)):
                    m.d.comb += code.eq(E_.BAD_FIELD)
                with m.Elif((source == isa.StoreSource.OUT.value) & f_out_buf):
                    m.d.comb += code.eq(E_.BUF_RANGE)
                with m.Elif(requant & (st.lane_block >= K)):
                    m.d.comb += code.eq(E_.BAD_FIELD)
                with m.Elif(requant & (st.param_addr >= c.param_buf_entries)):
                    m.d.comb += code.eq(E_.BUF_RANGE)
                with m.Elif((source != isa.StoreSource.OUT.value) & f_acc_buf):
                    m.d.comb += code.eq(E_.BUF_RANGE)
                with m.Elif(f_window | f_mem):
                    m.d.comb += code.eq(E_.DRAM_RANGE)

        with m.Elif(is_conv | is_mp):
            k = Mux(is_conv, Mux(cv.kernel3, 3, 1), mp.kernel)
            s = Mux(is_conv, Mux(cv.stride2, 2, 1), mp.stride)
            pad_top = Mux(is_conv, cv.pad_top, mp.pad_top)
            pad_left = Mux(is_conv, cv.pad_left, mp.pad_left)
            with m.If((sp_h == 0) | (sp_w == 0) | (sp_oh == 0) | (sp_ow == 0) | (sp_blocks == 0)):
                m.d.comb += code.eq(E_.BAD_FIELD)
            with m.Elif(is_mp & ((k == 0) | (s == 0))):
                m.d.comb += code.eq(E_.BAD_FIELD)
            # isa.max_padding: k - 1, and 1 for a 1x1 CONV.
            max_pad = Mux(is_conv & ~cv.kernel3, 1, k - 1)
            with m.Elif((pad_top > max_pad) | (pad_left > max_pad)):
                m.d.comb += code.eq(E_.BAD_FIELD)
            with m.Elif(f_in):
                m.d.comb += code.eq(E_.BUF_RANGE)
            with m.Elif(is_conv):
                with m.If(f_wgt | f_acc):
                    m.d.comb += code.eq(E_.BUF_RANGE)
            with m.Else():
                with m.If(f_pool_out):
                    m.d.comb += code.eq(E_.BUF_RANGE)

        with m.Elif(is_gap):
            with m.If((gp.pixels == 0) | (gp.blocks == 0)):
                m.d.comb += code.eq(E_.BAD_FIELD)
            with m.Elif(f_gap_in):
                m.d.comb += code.eq(E_.BUF_RANGE)
            with m.Elif(f_gap_acc):
                m.d.comb += code.eq(E_.BUF_RANGE)

        with m.Elif((opcode == Op.ADD.value) & (not c.add_unit)):
            # No ADD unit in this engine (AccelConfig.add_unit): as isa.check, an illegal opcode.
            m.d.comb += code.eq(E_.BAD_OPCODE)
        with m.Elif(opcode == Op.ADD.value):
            with m.If(ad.count == 0):
                m.d.comb += code.eq(E_.BAD_FIELD)
            with m.Elif(ad.param_addr >= c.param_buf_entries):
                m.d.comb += code.eq(E_.BUF_RANGE)
            with m.Elif(f_add):
                m.d.comb += code.eq(E_.BUF_RANGE)
        return m


class Fetch(wiring.Component):
    """Instruction prefetch from external memory.

    Parameters
    ----------
    config : AccelConfig
    depth : int
        Instructions held or in flight at most.

    Members
    -------
    start : ``In(1)``
        Begin fetching at instruction 0 (clears the queue).
    stop : ``In(1)``
        Issue no more reads (the run ended); outstanding reads still drain.
    insn_addr, insn_count, mem_bytes : ``In(32)``
        Run parameters, read from the cycle after ``start`` on (the controller latches them in the
        ``start`` edge) and held stable during a run.
    rd_cmd : ``Out(stream.Signature(32))``
        Word-address read requests.
    rd_data : ``In(stream.Signature(ext_data_bits))``
        Read data, in request order; always accepted.
    insn : ``Out(stream.Signature(isa.Instruction))``
        Fetched instructions, in program order.
    fault : ``Out(isa.ErrorCode)``
        Non-zero once the fetch stopped on ``FETCH_RANGE``/``DRAM_RANGE`` at the
        instruction after the last one it delivers; valid when ``insn`` is empty and ``idle``.
    idle : ``Out(1)``
        No read is outstanding.
    """

    def __init__(self, config: AccelConfig, depth: int = QUEUE_DEPTH):
        if config.ext_data_bits > isa.INSN_BITS:
            raise ValueError(f"config {config.name!r}: ext_data_bits = {config.ext_data_bits}: the "
                             f"fetch unit supports buses up to {isa.INSN_BITS} bits (one instruction)")
        self.config = config
        self.depth = depth
        super().__init__({
            "start": In(1), "stop": In(1),
            "insn_addr": In(32), "insn_count": In(32), "mem_bytes": In(32),
            "rd_cmd": Out(stream.Signature(32)),
            "rd_data": In(stream.Signature(config.ext_data_bits)),
            "insn": Out(stream.Signature(isa.Instruction)),
            "fault": Out(isa.ErrorCode),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        E = self.config.ext_data_bits
        W = isa.INSN_BITS // E                 # bus words per instruction
        shift = (self.config.ext_bytes - 1).bit_length()

        # Reset by start: drops instructions left over from a previous run.
        queue = fifo.SyncFIFO(width=isa.INSN_BITS, depth=self.depth)
        m.submodules.queue = ResetInserter(self.start)(queue)

        pc = Signal(32)                          # next instruction to request
        word = Signal(range(W))                  # next word of it
        reserved = Signal(range(self.depth + 1)) # queue slots held or in flight
        outstanding = Signal(range(self.depth * W + 1))
        rx_word = Signal(range(W))
        rx_shift = Signal(isa.INSN_BITS)
        running = Signal()
        fault = Signal(isa.ErrorCode)
        bad_base = Signal()                      # insn_addr not word aligned: fetch is DRAM_RANGE

        # The request address and the range flags of instruction `pc` are registers, so that
        # `rd_cmd.valid`/`payload` come straight from flip-flops: they feed the shared read port's
        # arbiter and the memory controller combinationally (formerly the board's critical path).
        # The flags are recomputed every cycle and `stale` holds the issue for the one cycle after
        # `pc` (or the run) changes; `prime` is the cycle after `start`, when the run parameters
        # latched by the controller in that same edge become visible.
        byte_addr = Signal(37)                   # byte address of instruction `pc`
        word_addr = Signal(32)                   # bus-word address of the next request
        past_count, past_mem = Signal(), Signal()
        stale, prime = Signal(), Signal()
        m.d.comb += self.rd_cmd.payload.eq(word_addr)
        m.d.sync += [past_count.eq(pc >= self.insn_count),
                     past_mem.eq(bad_base | (byte_addr + isa.INSN_BYTES > self.mem_bytes))]

        can_issue = running & ~self.stop & (fault == isa.ErrorCode.NONE) & ~stale
        new_insn = word == 0
        with m.If(can_issue):
            with m.If(new_insn & past_count):
                m.d.sync += fault.eq(isa.ErrorCode.FETCH_RANGE)
            with m.Elif(new_insn & past_mem):
                m.d.sync += fault.eq(isa.ErrorCode.DRAM_RANGE)
            with m.Else():
                m.d.comb += self.rd_cmd.valid.eq(~new_insn | (reserved < self.depth))

        issued = self.rd_cmd.valid & self.rd_cmd.ready
        next_pc = issued & (word == W - 1)
        m.d.sync += stale.eq(prime | next_pc)
        with m.If(issued):
            m.d.sync += word_addr.eq(word_addr + 1)
            with m.If(word == W - 1):
                m.d.sync += [word.eq(0), pc.eq(pc + 1), byte_addr.eq(byte_addr + isa.INSN_BYTES)]
            with m.Else():
                m.d.sync += word.eq(word + 1)
        m.d.sync += prime.eq(0)
        with m.If(prime):
            m.d.sync += [byte_addr.eq(self.insn_addr), word_addr.eq(self.insn_addr >> shift),
                         bad_base.eq(_misaligned(self.insn_addr, 1 << shift))]

        # Responses: assemble W words, lowest first.
        m.d.comb += self.rd_data.ready.eq(1)
        received = self.rd_data.valid & self.rd_data.ready
        assembled = Signal(isa.INSN_BITS)
        if W == 1:
            m.d.comb += assembled.eq(self.rd_data.payload)
        else:
            m.d.comb += assembled.eq(Cat(rx_shift[E:], self.rd_data.payload))
        with m.If(received):
            m.d.sync += rx_shift.eq(assembled)
            with m.If(rx_word == W - 1):
                m.d.sync += rx_word.eq(0)
            with m.Else():
                m.d.sync += rx_word.eq(rx_word + 1)
        m.d.comb += [queue.w_data.eq(assembled), queue.w_en.eq(received & (rx_word == W - 1))]

        m.d.comb += [
            self.insn.payload.eq(queue.r_data),
            self.insn.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.insn.ready),
        ]
        popped = self.insn.valid & self.insn.ready
        m.d.sync += [
            reserved.eq(reserved + (issued & new_insn) - popped),
            outstanding.eq(outstanding + issued - received),
        ]
        m.d.comb += [self.fault.eq(fault), self.idle.eq(outstanding == 0)]

        with m.If(self.start):
            m.d.sync += [pc.eq(0), word.eq(0), reserved.eq(0), rx_word.eq(0), running.eq(1),
                         fault.eq(isa.ErrorCode.NONE), prime.eq(1), stale.eq(1)]
        return m


class Controller(wiring.Component):
    """Fetch, check and in-order dispatch; status and the per-run parameters.

    Parameters
    ----------
    config : AccelConfig

    Members
    -------
    start, insn_addr, insn_count, mem_bytes, wr_lo, wr_hi, busy, done, error, error_pc :
        As the engine's top-level ports (``docs/architecture.md``).
    rd_cmd, rd_data :
        The fetch's share of the external read port.
    load_cmd, compute_cmd, store_cmd : ``Out(stream.Signature(isa.Instruction))``
        Dispatch to the units.
    load_busy, compute_busy, store_busy : ``In(1)``
        Unit busy (see the module docstring for the contract).
    compute_fault, store_fault : ``In(1)``
        For units that can stop an instruction on bad data (none do today: PARAM lanes are
        well defined by ``quant.effective_params``): ``BAD_FIELD`` with that instruction's index.
        Instructions dispatched to other units after it still complete.
    mem_bytes_q, wr_lo_q, wr_hi_q : ``Out(32)``
        The run's latched parameters, for the units.
    clear : ``Out(1)``
        The accepted start pulse (clears counters).
    dispatch_stall, retired : ``Out(1)``
        Counter events.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        cmd = stream.Signature(isa.Instruction)
        super().__init__({
            "start": In(1), "insn_addr": In(32), "insn_count": In(32), "mem_bytes": In(32),
            "wr_lo": In(32), "wr_hi": In(32),
            "busy": Out(1), "done": Out(1), "error": Out(isa.ErrorCode), "error_pc": Out(32),
            "rd_cmd": Out(stream.Signature(32)),
            "rd_data": In(stream.Signature(config.ext_data_bits)),
            "load_cmd": Out(cmd), "compute_cmd": Out(cmd), "store_cmd": Out(cmd),
            "load_busy": In(1), "compute_busy": In(1), "store_busy": In(1),
            "compute_fault": In(1), "store_fault": In(1),
            "mem_bytes_q": Out(32), "wr_lo_q": Out(32), "wr_hi_q": Out(32),
            "fetch_idle": Out(1),
            "clear": Out(1), "dispatch_stall": Out(1), "retired": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fetch = fetch = Fetch(self.config)
        m.submodules.checker = checker = Checker(self.config)
        wiring.connect(m, wiring.flipped(self.rd_cmd), fetch.rd_cmd)
        wiring.connect(m, wiring.flipped(self.rd_data), fetch.rd_data)

        insn_addr, insn_count = Signal(32), Signal(32)
        mem_bytes, wr_lo, wr_hi = self.mem_bytes_q, self.wr_lo_q, self.wr_hi_q
        m.d.comb += [fetch.insn_addr.eq(insn_addr), fetch.insn_count.eq(insn_count),
                     fetch.mem_bytes.eq(mem_bytes), self.fetch_idle.eq(fetch.idle)]
        m.d.comb += [checker.mem_bytes.eq(mem_bytes), checker.wr_lo.eq(wr_lo), checker.wr_hi.eq(wr_hi)]
        latency = checker.latency

        pc = Signal(32)                    # index of the instruction in `cur`
        cur = Signal(isa.Instruction)
        m.d.comb += checker.insn.eq(cur)
        code = checker.code                # registered; valid LATENCY cycles after `cur` is set
        check_wait = Signal(range(latency))
        pending_error = Signal(isa.ErrorCode)
        pending_pc = Signal(32)
        pending_valid = Signal()
        status_done = Signal()
        status_error = Signal(isa.ErrorCode)
        status_pc = Signal(32)
        m.d.comb += [self.done.eq(status_done), self.error.eq(status_error), self.error_pc.eq(status_pc)]

        units_idle = ~self.load_busy & ~self.compute_busy & ~self.store_busy
        # Index of the instruction each unit last received, for a data fault reported by the unit.
        compute_pc, store_pc = Signal(32), Signal(32)
        with m.If(self.compute_cmd.valid & self.compute_cmd.ready):
            m.d.sync += compute_pc.eq(pc)
        with m.If(self.store_cmd.valid & self.store_cmd.ready):
            m.d.sync += store_pc.eq(pc)
        # The earliest faulting unit instruction (a rising fault is seen once: the unit holds it).
        unit_fault = Signal()
        unit_fault_pc = Signal(32)
        fault_seen = Signal()
        m.d.comb += [
            unit_fault.eq((self.compute_fault | self.store_fault) & ~fault_seen),
            unit_fault_pc.eq(Mux(self.compute_fault & (~self.store_fault | (compute_pc < store_pc)),
                                 compute_pc, store_pc)),
        ]
        wait = cur.wait
        waits_ok = ((~wait.load | ~self.load_busy) & (~wait.compute | ~self.compute_busy)
                    & (~wait.store | ~self.store_busy))
        opcode = cur.opcode
        for port in (self.load_cmd, self.compute_cmd, self.store_cmd):
            m.d.comb += port.payload.eq(cur)

        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [self.clear.eq(1), fetch.start.eq(1)]
                    m.d.sync += [insn_addr.eq(self.insn_addr), insn_count.eq(self.insn_count),
                                 mem_bytes.eq(self.mem_bytes), wr_lo.eq(self.wr_lo), wr_hi.eq(self.wr_hi),
                                 status_done.eq(0), status_error.eq(isa.ErrorCode.NONE),
                                 status_pc.eq(0), pc.eq(0), pending_valid.eq(0), fault_seen.eq(0)]
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                m.d.comb += fetch.insn.ready.eq(1)
                with m.If(fault_seen):
                    m.next = "DRAIN"
                with m.Elif(fetch.insn.valid):
                    m.d.comb += checker.start.eq(1)
                    m.d.sync += [cur.eq(fetch.insn.payload), check_wait.eq(0)]
                    m.next = "CHECK"
                with m.Elif(fetch.idle & (fetch.fault != isa.ErrorCode.NONE)):
                    m.d.sync += [pending_error.eq(fetch.fault), pending_pc.eq(pc), pending_valid.eq(1)]
                    m.next = "DRAIN"
            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                # The instruction waits in `cur` while the pipelined checker works on it.
                m.d.sync += check_wait.eq(check_wait + 1)
                with m.If(check_wait == latency - 1):
                    m.next = "DISPATCH"
                with m.If(fault_seen):
                    m.next = "DRAIN"
            with m.State("DISPATCH"):
                m.d.comb += self.busy.eq(1)
                retire = Signal()
                with m.If(fault_seen):
                    m.next = "DRAIN"
                with m.Elif(code != isa.ErrorCode.NONE):
                    m.d.sync += [pending_error.eq(code), pending_pc.eq(pc), pending_valid.eq(1)]
                    m.next = "DRAIN"
                with m.Elif(opcode == isa.Opcode.END):
                    with m.If(units_idle):
                        m.d.comb += retire.eq(1)
                        m.next = "FINISH"
                    with m.Else():
                        m.d.comb += self.dispatch_stall.eq(1)
                with m.Else():
                    unit = Signal(isa.Unit)
                    with m.Switch(opcode):
                        with m.Case(isa.Opcode.LOAD):
                            m.d.comb += unit.eq(isa.Unit.LOAD)
                        with m.Case(isa.Opcode.STORE):
                            m.d.comb += unit.eq(isa.Unit.STORE)
                        with m.Case(isa.Opcode.CONV, isa.Opcode.MAXPOOL, isa.Opcode.GAP, isa.Opcode.ADD):
                            m.d.comb += unit.eq(isa.Unit.COMPUTE)
                        with m.Default():
                            m.d.comb += unit.eq(isa.Unit.NONE)
                    unit_idle = Mux(unit == isa.Unit.LOAD, ~self.load_busy,
                                    Mux(unit == isa.Unit.COMPUTE, ~self.compute_busy,
                                        Mux(unit == isa.Unit.STORE, ~self.store_busy, 1)))
                    go = waits_ok & unit_idle
                    m.d.comb += [
                        self.load_cmd.valid.eq(go & (unit == isa.Unit.LOAD)),
                        self.compute_cmd.valid.eq(go & (unit == isa.Unit.COMPUTE)),
                        self.store_cmd.valid.eq(go & (unit == isa.Unit.STORE)),
                    ]
                    accepted = Mux(unit == isa.Unit.LOAD, self.load_cmd.ready,
                                   Mux(unit == isa.Unit.COMPUTE, self.compute_cmd.ready,
                                       Mux(unit == isa.Unit.STORE, self.store_cmd.ready, 1)))
                    with m.If(go & accepted):
                        m.d.comb += retire.eq(1)
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "NEXT"
                    with m.Else():
                        m.d.comb += self.dispatch_stall.eq(1)
                m.d.comb += self.retired.eq(retire)
            with m.State("DRAIN"):
                # Stop fetching; let the units finish what they hold and outstanding reads drain.
                m.d.comb += [self.busy.eq(1), fetch.stop.eq(1), fetch.insn.ready.eq(1)]
                with m.If(units_idle & fetch.idle):
                    m.d.sync += [status_error.eq(pending_error), status_pc.eq(pending_pc)]
                    m.next = "IDLE"
            with m.State("FINISH"):
                m.d.comb += [self.busy.eq(1), fetch.stop.eq(1), fetch.insn.ready.eq(1)]
                with m.If(fault_seen):
                    m.next = "DRAIN"
                with m.Elif(fetch.idle):
                    m.d.sync += status_done.eq(1)
                    m.next = "IDLE"
        # A data fault in a unit: record the earliest (after the FSM: it outranks a later
        # instruction's own error recorded in the same cycle).
        with m.If(unit_fault & self.busy):
            m.d.sync += fault_seen.eq(1)
            with m.If(~pending_valid | (unit_fault_pc < pending_pc)):
                m.d.sync += [pending_error.eq(isa.ErrorCode.BAD_FIELD), pending_pc.eq(unit_fault_pc),
                             pending_valid.eq(1)]
        return m
