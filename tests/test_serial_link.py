"""Opening a board's serial port at its bitstream's rate without being told it
(:func:`sqzhw.driver.transports.open_serial`), against a fake pyserial port whose device
(:class:`~sqzhw.driver.transports.DeviceModel`) runs its UART at one rate: at any other rate both
directions pass through a model of an 8N1 receiver clocked at the wrong rate, so the device sees
(and the host gets back) what real hardware would: garbage."""

import math

import pytest

from sqzhw import protocol
from sqzhw.config import load_config
from sqzhw.driver import Accelerator, DeviceModel, DeviceTimeout
from sqzhw.driver.transports import HOST_LINK_BAUDS, SerialTransport, open_serial
from sqzhw.protocol import Command

TINY = load_config("tiny")
PORT = "/dev/ttyFAKE0"


def uart_seen_at(data: bytes, sent_baud: int, seen_baud: int) -> bytes:
    """What an 8N1 receiver at ``seen_baud`` makes of ``data`` sent back to back at ``sent_baud``.

    Like :class:`rtl_gen.uart.UARTRx`: a falling edge still low half a bit later starts a byte,
    the data bits and the stop bit are sampled in their middles by the receiver's own bit time,
    a byte whose stop bit is low is dropped, and the next start edge is looked for from there.
    """
    levels = [bit for byte in data for bit in (0, *((byte >> i) & 1 for i in range(8)), 1)]

    def level(t: float) -> int:
        i = math.floor(t * sent_baud)
        return levels[i] if i < len(levels) else 1

    out = bytearray()
    bit = 1 / seen_baud
    t, step, end, prev = 0.0, bit / 16, len(levels) / sent_baud, 1
    while t < end:
        now = level(t)
        if prev and not now and not level(t + bit / 2):
            bits = [level(t + (k + 1.5) * bit) for k in range(8)]
            if level(t + 9.5 * bit):
                out.append(sum(b << k for k, b in enumerate(bits)))
            t += 9.5 * bit
            prev = level(t)
            continue
        prev = now
        t += step
    return bytes(out)


class FakeSerial:
    """A pyserial-shaped port to ``device``, whose UART runs at ``device_baud``.

    ``read`` returns at once: when nothing is pending the timeout has passed quietly, and the
    device's idle timeout drops a partial frame (as :class:`LoopbackTransport` does).
    """

    def __init__(self, device: DeviceModel, device_baud: int, baudrate: int, timeout: float) -> None:
        self.device, self.device_baud = device, device_baud
        self.baudrate, self.timeout = baudrate, timeout
        self.pending = bytearray()
        self.sent: list[int] = []      # the host's rate at each write
        self.closed = False

    def write(self, data: bytes) -> int:
        self.sent.append(self.baudrate)
        reply = self.device.receive(uart_seen_at(data, self.baudrate, self.device_baud))
        self.pending += uart_seen_at(reply, self.device_baud, self.baudrate)
        return len(data)

    def flush(self) -> None:
        pass

    def read(self, size: int = 1) -> bytes:
        if not self.pending:
            self.device.idle()
            return b""
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self.pending)

    def reset_input_buffer(self) -> None:
        self.pending.clear()

    def close(self) -> None:
        self.closed = True


def fake_port(device_baud: int):
    """``(opener, device, ports)``: an ``open_serial`` opener whose ports lead to one device."""
    device = DeviceModel(TINY, 1 << 16)
    ports: list[FakeSerial] = []

    def opener(port: str, baud: int, timeout: float) -> FakeSerial:
        assert port == PORT
        ports.append(FakeSerial(device, device_baud, baud, timeout))
        return ports[-1]

    return opener, device, ports


def test_uart_model_passes_bytes_at_the_same_rate_only():
    frame = protocol.encode_request(Command.INFO, 1)
    for rate in HOST_LINK_BAUDS:
        assert uart_seen_at(frame, rate, rate) == frame
        assert all(uart_seen_at(frame, rate, other) != frame for other in HOST_LINK_BAUDS if other != rate)
    # within the receiver's margin a slightly fast sender still gets through
    assert uart_seen_at(frame, 1_020_000, 1_000_000) == frame


