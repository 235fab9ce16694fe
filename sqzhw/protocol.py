"""The host link protocol, written once for the gateware (:mod:`rtl_gen.hostlink`) and the driver
(:mod:`sqzhw.driver`).

Frames
------
Every request from the host and every response from the device is one frame; multi-byte fields
are little-endian::

    request:   0xA5 | command u8 | seq u8 | length u16 | payload (length bytes) | crc u16
    response:  0x5A | status u8  | command u8 | seq u8 | length u16 | payload | crc u16

``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR; check value 0x29B1 for ``b"123456789"``) over every byte after the sync byte and before the
CRC, sent most significant byte first, so that running the CRC over the whole frame after the sync
byte, CRC included, gives 0. The two directions use different sync bytes so that an echo of a
request is never taken for a response. ``length`` is at most :data:`MAX_PAYLOAD`.

The device answers every request whose CRC is good and whose header it could parse, echoing its
``command`` and ``seq``, in the order the requests arrive: with :attr:`Status.OK` and the command's
reply payload, or with a NAK status and an empty payload. A request whose CRC fails gets
:attr:`Status.BAD_CRC` and is never acted on. A request whose length exceeds the device's maximum
gets :attr:`Status.BAD_LENGTH` right after its header (the device then resynchronises on the next
sync byte). A frame cut short (dropped bytes) is discarded silently after :data:`IDLE_TIMEOUT_BYTES`
byte times without a byte at the device's parser (which may first be busy for up to one
``WRITE_MEM``'s execution and answer with bytes it kept, see below); the host's timeout and retry
cover it. A frame cut short that is followed at once by another swallows the head of the next
one: the device NAKs the pair as one bad frame, or drops it, and hunts for the next sync byte.

Retries
-------
The host retries a request with the *same* ``seq`` after a timeout or a bad response. Every
command is idempotent except ``START``; the device therefore remembers the ``seq`` of the last
``START`` it executed and acknowledges a repeated ``START`` with that ``seq`` without starting the
engine again. The host takes a new ``seq`` (mod 256) for every new request.

Windowed writes
---------------
A host may keep up to ``window`` ``WRITE_MEM`` frames in flight (sent, not yet answered), where
``window`` is what the device advertises in :data:`InfoHeader` (1: stop-and-wait) or less, and
never more than :data:`MAX_WINDOW`. The device keeps the request bytes that arrive while it executes
a frame and answers it (a receive FIFO sized for one whole ``WRITE_MEM`` at the line rate), so
frames sent back-to-back at the line rate are never lost; a host on a USB serial bridge then pays
the bridge's response latency once per transfer instead of once per frame. The rules:

* Only ``WRITE_MEM`` is windowed. Every other command is stop-and-wait: the host sends it when no
  frame is in flight and waits for its response before sending anything else.
* ``WRITE_MEM`` is idempotent (a copy executed twice writes the same bytes), so the host may resend
  any frame it has no ``OK`` for; the frames of one transfer write disjoint addresses, and the
  device executes frames in arrival order, so a late copy never overwrites newer data.
* Responses come back in the order the frames arrived. An ``OK`` for frame *k* therefore means that
  every frame whose last copy was sent before *k*'s first copy and that has no response was lost
  (on the way there or back): the host resends it without waiting for a timeout.
* ``BAD_CRC``, or ``BAD_LENGTH`` for a legal length (its header was corrupted), makes the host
  resend that frame; a link quiet for the response timeout with frames in flight makes it resend
  every frame not acknowledged. Only frames without an ``OK`` are ever resent.
* Every new frame takes a new ``seq``, never one still in flight. A few copies of each frame at
  most (the host's retries) and a window far below 256 (:data:`MAX_WINDOW`) keep a late answer to
  an old copy from ever being taken for a newer frame's answer once ``seq`` wraps around.
* ``BUSY`` or any other NAK (``BAD_ADDRESS`` ...) ends the transfer with an error; answers to the
  other frames still in flight are then stale, and the host ignores them (their ``seq`` is not the
  one it waits for).

Commands and payloads
---------------------
=================  ==========================================  =====================================
command            request payload                             reply payload (``Status.OK``)
=================  ==========================================  =====================================
``INFO``           (empty)                                     :data:`InfoHeader` + config tag (ASCII)
``WRITE_MEM``      address u32 + data (windowed)               (empty)
``READ_MEM``       :data:`ReadArgs` (address u32, count u16)   ``count`` bytes
``START``          :data:`StartArgs`                           (empty)
``STATUS``         (empty)                                     :data:`StatusReply`
``READ_COUNTERS``  (empty)                                     ``len(isa.Counter)`` x u32
``RESET``          (empty)                                     (empty); the device resets the engine
``CHECKSUM_MEM``   :data:`ChecksumArgs` (address, count u32)   CRC-32 u32 of the ``count`` bytes
=================  ==========================================  =====================================

``WRITE_MEM``, ``READ_MEM`` and ``CHECKSUM_MEM`` addresses and byte counts are multiples of the
device's external word (``ext_bytes`` in :data:`InfoHeader`) and stay inside its memory
(``mem_bytes``), otherwise :attr:`Status.BAD_ADDRESS`. ``WRITE_MEM`` and ``START`` while the engine
is busy get :attr:`Status.BUSY`.

``CHECKSUM_MEM`` reads ``count`` bytes of memory (any number up to all of it, far more than a frame)
and answers with their CRC-32 in memory order: IEEE 802.3 as :func:`zlib.crc32` (reflected,
polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF; 0 for no bytes). It is read-only and
idempotent (a retry reads again; never ``BUSY``: the engine may run meanwhile), and lets a host
decide whether the memory holds what it wrote, or still holds a program from an earlier session,
without moving the bytes over the link. The device answers only once it has read all ``count``
bytes, at no less than :data:`CHECKSUM_MIN_RATE` bytes per second: the host waits its usual response
timeout plus ``count / CHECKSUM_MIN_RATE`` seconds (:func:`checksum_seconds`). A device has the
command when :attr:`Feature.CHECKSUM_MEM` is set in ``features`` of its ``INFO`` reply (a board
built without it answers ``UNKNOWN_COMMAND``).

Versions: 2 added ``window`` to :data:`InfoHeader` (version 1 devices are stop-and-wait; their INFO
reply has no ``window`` byte); 3 added ``features`` (:class:`Feature`) and ``CHECKSUM_MEM``. A
version 2 reply has no ``features`` byte and decodes with none: the commands of version 2 are those
of version 3 without ``CHECKSUM_MEM``, so a host may talk to both (:data:`COMPATIBLE_VERSIONS`).
"""


