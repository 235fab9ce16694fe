"""The host link: :mod:`sqzhw.protocol` frames in and out of byte streams, a memory-bus master and
the engine's control and status.

:class:`HostLink` takes request bytes on ``rx`` (from :class:`rtl_gen.uart.UARTRx`, or a byte stream
in simulation) and sends response bytes on ``tx``. It buffers a request's payload in a block RAM and
checks the CRC before acting, so a frame that fails its CRC is never executed. Every frame whose
header arrives is answered (ACK or NAK, see :class:`sqzhw.protocol.Status`); a frame cut short is
dropped after ``idle_timeout`` cycles without a byte. ``WRITE_MEM``, ``READ_MEM`` and
``CHECKSUM_MEM`` drive ``rd_cmd`` / ``rd_data`` / ``wr``, the engine's memory-port shape, so a board
top arbitrates the host and the engine onto one memory. The engine's control inputs (``start``
...``wr_hi``) are members of the same names as the engine's; ``engine_reset`` is a one-cycle pulse
on ``RESET`` (the board top resets the engine with it). The whole link is one clock domain and
handles one frame at a time. Its protocol engine takes no request byte while it executes a frame and
answers it, so a receive FIFO in front of it keeps the bytes a host sends meanwhile: ``window``
``WRITE_MEM`` frames may be in flight (the protocol's windowed writes). :func:`rx_fifo_depth` sizes
it for a whole ``WRITE_MEM`` executed and answered while request bytes keep arriving at the line
rate.

Area (it sits next to the engine on an iCE40 UP5K): the fixed arguments (``START``'s, ``READ_MEM``'s
and ``WRITE_MEM``'s address) are read back from the payload buffer after the CRC check instead of
being captured while the frame arrives; one CRC update serves both directions; addresses and counts
are as wide as the memory and the largest frame need; one shift register holds the arguments, the
words written and the reply words (a ``STATUS`` reply is sampled whole, ``READ_COUNTERS`` one
counter at a time as its four bytes start); ``INFO``'s constant reply is stored in the payload
buffer's block RAM after the payload (no byte ROM in logic); the idle timer is an LFSR.

``CHECKSUM_MEM`` (optional, ``checksum``) shares ``READ_MEM``'s path: the same argument fetch (its
address and the low half of its count land where ``READ_MEM``'s do, so one range check serves both;
the count's top half is kept to the bits a range inside the memory can have), the same one-word-at-
a-time reads. The memory holds each word out on ``rd_data`` while its bytes go through a CRC-32 XOR
tree, one per cycle, so the arguments stay in the shift register and the range's end needs no
register; the reply is the CRC register itself, shifted out. A word costs ``e`` cycles plus the
memory's read latency. On the iCEBreaker it takes ~170 logic cells (4,789 -> 4,961 of 5,280), about
60 of them the CRC-32 register and XOR tree.
"""

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sqzhw import isa, protocol
from sqzhw.config import AccelConfig
from sqzhw.protocol import Command, Status

from .buffers import NO_INIT_ATTR

__all__ = ["HostLink", "crc16_next", "crc32_next", "rx_backlog", "rx_fifo_depth", "WRITE_WAIT"]


def _xor_tree(rows: list[tuple[int, int]], crc, byte):
    return Cat(*[(crc & C(cm, len(crc))).xor() ^ (byte & C(bm, 8)).xor() for cm, bm in rows])


def crc16_next(crc, byte):
    """Combinational CRC-16/CCITT-FALSE byte update, built from :func:`sqzhw.protocol.crc16_matrix`."""
    return _xor_tree(protocol.crc16_matrix(), crc, byte)


def _crc32_shift(crc, x):
    """The reflected CRC-32 byte update as ``(crc >> 8) ^ T(x)`` with ``x = crc[:8] ^ byte``: the
    matrix's low register bits enter exactly as the data bits do, so the eight XORs are shared."""
    bits = []
    for cm, bm in protocol.crc32_matrix():
        assert cm & 0xFF == bm
        bits.append((crc & C(cm & ~0xFF, 32)).xor() ^ (x & C(bm, 8)).xor())
    return Cat(*bits)


def crc32_next(crc, byte):
    """Combinational CRC-32 (reflected register) byte update, from :func:`sqzhw.protocol.crc32_matrix`."""
    return _crc32_shift(crc, crc[:8] ^ byte)