def test_candidates_end_with_the_default_rate():
    assert HOST_LINK_BAUDS[-1] == protocol.DEFAULT_BAUD
    assert len(set(HOST_LINK_BAUDS)) == len(HOST_LINK_BAUDS)


@pytest.mark.parametrize("device_baud", HOST_LINK_BAUDS)
def test_open_serial_keeps_the_rate_that_answers(device_baud):
    """The probe tries the rates in order on one open port and stops at the device's; the pings at
    the wrong rates reached the device as garbage and made it do nothing at all."""
    opener, device, ports = fake_port(device_baud)
    transport = open_serial(PORT, opener=opener)
    assert transport.baud == device_baud == ports[0].baudrate and len(ports) == 1
    tried = list(dict.fromkeys(ports[0].sent))
    assert tried == list(HOST_LINK_BAUDS[:HOST_LINK_BAUDS.index(device_baud) + 1])
    assert [f.command for f in device.executed] == [Command.INFO]     # the one ping it understood
    assert device.starts == 0 and not any(device.memory)
    assert math.isclose(transport.byte_time, 10 / device_baud)
    # The driver works over it as over any transport.
    assert Accelerator(transport, TINY).info().tag == TINY.tag


def test_open_serial_with_a_rate_opens_it_without_asking():
    opener, device, ports = fake_port(4_000_000)
    transport = open_serial(PORT, 4_000_000, opener=opener)
    assert transport.baud == ports[0].baudrate == 4_000_000 and ports[0].sent == []
    # a forced wrong rate is not corrected: the caller said so
    opener, device, ports = fake_port(2_000_000)
    assert open_serial(PORT, 6_000_000, opener=opener).baud == 6_000_000 and ports[0].sent == []


def test_open_serial_names_the_port_and_every_rate_when_nothing_answers():
    opener, device, ports = fake_port(115_200)
    with pytest.raises(DeviceTimeout) as info:
        open_serial(PORT, candidates=(3_000_000, 2_000_000), opener=opener)
    message = str(info.value)
    assert PORT in message and "--baud" in message
    for rate in ("3,000,000", "2,000,000", "1,000,000"):     # the candidates, then DEFAULT_BAUD
        assert rate in message, rate
    assert ports[0].closed and device.executed == []


def test_open_serial_candidates_and_a_port_that_does_not_open():
    """Candidates are tried as given (a rate given twice once), DEFAULT_BAUD after them; a port that
    does not open is a DeviceTimeout naming it."""
    opener, device, ports = fake_port(protocol.DEFAULT_BAUD)
    transport = open_serial(PORT, candidates=(2_000_000, 2_000_000), opener=opener)
    assert transport.baud == protocol.DEFAULT_BAUD
    assert list(dict.fromkeys(ports[0].sent)) == [2_000_000, protocol.DEFAULT_BAUD]

    def refuse(port, baud, timeout):
        raise OSError(2, "No such file or directory")

    with pytest.raises(DeviceTimeout, match="cannot open serial port '/dev/ttyNONE'"):
        SerialTransport("/dev/ttyNONE", opener=refuse)


def test_wrong_rate_requests_never_act():
    """Every request the driver sends, for several sequence numbers, at each candidate rate into a
    device at each other one: nothing is executed (the CRC catches what the resampling makes)."""
    requests = [protocol.encode_request(Command.INFO, seq) for seq in range(0, 256, 37)]
    requests += [protocol.encode_request(Command.START, 9, protocol.encode_start_args(0, 4, 0, 64)),
                 protocol.encode_request(Command.WRITE_MEM, 10, bytes(4) + b"\xa5" * 32)]
    for sent in HOST_LINK_BAUDS:
        for seen in HOST_LINK_BAUDS:
            if sent == seen:
                continue
            device = DeviceModel(TINY, 1 << 12)
            for frame in requests:
                device.receive(uart_seen_at(frame, sent, seen))
                device.idle()
            assert device.executed == [] and not any(device.memory), (sent, seen)
