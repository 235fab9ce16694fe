"""The driver against the in-process device model (LoopbackTransport): commands, retries under
injected corruption/drops, errors the caller sees; end-to-end inference when the compiler and the
runtime are present."""

import os

import numpy as np
import pytest

from sqzhw import isa, protocol
from sqzhw.compiler.testing import copy_program
from sqzhw.config import load_config
from sqzhw.driver import (Accelerator, ConfigMismatchError, DeviceModel, DeviceTimeout, DriverError,
                          EngineError, FaultInjector, LinkError, LoopbackTransport, MemoryFault)

TINY = load_config("tiny")


def make(faults_in=None, faults_out=None, config=TINY, mem=1 << 16, chunk=0, **kw):
    device = DeviceModel(config, mem, max_payload=kw.pop("max_payload", protocol.MAX_PAYLOAD),
                         busy_polls=kw.pop("busy_polls", 0),
                         memory_startup_polls=kw.pop("memory_startup_polls", 0),
                         memory_failed=kw.pop("memory_failed", False))
    transport = LoopbackTransport(device, faults_in, faults_out, chunk=chunk)
    return Accelerator(transport, config, **kw), device


def test_info_and_config_check():
    acc, _ = make()
    info = acc.info()
    assert (info.tag, info.ext_bytes, info.mem_bytes, info.version) == (TINY.tag, 4, 1 << 16,
                                                                        protocol.PROTOCOL_VERSION)
    other = Accelerator(LoopbackTransport(DeviceModel(load_config("small"), 4096)), TINY)
    with pytest.raises(ConfigMismatchError, match="small|2x2"):
        other.info()


def test_write_read_any_alignment():
    acc, device = make(max_payload=64)
    data = os.urandom(301)
    acc.write(7, data)
    assert bytes(device.memory[7:308]) == data
    assert device.memory[:7] == bytes(7)
    assert acc.read(7, 301) == data
    assert acc.read(9, 3) == data[2:5]
    with pytest.raises(DriverError, match="outside"):
        acc.write((1 << 16) - 2, b"abc")


def test_execute_status_counters_and_busy_polling():
    acc, device = make(busy_polls=3)
    src, dst = 0x400, 0x800
    payload = os.urandom(32)
    acc.write(0, isa.pack_program(copy_program(src, dst, 2, 4)))
    acc.write(src, payload)
    s = acc.execute(0, 4, dst, dst + 32)
    assert s.done and not s.busy
    assert acc.read(dst, 32) == payload
    counters = acc.counters()
    assert set(counters) == set(isa.Counter)
    assert counters[isa.Counter.CYCLES] > 0
    assert device.starts == 1
    acc.reset()
    assert not acc.status().done


def test_engine_error_carries_code_and_pc():
    acc, _ = make()
    words = copy_program(0x400, 0x800, 2, 4)
    acc.write(0, isa.pack_program(words))
    # the STORE writes outside the window [0x900, 0x940): DRAM_RANGE at instruction 2
    with pytest.raises(EngineError) as info:
        acc.execute(0, 4, 0x900, 0x940)
    assert info.value.code is isa.ErrorCode.DRAM_RANGE and info.value.error_pc == 2
    # running past the instruction count without END
    with pytest.raises(EngineError) as info:
        acc.execute(0, 3, 0x800, 0x840)
    assert info.value.code is isa.ErrorCode.FETCH_RANGE


@pytest.mark.parametrize("seed", range(4))
def test_retries_under_corruption_never_wrong(seed):
    rates = dict(corrupt=2e-3, drop=1e-3, insert=1e-3)
    acc, device = make(FaultInjector(seed=seed, **rates), FaultInjector(seed=100 + seed, **rates),
                       chunk=5, retries=10, max_payload=128)
    src, dst = 0x400, 0x800
    payload = os.urandom(32)
    acc.write(0, isa.pack_program(copy_program(src, dst, 2, 4)))
    acc.write(src, payload)
    acc.execute(0, 4, dst, dst + 32)
    assert acc.read(dst, 32) == payload
    big = os.urandom(2000)
    acc.write(0x1000, big)
    assert bytes(device.memory[0x1000:0x1000 + 2000]) == big
    assert acc.read(0x1000, 2000) == big
    assert device.starts == 1, "a retried START ran the engine again"
    events = acc.transport.to_device.events["corrupt"] + acc.transport.from_device.events["corrupt"]
    assert events > 0 and acc.stats.retries > 0


