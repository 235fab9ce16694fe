"""The host driver: one class over a transport, the same calls for a board, the RTL in simulation
and the in-process device model.

Every call is one or more request/response exchanges of :mod:`sqzhw.protocol`. A request whose
response does not arrive in time, or arrives corrupted, or is NAKed with ``BAD_CRC``, is sent again
with the same sequence number (the device makes that safe, see the protocol's "Retries"), at most
``retries`` times; then the call raises :class:`LinkError` (or :class:`DeviceTimeout` when nothing
at all came back). No call returns data that did not pass the CRC.

:meth:`Accelerator.write` keeps several ``WRITE_MEM`` frames in flight (the protocol's "Windowed
writes", as many as the device advertises), so a USB serial bridge's response latency is paid once
per transfer, not once per frame; every other command is stop-and-wait.

:meth:`Accelerator.load` asks a device that has ``CHECKSUM_MEM`` for the CRC-32 of each piece of the
program's static image (instructions and weights, in chunks of :attr:`Accelerator.verify_chunk`
bytes) and writes only the chunks the device's memory does not already hold, then checks that the
memory holds what was written (:class:`MemoryFault` names the chunk if not). A program that is
still resident from an earlier session costs a few requests instead of the whole image; external
memory whose contents decayed (DRAM while the FPGA was reconfigured) or a write path that corrupts
are caught before the engine runs on them.
"""

import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .. import isa, protocol
from ..config import AccelConfig
from ..program import Program
from ..protocol import Command, Status

__all__ = ["Transport", "Accelerator", "DeviceInfo", "EngineStatus", "InferResult", "DriverError",
           "LinkError", "DeviceTimeout", "EngineError", "ConfigMismatchError", "DeviceBusyError",
           "MemoryFault", "LoadResult", "LoadChunk"]


class DriverError(Exception):
    """Base of every error the driver raises."""


class LinkError(DriverError):
    """The link kept corrupting frames: no good response after all retries."""


class DeviceTimeout(DriverError):
    """The device did not answer (nothing at all came back), or the engine did not finish in time."""


class DeviceBusyError(DriverError):
    """The engine is running; the request was refused."""


class ConfigMismatchError(DriverError):
    """The program was compiled for another accelerator configuration than the device's."""


class MemoryFault(DriverError):
    """The device's external memory did not start (DDR3: its read calibration found no window), or
    does not hold what was written to it (``CHECKSUM_MEM`` after a load).

    Attributes
    ----------
    chunk : LoadChunk or None
        The piece of memory whose contents are wrong (``None``: the memory did not start).
    expected, got : int or None
        The CRC-32 of what was written, and the device's CRC-32 of what its memory holds.
    """

    def __init__(self, message: str, chunk: "LoadChunk | None" = None, expected: int | None = None,
                 got: int | None = None) -> None:
        super().__init__(message)
        self.chunk, self.expected, self.got = chunk, expected, got


class EngineError(DriverError):
    """The engine stopped with an error status.

    Attributes
    ----------
    code : isa.ErrorCode
    error_pc : int
        Index of the failing instruction.
    """

    def __init__(self, code: "isa.ErrorCode | int", error_pc: int, detail: str = "") -> None:
        self.code = code
        self.error_pc = error_pc
        name = code.name if isinstance(code, isa.ErrorCode) else f"code {code}"
        super().__init__(f"engine error {name} at instruction {error_pc}{detail}")


class Transport(Protocol):
    """A byte pipe to a device.

    ``read(timeout)`` returns the bytes that arrived (at least one), waiting at most ``timeout``
    seconds (a transport may interpret it in its own time base), and ``b""`` when none came.
    ``default_timeout`` is a sensible per-response timeout, ``byte_time`` seconds per byte.
    """
    default_timeout: float
    byte_time: float

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DeviceInfo:
    version: int
    tag: str
    ext_bytes: int
    max_payload: int
    mem_bytes: int
    window: int = 1     #: ``WRITE_MEM`` frames the device takes in flight (1: stop-and-wait)
    features: int = 0   #: :class:`sqzhw.protocol.Feature` bits

    @property
    def has_checksum(self) -> bool:
        """The device answers ``CHECKSUM_MEM``."""
        return bool(self.features & protocol.Feature.CHECKSUM_MEM)