import struct
import zlib
from dataclasses import dataclass
from typing import Iterator

from amaranth.lib import data, enum

from . import isa

__all__ = [
    "PROTOCOL_VERSION", "DEFAULT_BAUD", "REQUEST_SYNC", "RESPONSE_SYNC", "MAX_PAYLOAD", "IDLE_TIMEOUT_BYTES",
    "CRC_POLY", "CRC_INIT", "Command", "Status", "RequestHeader", "ResponseHeader", "InfoHeader",
    "ReadArgs", "StartArgs", "StatusReply", "Frame", "ProtocolError", "crc16", "crc16_update",
    "crc16_matrix", "encode_frame", "encode_request", "encode_response", "FrameDecoder",
    "REQUEST_HEADER_BYTES", "RESPONSE_HEADER_BYTES", "CRC_BYTES", "decode_info", "decode_status",
    "decode_counters", "encode_info", "encode_status", "encode_counters", "DEFAULT_WINDOW", "MAX_WINDOW",
    "COMPATIBLE_VERSIONS", "Feature", "ChecksumArgs", "CRC32_POLY", "CRC32_INIT", "CHECKSUM_MIN_RATE",
    "crc32", "crc32_update", "crc32_matrix", "checksum_seconds", "encode_checksum_args",
    "decode_checksum_args", "encode_checksum", "decode_checksum",
]

