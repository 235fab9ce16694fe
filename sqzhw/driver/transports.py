"""Byte transports for :class:`sqzhw.driver.Accelerator`, and the in-process device model.

* :class:`SerialTransport` — a board's USB serial port (pyserial); :func:`open_serial` opens it at
  the rate the board answers at.
* :class:`LoopbackTransport` — a :class:`DeviceModel` in this process: the protocol as the gateware
  implements it, with the golden executor as the engine. It can corrupt, drop and insert bytes in
  either direction (:class:`FaultInjector`) to test the driver's retries.
* Simulated hardware: ``tests/test_system_sim.py`` drives the board top in Verilator through
  cocotb behind the same two calls (``write``, ``read``).
"""

import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .. import isa, protocol
from ..config import AccelConfig
from ..protocol import Command, Frame, Status

__all__ = ["SerialTransport", "LoopbackTransport", "DeviceModel", "FaultInjector"]


class SerialTransport:
    """A serial port (the board's USB UART).

    Parameters
    ----------
    port : str
        e.g. ``/dev/ttyUSB0``.
    baud : int
        Must match the bitstream's UART (the build report's ``baud``; :func:`open_serial` finds it).
    timeout : float
        Default per-response timeout, seconds.
    opener : callable, optional
        ``opener(port, baud, timeout)`` -> a pyserial-like port (default ``serial.Serial``; tests
        pass a fake one).
    """

    def __init__(self, port: str, baud: int = protocol.DEFAULT_BAUD, timeout: float = 0.5, *,
                 opener: Callable | None = None) -> None:
        from .accelerator import DeviceTimeout
        if opener is None:
            try:
                import serial
            except ImportError:  # pragma: no cover - pyserial is a dependency
                raise RuntimeError("SerialTransport needs pyserial (pip install pyserial)") from None
            opener, failure = (lambda p, b, t: serial.Serial(p, b, timeout=t)), serial.SerialException
        else:
            failure = OSError
        try:
            self._port = opener(port, baud, timeout)
        except failure as exc:
            raise DeviceTimeout(f"cannot open serial port {port!r}: {exc}") from None
        self.port = port
        self.baud = baud
        self.byte_time = 10.0 / baud       # start + 8 data + stop bits
        self.default_timeout = timeout

    def set_baud(self, baud: int) -> None:
        """Switch the port to ``baud`` and drop what arrived before (at the old rate: garbage)."""
        self._port.baudrate = baud
        self.baud = baud
        self.byte_time = 10.0 / baud
        self._port.reset_input_buffer()

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read(self, timeout: float) -> bytes:
        self._port.timeout = timeout
        first = self._port.read(1)
        if not first:
            return b""
        return first + self._port.read(self._port.in_waiting)

    def close(self) -> None:
        self._port.close()


#: Each board's default host-link rate (``boards.common.host_link_baud`` at the board's own config),
#: the most likely first, then :data:`sqzhw.protocol.DEFAULT_BAUD`: ULX3S and iCEBreaker 2 Mbaud,
#: ECPIX-5 6 Mbaud, Arty A7 4 Mbaud, OrangeCrab 1 Mbaud. ``boards.host_link_rates()`` derives the
#: same tuple from the board specs (a test keeps them equal); the driver does not import ``boards``,
#: which is not installed with the package.
HOST_LINK_BAUDS: tuple[int, ...] = (2_000_000, 6_000_000, 4_000_000, 1_000_000)


def open_serial(port: str, baud: int | None = None, candidates: Sequence[int] = HOST_LINK_BAUDS, *,
                timeout: float = 0.5, probe_timeout: float = 0.2, opener: Callable | None = None
                ) -> SerialTransport:
    """Open a board's serial port at its bitstream's rate.

    With ``baud`` the port opens at that rate, no questions asked. Without, each of ``candidates``
    (then :data:`sqzhw.protocol.DEFAULT_BAUD`) is tried in turn with an ``INFO`` request (two
    attempts of ``probe_timeout`` seconds) and the first rate that gets a good answer is kept. At a
    wrong rate the device sees garbage: its parser hunts for the sync byte, drops a partial frame
    after an idle timeout and never acts on a frame whose CRC fails, and ``INFO`` has no effect
    anyway. A device that answers but refuses (another protocol version, say) also keeps its rate:
    the caller's own ``info()`` then reports why.

    Returns
    -------
    SerialTransport
        At the rate found (``transport.baud``).

    Raises
    ------
    DeviceTimeout
        No rate got an answer (names the port and every rate tried), or the port does not open.
    """
    from .accelerator import Accelerator, DeviceTimeout, DriverError, LinkError

    if baud is not None:
        return SerialTransport(port, baud, timeout, opener=opener)
    rates = list(dict.fromkeys([*candidates, protocol.DEFAULT_BAUD]))
    transport = SerialTransport(port, rates[0], timeout, opener=opener)
    for rate in rates:
        transport.set_baud(rate)
        try:
            Accelerator(transport, retries=1, timeout=probe_timeout).info()
        except (LinkError, DeviceTimeout):
            continue        # silence or garbage: not this rate
        except (DriverError, protocol.ProtocolError):
            pass            # a good frame came back: this is the rate
        return transport
    transport.close()
    raise DeviceTimeout(f"no sqzhw device answered on {port} at {', '.join(f'{r:,}' for r in rates)} baud "
                        f"(an INFO request at each): is the bitstream loaded and is this the board's UART? "
                        f"A build with another --baud needs that rate passed as --baud")


