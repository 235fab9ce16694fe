"""The host link: :mod:`sqzhw.protocol` frames in and out of byte streams, a memory-bus master and
the engine's control and status.

:class:`HostLink` takes request bytes on ``rx`` (from :class:`rtl_gen.uart.UARTRx`, or a byte
stream in simulation) and sends response bytes on ``tx``. It buffers a request's payload in a block
RAM and checks the CRC before acting, so a frame that fails its CRC is never executed. Every frame
whose header arrives is answered (ACK or NAK, see :class:`sqzhw.protocol.Status`); a frame cut
short is dropped after ``idle_timeout`` cycles without a byte. ``WRITE_MEM`` and ``READ_MEM``
drive ``rd_cmd`` / ``rd_data`` / ``wr``, the engine's memory-port shape, so a board top arbitrates
the host and the engine onto one memory. The engine's control inputs (``start`` ...``wr_hi``) are
members of the same names as the engine's; ``engine_reset`` is a one-cycle pulse on ``RESET``
(the board top resets the engine with it). The whole link is one clock domain and handles one
frame at a time: it does not take request bytes while it answers (the host waits for answers).
"""

from amaranth.hdl import C, Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sqzhw import isa, protocol
from sqzhw.config import AccelConfig
from sqzhw.protocol import Command, Status

__all__ = ["HostLink", "crc16_next"]


def crc16_next(crc, byte):
    """Combinational CRC-16/CCITT-FALSE byte update, built from :func:`sqzhw.protocol.crc16_matrix`."""
    bits = [(crc & C(cm, 16)).xor() ^ (byte & C(bm, 8)).xor() for cm, bm in protocol.crc16_matrix()]
    return Cat(*bits)