PROTOCOL_VERSION = 3
#: Versions a host of this protocol talks to: 2 is 3 without ``features`` and ``CHECKSUM_MEM``.
COMPATIBLE_VERSIONS = (2, 3)
#: The boards' UART rate. Every supported board's USB serial bridge is an FTDI chip, which makes
#: 1 Mbaud exactly (3 MHz / 3), and the engine clocks in ``configs/`` divide it within 1 %
#: (50 MHz / 50, 25 MHz / 25). Nearly 9x 115200 baud: the input image is the longest transfer.
DEFAULT_BAUD = 1_000_000
REQUEST_SYNC = 0xA5
RESPONSE_SYNC = 0x5A
#: Largest payload of any frame (``WRITE_MEM``: 4 address bytes + up to 1020 data bytes).
MAX_PAYLOAD = 1024
#: A frame in progress is dropped after this many byte times without a new byte.
IDLE_TIMEOUT_BYTES = 32
#: ``WRITE_MEM`` frames in flight a device with a receive FIFO advertises: a full frame is ~10 ms at
#: 1 Mbaud, so 8 cover an FTDI bridge's 16 ms latency timer several times over.
DEFAULT_WINDOW = 8
#: The most ``WRITE_MEM`` frames a host keeps in flight, whatever a device advertises: ``seq`` is
#: mod 256, and the copies of the frames in flight must stay far below that.
MAX_WINDOW = 16
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
CRC_BYTES = 2
#: CRC-32 of ``CHECKSUM_MEM`` (IEEE 802.3, reflected: the polynomial 0x04C11DB7 bit-reversed).
CRC32_POLY = 0xEDB88320
CRC32_INIT = 0xFFFFFFFF
#: Bytes per second a device's ``CHECKSUM_MEM`` reads at least: the host's response timeout grows by
#: ``count / CHECKSUM_MIN_RATE`` seconds. Measured in the system simulations (one read in flight, a
#: byte per cycle into the CRC): 2 cycles per byte on the iCEBreaker's SPRAM (9 MB/s at 18 MHz), 4.1
#: on the SDRAM (12 MB/s at 50 MHz), 3.3 on the DDR3 (18 MB/s at 60 MHz): 9x margin and more.
CHECKSUM_MIN_RATE = 1_000_000


class Command(enum.Enum, shape=8):
    """Request commands (the ``command`` byte)."""
    INFO = 0x01
    WRITE_MEM = 0x02
    READ_MEM = 0x03
    START = 0x04
    STATUS = 0x05
    READ_COUNTERS = 0x06
    RESET = 0x07
    CHECKSUM_MEM = 0x08


class Feature(enum.IntFlag, shape=8):
    """Optional commands a device has: bits of ``features`` in :data:`InfoHeader`."""
    CHECKSUM_MEM = 0x01


#: ``PING`` is ``INFO``: an empty request answered with the version and the config tag.
PING = Command.INFO


class Status(enum.Enum, shape=8):
    """Response status (the ``status`` byte)."""
    OK = 0x00
    BAD_CRC = 0x01          #: the request's CRC failed; nothing was done
    BAD_LENGTH = 0x02       #: payload longer than the device takes, or wrong for the command
    UNKNOWN_COMMAND = 0x03  #: command byte not in :class:`Command`
    BUSY = 0x04             #: the engine is running (``WRITE_MEM``, ``START``)
    BAD_ADDRESS = 0x05      #: unaligned, or outside the device's memory


class RequestHeader(data.Struct):
    """Request header after the sync byte (as received, byte 0 first)."""
    command: 8
    seq: 8
    length: 16


class ResponseHeader(data.Struct):
    """Response header after the sync byte."""
    status: 8
    command: 8
    seq: 8
    length: 16


class InfoHeader(data.Struct):
    """Fixed part of the ``INFO`` reply; the config tag (ASCII) follows it."""
    version: 8
    ext_bytes: 8
    max_payload: 16
    mem_bytes: 32
    window: 8           #: ``WRITE_MEM`` frames a host may have in flight (1: stop-and-wait)
    features: 8         #: :class:`Feature` bits (version 3)