def _lfsr_step(state: int, n: int, tap: int) -> int:
    """Fibonacci LFSR step: shift left, feed back bit ``n - 1`` XOR bit ``tap - 1``."""
    return ((state << 1) | ((state >> (n - 1)) ^ (state >> (tap - 1))) & 1) & ((1 << n) - 1)


def _idle_lfsr(cycles: int) -> tuple[int, int, int]:
    """``(bits, tap, end)``: an LFSR whose state after ``cycles`` steps from 1 is ``end``, without
    passing through ``end`` before (a counter with no adder: the timeout is exact)."""
    for n in range(max(3, cycles.bit_length()), 33):
        for tap in range(n - 1, 0, -1):
            state, seen = 1, {1}
            for _ in range(cycles):
                state = _lfsr_step(state, n, tap)
                if state in seen:
                    break
                seen.add(state)
            else:
                return n, tap, state
    raise ValueError(f"no LFSR counts {cycles} cycles")


#: Cycles the memory may hold ``wr.ready`` low per word, on average over a ``WRITE_MEM`` (arbiter,
#: row changes, refresh): the receive FIFO's sizing assumption. Measured with three full frames in the
#: system simulations (the link offers a word every ``2 * ext_bytes + 1`` cycles): 0 on the SPRAM, the
#: SDRAM controller and model and the DDR3 controller and model; 2 leaves room for refresh.
WRITE_WAIT = 2


