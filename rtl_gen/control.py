"""The engine's front end: instruction fetch, legality check, in-order dispatch and the error status.

:class:`Checker` is the pipelined RTL twin of :func:`sqzhw.isa.check`: the same rules in the same
order (the first violation found decides the :class:`~sqzhw.isa.ErrorCode`), followed by the DRAM
range rules that :func:`~sqzhw.isa.check` leaves to the engine (a LOAD's reads below ``mem_bytes``,
a STORE's writes inside ``[wr_lo, wr_hi)``). Its tests compare it with :func:`~sqzhw.isa.check` on
fuzzed words.

:class:`Fetch` reads 128-bit instructions from external memory (``128 / ext_data_bits`` bus words
each, lowest word first) into a small prefetch queue (``AccelConfig.fetch_depth``), or, with
``fetch_depth = 0``, into a single register assembled in place that is also the decode register:
the next instruction's first word is then requested the cycle after the dispatch that frees it
(plus one cycle to settle its range flags), so each instruction's front-end time is its fetch
(``128 / ext_data_bits`` words and the memory latency), its check and its dispatch. It reserves a queue slot before it requests an
instruction, so it always accepts the read data it asked for and never blocks the shared read port.
Fetching instruction ``insn_count`` is ``FETCH_RANGE``; an instruction whose bytes reach past
``mem_bytes`` (or any, when ``insn_addr`` is not word aligned) is ``DRAM_RANGE``, as in the golden
model. Neither is reported until the dispatcher actually reaches that
instruction, so prefetching never raises an error a program would not hit.

:class:`Controller` runs the program: ``start`` latches the writable window and clears the status
(the fetch takes ``insn_addr``/``insn_count`` in that cycle; ``mem_bytes`` is static and read as
given); each instruction is popped from the queue, checked (``Checker.latency`` cycles, pipelined;
the instruction waits in ``cur``, or in the fetch register without a queue), and dispatched when its unit and the units named in its ``wait``
flags are idle. A unit contract: ``busy`` is high from the cycle after its ``cmd`` handshake until
every effect of the instruction is complete (buffer writes done, external writes handshaken).
``END`` waits for all units and then sets ``done``. On an error the controller dispatches nothing
more, lets the units finish the (legal) instructions they hold and the fetch drain its outstanding
reads, and only then sets ``error``/``error_pc`` and drops ``busy``: the memory then holds exactly
the effects of the instructions before the failing one, as in the golden model.

Worst case (no hang): once memory answers every request, a unit finishes an instruction in at most
``rows * row_len * words_per_entry`` bus transfers (LOAD/STORE) or the compute unit's bounded loop
count; fetch has at most ``max(1, fetch_depth) * 128 / ext_data_bits`` reads outstanding. So ``busy`` falls a
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


def rotate_fields(m, word, rotate):
    """Rotate the LOAD/STORE ``dram_addr`` (``rotate[0]``) and ``dram_stride`` (``rotate[1]``)
    fields of the decode register ``word`` right by :data:`Checker.SERIAL_DRAM_BITS` bits: the
    serial :class:`Checker` reads them at their low bits (:attr:`Checker.rotate`); they are back in
    place when the check is over."""
    for i, name in enumerate(("dram_addr", "dram_stride")):
        info = isa.PAYLOAD_FIELDS[isa.Opcode.LOAD][name]
        bits = word.as_value() if hasattr(word, "as_value") else word
        field = bits[info.offset:info.offset + info.width]
        with m.If(rotate[i]):
            m.d.sync += field.eq(field.rotate_right(Checker.SERIAL_DRAM_BITS))


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
       ``(rows-1)*dram_stride`` / ``out_h*out_w``, each on one shared multiplier (the stride's
       bits above 18 as a separate shift-and-add part), and the bytes of one LOAD/STORE row;
    2. ``blocks * plane`` products (CONV/MAXPOOL) and the DRAM end address of LOAD/STORE (which
       also adds the two parts of ``(rows-1)*dram_stride``);
    3. every ``start + count > depth`` and DRAM-range comparison, as one registered flag each;
    4. the priority of the rules (the first violation wins), into :attr:`code`.

    The ``blocks * plane`` products only need the low ``depth.bit_length()`` bits of ``plane``: with
    ``blocks >= 1`` (a zero is ``BAD_FIELD`` earlier in the priority) a ``plane`` of ``2**w`` or more
    already exceeds the buffer. That keeps each such multiplier within one 18x18 DSP.

    With ``AccelConfig.serial_products`` there are no multipliers and no parallel span adders:
    the two stage-1 products (``rows*row_len`` / ``in_h*in_w`` / ``blocks*pixels`` and
    ``out_h*out_w``) are shift-and-add, MSB first, saturated at the deepest buffer's bits (a
    sticky flag stands for the high bits: a product only grows as bits are shifted in), in
    :data:`SERIAL_A_BITS` cycles started by a ``start`` pulse in the clock edge that loads
    ``insn``. Every buffer span ``start + m * P > depth`` is then a serial-parallel multiply-add
    compared serially with the depth (:data:`SERIAL_SPAN_BITS` bits per cycle, least significant
    first, over :attr:`span_steps` cycles): during stage 1 the CONV weight and GAP accumulator
    spans (``P`` a constant), after it the spans on the two products (the ``blocks`` factor is
    the serial ``m``), all into one sticky flag (every span violation is ``BUF_RANGE`` after all
    of its instruction's field rules). :attr:`code` is valid :attr:`latency` =
    :attr:`serial_steps` + 2 edges after the ``start`` edge (the controller reads it exactly
    then). The DRAM
    span of a LOAD/STORE is then checked bit-serially, least significant bits first, in the same
    cycles (:data:`SERIAL_DRAM_BITS` bits per cycle over :data:`SERIAL_DRAM_STEPS`, after one
    cycle that loads the row bytes into the accumulator): the end address comes out of a
    serial-parallel multiplier and the three comparisons are serial. Its serial operands are read
    at the low bits of registers that rotate: the latched window here, and ``dram_addr`` /
    ``dram_stride`` in the decode register, which its owner turns as :attr:`rotate` says
    (:func:`rotate_fields`); every rotation is complete, the fields back in place, before
    :attr:`code` is read.

    Every buffer-span comparison ``start + count > depth`` is done on ``depth.bit_length() + 1``
    bits: a start or count of ``2**w > depth`` or more is over on its own.

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
        External memory size and the writable window of the run (the window is latched with
        ``load_window``).
    load_window : ``In(1)``
        Latch ``wr_lo``/``wr_hi`` (the run's start).
    code : ``Out(isa.ErrorCode)``
        ``NONE`` when the instruction may execute, else the first violation's code.
    rotate : ``Out(2)``
        With ``serial_products``: rotate the decode register's ``dram_addr`` (bit 0) and
        ``dram_stride`` (bit 1) in this clock edge (:func:`rotate_fields`); 0 otherwise.
    """

    #: Clock edges from stable inputs to a valid :attr:`code` (with multipliers).
    LATENCY = 4
    #: Serial stage 1 iterates over the bits of rows / blocks / in_h / rows-1 / out_h (<= 10 bits).
    SERIAL_A_BITS = 10
    #: The serial buffer-span checks take this many bits per cycle (2 would save 6 cycles of
    #: decode latency for about 55 more LUTs).
    SERIAL_SPAN_BITS = 1
    #: The serial DRAM range check takes this many bits per cycle ...
    SERIAL_DRAM_BITS = 2
    #: ... over this many cycles (34 bits: a 32-bit address plus a 32-bit span plus a row),
    #: within stages 1 and 2.
    SERIAL_DRAM_STEPS = 17

    insn: In(isa.Instruction)
    start: In(1)
    mem_bytes: In(32)
    wr_lo: In(32)
    wr_hi: In(32)
    load_window: In(1)
    code: Out(isa.ErrorCode)
    rotate: Out(2)

    def __init__(self, config: AccelConfig):
        self.config = config
        #: Clock edges from the ``start`` edge (or stable inputs) to a valid :attr:`code`.
        #: Steps of the serial checker: products (A + B) and the DRAM span (1 + D) side by side.
        c = config
        span_bits = max(c.act_buf_entries, c.wgt_buf_tiles, c.param_buf_entries, c.out_buf_entries,
                        c.lane_blocks * c.acc_buf_entries).bit_length()
        #: Steps of one serial buffer-span check (SERIAL_SPAN_BITS bits each, least significant first).
        self.span_steps = -(-span_bits // self.SERIAL_SPAN_BITS)
        #: First step of the span checks on the products of stage 1 (after the first span check
        #: and its latch step).
        self.span_b0 = max(self.SERIAL_A_BITS, self.span_steps + 1)
        self.serial_steps = max(self.span_b0 + self.span_steps + 1, self.SERIAL_DRAM_STEPS + 1)
        self.latency = self.serial_steps + 2 if config.serial_products else self.LATENCY
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

        serial = c.serial_products
        # Every register here is recomputed from `insn` before `code` is read: no reset needed
        # (on iCE40 a reset on a register with an enable costs a LUT per bit).
        def reg(shape, **kw):
            return Signal(shape, reset_less=True, **kw)

        # Buffer spans only matter up to the deepest buffer: the serial products saturate there.
        w_max = max(c.act_buf_entries, c.wgt_buf_tiles, c.param_buf_entries, c.out_buf_entries,
                    c.acc_buf_entries).bit_length()

        # Stage 1: shared multipliers, their inputs muxed by opcode (no opcode needs both at once).
        # p1: LOAD/STORE rows*row_len, CONV/MAXPOOL in_h*in_w, GAP blocks*pixels;
        # p2: LOAD/STORE (rows-1)*dram_stride, CONV/MAXPOOL out_h*out_w. With serial products both
        # keep only their low w_max bits and a sticky `*_big` flag (2**w_max or more), and p2 is
        # only the CONV/MAXPOOL product: the DRAM span is checked bit-serially (below).
        p1 = reg(w_max if serial else 26)
        p2 = reg(w_max if serial else 32)
        p1_big = reg(1) if serial else Const(0)
        p2_big = reg(1) if serial else Const(0)
        # Serial checkers have cycles to spare (the flags settle long before `code` is read):
        # stage 1's taps and stage 3's flags are then plain logic, not registers.
        staged = m.d.comb if serial else m.d.sync
        taps = Signal(13) if serial else reg(13)    # CONV weight tiles: cin_blocks * k * k
        p2_a = Mux(is_ls, (ld.rows - 1)[:10], sp_oh)
        p1_a = Mux(is_ls, ld.rows, Mux(is_gap, gp.blocks, sp_h))
        p1_b = Mux(is_ls, ld.row_len, Mux(is_gap, gp.pixels, sp_w))
        row_bytes = Mux(opcode == Op.LOAD.value, _row_bytes_load(c, target, ld.row_len),
                        _row_bytes_store(c, source, ld.row_len))
        # * 9 as a shift and an add: no multiplier for a constant.
        staged += taps.eq(Mux(cv.kernel3, (cv.cin_blocks << 3) + cv.cin_blocks, cv.cin_blocks))

        # Stage 2: blocks * plane on the low bits that matter (see the class docstring).
        w_act = c.act_buf_entries.bit_length()
        w_out = c.out_buf_entries.bit_length()
        # blocks * in_h*in_w (CONV/MAXPOOL) and blocks * out_h*out_w (MAXPOOL), valid when the
        # *_big flag is 0 (with serial products: saturated at the buffer's bits).
        p3 = reg(9 + w_act)
        p4 = reg(9 + w_out)
        p3_big, p4_big = reg(1), reg(1)
        f_mem, f_window = reg(1), reg(1)
        # The run's writable window, latched by `load_window` (no reset: it is loaded before use).
        wr_lo, wr_hi = reg(32, name="wr_lo_q"), reg(32, name="wr_hi_q")
        if not serial:
            with m.If(self.load_window):
                m.d.sync += [wr_lo.eq(self.wr_lo), wr_hi.eq(self.wr_hi)]
            # (rows-1) * dram_stride: the low 18 stride bits on one 18x18 DSP, the top 4 by
            # shift-and-add in LUTs (a second DSP for a 10x4 product would be a waste on the
            # DSP-bound ulx3s build).
            p2_lo = p2_a * Mux(is_ls, ld.dram_stride[:18], sp_ow)
            p2_hi = Signal(14)
            stride_hi = ld.dram_stride[18:]
            m.d.comb += p2_hi.eq(sum(Mux(is_ls & stride_hi[i], p2_a << i, 0) for i in range(len(stride_hi))))
            # The two parts of p2 are added in stage 2, not after the multiplier: the DSP may be
            # placed far from this logic (the array fills the DSP columns), and its combinational
            # product plus that add was the ulx3s build's critical path.
            p2_lo_q, p2_hi_q = reg(len(p2_lo)), reg(len(p2_hi))
            m.d.sync += [p1.eq(p1_a * p1_b), p2_lo_q.eq(p2_lo), p2_hi_q.eq(p2_hi)]
            m.d.sync += p2.eq(p2_lo_q + (p2_hi_q << 18))     # stage 2: for stage 3's f_acc
            row_bytes_q = reg(len(row_bytes))
            end = reg(34)            # one past the last DRAM byte touched (LOAD/STORE)
            m.d.sync += [row_bytes_q.eq(row_bytes),
                         end.eq(ld.dram_addr + p2_lo_q + (p2_hi_q << 18) + row_bytes_q)]
            # p2's bits below 18 are p2_lo_q's: no adder in front of the stage-2 multiplier.
            assert w_out <= 18      # out_buf_entries <= 65536 (AccelConfig)
            p2_low, p2_high = p2_lo_q[:w_out], (p2_lo_q[w_out:] != 0) | (p2_hi_q != 0)
            m.d.sync += [p3_big.eq(p1[w_act:] != 0), p4_big.eq(p2_high),
                         p3.eq(sp_blocks * p1[:w_act]), p4.eq(sp_blocks * p2_low)]
            m.d.sync += [f_mem.eq(end > self.mem_bytes),
                         f_window.eq((st.dram_addr < wr_lo) | (end > wr_hi))]
        else:
            # Shift-and-add, most significant multiplier bit first: x = 2*x + (bit ? b : 0).
            A = self.SERIAL_A_BITS
            R, D = self.SERIAL_DRAM_BITS, self.SERIAL_DRAM_STEPS
            assert R * D >= 34
            N = self.serial_steps
            # A product of 2**w or more stays so (x only grows): a sticky flag replaces its high bits.
            step = Signal(range(N + 1), init=N)     # N: idle, results final

            def sat_step(x, big, take, b, w, b_big):
                """x = 2*x + (take ? b : 0) on w bits; `big` is set once it reaches 2**w."""
                nxt = Cat(Const(0, 1), x) + Mux(take, b[:w], 0)
                return [x.eq(nxt[:w]), big.eq(big | (nxt[w:] != 0) | b_big)]

            def wide(take, b):
                return take & (b[w_max:] != 0) if len(b) > w_max else 0

            # The DRAM span, least significant bits first, R bits per step in steps 1 .. D (in the
            # shadow of stages 1 and 2): end = dram_addr + (rows-1)*dram_stride + row_bytes by a
            # serial-parallel multiplier whose accumulator starts at row_bytes (step 0) and takes
            # dram_addr's bits, and end > mem_bytes, end > wr_hi, dram_addr < wr_lo as serial
            # comparisons (a later bit decides where the bits differ). The serial operands are
            # read at fixed bits of registers that rotate by R bits per step and are back in place
            # when the step is over: dram_addr and dram_stride in the decode register (the
            # register's owner applies :attr:`rotate`, see :func:`rotate_fields`) and the latched
            # window here. A bit select of a register costs about a LUT per bit on iCE40; the
            # rotation rides in the LUT that already feeds each flip-flop.
            w_acc_s = max(11, len(row_bytes) + 1)
            acc = reg(w_acc_s)  # the running sum above bit i (row_bytes, then multiplier carries)
            gt_mem, gt_hi, lt_lo = reg(1), reg(1), reg(1)
            n_bits = R * D

            def lanes(value):
                """value (zero-padded to R*D bits) split into R sequences: bit R*j + r at [r][j]."""
                bits = Cat(value, Const(0, n_bits - len(value)))
                return [Cat(*(bits[R * j + r] for j in range(D))) for r in range(R)]

            def rotating(value, rot):
                """The R low bits of a register rotated by R bits per step while `rot`: its bits
                R*j .. R*j+R-1 in step j+1 (zero once its last bits have passed)."""
                return value[:R] & Mux(rot, (1 << R) - 1, 0)

            n_addr = 32 // R             # steps for which each rotating register turns
            n_stride = -(-len(ld.dram_stride) // R)
            assert 32 % R == 0 and len(ld.dram_stride) % R == 0
            busy_dram = (step >= 1) & (step <= D)
            rot_addr = is_ls & (step >= 1) & (step <= n_addr) & ~self.start
            rot_stride = is_ls & (step >= 1) & (step <= n_stride) & ~self.start
            rot_win = (step >= 1) & (step <= n_addr) & ~self.start
            m.d.comb += self.rotate.eq(Cat(rot_addr, rot_stride))
            with m.If(self.load_window):
                m.d.sync += [wr_lo.eq(self.wr_lo), wr_hi.eq(self.wr_hi)]
            with m.Elif(rot_win):
                m.d.sync += [wr_lo.eq(wr_lo.rotate_right(R)), wr_hi.eq(wr_hi.rotate_right(R))]

            mul_a = (ld.rows - 1)[:10]
            b_bits = rotating(ld.dram_stride, rot_stride)
            d_bits = rotating(ld.dram_addr, rot_addr)
            h_bits = rotating(wr_hi, rot_win)
            l_bits = rotating(wr_lo, rot_win)
            mem_ops = lanes(self.mem_bytes)   # a constant on boards
            with m.If(step == 0):
                m.d.sync += [acc.eq(row_bytes), gt_mem.eq(0), gt_hi.eq(0), lt_lo.eq(0)]
            with m.Elif(busy_dram):
                a_, g_m, g_h, l_l = acc, gt_mem, gt_hi, lt_lo
                for r in range(R):
                    b_i, d_i, h_i, l_i = b_bits[r], d_bits[r], h_bits[r], l_bits[r]
                    m_i = mem_ops[r].bit_select((step - 1)[:len(step)], 1)
                    total = a_ + Mux(b_i, mul_a, 0) + d_i
                    e_i = total[0]
                    a_ = total[1:]
                    g_m = Mux(e_i ^ m_i, e_i, g_m)
                    g_h = Mux(e_i ^ h_i, e_i, g_h)
                    l_l = Mux(d_i ^ l_i, l_i, l_l)
                m.d.sync += [acc.eq(a_), gt_mem.eq(g_m), gt_hi.eq(g_h), lt_lo.eq(l_l)]
            m.d.comb += [f_mem.eq(gt_mem), f_window.eq(lt_lo | gt_hi)]

            with m.If(self.start):
                m.d.sync += [step.eq(0), p1.eq(0), p1_big.eq(0), p2.eq(0), p2_big.eq(0)]
            with m.Elif(step < A):
                bit = (A - 1 - step)[:4]
                take = p1_a.bit_select(bit, 1)
                m.d.sync += sat_step(p1, p1_big, take, p1_b, w_max, wide(take, p1_b))
                take = sp_oh.bit_select(bit, 1)
                m.d.sync += sat_step(p2, p2_big, take, sp_ow, w_max, wide(take, sp_ow))
                m.d.sync += step.eq(step + 1)
            with m.Elif(step < N):
                m.d.sync += step.eq(step + 1)

            # Buffer spans, bit-serially: every `start + m * P > depth` is a serial-parallel
            # multiply-add (the serial operands `start` and `m` are fields of the instruction, read
            # R bits per step, least significant first; `P` is parallel) compared serially with the
            # constant depth, on the low T bits (2**T above every depth); a high bit of `start` or
            # `m`, a carry left in the accumulator or a saturated `P` is over on its own. Unit 3
            # runs twice: in stage 1 (P a constant) the CONV weight span, wgt_addr + cin_blocks*k*k,
            # and the GAP accumulator span as blocks + K*acc_addr > K*depth (the same as
            # acc_addr + ceil(blocks/K) > depth); then (P = p1) the LOAD/STORE span
            # sram_addr + 1*p1 and the CONV/MAXPOOL/GAP input span in_addr + blocks*p1 (GAP: 1*p1).
            # Unit 4 (P = p2) checks acc_addr + 1*p2 (CONV) and out_addr + blocks*p2 (MAXPOOL).
            # Every span gives BUF_RANGE after all of its instruction's field rules, so one
            # sticky flag holds them all.
            S, B0 = self.span_steps, self.span_b0
            R = self.SERIAL_SPAN_BITS
            T = S * R
            f_buf = reg(1)

            # The step within a span check: a small counter of its own, so that each serial
            # operand is an S-way mux of its bits (a bit select by `step` would be far wider).
            sj = Signal(range(max(2, S)), reset_less=True)

            def serial_bits(value):
                """Bits R*sj .. R*sj+R-1 of value's low T bits."""
                v = Cat(value[:T], Const(0, max(0, T - len(value))))
                return [Cat(*(v[R * j + r] for j in range(S))).bit_select(sj, 1) for r in range(R)]

            def hi(*values):
                """Bits at T and above: a span over the buffer on their own."""
                return Cat(*(v[T:] for v in values if len(v) > T)).any() if any(len(v) > T for v in values) else Const(0)

            def unit(name, s_bits, m_bits, P, d_bits, active, clear):
                acc = reg(len(P), name=f"span{name}_acc")
                gt = reg(1, name=f"span{name}_gt")
                a_, g = acc, gt
                for r in range(R):
                    total = a_ + Mux(m_bits[r], P, 0) + s_bits[r]
                    e = total[0]
                    a_ = total[1:][:len(P)]
                    g = Mux(e ^ d_bits[r], e, g)
                with m.If(clear):
                    m.d.sync += [acc.eq(0), gt.eq(0)]
                with m.Elif(active):
                    m.d.sync += [acc.eq(a_), gt.eq(g)]
                return gt | (acc != 0)

            phase_a = step < S
            latch_a = step == S
            phase_b = (step >= B0) & (step < B0 + S)
            latch_b = step == B0 + S
            blocks_bits = serial_bits(sp_blocks)
            k2 = Mux(cv.kernel3, 9, 1)
            # Unit 3, stage 1 (CONV, GAP) then stage 2 (LOAD, STORE, CONV, MAXPOOL, GAP).
            s3 = [Mux(phase_a, Mux(is_conv, a_bit, g_bit), Mux(is_ls, l_bit, i_bit))
                  for a_bit, g_bit, l_bit, i_bit in zip(serial_bits(cv.wgt_addr),
                                                        serial_bits(gp.blocks),
                                                        serial_bits(ld.sram_addr),
                                                        serial_bits(cv.in_addr))]
            first_b = sj == 0
            m3 = [Mux(phase_a, Mux(is_conv, a_bit, g_bit),
                      Mux(is_conv | is_mp, b_bit, first_b & (r == 0)))
                  for r, (a_bit, g_bit, b_bit) in enumerate(zip(serial_bits(cv.cin_blocks),
                                                                serial_bits(gp.acc_addr),
                                                                blocks_bits))]
            P3 = Mux(phase_a, Mux(is_conv, k2, K), p1)
            load_depth_s = Mux(target == isa.LoadTarget.ACT.value, c.act_buf_entries,
                               Mux(target == isa.LoadTarget.WGT.value, c.wgt_buf_tiles,
                                   c.param_buf_entries))
            store_depth_s = Mux(source == isa.StoreSource.OUT.value, c.out_buf_entries,
                                c.acc_buf_entries)
            depth_a = Mux(is_conv, c.wgt_buf_tiles, K * c.acc_buf_entries)
            depth_b = Mux(opcode == Op.LOAD.value, load_depth_s,
                          Mux(opcode == Op.STORE.value, store_depth_s, c.act_buf_entries))
            d3 = [Mux(phase_a, a_bit, b_bit) for a_bit, b_bit in zip(serial_bits(depth_a),
                                                                   serial_bits(depth_b))]
            over3 = unit(3, s3, m3, P3, d3, phase_a | phase_b, self.start | latch_a)
            # Unit 4, stage 2 (CONV, MAXPOOL).
            s4 = [Mux(is_conv, a_bit, o_bit) for a_bit, o_bit in zip(serial_bits(cv.acc_addr),
                                                                    serial_bits(mp.out_addr))]
            m4 = [Mux(is_conv, first_b & (r == 0), b_bit) for r, b_bit in enumerate(blocks_bits)]
            d4 = serial_bits(Mux(is_conv, c.acc_buf_entries, c.out_buf_entries))
            over4 = unit(4, s4, m4, p2, d4, phase_b, self.start)

            hi_a = Mux(is_conv, hi(cv.wgt_addr, cv.cin_blocks), is_gap & hi(gp.blocks, gp.acc_addr))
            hi_3b = Mux(is_ls, hi(ld.sram_addr), hi(cv.in_addr) | ((is_conv | is_mp) & hi(sp_blocks)))
            hi_4b = Mux(is_conv, hi(cv.acc_addr), hi(mp.out_addr, sp_blocks))
            with m.If(self.start | latch_a):
                m.d.sync += sj.eq(0)
            with m.Elif(phase_a | phase_b):
                m.d.sync += sj.eq(sj + 1)
            with m.If(self.start):
                m.d.sync += f_buf.eq(0)
            with m.Elif(latch_a):
                m.d.sync += f_buf.eq(f_buf | ((is_conv | is_gap) & (over3 | hi_a)))
            with m.Elif(latch_b):
                m.d.sync += f_buf.eq(f_buf | ((is_ls | is_conv | is_mp | is_gap) & (over3 | hi_3b | p1_big))
                                     | ((is_conv | is_mp) & (over4 | hi_4b | p2_big)))
            assert 2 ** T > max(c.act_buf_entries, c.wgt_buf_tiles, c.param_buf_entries,
                                c.out_buf_entries, K * c.acc_buf_entries)

        # Stage 3: one registered flag per range comparison.
        def over(start, count, depth, w=None):
            """start + count > depth, on the bits of the depth: with depth < 2**w, a start or a
            count of 2**w or more is over on its own, and the rest is a (w+1)-bit add."""
            w = depth.bit_length() if w is None else w
            flag = start[:w] + count[:w] > depth
            for v in (start, count):
                if len(v) > w:
                    flag = flag | (v[w:] != 0)
            return flag

        load_depth = Mux(target == isa.LoadTarget.ACT.value, c.act_buf_entries,
                         Mux(target == isa.LoadTarget.WGT.value, c.wgt_buf_tiles, c.param_buf_entries))
        in_addr = Mux(is_conv, cv.in_addr, mp.in_addr)
        # GAP: acc_addr + ceil(blocks / K) > depth  <=>  blocks > (depth - acc_addr) * K
        # (an acc_addr of 2**w or more is past the end on its own: room on w + 1 signed bits)
        w_acc = c.acc_buf_entries.bit_length()
        room = Signal(range(-(1 << w_acc), c.acc_buf_entries + 1))
        m.d.comb += room.eq(c.acc_buf_entries - gp.acc_addr[:w_acc])
        flag = (lambda: Signal()) if serial else (lambda: reg(1))
        f_add = flag()
        w_load = max(c.act_buf_entries, c.wgt_buf_tiles, c.param_buf_entries).bit_length()
        if serial:
            # One sticky flag from the serial span units (above) for every span but ADD's.
            f_load_buf = f_out_buf = f_acc_buf = f_in = f_wgt = f_acc = f_pool_out = f_buf
            f_gap_in = f_gap_acc = f_buf
        else:
            f_load_buf, f_out_buf, f_acc_buf = flag(), flag(), flag()
            f_in, f_wgt, f_acc, f_pool_out = flag(), flag(), flag(), flag()
            f_gap_in, f_gap_acc = flag(), flag()
            staged += [
            f_load_buf.eq(p1_big | over(ld.sram_addr, p1, load_depth, w_load)),
            f_out_buf.eq(p1_big | over(st.sram_addr, p1, c.out_buf_entries)),
            f_acc_buf.eq(p1_big | over(st.sram_addr, p1, c.acc_buf_entries)),
            f_in.eq(p3_big | over(in_addr, p3, c.act_buf_entries)),
            f_wgt.eq(over(cv.wgt_addr, taps, c.wgt_buf_tiles)),
            f_acc.eq(p2_big | over(cv.acc_addr, p2, c.acc_buf_entries)),
            f_pool_out.eq(p4_big | over(mp.out_addr, p4, c.out_buf_entries)),
            f_gap_in.eq(p1_big | over(gp.in_addr, p1, c.act_buf_entries)),
            f_gap_acc.eq((gp.acc_addr[w_acc:] != 0) | (room < 0) | (gp.blocks > room * K)),
            ]
        staged += [
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
        Instructions held or in flight at most. With 1 the instruction is assembled in place in a
        single register (no queue), which :attr:`insn` presents until it is popped.

    Members
    -------
    start : ``In(1)``
        Begin fetching at instruction 0 (clears the queue); ``insn_addr`` and ``insn_count`` are
        read in this cycle only.
    stop : ``In(1)``
        Issue no more reads (the run ended); outstanding reads still drain.
    insn_addr, insn_count : ``In(32)``
        Run parameters, sampled with ``start``.
    mem_bytes : ``In(32)``
        Read from the cycle after ``start`` on and held stable during a run.
    rotate : ``In(2)``
        With ``depth`` 1: rotate fields of the held instruction for the serial checker
        (:func:`rotate_fields`); only while it is held and no read is outstanding.
    rd_cmd : ``Out(stream.Signature(32))``
        Word-address read requests.
    rd_data : ``In(stream.Signature(ext_data_bits))``
        Read data, in request order; always accepted.
    insn : ``Out(stream.Signature(isa.Instruction))``
        Fetched instructions, in program order. The payload is stable while ``valid`` and not popped.
        With ``depth`` 1 its ``reserved`` bits are 0 (no instruction field lives there).
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
        if depth < 1:
            raise ValueError(f"Fetch depth must be at least 1, not {depth}")
        self.config = config
        self.depth = depth
        super().__init__({
            "start": In(1), "stop": In(1),
            "insn_addr": In(32), "insn_count": In(32), "mem_bytes": In(32),
            "rotate": In(2),
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

        left = Signal(32)                        # instructions left to request (insn_count - pc)
        word = Signal(range(W))                  # next word of it
        reserved = Signal(range(self.depth + 1)) # queue slots held or in flight
        outstanding = Signal(range(self.depth * W + 1))
        rx_word = Signal(range(W))
        running = Signal()
        fault = Signal(isa.ErrorCode)
        bad_base = Signal()                      # insn_addr not word aligned: fetch is DRAM_RANGE

        # The request address and the range flags of the next instruction are registers, so that
        # `rd_cmd.valid`/`payload` come straight from flip-flops: they feed the shared read port's
        # arbiter and the memory controller combinationally (formerly the board's critical path).
        # The flags are recomputed every cycle and `stale` holds the issue for the one cycle after
        # the address (or the run) changes; `prime` is the cycle after `start` (the run's
        # parameters are settled from then on). The range check works in bus
        # words: byte_addr + 16 > mem_bytes  <=>  word_addr + W > mem_bytes // E (both sides of the
        # first are multiples of E on the left), and word_addr never passes mem_bytes // E.
        word_addr = Signal(32 - shift)           # bus-word address of the next request
        past_count, past_mem = Signal(), Signal()
        stale, prime = Signal(), Signal()
        m.d.comb += self.rd_cmd.payload.eq(word_addr)
        # word_addr + W > mem_words, as a compare with a bound (a constant on boards: no adder).
        mem_words = self.mem_bytes >> shift
        m.d.sync += [past_count.eq(left == 0),
                     past_mem.eq(bad_base | (mem_words < W) | (word_addr > mem_words - W))]

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
                m.d.sync += [word.eq(0), left.eq(left - 1)]
            with m.Else():
                m.d.sync += word.eq(word + 1)
        m.d.sync += prime.eq(0)

        # Responses: W words per instruction, lowest first.
        m.d.comb += self.rd_data.ready.eq(1)
        received = self.rd_data.valid & self.rd_data.ready
        with m.If(received):
            with m.If(rx_word == W - 1):
                m.d.sync += rx_word.eq(0)
            with m.Else():
                m.d.sync += rx_word.eq(rx_word + 1)
        last_word = received & (rx_word == W - 1)
        popped = self.insn.valid & self.insn.ready

        if self.depth == 1:
            # One instruction, assembled in place: word k goes straight into its slice (a clock
            # enable per slice, no shifter, no queue). A slot is reserved before its first word is
            # requested, so no word arrives while the instruction is still held.
            hold = Signal(isa.INSN_BITS, reset_less=True)   # (a reset would cost a LUT per bit)
            full = Signal()
            used = isa.Instruction.as_shape()["reserved"].offset   # the reserved bits stay 0
            for k in range(W):
                if k * E < used:
                    n = min(E, used - k * E)
                    with m.If(received & (rx_word == k)):
                        m.d.sync += hold[k * E:k * E + n].eq(self.rd_data.payload[:n])
            rotate_fields(m, hold, self.rotate)
            with m.If(last_word):
                m.d.sync += full.eq(1)
            with m.Elif(popped):
                m.d.sync += full.eq(0)
            with m.If(self.start):
                m.d.sync += full.eq(0)
            m.d.comb += [self.insn.payload.eq(hold), self.insn.valid.eq(full)]
        else:
            # Reset by start: drops instructions left over from a previous run.
            queue = fifo.SyncFIFO(width=isa.INSN_BITS, depth=self.depth)
            m.submodules.queue = ResetInserter(self.start)(queue)
            rx_shift = Signal(isa.INSN_BITS)
            assembled = Signal(isa.INSN_BITS)
            if W == 1:
                m.d.comb += assembled.eq(self.rd_data.payload)
            else:
                m.d.comb += assembled.eq(Cat(rx_shift[E:], self.rd_data.payload))
            with m.If(received):
                m.d.sync += rx_shift.eq(assembled)
            m.d.comb += [queue.w_data.eq(assembled), queue.w_en.eq(last_word),
                         self.insn.payload.eq(queue.r_data), self.insn.valid.eq(queue.r_rdy),
                         queue.r_en.eq(self.insn.ready)]

        m.d.sync += [
            reserved.eq(reserved + (issued & new_insn) - popped),
            outstanding.eq(outstanding + issued - received),
        ]
        m.d.comb += [self.fault.eq(fault), self.idle.eq(outstanding == 0)]

        with m.If(self.start):
            m.d.sync += [word.eq(0), reserved.eq(0), rx_word.eq(0), running.eq(1),
                         left.eq(self.insn_count), word_addr.eq(self.insn_addr >> shift),
                         bad_base.eq(_misaligned(self.insn_addr, 1 << shift)),
                         fault.eq(isa.ErrorCode.NONE), prime.eq(1), stale.eq(1)]
        return m


class Controller(wiring.Component):
    """Fetch, check and in-order dispatch; status and the per-run parameters.

    Parameters
    ----------
    config : AccelConfig
        ``config.fetch_depth`` sets the prefetch: with ``N > 0`` a :class:`Fetch` queue of ``N``
        instructions feeds a decode register ``cur``; with ``0`` the fetch's single instruction
        register is the decode register (the next fetch starts when the instruction is dispatched).
    unit_faults : bool
        Whether ``compute_fault``/``store_fault`` are driven (a unit that can stop on bad data).
        Without them the failing pc is the retired count itself and no per-unit pc is kept.

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
        Instructions dispatched to other units after it still complete. Used with ``unit_faults``.
    clear : ``Out(1)``
        The accepted start pulse (clears counters).
    dispatch_stall, retired : ``Out(1)``
        Counter events.
    retired_count : ``Out(32)``
        Instructions retired since start (NOP and END included): the ``INSNS`` counter.
    """

    def __init__(self, config: AccelConfig, unit_faults: bool = False):
        self.config = config
        self.unit_faults = unit_faults
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
            "fetch_idle": Out(1),
            "clear": Out(1), "dispatch_stall": Out(1), "retired": Out(1), "retired_count": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        prefetch = self.config.fetch_depth > 0
        m.submodules.fetch = fetch = Fetch(self.config, depth=max(1, self.config.fetch_depth))
        m.submodules.checker = checker = Checker(self.config)
        wiring.connect(m, wiring.flipped(self.rd_cmd), fetch.rd_cmd)
        wiring.connect(m, wiring.flipped(self.rd_data), fetch.rd_data)

        # insn_addr and insn_count are read by the fetch in the start cycle: no copy here.
        # The memory size is static (boards tie it to a constant, which then folds into the
        # range checks): no copy. The window is latched by the checker at every start.
        mem_bytes = self.mem_bytes
        m.d.comb += [fetch.insn_addr.eq(self.insn_addr), fetch.insn_count.eq(self.insn_count),
                     fetch.mem_bytes.eq(mem_bytes), self.fetch_idle.eq(fetch.idle)]
        m.d.comb += [checker.mem_bytes.eq(mem_bytes), checker.wr_lo.eq(self.wr_lo),
                     checker.wr_hi.eq(self.wr_hi), checker.load_window.eq(self.clear)]
        latency = checker.latency

        # `pc` counts retired instructions (END included), so it is the INSNS counter, and while
        # an instruction is in decode it is that instruction's index.
        pc = self.retired_count
        if prefetch:
            cur = Signal(isa.Instruction)
            rotate_fields(m, cur, checker.rotate)
        else:
            cur = fetch.insn.payload       # held by the fetch until popped at dispatch
            m.d.comb += fetch.rotate.eq(checker.rotate)
        m.d.comb += checker.insn.eq(cur)
        code = checker.code                # registered; valid `latency` cycles after `cur` is set
        check_wait = Signal(range(latency))
        pending_error = Signal(isa.ErrorCode)
        status_done = Signal()
        status_error = Signal(isa.ErrorCode)
        m.d.comb += [self.done.eq(status_done), self.error.eq(status_error)]

        units_idle = ~self.load_busy & ~self.compute_busy & ~self.store_busy
        fault_seen = Signal()
        if self.unit_faults:
            pending_pc = Signal(32)
            pending_valid = Signal()
            status_pc = Signal(32)
            m.d.comb += self.error_pc.eq(status_pc)
            # Index of the instruction each unit last received, for a data fault reported by the unit.
            compute_pc, store_pc = Signal(32), Signal(32)
            with m.If(self.compute_cmd.valid & self.compute_cmd.ready):
                m.d.sync += compute_pc.eq(pc)
            with m.If(self.store_cmd.valid & self.store_cmd.ready):
                m.d.sync += store_pc.eq(pc)
            # The earliest faulting unit instruction (a rising fault is seen once: the unit holds it).
            unit_fault = Signal()
            unit_fault_pc = Signal(32)
            m.d.comb += [
                unit_fault.eq((self.compute_fault | self.store_fault) & ~fault_seen),
                unit_fault_pc.eq(Mux(self.compute_fault & (~self.store_fault | (compute_pc < store_pc)),
                                     compute_pc, store_pc)),
            ]
        else:
            # No pc copies: nothing is dispatched after the failing instruction, so `pc` stays its
            # index. Reported only with an error (0 otherwise, as the status register was).
            m.d.comb += self.error_pc.eq(Mux(status_error != isa.ErrorCode.NONE, pc, 0))

        def record(code_value):
            m.d.sync += pending_error.eq(code_value)
            if self.unit_faults:
                m.d.sync += [pending_pc.eq(pc), pending_valid.eq(1)]

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
                    m.d.sync += [status_done.eq(0), status_error.eq(isa.ErrorCode.NONE),
                                 pc.eq(0), fault_seen.eq(0)]
                    if self.unit_faults:
                        m.d.sync += [status_pc.eq(0), pending_valid.eq(0)]
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                if prefetch:
                    m.d.comb += fetch.insn.ready.eq(1)
                with m.If(fault_seen):
                    m.next = "DRAIN"
                with m.Elif(fetch.insn.valid):
                    m.d.comb += checker.start.eq(1)
                    m.d.sync += check_wait.eq(0)
                    if prefetch:
                        m.d.sync += cur.eq(fetch.insn.payload)
                    m.next = "CHECK"
                with m.Elif(fetch.idle & (fetch.fault != isa.ErrorCode.NONE)):
                    record(fetch.fault)
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
                    record(code)
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
                        m.next = "NEXT"
                    with m.Else():
                        m.d.comb += self.dispatch_stall.eq(1)
                m.d.comb += self.retired.eq(retire)
                with m.If(retire):
                    m.d.sync += pc.eq(pc + 1)
                    if not prefetch:
                        m.d.comb += fetch.insn.ready.eq(1)   # frees the register for the next fetch
            with m.State("DRAIN"):
                # Stop fetching; let the units finish what they hold and outstanding reads drain.
                m.d.comb += [self.busy.eq(1), fetch.stop.eq(1), fetch.insn.ready.eq(1)]
                with m.If(units_idle & fetch.idle):
                    m.d.sync += status_error.eq(pending_error)
                    if self.unit_faults:
                        m.d.sync += status_pc.eq(pending_pc)
                    m.next = "IDLE"
            with m.State("FINISH"):
                m.d.comb += [self.busy.eq(1), fetch.stop.eq(1), fetch.insn.ready.eq(1)]
                with m.If(fault_seen):
                    m.next = "DRAIN"
                with m.Elif(fetch.idle):
                    m.d.sync += status_done.eq(1)
                    m.next = "IDLE"
        if self.unit_faults:
            # A data fault in a unit: record the earliest (after the FSM: it outranks a later
            # instruction's own error recorded in the same cycle).
            with m.If(unit_fault & self.busy):
                m.d.sync += fault_seen.eq(1)
                with m.If(~pending_valid | (unit_fault_pc < pending_pc)):
                    m.d.sync += [pending_error.eq(isa.ErrorCode.BAD_FIELD), pending_pc.eq(unit_fault_pc),
                                 pending_valid.eq(1)]
        return m