class ReadArgs(data.Struct):
    """``READ_MEM`` request payload."""
    addr: 32
    count: 16


class ChecksumArgs(data.Struct):
    """``CHECKSUM_MEM`` request payload."""
    addr: 32
    count: 32


class StartArgs(data.Struct):
    """``START`` request payload: the engine's control inputs (see docs/architecture.md)."""
    insn_addr: 32
    insn_count: 32
    wr_lo: 32
    wr_hi: 32


class StatusReply(data.Struct):
    """``STATUS`` reply payload."""
    busy: 1
    done: 1
    mem_starting: 1     #: the external memory is still starting (DDR3 init and read calibration)
    mem_failed: 1       #: the external memory failed to start (DDR3: no read window on some lane)
    flags_reserved: 4
    error: 8            #: :class:`sqzhw.isa.ErrorCode`
    error_pc: 32


REQUEST_HEADER_BYTES = RequestHeader.as_shape().size // 8
RESPONSE_HEADER_BYTES = ResponseHeader.as_shape().size // 8
WRITE_ADDR_BYTES = 4


class ProtocolError(ValueError):
    """A frame or payload that does not follow this protocol (names the field)."""


# -- CRC --------------------------------------------------------------------------------------

def crc16_update(crc: int, byte: int) -> int:
    """One byte of CRC-16/CCITT-FALSE (MSB first)."""
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
    return crc & 0xFFFF


def _table() -> list[int]:
    return [crc16_update(0, b) for b in range(256)]


_TABLE = _table()


def crc16(data_bytes: bytes | bytearray | memoryview, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data_bytes`` (``crc16(b"123456789") == 0x29B1``)."""
    for b in bytes(data_bytes):
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ b]
    return crc


def crc16_matrix() -> list[tuple[int, int]]:
    """The byte update as a GF(2) matrix, for XOR-tree gateware.

    The update is linear in ``(crc, byte)``; entry ``i`` is ``(crc_mask, byte_mask)``: new bit
    ``i`` is the XOR of the old CRC bits in ``crc_mask`` and the data bits in ``byte_mask``.
    """
    return _update_matrix(crc16_update, 16)


def crc32_update(crc: int, byte: int) -> int:
    """One byte of the reflected CRC-32 register (no initial value or final XOR applied)."""
    crc ^= byte & 0xFF
    for _ in range(8):
        crc = (crc >> 1) ^ (CRC32_POLY if crc & 1 else 0)
    return crc


def crc32(data_bytes: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32 of ``data_bytes``, continuing from the CRC ``crc`` of the bytes before them: the
    :func:`zlib.crc32` that ``CHECKSUM_MEM`` answers with."""
    return zlib.crc32(bytes(data_bytes), crc)


def crc32_matrix() -> list[tuple[int, int]]:
    """:func:`crc32_update` as a GF(2) matrix, for XOR-tree gateware: entry ``i`` is ``(crc_mask,
    byte_mask)``, new register bit ``i`` is the XOR of the old register bits in ``crc_mask`` and the
    data bits in ``byte_mask``. The register starts at :data:`CRC32_INIT`; the CRC is its complement."""
    return _update_matrix(crc32_update, 32)


def _update_matrix(update, bits: int) -> list[tuple[int, int]]:
    """A byte update ``update(crc, byte)``, linear over GF(2), as ``bits`` rows ``(crc_mask,
    byte_mask)``: the register and data bits each new register bit XORs."""
    return [(sum(1 << j for j in range(bits) if update(1 << j, 0) >> i & 1),
             sum(1 << j for j in range(8) if update(0, 1 << j) >> i & 1)) for i in range(bits)]


def checksum_seconds(count: int) -> float:
    """The most a device may spend reading ``count`` bytes for ``CHECKSUM_MEM``: the host adds it to
    its response timeout."""
    return count / CHECKSUM_MIN_RATE


# -- frames -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """A decoded frame. ``status`` is ``None`` for requests. ``command`` and ``status`` are plain
    integers when they are not members of the enums (e.g. an unknown command)."""
    command: Command | int
    seq: int
    payload: bytes
    status: Status | int | None = None

    @property
    def is_response(self) -> bool:
        return self.status is not None


def _int(value) -> int:
    return value.value if isinstance(value, enum.Enum) else int(value)


def _enum_or_int(cls, value: int):
    try:
        return cls(value)
    except ValueError:
        return value


def encode_request(command: Command | int, seq: int, payload: bytes = b"") -> bytes:
    """A request frame, sync byte to CRC."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"{_name(command)} payload of {len(payload)} bytes exceeds "
                            f"MAX_PAYLOAD = {MAX_PAYLOAD}")
    if not 0 <= seq <= 255:
        raise ProtocolError(f"seq = {seq} is not a byte")
    body = struct.pack("<BBH", _int(command), seq, len(payload)) + bytes(payload)
    return bytes([REQUEST_SYNC]) + body + crc16(body).to_bytes(2, "big")


