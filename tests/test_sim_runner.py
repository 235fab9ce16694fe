"""sim/runner.py + sim/hdl: the cocotb harness itself, on a stand-in engine (sim/hdl/stub_engine.sv,
a word copier with the engine's ports): memory load/dump, latency, random stalls, error status,
write-window monitor, cycle timeout and the build cache, on Verilator and Icarus."""

import random
import time

import pytest

from sim import runner
from sqzhw import isa
from sqzhw.config import load_config

pytestmark = pytest.mark.rtl

SIMULATORS = ["verilator", "icarus"]


def _need(simulator):
    problem = runner.simulator_available(simulator)
    if problem:
        pytest.skip(problem)


def _copy_case(config, seed, n_insns=6):
    rng = random.Random(seed)
    memory = bytearray(rng.randbytes(2048))
    words = [rng.getrandbits(isa.INSN_BITS) for _ in range(n_insns)]
    return memory, words


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("config_name,latency,stall_pct", [("tiny", 1, 0), ("tiny", 7, 40), ("default", 3, 25)])
def test_copy_through_the_memory_model(simulator, config_name, latency, stall_pct):
    _need(simulator)
    config = load_config(config_name)
    memory, words = _copy_case(config, latency)
    lo, hi = 1024, 1536
    t0 = time.perf_counter()
    r = runner.run_words(config, words, memory, (lo, hi), simulator=simulator, engine="stub",
                         latency=latency, stall_pct=stall_pct, seed=latency + 10)
    print(f"{r.describe()} (total {time.perf_counter() - t0:.1f} s)")
    raw = isa.pack_program(words)
    assert r.done and r.error == isa.ErrorCode.NONE
    expected = bytearray(memory)
    expected[lo:lo + len(raw)] = raw
    image, _ = runner.place_words(config, words, memory)
    expected += image[len(memory):]
    assert r.memory == expected
    n = len(raw) // config.ext_bytes
    assert (r.mem_reads, r.mem_writes, r.writes_outside_window, r.mem_out_of_range) == (n, n, 0, 0)
    assert r.counters[isa.Counter.INSNS] == n
    # Every word costs at least a read latency plus the handshakes; stalls only add to it.
    assert r.cycles >= n * (latency + 2)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_write_outside_the_window_is_an_error_and_changes_nothing(simulator):
    _need(simulator)
    config = load_config("tiny")
    memory, words = _copy_case(config, 3)
    r = runner.run_words(config, words, memory, (1024, 1024 + 40), simulator=simulator, engine="stub",
                         stall_pct=20)
    assert not r.done
    assert r.error == isa.ErrorCode.DRAM_RANGE and r.error_pc == 40 // config.ext_bytes
    assert r.writes_outside_window == 0
    assert r.memory[:1024] == memory[:1024] and r.memory[1064:2048] == memory[1064:]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_a_hung_engine_is_a_timeout_naming_the_cycles(simulator):
    _need(simulator)
    config = load_config("tiny")
    memory, words = _copy_case(config, 4)
    with pytest.raises(runner.SimTimeout, match="within 3000 cycles"):
        runner.run_words(config, words, memory, (1024, 1536), simulator=simulator, engine="stub",
                         insn_count=0xFFFF_FFFF, timeout_cycles=3000)


def test_build_is_cached():
    _need("icarus")
    first = runner.build("tiny", "icarus", engine="stub")
    again = runner.build("tiny", "icarus", engine="stub")
    assert again.path == first.path and again.seconds == 0.0
    assert (again.path / "BUILT").exists()


def test_bad_arguments_are_named():
    config = load_config("tiny")
    with pytest.raises(ValueError, match="unknown simulator 'questa'"):
        runner.run_words(config, [0], bytearray(64), (0, 64), simulator="questa", engine="stub")
    with pytest.raises(ValueError, match=r"writable window \[0, 999\)"):
        runner.run_words(config, [0], bytearray(64), (0, 999), simulator="icarus", engine="stub")
    with pytest.raises(ValueError, match="stall_pct = 95"):
        runner.run_words(config, [0], bytearray(64), (0, 64), simulator="icarus", engine="stub", stall_pct=95)