@dataclass(frozen=True)
class EngineStatus:
    busy: bool
    done: bool
    error: "isa.ErrorCode | int"
    error_pc: int
    mem_starting: bool = False   #: the external memory is still starting (DDR3 init, calibration)
    mem_failed: bool = False     #: the external memory failed to start


@dataclass
class InferResult:
    """One inference: float logits (pre-softmax), the int32 sums they come from, the counters."""
    logits: np.ndarray
    sums: np.ndarray
    counters: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class LoadChunk:
    """A piece of a program's static image: ``size`` bytes at ``addr``, ``what`` they are (region
    kind and name, and the byte range inside the region)."""
    addr: int
    size: int
    what: str

    def __str__(self) -> str:
        return f"0x{self.addr:x}..0x{self.addr + self.size:x} ({self.what})"


@dataclass
class LoadResult:
    """What :meth:`Accelerator.load` did.

    Attributes
    ----------
    verified : bool
        The device's CRC-32 decided what to write and confirmed what was written (``False``: a
        device without ``CHECKSUM_MEM``, or ``verify=False``: everything was written, unchecked).
    written, skipped : list of LoadChunk
        Chunks sent, and chunks the device's memory already held.
    bytes_total, bytes_sent : int
        The static image's size, and the program bytes written over the link.
    seconds : float
    """
    verified: bool
    written: list[LoadChunk] = field(default_factory=list)
    skipped: list[LoadChunk] = field(default_factory=list)
    bytes_total: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    @property
    def resident(self) -> bool:
        """The device already held the whole program: nothing was sent."""
        return self.verified and not self.written

    def summary(self) -> str:
        if not self.verified:
            return f"{self.bytes_total:,} bytes written (not checked: no CHECKSUM_MEM, or verify off)"
        chunks = len(self.written) + len(self.skipped)
        if self.resident:
            return (f"already on the device ({chunks} chunks, {self.bytes_total:,} bytes, CRC-32 checked): "
                    f"nothing sent")
        return (f"{len(self.written)} of {chunks} chunks written ({self.bytes_sent:,} of "
                f"{self.bytes_total:,} bytes), {len(self.skipped)} already on the device; CRC-32 checked "
                f"after writing")


@dataclass
class LinkStats:
    """What the link cost: frames sent, retries and their reasons."""
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    bad_frames: int = 0
    naks_bad_crc: int = 0


@dataclass(eq=False)
class _Pending:
    """One ``WRITE_MEM`` frame of a windowed write, until its ``OK``."""
    addr: int
    nbytes: int
    frame: bytes
    first_tx: int = 0                                   # number of its first copy's transmission
    last_tx: int = 0                                    # ... of its latest copy's
    reasons: list[str] = field(default_factory=list)   # why each copy failed