def encode_response(status: Status | int, command: Command | int, seq: int,
                    payload: bytes = b"") -> bytes:
    """A response frame, sync byte to CRC."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"response payload of {len(payload)} bytes exceeds MAX_PAYLOAD")
    body = struct.pack("<BBBH", _int(status), _int(command), seq, len(payload)) + bytes(payload)
    return bytes([RESPONSE_SYNC]) + body + crc16(body).to_bytes(2, "big")


def encode_frame(frame: Frame) -> bytes:
    """Encode a :class:`Frame` (a response when ``frame.status`` is set)."""
    if frame.status is None:
        return encode_request(frame.command, frame.seq, frame.payload)
    return encode_response(frame.status, frame.command, frame.seq, frame.payload)


def _name(command) -> str:
    return command.name if isinstance(command, Command) else f"command 0x{_int(command):02x}"


class FrameDecoder:
    """Streaming decoder of one direction's frames that resynchronises after garbage.

    Feed bytes as they arrive with :meth:`feed`; it yields every complete frame whose CRC is good.
    Bytes before a sync byte, frames with a bad CRC and frames with an impossible length are
    skipped and counted in :attr:`errors`; after a bad frame the search for the next sync byte
    restarts at the byte after the bad frame's sync byte, so a frame hidden in garbage is found.

    Parameters
    ----------
    responses : bool
        Decode responses (sync 0x5A) instead of requests (sync 0xA5).
    max_payload : int
        Longest payload accepted.
    """

    def __init__(self, responses: bool = True, max_payload: int = MAX_PAYLOAD) -> None:
        self.responses = responses
        self.max_payload = max_payload
        self.sync = RESPONSE_SYNC if responses else REQUEST_SYNC
        self.header_bytes = RESPONSE_HEADER_BYTES if responses else REQUEST_HEADER_BYTES
        self.buffer = bytearray()
        #: Frames dropped (bad CRC or impossible length) and garbage bytes skipped.
        self.errors = 0
        self.skipped = 0

    def reset(self) -> None:
        """Forget everything held (a partial frame)."""
        self.buffer.clear()

    def resync(self) -> list[Frame]:
        """After a timeout: give up the partial frame at the front and look for a frame after its
        sync byte (one hidden behind a corrupted length, say)."""
        if not self.buffer:
            return []
        self._drop()
        return list(self.feed(b""))

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self.buffer)

    def feed(self, chunk: bytes) -> Iterator[Frame]:
        self.buffer += chunk
        while True:
            start = self.buffer.find(self.sync)
            if start < 0:
                self.skipped += len(self.buffer)
                self.buffer.clear()
                return
            if start:
                self.skipped += start
                del self.buffer[:start]
            if len(self.buffer) < 1 + self.header_bytes:
                return
            length = int.from_bytes(self.buffer[self.header_bytes - 1:self.header_bytes + 1], "little")
            if length > self.max_payload:
                self._drop()
                continue
            total = 1 + self.header_bytes + length + CRC_BYTES
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[1:total])
            if crc16(body) != 0:
                self._drop()
                continue
            del self.buffer[:total]
            payload = body[self.header_bytes:self.header_bytes + length]
            if self.responses:
                yield Frame(command=_enum_or_int(Command, body[1]), seq=body[2], payload=payload,
                            status=_enum_or_int(Status, body[0]))
            else:
                yield Frame(command=_enum_or_int(Command, body[0]), seq=body[1], payload=payload)

    def _drop(self) -> None:
        self.errors += 1
        self.skipped += 1
        del self.buffer[:1]


# -- payloads ---------------------------------------------------------------------------------

def _const_bytes(layout, values: dict) -> bytes:
    shape = layout.as_shape() if hasattr(layout, "as_shape") else layout
    return layout.const(values).as_bits().to_bytes(shape.size // 8, "little")


def _from_bytes(layout, raw: bytes, what: str):
    size = layout.as_shape().size // 8
    if len(raw) < size:
        raise ProtocolError(f"{what} reply of {len(raw)} bytes is shorter than {size}")
    return layout.from_bits(int.from_bytes(raw[:size], "little"))


def encode_info(tag: str, ext_bytes: int, mem_bytes: int, max_payload: int = MAX_PAYLOAD,
                window: int = DEFAULT_WINDOW, features: int = Feature.CHECKSUM_MEM) -> bytes:
    """The ``INFO`` reply payload (``features``: :class:`Feature` bits, default every one)."""
    if not 1 <= window <= 255:
        raise ProtocolError(f"window = {window!r}: 1..255 frames")
    return _const_bytes(InfoHeader, {"version": PROTOCOL_VERSION, "ext_bytes": ext_bytes,
                                     "max_payload": max_payload, "mem_bytes": mem_bytes,
                                     "window": window, "features": int(features)}) + tag.encode("ascii")


def decode_info(raw: bytes) -> dict:
    """``{"version", "ext_bytes", "max_payload", "mem_bytes", "window", "features", "tag"}`` from an
    ``INFO`` reply. Older replies lack the last header fields: version 1 has no ``window`` (1,
    stop-and-wait), versions 1 and 2 no ``features`` (0: no ``CHECKSUM_MEM``)."""
    size = InfoHeader.as_shape().size // 8
    # The fields a version lacks read as their defaults (the version check may then refuse it).
    missing = {1: b"\x01\x00", 2: b"\x00"}.get(raw[0] if raw else None, b"")
    size -= len(missing)
    h = _from_bytes(InfoHeader, raw[:size] + missing, "INFO")
    try:
        tag = raw[size:].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"INFO reply carries a non-ASCII config tag {raw!r}") from None
    return {"version": int(h.version), "ext_bytes": int(h.ext_bytes), "max_payload": int(h.max_payload),
            "mem_bytes": int(h.mem_bytes), "window": int(h.window), "features": int(h.features), "tag": tag}


def encode_status(busy: bool, done: bool, error: int, error_pc: int, *, mem_starting: bool = False,
                  mem_failed: bool = False) -> bytes:
    return _const_bytes(StatusReply, {"busy": int(busy), "done": int(done), "mem_starting": int(mem_starting),
                                      "mem_failed": int(mem_failed), "error": _int(error), "error_pc": error_pc})


def decode_status(raw: bytes) -> dict:
    """``{"busy", "done", "mem_starting", "mem_failed", "error" (isa.ErrorCode or int), "error_pc"}``
    from a ``STATUS`` reply."""
    s = _from_bytes(StatusReply, raw, "STATUS")
    return {"busy": bool(s.busy), "done": bool(s.done), "mem_starting": bool(s.mem_starting),
            "mem_failed": bool(s.mem_failed), "error": _enum_or_int(isa.ErrorCode, int(s.error)),
            "error_pc": int(s.error_pc)}


def encode_counters(values) -> bytes:
    values = list(values)
    if len(values) != len(isa.Counter):
        raise ProtocolError(f"{len(values)} counters, expected {len(isa.Counter)}")
    return b"".join((int(v) & 0xFFFFFFFF).to_bytes(4, "little") for v in values)


def decode_counters(raw: bytes) -> dict[isa.Counter, int]:
    n = len(isa.Counter)
    if len(raw) != 4 * n:
        raise ProtocolError(f"READ_COUNTERS reply of {len(raw)} bytes, expected {4 * n}")
    return {c: int.from_bytes(raw[4 * c.value:4 * c.value + 4], "little") for c in isa.Counter}


def encode_read_args(addr: int, count: int) -> bytes:
    return _const_bytes(ReadArgs, {"addr": addr, "count": count})


def encode_start_args(insn_addr: int, insn_count: int, wr_lo: int, wr_hi: int) -> bytes:
    return _const_bytes(StartArgs, {"insn_addr": insn_addr, "insn_count": insn_count,
                                    "wr_lo": wr_lo, "wr_hi": wr_hi})


def encode_checksum_args(addr: int, count: int) -> bytes:
    return _const_bytes(ChecksumArgs, {"addr": addr, "count": count})


def decode_checksum_args(raw: bytes):
    return _from_bytes(ChecksumArgs, raw, "CHECKSUM_MEM request")


def encode_checksum(crc: int) -> bytes:
    """The ``CHECKSUM_MEM`` reply: the CRC-32, u32."""
    return (crc & 0xFFFFFFFF).to_bytes(4, "little")


def decode_checksum(raw: bytes) -> int:
    if len(raw) != 4:
        raise ProtocolError(f"CHECKSUM_MEM reply of {len(raw)} bytes, expected 4")
    return int.from_bytes(raw, "little")


def decode_read_args(raw: bytes):
    return _from_bytes(ReadArgs, raw, "READ_MEM request")


def decode_start_args(raw: bytes):
    return _from_bytes(StartArgs, raw, "START request")


__all__ += ["PING", "WRITE_ADDR_BYTES", "encode_read_args", "encode_start_args", "decode_read_args",
            "decode_start_args", "RequestParser"]


class RequestParser:
    """The device's request parser, byte by byte: the reference model of :mod:`rtl_gen.hostlink`'s
    receive state machine (the Python device model runs it, the gateware tests compare with it).

    :meth:`feed` takes one byte and returns ``None`` or an event: ``Frame`` (a good request, to
    execute) or ``(Status, command, seq)`` (a NAK to send, nothing executed). Unlike
    :class:`FrameDecoder`, it never looks back: after a bad frame it hunts for the next sync byte
    from the byte after the frame's CRC, as the gateware does. :meth:`idle` is the idle timeout.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.idle()

    def idle(self) -> None:
        """Drop a frame in progress (no byte for :data:`IDLE_TIMEOUT_BYTES` byte times)."""
        self._state = "sync"
        self._body = bytearray()
        self._need = 0

    @property
    def in_frame(self) -> bool:
        return self._state != "sync"

    def feed(self, byte: int):
        if self._state == "sync":
            if byte == REQUEST_SYNC:
                self._state, self._body, self._need = "header", bytearray(), REQUEST_HEADER_BYTES
            return None
        self._body.append(byte)
        self._need -= 1
        if self._need:
            return None
        command, seq, length = self._body[0], self._body[1], int.from_bytes(self._body[2:4], "little")
        if self._state == "header":
            if length > self.max_payload:
                self.idle()
                return (Status.BAD_LENGTH, command, seq)
            self._state, self._need = "body", length + CRC_BYTES
            return None
        body = self._body
        self.idle()
        if crc16(body) != 0:
            return (Status.BAD_CRC, command, seq)
        return Frame(command=_enum_or_int(Command, command), seq=seq,
                     payload=bytes(body[REQUEST_HEADER_BYTES:REQUEST_HEADER_BYTES + length]))