__all__ += ["HOST_LINK_BAUDS", "open_serial"]


@dataclass
class FaultInjector:
    """Corrupts a byte stream: each byte is flipped with probability ``corrupt``, dropped with
    ``drop``, and preceded by a random byte with ``insert``. ``events`` counts what happened."""
    corrupt: float = 0.0
    drop: float = 0.0
    insert: float = 0.0
    seed: int = 0
    events: dict = field(default_factory=lambda: {"corrupt": 0, "drop": 0, "insert": 0})

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            r = self.rng.random(3)
            if r[2] < self.insert:
                out.append(int(self.rng.integers(256)))
                self.events["insert"] += 1
            if r[0] < self.drop:
                self.events["drop"] += 1
                continue
            if r[1] < self.corrupt:
                b ^= 1 << int(self.rng.integers(8))
                self.events["corrupt"] += 1
            out.append(b)
        return bytes(out)


class DeviceModel:
    """The device behind the protocol, in Python: the reference for :mod:`rtl_gen.hostlink`.

    Requests are parsed by :class:`sqzhw.protocol.RequestParser` (the gateware's parser); commands
    act on a ``bytearray`` memory; ``START`` runs :class:`sqzhw.golden.executor.Executor` at once.

    Parameters
    ----------
    config : AccelConfig
    mem_bytes : int
        External memory size.
    max_payload : int
        Largest request payload accepted.
    busy_polls : int
        ``STATUS`` replies that still say busy after a ``START`` (to exercise polling and ``BUSY``).
    memory_startup_polls : int
        ``STATUS`` replies that say the external memory is still starting (as a DDR3 board's right
        after configuration).
    memory_failed : bool
        The external memory failed to start (a DDR3 read calibration without a window).
    window : int
        ``WRITE_MEM`` frames in flight ``INFO`` advertises (as the gateware's receive FIFO makes
        true; the model takes any number of back-to-back frames).
    checksum : bool
        Has ``CHECKSUM_MEM`` (as ``HostLink(checksum=...)``): without it ``INFO`` says so and the
        command is ``UNKNOWN_COMMAND``.

    Attributes
    ----------
    memory : bytearray
        The external memory (a test may put a subclass with faults in its place).
    """

    def __init__(self, config: AccelConfig, mem_bytes: int = 1 << 20, max_payload: int = protocol.MAX_PAYLOAD,
                 busy_polls: int = 0, memory_startup_polls: int = 0, memory_failed: bool = False,
                 window: int = protocol.DEFAULT_WINDOW, checksum: bool = True) -> None:
        self.config = config
        self.mem_bytes = mem_bytes
        self.max_payload = max_payload
        self.window = window
        self.checksum = checksum
        self.memory = bytearray(mem_bytes)
        self.parser = protocol.RequestParser(max_payload)
        self.busy_polls = busy_polls
        self.memory_startup_polls = memory_startup_polls
        self.memory_failed = memory_failed
        self._busy_left = 0
        self._last: tuple[int, int] | None = None   # (command, seq) of the last frame executed
        self.starts = 0                              # engine runs, for tests
        self.executed: list[Frame] = []
        self._reset_engine()

    def _reset_engine(self) -> None:
        self.done = False
        self.error = isa.ErrorCode.NONE
        self.error_pc = 0
        self.counter_values = [0] * len(isa.Counter)
        self._busy_left = 0

    @property
    def busy(self) -> bool:
        return self._busy_left > 0

    def idle(self) -> None:
        """The idle timeout: a frame in progress is dropped."""
        self.parser.idle()

    def receive(self, data: bytes) -> bytes:
        """Bytes from the host in, the device's response bytes out."""
        out = bytearray()
        for b in data:
            event = self.parser.feed(b)
            if event is None:
                continue
            if isinstance(event, Frame):
                out += self.execute(event)
            else:
                status, command, seq = event
                out += protocol.encode_response(status, command, seq)
        return bytes(out)

    def execute(self, frame: Frame) -> bytes:
        """The response to one good request."""
        status, reply = self._execute(frame)
        return protocol.encode_response(status, frame.command, frame.seq, reply)

    def _execute(self, f: Frame) -> tuple[Status, bytes]:
        if not isinstance(f.command, Command) or (f.command is Command.CHECKSUM_MEM and not self.checksum):
            return Status.UNKNOWN_COMMAND, b""
        c, n, e = f.command, len(f.payload), self.config.ext_bytes
        repeat = self._last == (c.value, f.seq)
        fixed = {Command.INFO: 0, Command.STATUS: 0, Command.READ_COUNTERS: 0, Command.RESET: 0,
                 Command.READ_MEM: protocol.ReadArgs.as_shape().size // 8,
                 Command.START: protocol.StartArgs.as_shape().size // 8,
                 Command.CHECKSUM_MEM: protocol.ChecksumArgs.as_shape().size // 8}
        if (c in fixed and n != fixed[c]) or (c is Command.WRITE_MEM and n < protocol.WRITE_ADDR_BYTES):
            return Status.BAD_LENGTH, b""
        if c in (Command.WRITE_MEM, Command.START) and self.busy and not repeat:
            return Status.BUSY, b""
        self._last = (c.value, f.seq)
        self.executed.append(f)
        if c is Command.INFO:
            features = protocol.Feature.CHECKSUM_MEM if self.checksum else 0
            return Status.OK, protocol.encode_info(self.config.tag, e, self.mem_bytes, self.max_payload,
                                                   self.window, features)
        if c is Command.STATUS:
            starting = self.memory_startup_polls > 0 and not self.memory_failed
            reply = protocol.encode_status(self.busy, self.done and not self.busy,
                                           self.error if not self.busy else 0, self.error_pc,
                                           mem_starting=starting, mem_failed=self.memory_failed)
            self._busy_left = max(0, self._busy_left - 1)
            self.memory_startup_polls = max(0, self.memory_startup_polls - 1)
            return Status.OK, reply
        if c is Command.READ_COUNTERS:
            return Status.OK, protocol.encode_counters(self.counter_values)
        if c is Command.RESET:
            self._reset_engine()
            return Status.OK, b""
        if c is Command.WRITE_MEM:
            addr = int.from_bytes(f.payload[:4], "little")
            data = f.payload[4:]
            if addr % e or len(data) % e or addr + len(data) > self.mem_bytes:
                return Status.BAD_ADDRESS, b""
            self.memory[addr:addr + len(data)] = data
            return Status.OK, b""
        if c is Command.READ_MEM:
            a = protocol.decode_read_args(f.payload)
            addr, count = int(a.addr), int(a.count)
            if addr % e or count % e or count > self.max_payload or addr + count > self.mem_bytes:
                return Status.BAD_ADDRESS, b""
            return Status.OK, bytes(self.memory[addr:addr + count])
        if c is Command.CHECKSUM_MEM:
            a = protocol.decode_checksum_args(f.payload)
            addr, count = int(a.addr), int(a.count)
            if addr % e or count % e or addr + count > self.mem_bytes:
                return Status.BAD_ADDRESS, b""
            return Status.OK, protocol.encode_checksum(zlib.crc32(bytes(self.memory[addr:addr + count])))
        if c is Command.START:
            if not repeat:
                self._run(protocol.decode_start_args(f.payload))
            return Status.OK, b""
        raise AssertionError(c)  # every Command is handled above

    def _run(self, args) -> None:
        from ..golden.executor import Executor

        self._reset_engine()
        self.starts += 1
        # Hazards are the compiler's business (the hardware cannot see them): do not raise here.
        executor = Executor(self.config, self.memory, wr_window=(int(args.wr_lo), int(args.wr_hi)),
                            raise_hazards=False)
        result = executor.run(int(args.insn_addr), int(args.insn_count))
        error = getattr(result, "error", isa.ErrorCode.NONE) or isa.ErrorCode.NONE
        self.error = error
        self.error_pc = int(getattr(result, "error_pc", 0) or 0)
        self.done = error == isa.ErrorCode.NONE
        # The executor's cycle model stands in for the hardware counters.
        model = getattr(result, "counters", {}) or {}
        values = [int(model.get(c.name.lower(), 0)) & 0xFFFFFFFF for c in isa.Counter]
        self.counter_values = values
        self._busy_left = self.busy_polls


class LoopbackTransport:
    """The :class:`DeviceModel` behind a transport, with optional faults in each direction.

    ``read`` returns what the device has answered; when nothing is pending it returns ``b""`` at
    once (a timeout costs no wall time) and tells the device that the link went idle.
    """

    byte_time = 0.0
    default_timeout = 0.0

    def __init__(self, device: DeviceModel, to_device: FaultInjector | None = None,
                 from_device: FaultInjector | None = None, chunk: int = 0) -> None:
        self.device = device
        self.to_device = to_device
        self.from_device = from_device
        self.chunk = chunk
        self._pending: deque[bytes] = deque()
        self.bytes_sent = 0

    def write(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        if self.to_device:
            data = self.to_device(data)
        reply = self.device.receive(data)
        if self.from_device:
            reply = self.from_device(reply)
        if reply:
            if self.chunk:
                self._pending.extend(reply[i:i + self.chunk] for i in range(0, len(reply), self.chunk))
            else:
                self._pending.append(reply)

    def read(self, timeout: float) -> bytes:
        if self._pending:
            return self._pending.popleft()
        self.device.idle()
        return b""

    def close(self) -> None:
        pass