class _WriteWindow:
    """The ``WRITE_MEM`` frames of one :meth:`Accelerator.write`, up to ``size`` in flight (see the
    protocol's "Windowed writes").

    :meth:`put` sends a frame once fewer than ``size`` are unanswered; :meth:`finish` waits for the
    rest. Responses are matched to frames by ``seq``. A frame is resent (same ``seq``) after a
    ``BAD_CRC`` or corrupted-length NAK, when an ``OK`` for a frame sent after it shows that its
    answer was lost (the device answers in order), and when the link stays quiet for the response
    timeout with it in flight; after ``retries`` resends of one frame the write fails.
    """

    def __init__(self, acc: "Accelerator", size: int, total: int, what: str) -> None:
        self.acc = acc
        self.size = size
        self.total = total
        self.what = what
        self.inflight: dict[int, _Pending] = {}   # by seq, in order of first transmission
        self.acked = 0                            # data bytes acknowledged (progress)
        self.sent = 0                             # transmissions so far: orders the copies
        self._errors = acc._decoder.errors         # decoder errors and bytes received since the
        self._received = 0                        # last answer: a quiet link then was a bad one

    def put(self, addr: int, data: bytes) -> None:
        while len(self.inflight) >= self.size:
            self._receive()
        seq = self.acc._next_seq(self.inflight)
        p = _Pending(addr, len(data), protocol.encode_request(Command.WRITE_MEM, seq,
                                                              addr.to_bytes(4, "little") + data))
        self.inflight[seq] = p
        self._send(p)
        p.first_tx = p.last_tx

    def finish(self) -> None:
        while self.inflight:
            self._receive()

    def _send(self, p: _Pending, failed: str | None = None) -> None:
        """Transmit ``p``; a resend when its last copy ``failed`` (the reason)."""
        stats = self.acc.stats
        if failed is not None:
            p.reasons.append(failed)
            if len(p.reasons) > self.acc.retries:
                self._give_up(p)
            stats.retries += 1
        stats.requests += 1
        self.sent += 1
        p.last_tx = self.sent
        self.acc.transport.write(p.frame)

    def _receive(self) -> None:
        """Take what the device sent and act on it; a quiet link resends every frame in flight."""
        acc = self.acc
        decoder = acc._decoder
        timeout = acc._response_timeout(max(len(p.frame) for p in self.inflight.values()) + 8)
        chunk = acc.transport.read(timeout)
        self._received += len(chunk)
        babbling = self._received > 2 * sum(len(p.frame) + 8 for p in self.inflight.values()) + 64
        if chunk and not babbling:
            for f in decoder.feed(chunk):
                self._answer(f)
            return
        acc.stats.timeouts += not chunk
        quiet = self.sent
        # A partial frame will never complete: look behind its sync byte, then forget it.
        frames = decoder.resync()
        decoder.reset()
        for f in frames:
            self._answer(f)
        if not self.inflight:
            return
        bad = decoder.errors != self._errors or self._received > 0
        acc.stats.bad_frames += bad
        self._errors, self._received = decoder.errors, 0
        for p in list(self.inflight.values()):
            if p.last_tx <= quiet:           # not already resent above
                self._send(p, "bad frame" if bad else "timeout")

    def _answer(self, f: protocol.Frame) -> None:
        p = self.inflight.get(f.seq)
        if p is None or f.command != Command.WRITE_MEM:
            return   # a stale answer (an earlier copy's or request's), or a NAK of garbage
        acc = self.acc
        if f.status is Status.OK:
            del self.inflight[f.seq]
            self.acked += p.nbytes
            self._errors, self._received = acc._decoder.errors, 0
            # In-order answers: a frame whose last copy went before this one's first is lost.
            for q in list(self.inflight.values()):
                if q.last_tx < p.first_tx:
                    self._send(q, "lost (a later frame was answered)")
            if acc.progress:
                acc.progress(self.acked, self.total, self.what)
        elif f.status is Status.BAD_CRC:
            acc.stats.naks_bad_crc += 1
            self._send(p, "device saw a bad CRC")
        elif f.status is Status.BAD_LENGTH and p.nbytes + protocol.WRITE_ADDR_BYTES <= acc._max_payload:
            # The device judges the length before the CRC: a legal length refused was corrupted.
            self._send(p, "device saw a corrupted length")
        elif f.status is Status.BUSY:
            raise DeviceBusyError(f"WRITE_MEM at 0x{p.addr:x}: the engine is busy")
        else:
            name = f.status.name if isinstance(f.status, Status) else f"0x{f.status:02x}"
            raise DriverError(f"WRITE_MEM at 0x{p.addr:x} (seq {f.seq}, {p.nbytes} data bytes) refused by "
                              f"the device: {name}")

    def _give_up(self, p: _Pending) -> None:
        attempts = len(p.reasons)
        if all(r == "timeout" for r in p.reasons):
            timeout = self.acc._response_timeout(len(p.frame) + 8)
            raise DeviceTimeout(f"WRITE_MEM at 0x{p.addr:x}: no response from the device after {attempts} "
                                f"attempts of {timeout:.3g} s")
        raise LinkError(f"WRITE_MEM at 0x{p.addr:x}: no good response after {attempts} attempts "
                        f"({', '.join(p.reasons)})")


