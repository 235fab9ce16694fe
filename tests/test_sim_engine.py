"""The real engine (``rtl_gen`` exported to Verilog) in cocotb on Verilator and Icarus, compared byte
for byte with the ISA golden model (:class:`sqzhw.golden.executor.Executor`) after the same program.

* every instruction kind with random operands (sim/randprog.py), under memory latency and stalls;
* fuzzed/illegal instruction streams: the engine stops (done or error) within a bounded number of
  cycles, with the golden model's status, and never writes outside ``[wr_lo, wr_hi)``;
* one compiled Fire module, and whole SqueezeNet 1.1 networks at a reduced input size (slow).

Each run prints the engine's counters and its wall time (``pytest -s`` shows them).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest

from sim import runner
from sim.randprog import KINDS, fuzz_words, random_case
from sqzhw import isa
from sqzhw.config import load_config
from sqzhw.golden.executor import Executor

pytestmark = pytest.mark.rtl

REPO = Path(__file__).resolve().parent.parent
SIMULATORS = ["verilator", "icarus"]


def _need(simulator: str) -> None:
    problem = runner.simulator_available(simulator)
    if problem:
        pytest.skip(problem)
    if not (REPO / "rtl_gen" / "export.py").exists() and not os.environ.get("SQZHW_ENGINE_V"):
        pytest.skip("rtl_gen/export.py is absent: there is no engine Verilog to simulate")


def _golden(config, words, memory, wr_window, check_hazards=True):

    image, insn_addr = runner.place_words(config, words, memory)
    result = Executor(config, image, wr_window, check_hazards=check_hazards).run(insn_addr, len(words))
    return image, result


def assert_memory_equal(actual: bytes, expected: bytes, what: str, wr_window=None) -> None:
    """Byte-exact, with a message naming the first differing address (and its window offset)."""
    a = np.frombuffer(bytes(actual), dtype=np.uint8)
    e = np.frombuffer(bytes(expected), dtype=np.uint8)
    assert a.shape == e.shape, f"{what}: memory sizes differ ({a.size} vs {e.size})"
    diff = np.flatnonzero(a != e)
    if diff.size:
        first = int(diff[0])
        where = f" (window offset {first - wr_window[0]})" if wr_window else ""
        print(f"{what}: {diff.size} bytes differ, first at byte {first}{where}: rtl {a[first]} golden {e[first]}")
    np.testing.assert_array_equal(a, e, err_msg=what)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("kind", KINDS)
def test_instruction_kind_matches_golden(simulator, kind):
    _need(simulator)
    config = load_config("tiny")
    for seed, (latency, stall) in enumerate([(1, 0), (6, 30)]):
        case = random_case(config, kind, 1000 * KINDS.index(kind) + seed)
        expected, golden = _golden(config, case.words, case.memory, case.wr_window)
        assert golden.done, golden.message
        t0 = time.perf_counter()
        r = runner.run_words(config, case.words, case.memory, case.wr_window, simulator=simulator,
                             latency=latency, stall_pct=stall, seed=seed + 1)
        print(f"{kind} seed {seed}: {time.perf_counter() - t0:.1f} s wall, golden model "
              f"{golden.cycles} cycles\n{case.listing()}")
        assert r.done and r.error == isa.ErrorCode.NONE, \
            f"{kind}: error {r.error} at instruction {r.error_pc}\n{case.listing()}"
        assert r.writes_outside_window == 0 and r.mem_out_of_range == 0
        assert r.counters[isa.Counter.INSNS] == len(case.words)
        assert_memory_equal(r.memory, expected, f"{kind} seed {seed} on {simulator}", case.wr_window)


@pytest.mark.parametrize("kind", ["conv", "add", "gap"])
def test_instruction_kind_matches_golden_default_config(kind):
    _need("verilator")
    config = load_config("default")
    case = random_case(config, kind, 77)
    expected, golden = _golden(config, case.words, case.memory, case.wr_window)
    r = runner.run_words(config, case.words, case.memory, case.wr_window, simulator="verilator",
                         latency=5, stall_pct=25, seed=3)
    assert r.done and r.error == isa.ErrorCode.NONE, f"error {r.error} at {r.error_pc}\n{case.listing()}"
    assert_memory_equal(r.memory, expected, f"{kind} on default", case.wr_window)


def test_add_half_width_requantizer_matches_golden():
    """add_lanes = rows // 2 (the shape tried for the ulx3s) on Verilator: random ADD programs
    bit-exact with the golden model under memory latency and stalls."""
    _need("verilator")
    tiny = load_config("tiny")
    config = dataclasses.replace(tiny, add_lanes=tiny.rows // 2)
    for seed in range(2):
        case = random_case(config, "add", 900 + seed)
        expected, golden = _golden(config, case.words, case.memory, case.wr_window)
        assert golden.done, golden.message
        r = runner.run_words(config, case.words, case.memory, case.wr_window, simulator="verilator",
                             latency=1 + 5 * seed, stall_pct=30 * seed, seed=seed + 1)
        assert r.done and r.error == isa.ErrorCode.NONE, f"error {r.error} at {r.error_pc}\n{case.listing()}"
        assert r.counters[isa.Counter.INSNS] == len(case.words)
        assert_memory_equal(r.memory, expected, f"add, add_lanes = {config.add_lanes}, seed {seed}",
                            case.wr_window)


def _status(result) -> tuple:
    """(done, error code, failing pc or None) of an RTL or golden run."""
    error = isa.ErrorCode(result.error or 0)
    return bool(result.done), error, (result.error_pc if error != isa.ErrorCode.NONE else None)


def test_area_knobs_match_golden():
    """The iCEBreaker config's area knobs (a one-lane STORE requantizer, no ADD unit) on Verilator:
    every instruction kind bit-exact with the golden model; an ADD stops both with BAD_OPCODE at
    the same instruction, and fuzzed streams end with the golden status."""
    _need("verilator")
    config = load_config("icebreaker")
    assert config.store_lanes < config.rows and not config.add_unit
    for kind in KINDS:
        # The generator makes legal programs: the ADD program is made for the same engine with ADD.
        maker = dataclasses.replace(config, add_unit=True) if kind == "add" else config
        case = random_case(maker, kind, 500 + KINDS.index(kind))
        expected, golden = _golden(config, case.words, case.memory, case.wr_window)
        r = runner.run_words(config, case.words, case.memory, case.wr_window, simulator="verilator",
                             latency=4, stall_pct=20, seed=KINDS.index(kind) + 1)
        if kind == "add":
            add_pc = next(i for i, w in enumerate(case.words) if isa.decode(w).opcode == isa.Opcode.ADD)
            assert (golden.error, golden.error_pc) == (isa.ErrorCode.BAD_OPCODE, add_pc), golden.message
        else:
            assert golden.done, golden.message
        assert _status(r) == _status(golden), \
            f"{kind}: rtl error {r.error} at {r.error_pc}, golden {golden.message}\n{case.listing()}"
        assert r.writes_outside_window == 0
        assert_memory_equal(r.memory, expected, f"{kind} on {config.name}", case.wr_window)
    for seed in range(2):
        case = fuzz_words(config, seed)
        expected, golden = _golden(config, case.words, case.memory, case.wr_window, check_hazards=False)
        r = runner.run_words(config, case.words, case.memory, case.wr_window, simulator="verilator",
                             latency=3, stall_pct=20, seed=seed, timeout_cycles=400_000)
        assert _status(r) == _status(golden), f"fuzz seed {seed}: rtl {_status(r)}, golden {golden.message}"
        lo, hi = case.wr_window   # inside the window, unit races of unflagged hazards may differ
        assert r.writes_outside_window == 0
        assert_memory_equal(r.memory[:lo], expected[:lo], f"fuzz seed {seed} on {config.name}: below")
        assert_memory_equal(r.memory[hi:], expected[hi:], f"fuzz seed {seed} on {config.name}: above")


def test_narrow_address_top_of_memory_matches_golden():
    """``ext_addr_bits = 17`` (the iCEBreaker config): in a memory larger than 2**17 bytes the
    engine (its mem_bytes clamped) and the golden model (``isa.mem_limit``) both see 2**17 bytes.
    LOAD and STORE at the very top work; a LOAD or a STORE one word past it stops both with
    DRAM_RANGE at the same instruction."""
    _need("verilator")
    config = load_config("icebreaker")
    assert config.ext_addr_bits == 17
    top, L, U = 1 << 17, config.act_entry_bytes, isa.Unit
    rng = np.random.default_rng(17)
    memory = bytearray(rng.integers(0, 256, top + 1024, dtype=np.uint8).tobytes())
    enc = isa.encode
    load_act = lambda sram, dram, **kw: enc(isa.Opcode.LOAD, target=isa.LoadTarget.ACT, sram_addr=sram,
                                            dram_addr=dram, rows=1, row_len=1, **kw)
    programs = {
        "top": [
            load_act(0, top - L),                                   # the last entry of the memory
            load_act(1, 4096),
            enc(isa.Opcode.MAXPOOL, wait={U.LOAD}, in_addr=0, in_h=1, in_w=2, blocks=1, out_h=1,
                out_w=2, kernel=1, stride=1, out_addr=0),
            enc(isa.Opcode.STORE, wait={U.COMPUTE}, source=isa.StoreSource.OUT, sram_addr=0,
                dram_addr=top - 2 * L, rows=1, row_len=2),          # up to the last byte
            load_act(2, top, wait={U.STORE}),                       # past the end: DRAM_RANGE
            enc(isa.Opcode.END),
        ],
        "store past": [
            enc(isa.Opcode.STORE, source=isa.StoreSource.OUT, sram_addr=0, dram_addr=top - L,
                rows=1, row_len=2),                                 # one entry past the end
            enc(isa.Opcode.END),
        ],
    }
    # Instructions at the bottom (place_words would put them past 2**17); writes anywhere above.
    wr_window = (1024, len(memory))
    for name, words in programs.items():
        image, _ = runner.place_words(config, words, memory, insn_addr=0)
        golden = Executor(config, image, wr_window).run(0, len(words))
        want_pc = 4 if name == "top" else 0
        assert (golden.error, golden.error_pc) == (isa.ErrorCode.DRAM_RANGE, want_pc), golden.message
        r = runner.run_words(config, words, memory, wr_window, insn_addr=0, simulator="verilator",
                             latency=2, stall_pct=20, seed=5)
        assert _status(r) == _status(golden), f"{name}: rtl {_status(r)}, golden {golden.message}"
        assert r.writes_outside_window == 0
        assert_memory_equal(r.memory, image, f"{name} on {config.name}", wr_window)
        if name == "top":
            assert image[top - 2 * L:top] == memory[top - L:top] + memory[4096:4096 + L]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_fuzzed_streams_stop_with_the_golden_status_and_stay_in_the_window(simulator):
    _need(simulator)
    config = load_config("tiny")
    seeds = range(8) if simulator == "verilator" else range(4)
    for seed in seeds:
        case = fuzz_words(config, seed)
        image, golden = _golden(config, case.words, case.memory, case.wr_window, check_hazards=False)
        budget = 400_000   # fuzz_words caps every legal instruction's work at 20k cycles
        r = runner.run_words(config, case.words, case.memory, case.wr_window, simulator=simulator,
                             latency=3, stall_pct=20, seed=seed, timeout_cycles=budget)
        lo, hi = case.wr_window
        before, _ = runner.place_words(config, case.words, case.memory)
        assert r.writes_outside_window == 0, f"seed {seed}: writes outside the window\n{case.listing()}"
        assert_memory_equal(r.memory[:lo], before[:lo], f"fuzz seed {seed}: below the window")
        assert_memory_equal(r.memory[hi:], before[hi:], f"fuzz seed {seed}: above the window")
        assert (r.done, r.error, r.error_pc if r.error else None) == \
            (golden.done, golden.error, golden.error_pc if golden.error else None), \
            f"seed {seed}: rtl done={r.done} error={r.error} pc={r.error_pc}, golden {golden.message}\n" \
            f"{case.listing()}"


# -- compiled networks ------------------------------------------------------------------------------

def _compiled(kind: str, config_name: str, input_size: int, width_mult: float, num_classes: int, seed: int):
    pytest.importorskip("sqzhw.compiler.codegen", reason="the code generator is not there yet")
    runtime = pytest.importorskip("sqzhw.runtime", reason="sqzhw.runtime is not there yet")
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    config = load_config(config_name)
    qgraph = random_qgraph(kind, input_size, width_mult, num_classes, seed)
    program = compile_graph(qgraph, config, Preprocess(height=input_size, width=input_size))
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (3, input_size, input_size)).astype(np.float32)
    return config, program, bytes(runtime.input_bytes(program, x))


def _run_network(config, program, raw, simulator, **kw):
    from sqzhw.golden.executor import Executor

    memory = runner.program_memory(program, raw)
    expected = bytearray(memory)
    t0 = time.perf_counter()
    golden = Executor(config, expected, program.writable).run(program.insn_base, len(program.instructions))
    golden_s = time.perf_counter() - t0
    assert golden.done, golden.message
    r = runner.run_program(program, raw, simulator=simulator, **kw)
    print(f"{program.model_name or 'network'} on {config.name}/{simulator}: {len(program.instructions)} "
          f"instructions, rtl {r.cycles} cycles in {r.wall_seconds:.1f} s, golden model estimate "
          f"{golden.cycles} cycles ({golden_s:.1f} s)")
    for c, v in r.counters.items():
        print(f"  {c.name.lower():16s} {v}")
    assert r.done and r.error == isa.ErrorCode.NONE, \
        f"error {r.error} at instruction {r.error_pc}: {isa.disassemble(program.instructions[r.error_pc])}"
    assert r.writes_outside_window == 0
    assert_memory_equal(r.memory, expected, f"{config.name} on {simulator}", program.writable)
    return r


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_fire_module_matches_golden(simulator):
    _need(simulator)
    config, program, raw = _compiled("fire", "tiny", 12, 0.25, 10, seed=5)
    _run_network(config, program, raw, simulator, latency=4, stall_pct=15, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("config_name,simulator,input_size,width_mult", [
    ("tiny", "verilator", 35, 0.25),
    ("tiny", "icarus", 19, 0.125),
    ("default", "verilator", 51, 0.5),
])
def test_squeezenet11_matches_golden(config_name, simulator, input_size, width_mult):
    _need(simulator)
    config, program, raw = _compiled("squeezenet1.1", config_name, input_size, width_mult, 20, seed=11)
    _run_network(config, program, raw, simulator, latency=4, stall_pct=10, seed=7)