def rx_backlog(ext_bytes: int, max_payload: int, uart_divisor: int, write_wait: int = WRITE_WAIT) -> int:
    """Request bytes that arrive at the line rate (``10 * uart_divisor`` cycles per byte) while
    :class:`HostLink` executes a ``WRITE_MEM`` of ``max_payload`` bytes and answers it.

    From the frame's last CRC byte the link spends 16 cycles on the check and the arguments, then
    per memory word two cycles per byte (payload buffer read) plus the write handshake (``1 +
    write_wait``), then sends the 8-byte response at the line rate (the UART transmitter takes the
    first byte at once); meanwhile bytes keep arriving, one more than whole byte times. A shorter
    ``WRITE_MEM`` or a NAK takes less (the other commands are stop-and-wait), and every frame takes
    longer on the line than the link takes to execute and answer it, so the FIFO drains between
    full frames: this is the most it ever holds (tests/test_hostlink.py measures it).
    """
    byte_cycles = 10 * uart_divisor
    words = -(-(max_payload - protocol.WRITE_ADDR_BYTES) // ext_bytes)
    execute = 16 + words * (2 * ext_bytes + 1 + write_wait)
    answer = (protocol.RESPONSE_HEADER_BYTES + protocol.CRC_BYTES) * (byte_cycles + 1)
    return (execute + answer) // byte_cycles + 1


def rx_fifo_depth(ext_bytes: int, max_payload: int, uart_divisor: int, write_wait: int = WRITE_WAIT) -> int:
    """The receive FIFO's depth: :func:`rx_backlog` and a quarter more (at least 4). The iCEBreaker
    (16-bit words, 18 MHz): 33 bytes at 1 Mbaud (18 cycles per bit), 58 at 2 Mbaud (9); one block
    RAM and ~40 logic cells there."""
    backlog = rx_backlog(ext_bytes, max_payload, uart_divisor, write_wait)
    return backlog + max(4, backlog // 4)


class HostLink(wiring.Component):
    """Protocol engine of the host link.

    Parameters
    ----------
    config : AccelConfig
        The engine's config: its tag is what ``INFO`` reports, ``ext_data_bits`` the memory word.
    mem_bytes : int
        Size of the external memory (reported by ``INFO``, driven to the engine's ``mem_bytes``).
    max_payload : int
        Largest request payload (payload buffer depth; at most :data:`sqzhw.protocol.MAX_PAYLOAD`).
    idle_timeout : int
        Cycles without a byte after which a partial frame is dropped (a few byte times).
    counter_port : bool
        Read the counters one at a time through ``ctr_sel`` / ``ctr_value`` / ``ctr_valid`` (a
        :class:`rtl_gen.counters.CounterRAM`) instead of the engine's 288-bit ``counters``.
    uart_divisor : int, optional
        Clock cycles per bit of the line that feeds ``rx`` (default:
        :data:`sqzhw.protocol.DEFAULT_BAUD` at ``config.clock_mhz``): sizes the receive FIFO.
    window : int
        ``WRITE_MEM`` frames a host may have in flight, reported by ``INFO``. 1: stop-and-wait, no
        receive FIFO (the host must not send while the link answers).
    write_wait : int
        The memory's worst average ``wr`` wait per word that the FIFO is sized for (:data:`WRITE_WAIT`).
    checksum : bool
        Build ``CHECKSUM_MEM`` (``INFO`` then sets :attr:`sqzhw.protocol.Feature.CHECKSUM_MEM`);
        without it the command is ``UNKNOWN_COMMAND``, for a device too full for its logic.

    Attributes
    ----------
    rx_fifo : SyncFIFOBuffered or None
        The receive FIFO (``rx_fifo.depth`` bytes), ``None`` with ``window = 1``.

    Members
    -------
    rx : In(stream.Signature(8))
        Request bytes (into the receive FIFO: ``ready`` stays high for bytes at the line rate).
    tx : Out(stream.Signature(8))
        Response bytes.
    rd_cmd, rd_data, wr :
        Memory-bus master, shaped as the engine's (word addresses).
    start, insn_addr, insn_count, mem_bytes, wr_lo, wr_hi : Out
        To the engine's inputs of the same names.
    busy, done, error, error_pc, counters : In
        From the engine's outputs of the same names (``counters`` without ``counter_port``).
    mem_starting, mem_failed : In(1)
        The external memory's start-up state, reported by ``STATUS`` (0 where it has none).
    ctr_sel : Out(range(N)), ctr_value : In(32), ctr_valid : In(1)
        With ``counter_port``: the counter to read, and its value in the cycles ``ctr_valid`` is high.
    engine_reset : Out(1)
        One-cycle pulse on ``RESET``.
    """

    def __init__(self, config: AccelConfig, mem_bytes: int, max_payload: int = protocol.MAX_PAYLOAD,
                 idle_timeout: int = 10_000, *, counter_port: bool = False, uart_divisor: int | None = None,
                 window: int = protocol.DEFAULT_WINDOW, write_wait: int = WRITE_WAIT,
                 checksum: bool = True) -> None:
        if not 16 <= max_payload <= protocol.MAX_PAYLOAD:
            raise ValueError(f"max_payload must be 16..{protocol.MAX_PAYLOAD}, got {max_payload!r}")
        if max_payload % config.ext_bytes:
            raise ValueError(f"max_payload {max_payload} is not a multiple of the {config.ext_bytes}-byte word")
        if not 0 < mem_bytes <= 1 << 32 or mem_bytes % config.ext_bytes:
            raise ValueError(f"mem_bytes {mem_bytes!r} must be a positive multiple of {config.ext_bytes} "
                             f"up to 2**32")
        if idle_timeout < 1:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
        if not 1 <= window <= 255:
            raise ValueError(f"window must be 1..255 frames, got {window!r}")
        if uart_divisor is None:
            uart_divisor = max(1, round(config.clock_mhz * 1e6 / protocol.DEFAULT_BAUD))
        if uart_divisor < 1 or write_wait < 0:
            raise ValueError(f"uart_divisor {uart_divisor!r} must be positive and write_wait {write_wait!r} "
                             f"not negative")
        self.config = config
        self.mem_size = mem_bytes
        self.max_payload = max_payload
        self.idle_timeout = idle_timeout
        self.counter_port = counter_port
        self.uart_divisor = uart_divisor
        self.window = window
        self.checksum = checksum
        # The FIFO belongs to the link, not to the UART in front of it: its depth follows from this
        # FSM's execute and answer times, it is what makes INFO's window true whatever feeds `rx`
        # (UART pins or the simulations' byte stream), and window = 1 builds without it.
        self.rx_fifo = (fifo.SyncFIFOBuffered(width=8, depth=rx_fifo_depth(config.ext_bytes, max_payload,
                                                                           uart_divisor, write_wait))
                        if window > 1 else None)
        bits = config.ext_data_bits
        n = len(isa.Counter)
        counters = ({"ctr_sel": Out(range(n)), "ctr_value": In(32), "ctr_valid": In(1)} if counter_port
                    else {"counters": In(data.ArrayLayout(32, n))})
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "rd_cmd": Out(stream.Signature(32)),
            "rd_data": In(stream.Signature(bits)),
            "wr": Out(stream.Signature(data.StructLayout({"addr": 32, "data": bits}))),
            "start": Out(1),
            "insn_addr": Out(32),
            "insn_count": Out(32),
            "mem_bytes": Out(32),
            "wr_lo": Out(32),
            "wr_hi": Out(32),
            "busy": In(1),
            "done": In(1),
            "error": In(isa.ErrorCode),
            "error_pc": In(32),
            "mem_starting": In(1),
            "mem_failed": In(1),
            **counters,
            "engine_reset": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        e = self.config.ext_bytes
        e_log = e.bit_length() - 1
        n_counters = len(isa.Counter)
        max_payload = self.max_payload

        ck = self.checksum
        features = protocol.Feature.CHECKSUM_MEM if ck else 0
        info = protocol.encode_info(self.config.tag, e, self.mem_size % (1 << 32), max_payload, self.window,
                                    features)
        commands = [c for c in Command if ck or c is not Command.CHECKSUM_MEM]
        status_bytes = protocol.StatusReply.as_shape().size // 8
        reply_max = max(len(info), 4 * n_counters, status_bytes)
        args_bytes = protocol.StartArgs.as_shape().size // 8
        rw_args_bytes = protocol.ReadArgs.as_shape().size // 8
        ck_args_bytes = protocol.ChecksumArgs.as_shape().size // 8
        # Useful widths: byte addresses inside the memory, counts up to the longest frame.
        a_bits = max(1, (self.mem_size - 1).bit_length())
        wa_bits = max(1, a_bits - e_log)
        count_max = max(max_payload, reply_max)

        # Written while a request arrives, read after it: never both in a cycle, so no read/write
        # collision logic; the read register has no power-up value (as the block RAM's output).
        # The INFO reply is a constant: its bytes sit in the same block RAM, after the payload.
        m.submodules.buf = buf = Memory(shape=8, depth=max_payload + len(info), init=[0] * max_payload + list(info),
                                        attrs={"no_rw_check": 1})
        wp = buf.write_port()
        rp = buf.read_port(domain="comb")
        rp_data = Signal(8, reset_less=True, attrs={NO_INIT_ATTR: 1})
        m.d.sync += rp_data.eq(rp.data)

        # request registers
        cmd = Signal(8)
        seq = Signal(8)
        length = Signal(max(8, max_payload.bit_length()))
        idx = Signal(range(count_max + 1))   # byte index: header, payload, buffer, reply, CRC
        crc = Signal(16)
        idle_bits, idle_tap, idle_end = _idle_lfsr(self.idle_timeout)
        idle = Signal(idle_bits, init=1)
        last_seq = Signal(8)                  # seq of the last executed command, if it was a ...
        last_start = Signal()                 # ... START
        last_write = Signal()                 # ... WRITE_MEM

        # response registers
        status = Signal(3)
        resp_len = Signal(range(count_max + 1))
        reading = Signal()                     # payload comes from memory (READ_MEM)
        # One shift register for the arguments of READ_MEM / WRITE_MEM (bytes in at the top), the
        # words written (same) and the reply payload (a word loaded at the bottom, bytes out there).
        sh_bits = max(8 * rw_args_bytes, 8 * e, status_bytes * 8)
        txsh = Signal(sh_bits)
        waddr = Signal(wa_bits)                # word address of the next memory access
        k = Signal(range(e))                   # byte within a memory word
        # CHECKSUM_MEM's CRC-32 register (no reset: it is set before every use)
        crc32 = Signal(32, reset_less=True) if ck else None
        ck_init, ck_step, ck_send = Signal(), Signal(), Signal()
        if ck:
            # One update serves the bytes read (CK_FOLD: byte k of the word the memory holds out until
            # the last is folded, so the arguments stay in the shift register) and the reply (x = 0:
            # the update is then a plain shift right by 8).
            byte = self.rd_data.payload.word_select(k, 8) if e > 1 else self.rd_data.payload
            x = Mux(ck_send, 0, crc32[:8] ^ byte)
            with m.If(ck_init):
                m.d.sync += crc32.eq(protocol.CRC32_INIT)
            with m.Elif(ck_step):
                m.d.sync += crc32.eq(_crc32_shift(crc32, x))

        # engine control: the START arguments, shifted in byte by byte from the payload buffer
        ctl = Signal(8 * args_bytes)
        m.d.comb += [
            self.insn_addr.eq(ctl[0:32]), self.insn_count.eq(ctl[32:64]),
            self.wr_lo.eq(ctl[64:96]), self.wr_hi.eq(ctl[96:128]),
            self.mem_bytes.eq(min(self.mem_size, (1 << 32) - e)),
        ]
        m.d.sync += [self.start.eq(0), self.engine_reset.eq(0)]

        # The FSM reads request bytes from the receive FIFO (or straight from `rx` without one).
        rx = self.rx
        if self.rx_fifo is not None:
            m.submodules.rx_fifo = self.rx_fifo
            wiring.connect(m, wiring.flipped(self.rx), self.rx_fifo.w_stream)
            rx = self.rx_fifo.r_stream
        rx_byte = rx.payload
        rx_take = rx.valid & rx.ready
        tx_take = self.tx.valid & self.tx.ready

        # One CRC update for both directions (a request and its response never overlap).
        crc_step = Signal()
        tx_crc = Signal()                      # the byte on tx is covered by the CRC
        m.d.comb += crc_step.eq(Mux(rx.ready, rx_take, tx_take & tx_crc))
        with m.If(crc_step):
            m.d.sync += crc.eq(crc16_next(crc, Mux(rx.ready, rx_byte, self.tx.payload)))

        # idle timeout: a frame in progress dies when the link is quiet
        # (an LFSR stands for the cycle counter: no adder, and one compare with a constant)
        in_frame = Signal()
        with m.If(rx_take | ~in_frame):
            m.d.sync += idle.eq(1)
        with m.Elif(idle != idle_end):
            m.d.sync += idle.eq(Cat((idle[-1] ^ idle[idle_tap - 1]), idle[:-1]))
        timed_out = in_frame & (idle == idle_end)

        def respond(code: Status) -> None:
            m.d.sync += [status.eq(code.value), resp_len.eq(0), reading.eq(0)]
            m.next = "TX_SYNC"

        cmd_bits = max(c.value for c in commands).bit_length()
        cmd_lo = cmd[:cmd_bits]                # enough to tell the known commands apart
        is_cmd = {c: (cmd_lo == c.value) if c in commands else C(0) for c in Command}
        repeat = Signal()
        m.d.comb += repeat.eq((last_seq == seq) & Mux(is_cmd[Command.START], last_start, last_write))

        status_reply = Signal(protocol.StatusReply)
        m.d.comb += [status_reply.busy.eq(self.busy), status_reply.done.eq(self.done),
                     status_reply.mem_starting.eq(self.mem_starting), status_reply.mem_failed.eq(self.mem_failed),
                     status_reply.error.eq(self.error.as_value()), status_reply.error_pc.eq(self.error_pc)]

        tx_info = Signal()                     # sending the INFO reply: read it from the buffer
        m.d.comb += [wp.addr.eq(idx), wp.data.eq(rx_byte), rp.addr.eq(Mux(tx_info, idx + max_payload, idx))]
        idx_next = Signal.like(idx)            # one incrementer, also for the end-of-frame compares
        m.d.comb += idx_next.eq(idx + 1)

        # READ_MEM / WRITE_MEM / CHECKSUM_MEM arguments once shifted in: address, and the byte count
        # (READ_MEM's u16; CHECKSUM_MEM's u32 is that and its top half, kept aside as it arrives:
        # the bits a count inside the memory may have, and whether it has any other)
        rw_addr = txsh[-8 * rw_args_bytes:][:32]
        rd_count = txsh[-16:]
        # A READ_MEM count above max_payload is refused whatever the address, so the sum needs
        # only the payload's width; a CHECKSUM_MEM count the memory's (up to all of it).
        nbytes = Signal(max(len(length), a_bits + 1) if ck else len(length))
        ck_hi = Signal(max(0, len(nbytes) - 16))   # count bits 16.. that nbytes has
        ck_big = Signal()                          # count bits above those: out of range
        count = Cat(rd_count, Mux(is_cmd[Command.CHECKSUM_MEM], ck_hi, 0)) if ck else rd_count
        m.d.comb += nbytes.eq(Mux(is_cmd[Command.WRITE_MEM], length - protocol.WRITE_ADDR_BYTES, count))
        end = Signal(max(a_bits, len(nbytes)) + 1)
        m.d.comb += end.eq(rw_addr[:a_bits] + nbytes)
        out_of_range = Signal()
        m.d.comb += out_of_range.eq((rw_addr[a_bits:] != 0 if a_bits < 32 else C(0)) | (end > self.mem_size)
                                    | (is_cmd[Command.READ_MEM] & (rd_count > max_payload))
                                    | (is_cmd[Command.CHECKSUM_MEM] & (ck_big | (rd_count[len(nbytes):] != 0))
                                       if ck else C(0)))
        unaligned = (rw_addr[:e_log] != 0) | (nbytes[:e_log] != 0) if e_log else C(0)

        def fixed_len(c: Command) -> int:
            return {Command.READ_MEM: rw_args_bytes, Command.START: args_bytes,
                    Command.CHECKSUM_MEM: ck_args_bytes}.get(c, 0)

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx_take & (rx_byte == protocol.REQUEST_SYNC)):
                    m.d.sync += [crc.eq(protocol.CRC_INIT), idx.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += [rx.ready.eq(1), in_frame.eq(1)]
                with m.If(timed_out):
                    m.next = "SYNC"
                with m.Elif(rx_take):
                    m.d.sync += idx.eq(idx_next)
                    with m.Switch(idx[:2]):
                        with m.Case(0):
                            m.d.sync += cmd.eq(rx_byte)
                        with m.Case(1):
                            m.d.sync += seq.eq(rx_byte)
                        with m.Case(2):
                            m.d.sync += length[:8].eq(rx_byte)
                        with m.Case(3):
                            m.d.sync += [length[8:].eq(rx_byte), idx.eq(0)]
                            with m.If(Cat(length[:8], rx_byte) > max_payload):
                                respond(Status.BAD_LENGTH)
                            with m.Elif(Cat(length[:8], rx_byte) == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                m.d.comb += [rx.ready.eq(1), in_frame.eq(1), wp.en.eq(rx_take)]
                with m.If(timed_out):
                    m.next = "SYNC"
                with m.Elif(rx_take):
                    m.d.sync += idx.eq(idx_next)
                    with m.If(idx_next == length):
                        m.d.sync += idx.eq(0)
                        m.next = "CRC"

            with m.State("CRC"):
                m.d.comb += [rx.ready.eq(1), in_frame.eq(1)]
                with m.If(timed_out):
                    m.next = "SYNC"
                with m.Elif(rx_take):
                    m.d.sync += idx.eq(idx_next)
                    with m.If(idx[0]):
                        m.d.sync += idx.eq(0)
                        m.next = "CHECK"

            with m.State("CHECK"):
                with m.If(crc != 0):
                    respond(Status.BAD_CRC)
                with m.Else():
                    m.next = "EXEC"

            with m.State("EXEC"):
                known = (cmd[cmd_bits:] == 0) & Cat(*[is_cmd[c] for c in commands]).any()
                bad_len = Signal()
                with m.Switch(cmd_lo):
                    for c in commands:
                        with m.Case(c.value):
                            if c is Command.WRITE_MEM:
                                m.d.comb += bad_len.eq(length < protocol.WRITE_ADDR_BYTES)
                            else:
                                m.d.comb += bad_len.eq(length != fixed_len(c))
                with m.If(~known):
                    respond(Status.UNKNOWN_COMMAND)
                with m.Elif(bad_len):
                    respond(Status.BAD_LENGTH)
                with m.Elif((is_cmd[Command.WRITE_MEM] | is_cmd[Command.START]) & self.busy & ~repeat):
                    respond(Status.BUSY)
                with m.Else():
                    m.d.sync += [last_seq.eq(seq), last_start.eq(is_cmd[Command.START]),
                                 last_write.eq(is_cmd[Command.WRITE_MEM])]
                    with m.Switch(cmd_lo):
                        with m.Case(Command.INFO.value):
                            m.d.sync += [status.eq(Status.OK.value), resp_len.eq(len(info)), reading.eq(0)]
                            m.next = "TX_SYNC"
                        with m.Case(Command.STATUS.value):
                            m.d.sync += [status.eq(Status.OK.value), resp_len.eq(status_bytes), reading.eq(0)]
                            m.next = "TX_SYNC"
                        with m.Case(Command.READ_COUNTERS.value):
                            m.d.sync += [status.eq(Status.OK.value), resp_len.eq(4 * n_counters), reading.eq(0)]
                            m.next = "TX_SYNC"
                        with m.Case(Command.RESET.value):
                            m.d.sync += [self.engine_reset.eq(1), last_start.eq(0), last_write.eq(0)]
                            respond(Status.OK)
                        with m.Case(Command.START.value):
                            with m.If(repeat):
                                respond(Status.OK)
                            with m.Else():
                                m.next = "ARG_FETCH"
                        with m.Case(*[c.value for c in commands if c in (Command.WRITE_MEM, Command.READ_MEM,
                                                                         Command.CHECKSUM_MEM)]):
                            m.next = "ARG_FETCH"

            # The fixed arguments, from the payload buffer (one byte per two cycles): START's into
            # the engine control registers, the others' first six bytes into the shift register
            # (WRITE_MEM's last two are data, unused there), CHECKSUM_MEM's last two into ck_hi / ck_big.
            with m.State("ARG_FETCH"):
                m.next = "ARG_LATCH"
            with m.State("ARG_LATCH"):
                m.d.sync += idx.eq(idx_next)
                with m.If(is_cmd[Command.START]):
                    m.d.sync += ctl.eq(Cat(ctl[8:], rp_data))
                    with m.If(idx == args_bytes - 1):
                        m.d.sync += self.start.eq(1)
                        respond(Status.OK)
                    with m.Else():
                        m.next = "ARG_FETCH"
                with m.Else():
                    with m.If(idx < rw_args_bytes):
                        m.d.sync += txsh.eq(Cat(txsh[8:], rp_data))
                    if ck:
                        # CHECKSUM_MEM's count bytes 2 and 3 (only it fetches that far)
                        for i in (rw_args_bytes, rw_args_bytes + 1):
                            lo = 8 * (i - rw_args_bytes)        # their first bit in ck_hi
                            keep = max(0, min(8, len(ck_hi) - lo))
                            with m.If(idx == i):
                                if keep:
                                    m.d.sync += ck_hi[lo:lo + keep].eq(rp_data[:keep])
                                big = (rp_data[keep:] != 0) if keep < 8 else C(0)
                                m.d.sync += ck_big.eq(big if i == rw_args_bytes else ck_big | big)
                    last = rw_args_bytes - 1
                    if ck:
                        last = Mux(is_cmd[Command.CHECKSUM_MEM], ck_args_bytes - 1, last)
                    with m.If(idx == last):
                        m.next = "ADDR_CHECK"
                    with m.Else():
                        m.next = "ARG_FETCH"

            with m.State("ADDR_CHECK"):
                with m.If(unaligned | out_of_range):
                    respond(Status.BAD_ADDRESS)
                with m.Elif(is_cmd[Command.WRITE_MEM]):
                    with m.If(nbytes == 0):
                        respond(Status.OK)
                    with m.Else():
                        m.d.sync += [waddr.eq(rw_addr[e_log:a_bits]), idx.eq(protocol.WRITE_ADDR_BYTES), k.eq(0)]
                        m.next = "WR_FETCH"
                if ck:
                    with m.Elif(is_cmd[Command.CHECKSUM_MEM]):
                        m.d.comb += ck_init.eq(1)
                        m.d.sync += [waddr.eq(rw_addr[e_log:a_bits]), k.eq(0)]
                        with m.If(nbytes == 0):
                            m.d.sync += [status.eq(Status.OK.value), resp_len.eq(4), reading.eq(0)]
                            m.next = "TX_SYNC"
                        with m.Else():
                            m.next = "TX_RDCMD"
                with m.Else():
                    m.d.sync += [status.eq(Status.OK.value), resp_len.eq(rd_count), reading.eq(1),
                                 waddr.eq(rw_addr[e_log:a_bits])]
                    m.next = "TX_SYNC"

            # WRITE_MEM: payload bytes -> words -> wr, one byte per two cycles (block RAM latency)
            with m.State("WR_FETCH"):
                m.next = "WR_LATCH"
            with m.State("WR_LATCH"):
                m.d.sync += [txsh.eq(Cat(txsh[8:], rp_data)), idx.eq(idx_next), k.eq(k + 1)]
                with m.If(k == e - 1):
                    m.next = "WR_ISSUE"
                with m.Else():
                    m.next = "WR_FETCH"
            with m.State("WR_ISSUE"):
                m.d.comb += [self.wr.valid.eq(1), self.wr.payload.addr.eq(waddr),
                             self.wr.payload.data.eq(txsh[-8 * e:])]
                with m.If(self.wr.ready):
                    m.d.sync += [waddr.eq(waddr + 1), k.eq(0)]
                    with m.If(idx == length):
                        respond(Status.OK)
                    with m.Else():
                        m.next = "WR_FETCH"

            # the response: sync, header, payload, CRC
            with m.State("TX_SYNC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(protocol.RESPONSE_SYNC)]
                with m.If(tx_take):
                    m.d.sync += [crc.eq(protocol.CRC_INIT), idx.eq(0)]
                    m.next = "TX_HEADER"
            with m.State("TX_HEADER"):
                m.d.comb += [self.tx.valid.eq(1), tx_crc.eq(1)]
                # status, cmd, seq, length (2 bytes): a mux tree, idx 5..7 never come
                assert protocol.RESPONSE_HEADER_BYTES == 5
                m.d.comb += self.tx.payload.eq(Mux(idx[2], resp_len[8:], Mux(idx[1], Mux(idx[0], resp_len[:8], seq),
                                                                          Mux(idx[0], cmd, status))))
                with m.If(tx_take):
                    m.d.sync += idx.eq(idx_next)
                    with m.If(idx == protocol.RESPONSE_HEADER_BYTES - 1):
                        m.d.sync += idx.eq(0)
                        with m.If(resp_len == 0):
                            m.next = "TX_CRC"
                        with m.Elif(reading):
                            m.next = "TX_RDCMD"
                        with m.Else():
                            m.next = "TX_LOAD"
            # A reply word into the shift register: the counters 4 bytes at a time (each counter is
            # sampled whole), STATUS in one piece.
            # (INFO: one cycle for the buffer to read the next byte)
            with m.State("TX_LOAD"):
                m.d.comb += tx_info.eq(is_cmd[Command.INFO])
                m.next = "TX_PAYLOAD"
                with m.If(is_cmd[Command.STATUS]):
                    m.d.sync += txsh.eq(status_reply.as_value())
                with m.Elif(is_cmd[Command.READ_COUNTERS]):
                    if self.counter_port:
                        # wait for the counter RAM's round robin to reach this counter
                        m.d.comb += self.ctr_sel.eq(idx[2:])
                        with m.If(self.ctr_valid):
                            m.d.sync += txsh.eq(self.ctr_value)
                        with m.Else():
                            m.next = "TX_LOAD"
                    else:
                        with m.Switch(idx[2:]):
                            for i in range(n_counters):
                                with m.Case(i):
                                    m.d.sync += txsh.eq(self.counters[i])
            with m.State("TX_RDCMD"):
                m.d.comb += [self.rd_cmd.valid.eq(1), self.rd_cmd.payload.eq(waddr)]
                with m.If(self.rd_cmd.ready):
                    m.d.sync += waddr.eq(waddr + 1)
                    m.next = "TX_RDDATA"
                    if ck:
                        with m.If(is_cmd[Command.CHECKSUM_MEM]):
                            m.next = "CK_FOLD"
            with m.State("TX_RDDATA"):
                m.d.comb += self.rd_data.ready.eq(1)
                with m.If(self.rd_data.valid):
                    m.d.sync += txsh.eq(self.rd_data.payload)
                    m.next = "TX_PAYLOAD"
            if ck:
                # CHECKSUM_MEM: the word's bytes through the CRC-32, then the next word or the answer
                with m.State("CK_FOLD"):
                    with m.If(self.rd_data.valid):
                        m.d.comb += ck_step.eq(1)
                        m.d.sync += k.eq(k + 1)
                        with m.If(k == e - 1):
                            m.d.comb += self.rd_data.ready.eq(1)
                            # the range ends at `end` (from the arguments, still in the shift register)
                            with m.If(waddr == end[e_log:a_bits]):
                                m.d.sync += [status.eq(Status.OK.value), resp_len.eq(4), reading.eq(0)]
                                m.next = "TX_SYNC"
                            with m.Else():
                                m.next = "TX_RDCMD"
            with m.State("TX_PAYLOAD"):
                # (CHECKSUM_MEM: the CRC is the register's complement, shifted out by updates with x = 0)
                payload = Mux(is_cmd[Command.CHECKSUM_MEM], ~crc32[:8], txsh[:8]) if ck else txsh[:8]
                m.d.comb += [self.tx.valid.eq(1), tx_crc.eq(1), tx_info.eq(is_cmd[Command.INFO]),
                             self.tx.payload.eq(Mux(is_cmd[Command.INFO], rp_data, payload)),
                             ck_send.eq(1), ck_step.eq(tx_take & is_cmd[Command.CHECKSUM_MEM])]
                with m.If(tx_take):
                    m.d.sync += [idx.eq(idx_next), txsh.eq(txsh[8:])]
                    with m.If(idx_next == resp_len):
                        m.d.sync += idx.eq(0)
                        m.next = "TX_CRC"
                    with m.Elif(reading):
                        with m.If(idx[:e_log] == e - 1 if e_log else C(1)):
                            m.next = "TX_RDCMD"
                    with m.Elif(is_cmd[Command.INFO] | (is_cmd[Command.READ_COUNTERS] & (idx[:2] == 3))):
                        m.next = "TX_LOAD"
            with m.State("TX_CRC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(Mux(idx[0], crc[:8], crc[8:]))]
                with m.If(tx_take):
                    m.d.sync += idx.eq(idx_next)
                    with m.If(idx[0]):
                        m.next = "SYNC"
        return m