def test_hopeless_link_raises_link_error():
    acc, device = make(FaultInjector(corrupt=0.9, seed=1), retries=3)
    with pytest.raises((LinkError, DeviceTimeout), match="INFO"):
        acc.info()
    assert device.executed == []
    acc, device = make(None, FaultInjector(corrupt=0.9, seed=2), retries=3)
    with pytest.raises(LinkError):
        acc.info()


def test_silent_device_times_out():
    acc, _ = make(FaultInjector(drop=1.0), retries=2)
    with pytest.raises(DeviceTimeout, match="no response"):
        acc.info()


def test_busy_and_bad_requests_are_errors():
    acc, device = make(busy_polls=5)
    acc.write(0, isa.pack_program(copy_program(0x400, 0x800, 2, 4)))
    acc.start(0, 4, 0x800, 0x820)
    from sqzhw.driver import DeviceBusyError
    with pytest.raises(DeviceBusyError):
        acc.write(0x400, bytes(4))
    with pytest.raises(DriverError, match="BAD_ADDRESS"):
        acc.request(protocol.Command.READ_MEM, protocol.encode_read_args(2, 4))
    with pytest.raises(DriverError, match="no program loaded"):
        acc.infer(np.zeros((3, 8, 8), np.float32))


def test_load_waits_for_the_memory_and_names_a_failed_one():
    """A DDR3 board's memory starts for a while after configuration: load() polls STATUS until it
    is up and only then writes; a memory that failed to start is a MemoryFault, with nothing written."""
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    program = compile_graph(random_qgraph("fire", input_size=6, width_mult=0.25, num_classes=8, seed=3), TINY,
                            Preprocess(height=6, width=6))
    acc, device = make(memory_startup_polls=3, mem=max(1 << 16, program.memory_size))
    acc.load(program)
    statuses = [f.command for f in device.executed].count(protocol.Command.STATUS)
    assert statuses == 4 and device.memory_startup_polls == 0
    first_write = next(i for i, f in enumerate(device.executed) if f.command == protocol.Command.WRITE_MEM)
    last_status = max(i for i, f in enumerate(device.executed) if f.command == protocol.Command.STATUS)
    assert last_status < first_write, "wrote to the memory before it was up"
    acc, device = make(memory_failed=True, mem=max(1 << 16, program.memory_size))
    with pytest.raises(MemoryFault, match="DDR3 read calibration"):
        acc.load(program)
    assert not any(f.command == protocol.Command.WRITE_MEM for f in device.executed)
    acc, device = make(memory_startup_polls=10**9)
    with pytest.raises(DeviceTimeout, match="still starting"):
        acc.wait_memory(timeout=0.05)


def test_infer_matches_golden():
    """Compile a small random network, run it through the driver and compare with the golden model."""
    runtime = pytest.importorskip("sqzhw.runtime", reason="sqzhw.runtime has not landed yet")
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    qgraph = random_qgraph("fire", input_size=12, width_mult=0.25, num_classes=8, seed=3)
    program = compile_graph(qgraph, TINY, Preprocess(height=12, width=12))
    acc, device = make(FaultInjector(corrupt=5e-4, drop=2e-4, seed=5), mem=max(1 << 16, program.memory_size))
    acc.load(program)
    x = np.random.default_rng(0).standard_normal((program.input.channels, 12, 12)).astype(np.float32)
    logits = acc.infer(x)
    golden = runtime.run_golden(program, x)
    np.testing.assert_array_equal(acc.last.sums, golden.sums)
    np.testing.assert_array_equal(logits, golden.logits)
    other = load_config("small")
    with pytest.raises(ConfigMismatchError):
        acc.load(type(program)(**{**program.__dict__, "config": other}))
