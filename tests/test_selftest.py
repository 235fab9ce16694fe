"""Board bring-up self-test (:mod:`sqzhw.driver.selftest`) on the in-process device model, healthy
and with the faults each step is there to find."""

import pytest

from sqzhw import protocol
from sqzhw.config import load_config
from sqzhw.driver import Accelerator, DeviceModel, FaultInjector, LoopbackTransport
from sqzhw.driver.selftest import check_address_bus, check_data_bus, config_for_tag, run_selftest
from sqzhw.protocol import Command

SMALL = load_config("small")
MEM = 1 << 20


class FaultyMemory(bytearray):
    """External memory with a board fault: address bits ``stuck_low`` forced to 0 (on byte
    addresses: the aliasing a broken address line causes), data bit ``stuck_bit`` of every byte
    lane ``stuck_lane`` reading 1."""

    def __init__(self, size: int, stuck_low: int = 0, stuck_lane: int | None = None, stuck_bit: int = 0,
                 ext_bytes: int = 2):
        super().__init__(size)
        self.mask, self.lane, self.bit, self.e = ~stuck_low, stuck_lane, stuck_bit, ext_bytes

    def __setitem__(self, key, value):
        if not isinstance(key, slice):
            return super().__setitem__(key, value)
        for i, b in zip(range(*key.indices(len(self))), bytes(value)):
            super().__setitem__(i & self.mask, b)

    def __getitem__(self, key):
        if not isinstance(key, slice):
            return super().__getitem__(key)
        out = bytearray(bytearray.__getitem__(self, i & self.mask) for i in range(*key.indices(len(self))))
        if self.lane is not None:
            start = key.indices(len(self))[0]
            for k in range(len(out)):
                if (start + k) % self.e == self.lane:
                    out[k] |= 1 << self.bit
        return out


def device(memory: bytearray | None = None, **kw) -> tuple[Accelerator, DeviceModel]:
    dev = DeviceModel(SMALL, MEM)
    if memory is not None:
        dev.memory = memory
    return Accelerator(LoopbackTransport(dev, **kw), SMALL, retries=4), dev


def test_healthy_device_passes_every_step():
    acc, dev = device()
    seen = []
    report = run_selftest(acc, progress=seen.append)
    assert report.passed, report.text()
    assert [c.name for c in report.checks] == ["link", "data bus", "address bus", "block", "engine"]
    assert [c.name for c in seen] == [c.name for c in report.checks]
    assert "bit-exact" in report.checks[-1].detail and "passed" in report.text()
    assert "the device's CRC-32 agrees" in report.checks[3].detail
    assert [f.command for f in dev.executed].count(Command.CHECKSUM_MEM) >= 2   # block: both ends
    assert acc.program is None        # the memory checks overwrote whatever was loaded
    assert dev.starts == 2            # the engine check ran two inputs


def test_passes_through_a_noisy_link():
    acc, _ = device(to_device=FaultInjector(corrupt=2e-4, drop=1e-4, seed=5),
                    from_device=FaultInjector(corrupt=2e-4, seed=6))
    acc.retries = 8
    report = run_selftest(acc, block_bytes=8 << 10)
    assert report.passed, report.text()
    assert acc.stats.retries > 0


@pytest.mark.parametrize("bit", [1, 4, 13])
def test_address_line_stuck_low_is_named(bit):
    # Byte-address bit `bit` stuck low: word offsets 1 << (bit - 1) and 0 alias (2-byte words).
    acc, _ = device(FaultyMemory(MEM, stuck_low=1 << bit))
    report = run_selftest(acc)
    assert not report.passed
    assert [c.name for c in report.checks] == ["link", "data bus", "address bus"]  # stops at the fault
    detail = report.checks[-1].detail
    # Offset 1 << bit lands on word 0 and overwrites it: the check names both addresses.
    assert "aliased" in detail and f"0x0 holds the word written at 0x{1 << bit:x}" in detail
    # The address check alone names the same thing.
    assert not check_address_bus(acc).passed


def test_stuck_data_bit_is_named_with_its_lane():
    acc, _ = device(FaultyMemory(MEM, stuck_lane=1, stuck_bit=5, ext_bytes=SMALL.ext_bytes))
    check = check_data_bus(acc)
    assert not check.passed
    assert "data bit(s) [13]" in check.detail and "byte lane(s) [1]" in check.detail
    report = run_selftest(acc)
    assert [c.name for c in report.checks] == ["link", "data bus"] and not report.passed


def test_wrong_engine_results_fail_the_engine_step():
    class WrongEngine(DeviceModel):
        def _execute(self, f):
            status, reply = super()._execute(f)
            if f.command is Command.READ_MEM and self.starts and reply:
                reply = bytes([reply[0] ^ 1]) + reply[1:]     # one output bit flipped after a run
            return status, reply

    dev = WrongEngine(SMALL, MEM)
    acc = Accelerator(LoopbackTransport(dev), SMALL)
    report = run_selftest(acc, block_bytes=4 << 10)
    assert not report.passed and report.checks[-1].name == "engine"
    assert "differ from the golden model" in report.checks[-1].detail


def test_silent_device_fails_the_link_step_only():
    acc, _ = device(to_device=FaultInjector(drop=1.0))
    acc.retries, acc.timeout = 1, 0.01
    report = run_selftest(acc)
    assert [c.name for c in report.checks] == ["link"] and not report.passed
    assert "DeviceTimeout" in report.checks[0].detail


def test_config_for_tag_finds_the_preset():
    assert config_for_tag(SMALL.tag).tag == SMALL.tag
    assert config_for_tag("no-such-tag") is None
    assert protocol.PROTOCOL_VERSION >= 1


def test_device_checksum_disagreeing_with_the_data_fails_the_block_step():
    """The block check also asks the device for its CRC-32 of each block (CHECKSUM_MEM, the read path
    program loads rely on): a device whose own read of its memory differs from READ_MEM's fails it,
    named; a device without CHECKSUM_MEM passes on READ_MEM alone, and says so."""
    class BadChecksum(DeviceModel):
        def _execute(self, f):
            status, reply = super()._execute(f)
            if f.command is Command.CHECKSUM_MEM and status is protocol.Status.OK:
                reply = bytes([reply[0] ^ 0x10]) + reply[1:]
            return status, reply

    acc = Accelerator(LoopbackTransport(BadChecksum(SMALL, MEM)), SMALL)
    report = run_selftest(acc, block_bytes=4 << 10, engine=False)
    assert not report.passed
    assert [c.name for c in report.checks] == ["link", "data bus", "address bus", "block"]
    detail = report.checks[-1].detail
    assert "CHECKSUM_MEM" in detail and "read them back right" in detail and "at 0x0" in detail
    acc = Accelerator(LoopbackTransport(DeviceModel(SMALL, MEM, checksum=False)), SMALL)
    report = run_selftest(acc, block_bytes=4 << 10)
    assert report.passed, report.text()
    assert "no CHECKSUM_MEM" in report.checks[3].detail


@pytest.mark.parametrize("config", ["ulx3s", "ulx3s_bypass"])
def test_hardware_tests_dry_run_on_the_device_model(config):
    """tests/test_board_hw.py skips without a board; here it runs against the device model
    (``SQZHW_BOARD_PORT=loopback:CONFIG``), so the hardware tests themselves stay working."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "SQZHW_BOARD_PORT": f"loopback:{config}"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          str(repo / "tests" / "test_board_hw.py")], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