def _const_bytes(raw: bytes) -> Const:
    return C(int.from_bytes(raw, "little"), 8 * len(raw))


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

    Members
    -------
    rx : In(stream.Signature(8))
        Request bytes.
    tx : Out(stream.Signature(8))
        Response bytes.
    rd_cmd, rd_data, wr :
        Memory-bus master, shaped as the engine's (word addresses).
    start, insn_addr, insn_count, mem_bytes, wr_lo, wr_hi : Out
        To the engine's inputs of the same names.
    busy, done, error, error_pc, counters : In
        From the engine's outputs of the same names.
    engine_reset : Out(1)
        One-cycle pulse on ``RESET``.
    """

    def __init__(self, config: AccelConfig, mem_bytes: int, max_payload: int = protocol.MAX_PAYLOAD,
                 idle_timeout: int = 10_000) -> None:
        if not 16 <= max_payload <= protocol.MAX_PAYLOAD:
            raise ValueError(f"max_payload must be 16..{protocol.MAX_PAYLOAD}, got {max_payload!r}")
        if max_payload % config.ext_bytes:
            raise ValueError(f"max_payload {max_payload} is not a multiple of the {config.ext_bytes}-byte word")
        if not 0 < mem_bytes <= 1 << 32 or mem_bytes % config.ext_bytes:
            raise ValueError(f"mem_bytes {mem_bytes!r} must be a positive multiple of {config.ext_bytes} "
                             f"up to 2**32")
        if idle_timeout < 1:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
        self.config = config
        self.mem_size = mem_bytes
        self.max_payload = max_payload
        self.idle_timeout = idle_timeout
        bits = config.ext_data_bits
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
            "counters": In(data.ArrayLayout(32, len(isa.Counter))),
            "engine_reset": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        e = self.config.ext_bytes
        e_log = e.bit_length() - 1
        n_counters = len(isa.Counter)

        info = protocol.encode_info(self.config.tag, e, self.mem_size % (1 << 32), self.max_payload)
        reply_bytes = max(len(info), 4 * n_counters, protocol.StatusReply.as_shape().size // 8)
        args_bytes = protocol.StartArgs.as_shape().size // 8

        m.submodules.buf = buf = Memory(shape=8, depth=self.max_payload, init=[])
        wp = buf.write_port()
        rp = buf.read_port()

        # request registers
        cmd = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        args = Signal(8 * args_bytes)         # the first payload bytes, for the fixed arguments
        idx = Signal(16)
        crc = Signal(16)
        idle = Signal(range(self.idle_timeout + 1))
        last_cmd = Signal(8)
        last_seq = Signal(8)
        last_valid = Signal()

        # response registers
        status = Signal(8)
        resp_len = Signal(16)
        reply = Signal(8 * reply_bytes)
        reading = Signal()                     # payload comes from memory (READ_MEM)
        tcount = Signal(range(8))
        pidx = Signal(16)
        word = Signal(8 * e)
        waddr = Signal(32)                     # word address of the next memory access
        words_left = Signal(16)
        k = Signal(range(e + 1))

        # engine control
        ctl_insn_addr = Signal(32)
        ctl_insn_count = Signal(32)
        ctl_wr_lo = Signal(32)
        ctl_wr_hi = Signal(32)
        m.d.comb += [
            self.insn_addr.eq(ctl_insn_addr), self.insn_count.eq(ctl_insn_count),
            self.wr_lo.eq(ctl_wr_lo), self.wr_hi.eq(ctl_wr_hi),
            self.mem_bytes.eq(min(self.mem_size, (1 << 32) - e)),
        ]
        m.d.sync += [self.start.eq(0), self.engine_reset.eq(0)]

        rx_byte = self.rx.payload
        rx_take = self.rx.valid & self.rx.ready
        tx_take = self.tx.valid & self.tx.ready

        # idle timeout: a frame in progress dies when the link is quiet
        in_frame = Signal()
        with m.If(rx_take | ~in_frame):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self.idle_timeout):
            m.d.sync += idle.eq(idle + 1)
        timed_out = in_frame & (idle == self.idle_timeout)

        def respond(code: Status) -> None:
            m.d.sync += [status.eq(code.value), resp_len.eq(0), reading.eq(0)]
            m.next = "TX_SYNC"

        rw_addr = args[:32]
        rd_count = args[32:48]
        addr_end = Signal(33)
        wr_data_bytes = Signal(16)
        m.d.comb += wr_data_bytes.eq(length - protocol.WRITE_ADDR_BYTES)
        m.d.comb += addr_end.eq(rw_addr + Cat(wr_data_bytes, C(0, 17)))
        rd_end = Signal(33)
        m.d.comb += rd_end.eq(rw_addr + Cat(rd_count, C(0, 17)))
        repeat = Signal()
        m.d.comb += repeat.eq(last_valid & (last_cmd == cmd) & (last_seq == seq))

        status_reply = Signal(protocol.StatusReply)
        m.d.comb += [status_reply.busy.eq(self.busy), status_reply.done.eq(self.done),
                     status_reply.error.eq(self.error.as_value()), status_reply.error_pc.eq(self.error_pc)]

        m.d.comb += [wp.addr.eq(idx), wp.data.eq(rx_byte)]

        def fixed_len(c: Command) -> int:
            return {Command.READ_MEM: protocol.ReadArgs.as_shape().size // 8,
                    Command.START: args_bytes}.get(c, 0)

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(rx_take & (rx_byte == protocol.REQUEST_SYNC)):
                    m.d.sync += [crc.eq(protocol.CRC_INIT), idx.eq(0), args.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1)]
                with m.If(timed_out):
                    m.next = "SYNC"
                with m.Elif(rx_take):
                    m.d.sync += [crc.eq(crc16_next(crc, rx_byte)), idx.eq(idx + 1)]
                    with m.Switch(idx):
                        with m.Case(0):
                            m.d.sync += cmd.eq(rx_byte)
                        with m.Case(1):
                            m.d.sync += seq.eq(rx_byte)
                        with m.Case(2):
                            m.d.sync += length[:8].eq(rx_byte)
                        with m.Case(3):
                            m.d.sync += [length[8:].eq(rx_byte), idx.eq(0)]
                            with m.If(Cat(length[:8], rx_byte) > self.max_payload):
                                respond(Status.BAD_LENGTH)
                            with m.Elif(Cat(length[:8], rx_byte) == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1), wp.en.eq(rx_take)]
                with m.If(timed_out):
                    m.next = "SYNC"
                with m.Elif(rx_take):
                    m.d.sync += [crc.eq(crc16_next(crc, rx_byte)), idx.eq(idx + 1)]
                    with m.If(idx < args_bytes):
                        m.d.sync += args.word_select(idx[:(args_bytes - 1).bit_length()], 8).eq(rx_byte)
                    with m.If(idx == length - 1):
                        m.d.sync += idx.eq(0)
                        m.next = "CRC"

            with m.State("CRC"):
                m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1)]
                with m.If(timed_out):
                    m.next = "SYNC"
                with m.Elif(rx_take):
                    m.d.sync += [crc.eq(crc16_next(crc, rx_byte)), idx.eq(idx + 1)]
                    with m.If(idx == 1):
                        m.next = "CHECK"

            with m.State("CHECK"):
                with m.If(crc != 0):
                    respond(Status.BAD_CRC)
                with m.Else():
                    m.next = "EXEC"

            with m.State("EXEC"):
                known = Cat(*[cmd == c.value for c in Command]).any()
                bad_len = Signal()
                with m.Switch(cmd):
                    for c in Command:
                        with m.Case(c.value):
                            if c is Command.WRITE_MEM:
                                m.d.comb += bad_len.eq(length < protocol.WRITE_ADDR_BYTES)
                            else:
                                m.d.comb += bad_len.eq(length != fixed_len(c))
                with m.If(~known):
                    respond(Status.UNKNOWN_COMMAND)
                with m.Elif(bad_len):
                    respond(Status.BAD_LENGTH)
                with m.Elif(((cmd == Command.WRITE_MEM.value) | (cmd == Command.START.value))
                            & self.busy & ~repeat):
                    respond(Status.BUSY)
                with m.Else():
                    m.d.sync += [last_cmd.eq(cmd), last_seq.eq(seq), last_valid.eq(1)]
                    with m.Switch(cmd):
                        with m.Case(Command.INFO.value):
                            m.d.sync += [reply.eq(_const_bytes(info)), status.eq(Status.OK.value),
                                         resp_len.eq(len(info)), reading.eq(0)]
                            m.next = "TX_SYNC"
                        with m.Case(Command.STATUS.value):
                            m.d.sync += [reply.eq(status_reply.as_value()), status.eq(Status.OK.value),
                                         resp_len.eq(len(status_reply.as_value()) // 8), reading.eq(0)]
                            m.next = "TX_SYNC"
                        with m.Case(Command.READ_COUNTERS.value):
                            m.d.sync += [reply.eq(self.counters.as_value()), status.eq(Status.OK.value),
                                         resp_len.eq(4 * n_counters), reading.eq(0)]
                            m.next = "TX_SYNC"
                        with m.Case(Command.RESET.value):
                            m.d.sync += [self.engine_reset.eq(1), last_valid.eq(0)]
                            respond(Status.OK)
                        with m.Case(Command.START.value):
                            with m.If(~repeat):
                                m.d.sync += [
                                    ctl_insn_addr.eq(args[0:32]), ctl_insn_count.eq(args[32:64]),
                                    ctl_wr_lo.eq(args[64:96]), ctl_wr_hi.eq(args[96:128]),
                                    self.start.eq(1)]
                            respond(Status.OK)
                        with m.Case(Command.WRITE_MEM.value):
                            with m.If((rw_addr[:e_log] != 0) | (wr_data_bytes[:e_log] != 0) if e_log else
                                      C(0)):
                                respond(Status.BAD_ADDRESS)
                            with m.Elif(addr_end > self.mem_size):
                                respond(Status.BAD_ADDRESS)
                            with m.Elif(wr_data_bytes == 0):
                                respond(Status.OK)
                            with m.Else():
                                m.d.sync += [waddr.eq(rw_addr >> e_log), words_left.eq(wr_data_bytes >> e_log),
                                             idx.eq(protocol.WRITE_ADDR_BYTES), k.eq(0)]
                                m.next = "WR_FETCH"
                        with m.Case(Command.READ_MEM.value):
                            with m.If((rw_addr[:e_log] != 0) | (rd_count[:e_log] != 0) if e_log else C(0)):
                                respond(Status.BAD_ADDRESS)
                            with m.Elif((rd_end > self.mem_size) | (rd_count > self.max_payload)):
                                respond(Status.BAD_ADDRESS)
                            with m.Else():
                                m.d.sync += [status.eq(Status.OK.value), resp_len.eq(rd_count),
                                             reading.eq(1), waddr.eq(rw_addr >> e_log)]
                                m.next = "TX_SYNC"

            # WRITE_MEM: payload bytes -> words -> wr, one byte per two cycles (block RAM latency)
            with m.State("WR_FETCH"):
                m.d.comb += rp.addr.eq(idx)
                m.next = "WR_LATCH"
            with m.State("WR_LATCH"):
                m.d.sync += [word.word_select(k, 8).eq(rp.data) if e > 1 else word.eq(rp.data),
                             idx.eq(idx + 1), k.eq(k + 1)]
                with m.If(k == e - 1):
                    m.next = "WR_ISSUE"
                with m.Else():
                    m.next = "WR_FETCH"
            with m.State("WR_ISSUE"):
                m.d.comb += [self.wr.valid.eq(1), self.wr.payload.addr.eq(waddr),
                             self.wr.payload.data.eq(word)]
                with m.If(self.wr.ready):
                    m.d.sync += [waddr.eq(waddr + 1), words_left.eq(words_left - 1), k.eq(0)]
                    with m.If(words_left == 1):
                        respond(Status.OK)
                    with m.Else():
                        m.next = "WR_FETCH"

            # the response: sync, header, payload, CRC
            header = Cat(status, cmd, seq, resp_len)
            with m.State("TX_SYNC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(protocol.RESPONSE_SYNC)]
                with m.If(tx_take):
                    m.d.sync += [crc.eq(protocol.CRC_INIT), tcount.eq(0), pidx.eq(0), k.eq(0)]
                    m.next = "TX_HEADER"
            with m.State("TX_HEADER"):
                byte = header.word_select(tcount, 8)
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(byte)]
                with m.If(tx_take):
                    m.d.sync += [crc.eq(crc16_next(crc, byte)), tcount.eq(tcount + 1)]
                    with m.If(tcount == protocol.RESPONSE_HEADER_BYTES - 1):
                        m.d.sync += tcount.eq(0)
                        with m.If(resp_len == 0):
                            m.next = "TX_CRC"
                        with m.Elif(reading):
                            m.next = "TX_RDCMD"
                        with m.Else():
                            m.next = "TX_PAYLOAD"
            with m.State("TX_RDCMD"):
                m.d.comb += [self.rd_cmd.valid.eq(1), self.rd_cmd.payload.eq(waddr)]
                with m.If(self.rd_cmd.ready):
                    m.d.sync += waddr.eq(waddr + 1)
                    m.next = "TX_RDDATA"
            with m.State("TX_RDDATA"):
                m.d.comb += self.rd_data.ready.eq(1)
                with m.If(self.rd_data.valid):
                    m.d.sync += [word.eq(self.rd_data.payload), k.eq(0)]
                    m.next = "TX_PAYLOAD"
            with m.State("TX_PAYLOAD"):
                byte = Signal(8)
                with m.If(reading):
                    m.d.comb += byte.eq(word.word_select(k, 8) if e > 1 else word)
                with m.Else():
                    m.d.comb += byte.eq(reply.word_select(pidx[:(reply_bytes - 1).bit_length()], 8))
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(byte)]
                with m.If(tx_take):
                    m.d.sync += [crc.eq(crc16_next(crc, byte)), pidx.eq(pidx + 1), k.eq(k + 1)]
                    with m.If(pidx == resp_len - 1):
                        m.next = "TX_CRC"
                    with m.Elif(reading & (k == e - 1)):
                        m.next = "TX_RDCMD"
            with m.State("TX_CRC"):
                byte = Signal(8)
                m.d.comb += [byte.eq(crc.word_select(~tcount[0], 8)),
                             self.tx.valid.eq(1), self.tx.payload.eq(byte)]
                with m.If(tx_take):
                    m.d.sync += tcount.eq(tcount + 1)
                    with m.If(tcount == 1):
                        m.next = "SYNC"
        return m