class Accelerator:
    """The sqzhw accelerator behind a transport.

    Parameters
    ----------
    transport : Transport
        ``SerialTransport``, ``LoopbackTransport`` or a simulated-hardware transport.
    config : AccelConfig, optional
        Expected configuration: checked against the device's tag on first contact.
    retries : int
        Resends of one request after a timeout or a corrupted exchange.
    timeout : float, optional
        Seconds to wait for a response (default: the transport's).
    run_timeout : float
        Seconds an inference may run before :class:`DeviceTimeout`.
    progress : callable, optional
        ``progress(done_bytes, total_bytes, what)`` during long transfers.
    window : int, optional
        Most ``WRITE_MEM`` frames :meth:`write` keeps in flight (1 to
        :data:`sqzhw.protocol.MAX_WINDOW`; default and upper bound: the device's advertised
        window). 1 is stop-and-wait.
    """

    def __init__(self, transport: Transport, config: AccelConfig | None = None, *, retries: int = 4,
                 timeout: float | None = None, run_timeout: float = 60.0,
                 progress: Callable[[int, int, str], None] | None = None, window: int | None = None) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        if window is not None and not 1 <= window <= protocol.MAX_WINDOW:
            raise ValueError(f"window must be 1..{protocol.MAX_WINDOW} frames, got {window!r}")
        self.window = window
        self.transport = transport
        self.config = config
        self.retries = retries
        self.timeout = timeout if timeout is not None else transport.default_timeout
        self.run_timeout = run_timeout
        self.progress = progress
        self.stats = LinkStats()
        self.program: Program | None = None
        #: Bytes of the static image :meth:`load` compares (and rewrites) at a time.
        self.verify_chunk = 64 << 10
        #: What the last :meth:`load` did.
        self.last_load: LoadResult | None = None
        self._seq = 0
        self._decoder = protocol.FrameDecoder(responses=True)
        self._info: DeviceInfo | None = None

    # -- the exchange ------------------------------------------------------------------------

    def _response_timeout(self, reply_bytes: int) -> float:
        return self.timeout + reply_bytes * getattr(self.transport, "byte_time", 0.0)

    def _next_seq(self, busy=()) -> int:
        """A new ``seq`` (mod 256), none of ``busy`` (those still in flight)."""
        self._seq = (self._seq + 1) & 0xFF
        while self._seq in busy:
            self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def request(self, command: Command, payload: bytes = b"", reply_bytes: int = 0,
                work: float = 0.0) -> bytes:
        """Send one request and return the payload of its ``OK`` response (retrying as needed).
        ``work``: seconds the device may take to execute it, added to the response timeout."""
        seq = self._next_seq()
        frame = protocol.encode_request(command, seq, payload)
        timeout = self._response_timeout(len(frame) + reply_bytes + 8) + work
        reasons = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            self.stats.requests += 1
            self.transport.write(frame)
            response, why = self._await(command, seq, timeout, len(frame) + reply_bytes + 8)
            if response is None:
                reasons.append(why)
                continue
            status = response.status
            if status is Status.OK:
                return response.payload
            if status is Status.BAD_CRC:
                # The request was corrupted on the way: nothing was done, send it again.
                self.stats.naks_bad_crc += 1
                reasons.append("device saw a bad CRC")
                continue
            if status is Status.BAD_LENGTH and len(payload) <= self._max_payload:
                # The device judges the length before the CRC arrives: a legal length refused means
                # the header was corrupted on the way.
                reasons.append("device saw a corrupted length")
                continue
            name = status.name if isinstance(status, Status) else f"0x{status:02x}"
            if status is Status.BUSY:
                raise DeviceBusyError(f"{command.name}: the engine is busy")
            raise DriverError(f"{command.name} (seq {seq}, {len(payload)} payload bytes) refused by the "
                              f"device: {name}")
        if all(r == "timeout" for r in reasons):
            raise DeviceTimeout(f"{command.name}: no response from the device after "
                                f"{self.retries + 1} attempts of {timeout:.3g} s")
        raise LinkError(f"{command.name}: no good response after {self.retries + 1} attempts "
                        f"({', '.join(reasons)})")

    def _await(self, command: Command, seq: int, timeout: float, expect: int):
        """The response to ``(command, seq)``, or ``(None, reason)`` once the link stays quiet for
        ``timeout`` (or keeps babbling for far more than ``expect`` bytes)."""
        errors = self._decoder.errors
        received = 0
        while True:
            chunk = self.transport.read(timeout)
            received += len(chunk)
            if not chunk or received > 2 * expect + 64:
                self.stats.timeouts += not chunk
                # A partial frame will never complete: look behind its sync byte, then forget it.
                frames = self._decoder.resync()
                self._decoder.reset()
                match = [f for f in frames if f.seq == seq and f.command == command]
                if match:
                    return match[0], ""
                if self._decoder.errors != errors or received:
                    # Bytes came back but no good frame: the link, not a silent device.
                    self.stats.bad_frames += 1
                    return None, "bad frame"
                return None, "timeout"
            for f in self._decoder.feed(chunk):
                if f.seq == seq and f.command == command:
                    return f, ""
                # Otherwise a stale answer to an earlier attempt or request: ignore it.

    # -- device commands ---------------------------------------------------------------------

    def info(self) -> DeviceInfo:
        """Protocol version, config tag, word size, payload limit and memory size of the device."""
        d = protocol.decode_info(self.request(Command.INFO, reply_bytes=64))
        info = DeviceInfo(version=d["version"], tag=d["tag"], ext_bytes=d["ext_bytes"],
                          max_payload=d["max_payload"], mem_bytes=d["mem_bytes"], window=d["window"],
                          features=d["features"])
        if info.version not in protocol.COMPATIBLE_VERSIONS:
            raise DriverError(f"device speaks host-link protocol version {info.version}, this driver "
                              f"speaks {' and '.join(map(str, protocol.COMPATIBLE_VERSIONS))}")
        if self.config is not None and self.config.tag != info.tag:
            raise ConfigMismatchError(f"expected a device with config {self.config.name!r} "
                                      f"({self.config.tag}), the device is {info.tag}")
        self._info = info
        return info

    @property
    def _max_payload(self) -> int:
        return self._info.max_payload if self._info is not None else protocol.MAX_PAYLOAD

    @property
    def device(self) -> DeviceInfo:
        return self._info if self._info is not None else self.info()

    def status(self) -> EngineStatus:
        s = protocol.decode_status(self.request(Command.STATUS, reply_bytes=8))
        return EngineStatus(busy=s["busy"], done=s["done"], error=s["error"], error_pc=s["error_pc"],
                            mem_starting=s["mem_starting"], mem_failed=s["mem_failed"])

    def wait_memory(self, timeout: float = 5.0) -> None:
        """Return once the device's external memory is up (a DDR3 board initialises and calibrates
        it for about a millisecond after configuration or reset); :class:`MemoryFault` if it failed,
        :class:`DeviceTimeout` if it is still starting after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.status()
            if s.mem_failed:
                raise MemoryFault("the device's external memory failed to start: its DDR3 read calibration "
                                  "found no working capture setting on some byte lane (the error LED is lit). "
                                  "Check the board and the memory's pins, or build with `--memory bram`")
            if not s.mem_starting:
                return
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"the device's external memory is still starting after {timeout} s")

    def counters(self) -> dict[isa.Counter, int]:
        """The engine's performance counters of the last run."""
        return protocol.decode_counters(self.request(Command.READ_COUNTERS, reply_bytes=4 * len(isa.Counter)))

    def reset(self) -> None:
        """Reset the engine (stops a run, clears status); memory is kept."""
        self.request(Command.RESET)

    def start(self, insn_addr: int, insn_count: int, wr_lo: int, wr_hi: int) -> None:
        self.request(Command.START, protocol.encode_start_args(insn_addr, insn_count, wr_lo, wr_hi))

    def _chunk(self) -> int:
        d = self.device
        return (d.max_payload - protocol.WRITE_ADDR_BYTES) // d.ext_bytes * d.ext_bytes

    def _check_range(self, addr: int, n: int, what: str) -> None:
        d = self.device
        if addr < 0 or n < 0 or addr + n > d.mem_bytes:
            raise DriverError(f"{what} of {n} bytes at 0x{addr:x} is outside the device's "
                              f"{d.mem_bytes} bytes of memory")

    def write(self, addr: int, data: bytes, what: str = "write") -> None:
        """Write bytes to device memory (any alignment: partial words are read, merged, written)."""
        data = bytes(data)
        self._check_range(addr, len(data), what)
        addr, data = self._whole_words(addr, data)
        step = self._chunk()
        frames = _WriteWindow(self, self.write_window, len(data), what)
        for off in range(0, len(data), step):
            frames.put(addr + off, data[off:off + step])
        frames.finish()

    @property
    def write_window(self) -> int:
        """``WRITE_MEM`` frames :meth:`write` keeps in flight: the device's window, at most the
        constructor's ``window`` and :data:`sqzhw.protocol.MAX_WINDOW`."""
        return max(1, min(self.device.window, self.window or protocol.MAX_WINDOW, protocol.MAX_WINDOW))

    def read(self, addr: int, n: int, what: str = "read") -> bytes:
        """Read ``n`` bytes of device memory."""
        self._check_range(addr, n, what)
        e = self.device.ext_bytes
        lo, hi = addr - addr % e, -(-(addr + n) // e) * e
        step = self.device.max_payload // e * e
        out = bytearray()
        for a in range(lo, hi, step):
            count = min(step, hi - a)
            reply = self.request(Command.READ_MEM, protocol.encode_read_args(a, count), reply_bytes=count)
            if len(reply) != count:
                raise LinkError(f"READ_MEM at 0x{a:x}: asked {count} bytes, got {len(reply)}")
            out += reply
            if self.progress:
                self.progress(len(out), hi - lo, what)
        return bytes(out[addr - lo:addr - lo + n])

    def checksum(self, addr: int, n: int, what: str = "checksum") -> int:
        """CRC-32 (:func:`zlib.crc32`) of ``n`` bytes of device memory at ``addr``, computed by the
        device (``CHECKSUM_MEM``): both multiples of the device's word. One request whatever ``n``;
        its response timeout grows by :func:`sqzhw.protocol.checksum_seconds` of ``n``."""
        d = self.device
        if not d.has_checksum:
            raise DriverError(f"{what}: the device has no CHECKSUM_MEM (protocol {d.version}, features "
                              f"0x{d.features:02x}): a bitstream built without it, or an older one")
        self._check_range(addr, n, what)
        if addr % d.ext_bytes or n % d.ext_bytes:
            raise DriverError(f"{what} of {n} bytes at 0x{addr:x}: CHECKSUM_MEM takes whole "
                              f"{d.ext_bytes}-byte words")
        reply = self.request(Command.CHECKSUM_MEM, protocol.encode_checksum_args(addr, n), reply_bytes=4,
                             work=protocol.checksum_seconds(n))
        return protocol.decode_checksum(reply)

    # -- programs ----------------------------------------------------------------------------

    def load(self, program: Program, verify: bool = True) -> LoadResult:
        """Check the program against the device and write its instructions and weights.

        With ``verify`` and a device that has ``CHECKSUM_MEM``, each chunk of the static image
        (:attr:`verify_chunk` bytes) is compared with the device's CRC-32 of its memory first and
        written only when they differ; every chunk written is then checked again. Otherwise
        everything is written, unchecked.

        Returns
        -------
        LoadResult
            Chunks written and skipped, bytes sent (also kept in :attr:`last_load`).

        Raises
        ------
        MemoryFault
            The memory failed to start, or does not hold what was written (names the chunk: its
            address range and the region it belongs to).
        """
        d = self.device
        if program.config.tag != d.tag:
            raise ConfigMismatchError(f"program was compiled for config {program.config.name!r} "
                                      f"({program.config.tag}), the device is {d.tag}")
        if program.memory_size > d.mem_bytes:
            raise DriverError(f"program needs {program.memory_size} bytes of memory, the device has "
                              f"{d.mem_bytes}")
        self.wait_memory()
        t0 = time.monotonic()
        name = program.model_name or "program"
        pieces = program.static_image()
        result = LoadResult(verified=verify and d.has_checksum, bytes_total=sum(len(b) for _, b in pieces))
        self.program = None                 # until the memory holds it
        if not result.verified:
            for addr, blob in pieces:
                self.write(addr, blob, what=f"load {name} @0x{addr:x}")
            result.bytes_sent = result.bytes_total
        else:
            self._load_verified(program, name, pieces, result)
        result.seconds = time.monotonic() - t0
        self.last_load = result
        self.program = program
        return result

    def _load_verified(self, program: Program, name: str, pieces: list[tuple[int, bytes]],
                       result: LoadResult) -> None:
        """:meth:`load` with ``CHECKSUM_MEM``: compare, write what differs, check what was written."""
        e = self.device.ext_bytes
        step = max(1, self.verify_chunk // e) * e
        stale: list[tuple[LoadChunk, bytes]] = []
        for addr, blob in pieces:
            addr, blob = self._whole_words(addr, blob)
            chunks = [(self._chunk_of(program, addr + off, blob[off:off + step]), blob[off:off + step])
                      for off in range(0, len(blob), step)]
            # One request settles a piece the device holds whole (the common case of a resident program).
            if len(chunks) > 1 and self.checksum(addr, len(blob), f"load {name}") == zlib.crc32(blob):
                result.skipped += [c for c, _ in chunks]
                continue
            for chunk, data in chunks:
                if self.checksum(chunk.addr, chunk.size, f"load {name}") == zlib.crc32(data):
                    result.skipped.append(chunk)
                else:
                    stale.append((chunk, data))
        # Adjacent chunks go in one write (its frames stay in flight across them).
        runs: list[list[tuple[LoadChunk, bytes]]] = []
        for chunk, data in stale:
            if runs and runs[-1][-1][0].addr + runs[-1][-1][0].size == chunk.addr:
                runs[-1].append((chunk, data))
            else:
                runs.append([(chunk, data)])
        blobs = [b"".join(data for _, data in run) for run in runs]
        for run, blob in zip(runs, blobs):
            self.write(run[0][0].addr, blob, what=f"load {name} @0x{run[0][0].addr:x}")
            result.bytes_sent += len(blob)
            result.written += [c for c, _ in run]
        # What was written must now be there: one request per run, per chunk only to name a fault.
        for run, blob in zip(runs, blobs):
            if self.checksum(run[0][0].addr, len(blob), f"load {name}") == zlib.crc32(blob):
                continue
            for chunk, data in run:
                got, expected = self.checksum(chunk.addr, chunk.size, f"load {name}"), zlib.crc32(data)
                if got != expected:
                    raise MemoryFault(f"load {name}: the device's memory does not hold what was written at "
                                      f"{chunk}: its CRC-32 is 0x{got:08x}, the data's 0x{expected:08x}. A "
                                      f"fault on the memory's write or read path (sqzhw selftest checks it), "
                                      f"or the memory changed since", chunk, expected, got)
            # Only the run as a whole read wrong: the memory changes between two reads.
            chunk = LoadChunk(run[0][0].addr, len(blob), ", ".join(c.what for c, _ in run))
            raise MemoryFault(f"load {name}: the device's memory does not hold what was written at {chunk}: "
                              f"its contents change from one read to the next", chunk, zlib.crc32(blob))

    def _whole_words(self, addr: int, blob: bytes) -> tuple[int, bytes]:
        """``(addr, blob)`` widened to whole device words with the memory's own bytes around it
        (only the partial words at the two ends are read)."""
        e = self.device.ext_bytes
        lo, hi = addr - addr % e, -(-(addr + len(blob)) // e) * e
        if (lo, hi) == (addr, addr + len(blob)):
            return addr, blob
        head = self.read(lo, addr - lo) if addr > lo else b""
        tail = self.read(addr + len(blob), hi - addr - len(blob)) if hi > addr + len(blob) else b""
        return lo, head + bytes(blob) + tail

    @staticmethod
    def _chunk_of(program: Program, addr: int, data: bytes) -> LoadChunk:
        """The chunk at ``addr`` named by the program region it lies in."""
        region = next((r for r in program.regions if r.base <= addr < r.end), None)
        if region is None:
            return LoadChunk(addr, len(data), "outside the program's regions")
        kind = region.kind if region.name == region.kind else f"{region.kind} (region {region.name!r})"
        lo = addr - region.base
        span = f"bytes 0x{lo:x}..0x{lo + len(data):x} of 0x{region.size:x}"
        return LoadChunk(addr, len(data), f"{kind}, {span}")

    def run(self, poll_interval: float = 0.0) -> EngineStatus:
        """Run the loaded program to its END (see :meth:`execute`)."""
        p = self._loaded()
        lo, hi = p.writable
        return self.execute(p.insn_base, len(p.instructions), lo, hi, poll_interval)

    def execute(self, insn_addr: int, insn_count: int, wr_lo: int, wr_hi: int,
                poll_interval: float = 0.0) -> EngineStatus:
        """Start the engine on the instructions at ``insn_addr`` and poll until it stops;
        :class:`EngineError` on an error status, :class:`DeviceTimeout` after ``run_timeout``."""
        self.start(insn_addr, insn_count, wr_lo, wr_hi)
        deadline = time.monotonic() + self.run_timeout
        while True:
            s = self.status()
            if not s.busy:
                break
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"engine still busy after {self.run_timeout} s")
            if poll_interval:
                time.sleep(poll_interval)
        if s.error != isa.ErrorCode.NONE:
            raise EngineError(s.error, s.error_pc, self._where(s.error_pc))
        if not s.done:
            raise DriverError("engine stopped without done or an error (was it reset?)")
        return s

    def _where(self, pc: int) -> str:
        p = self.program
        if p is None or not 0 <= pc < len(p.instructions):
            return ""
        layer = next((layer.name for layer in p.layers
                      if layer.insn_start <= pc < layer.insn_start + layer.insn_count), None)
        return (f" ({isa.disassemble(p.instructions[pc])}"
                + (f", layer {layer!r})" if layer else ")"))

    def _loaded(self) -> Program:
        if self.program is None:
            raise DriverError("no program loaded: call load(program) first")
        return self.program

    def infer_full(self, image_or_array) -> InferResult:
        """Run one input: an image file, an HxWx3 uint8 image or a preprocessed float (C, H, W)
        array. Returns logits, int32 sums and counters."""
        from .. import runtime

        p = self._loaded()
        t0 = time.monotonic()
        x = image_or_array
        if not (isinstance(x, np.ndarray) and x.ndim == 3 and x.dtype.kind == "f"
                and x.shape[0] == p.input.channels):
            if isinstance(x, (str, Path)) and not Path(x).exists():
                raise DriverError(f"image {str(x)!r} does not exist")
            x = runtime.prepare_image(p, x)
        self.write(p.region("input").base, runtime.input_bytes(p, x), what="input")
        self.run()
        out = p.output
        memory = bytearray(out.base + out.size)
        memory[out.base:out.base + out.size] = self.read(out.base, out.size, what="output")
        sums, logits = runtime.read_output(p, memory)
        counters = self.counters()
        return InferResult(logits=np.asarray(logits, dtype=np.float64), sums=np.asarray(sums),
                           counters=counters, seconds=time.monotonic() - t0)

    def infer(self, image_or_array) -> np.ndarray:
        """Logits (float, pre-softmax) of one input; :attr:`last` holds the full result."""
        self.last = self.infer_full(image_or_array)
        return self.last.logits

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
