"""Full-system simulation in Verilator: the ULX3S-style system top (engine + host link + SDRAM
controller + cycle-level SDRAM model, 16-bit external memory) driven through the driver API by
:func:`sqzhw.driver.sim_transport.run_in_verilator`.

One simulator process per test: the scenario functions below run inside it (they are module-level
so that the simulator process can import them) and return plain data; the assertions happen here.
The ``small`` preset (2x2 array, 16-bit SDRAM) keeps the Verilator build near a minute and a half;
the builds are cached under ``build/sim/system``. The network test goes through the UART pins bit
by bit (the host's UART is HDL in the wrapper) at a fast test rate; the frame test at the fewest
cycles per bit of any board's host-link rate; the iCEBreaker test and the error tests use the
byte-stream link (no UART, same host link).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from sqzhw import protocol
from sqzhw.config import load_config
from sqzhw.driver import Accelerator, ConfigMismatchError, DeviceTimeout, DriverError, FaultInjector

pytestmark = pytest.mark.rtl

CONFIG = load_config("small")
OTHER = load_config("tiny")
SIZE = 8
#: Clock cycles per UART bit in the full-system tests: a fast test setting (the boards run 9 to 60:
#: the ULX3S 2 Mbaud at 50 MHz, 25); the UART logic is the same at any divisor.
UART_DIVISOR = 8


def _skip_without_tools() -> None:
    pytest.importorskip("boards.common", reason="boards.common (SystemTop) has not landed")
    from sim.runner import simulator_available
    problem = simulator_available("verilator")
    if problem:
        pytest.skip(problem)


def _program(config, seed: int = 3):
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    qgraph = random_qgraph("fire", input_size=SIZE, width_mult=0.25, num_classes=8, seed=seed)
    return compile_graph(qgraph, config, Preprocess(height=SIZE, width=SIZE))


def _input(program, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((program.input.channels, SIZE, SIZE)).astype(np.float32)


# -- scenarios (run inside the simulator process) -----------------------------------------------------

def _outcome(fn) -> dict:
    """``fn()``'s value, or the driver error it raised (by class name: checked in the test)."""
    try:
        return {"value": fn(), "error": None}
    except DriverError as exc:
        return {"value": None, "error": type(exc).__name__, "message": str(exc)}


def full_scenario(transport, program, other_program, inputs, fault_specs) -> dict:
    out: dict = {}
    acc = Accelerator(transport, program.config, retries=4)
    out["info"] = acc.info()
    out["window"] = acc.write_window
    # A device of another config is refused, and so is a program compiled for another config.
    out["wrong_device"] = _outcome(lambda: Accelerator(transport, other_program.config).info())
    out["wrong_program"] = _outcome(lambda: acc.load(other_program))

    t0, c0 = time.perf_counter(), transport.cycles
    acc.load(program)
    out["load"] = {"wall": time.perf_counter() - t0, "cycles": transport.cycles - c0,
                   "bytes": sum(len(blob) for _, blob in program.static_image())}
    clean = []
    for x in inputs:
        t0, c0 = time.perf_counter(), transport.cycles
        r = acc.infer_full(x)
        clean.append({"sums": r.sums, "logits": r.logits, "wall": time.perf_counter() - t0,
                      "cycles": transport.cycles - c0,
                      "counters": {c.name: v for c, v in r.counters.items()}})
    out["clean"] = clean
    out["clean_stats"] = vars(acc.stats).copy()

    # The same over a link that corrupts, drops and inserts bytes both ways: a reload and an inference.
    faulty = []
    for spec in fault_specs:
        transport.to_device = FaultInjector(**spec["to"], seed=spec["seed"])
        transport.from_device = FaultInjector(**spec["from"], seed=spec["seed"] + 1)
        facc = Accelerator(transport, program.config, retries=8)
        t0 = time.perf_counter()
        # (unverified: the whole image crosses the faulty link; a verified load would find it resident)
        load = _outcome(lambda: facc.load(program, verify=False))
        run = _outcome(lambda: facc.infer_full(inputs[0]).sums) if load["error"] is None else load
        faulty.append({"spec": spec, "load": load, "run": run, "stats": vars(facc.stats).copy(),
                       "to_device": dict(transport.to_device.events),
                       "from_device": dict(transport.from_device.events), "wall": time.perf_counter() - t0})
    transport.to_device = transport.from_device = None
    out["faulty"] = faulty
    # The link and the device are still good after all that.
    out["after"] = Accelerator(transport, program.config).info()
    out["stats"] = transport.stats()
    return out


def network_scenario(transport, program, inputs) -> dict:
    acc = Accelerator(transport, program.config, retries=2)
    out = {"info": acc.info()}
    out["load"] = acc.load(program)
    # A second session on the same board (`sqzhw run` again): the device's CRC-32s find the program
    # resident, none of it is sent again, and the runs below use what the first load left.
    acc = Accelerator(transport, program.config, retries=2)
    sent, c0 = transport.bytes_sent, transport.cycles
    out["reload"] = acc.load(program)
    out["reload_link"] = {"bytes_sent": transport.bytes_sent - sent, "cycles": transport.cycles - c0}
    out["runs"] = []
    for x in inputs:
        r = acc.infer_full(x)
        out["runs"].append({"sums": r.sums, "logits": r.logits,
                            "counters": {c.name: v for c, v in r.counters.items()}})
    out["stats"] = transport.stats()
    return out


def uart_scenario(transport) -> dict:
    acc = Accelerator(transport, CONFIG, retries=2)
    info = acc.info()
    # two WRITE_MEM frames back to back (windowed): the second arrives while the first executes
    data = bytes(np.random.default_rng(5).integers(0, 256, 1100, dtype=np.uint8))
    acc.write(0x200, data)
    back = acc.read(0x200, len(data))
    return {"info": info, "data": data, "back": back, "stats": transport.stats(),
            "link": vars(acc.stats).copy()}


def selftest_scenario(transport, block_bytes: int) -> dict:
    """The board bring-up self-test, as ``sqzhw selftest`` runs it on a board."""
    from sqzhw.driver.selftest import run_selftest

    report = run_selftest(Accelerator(transport, retries=2), block_bytes=block_bytes)
    return {"passed": report.passed, "checks": [vars(c) for c in report.checks], "stats": transport.stats()}


def refuse_other_config(transport) -> None:
    """Raises ConfigMismatchError inside the simulator (the device is not ``tiny``)."""
    Accelerator(transport, OTHER).info()


def wait_forever(transport) -> bytes:
    """Waits for a response to nothing: the simulated-time budget ends it with DeviceTimeout."""
    while True:
        transport.read(1.0)


# -- tests -----------------------------------------------------------------------------------------------

def test_network_through_driver_on_simulated_ulx3s_system():
    """load + infer of a compiled Fire network bit-exact with the golden model, through the UART pins
    bit by bit (at a fast test rate), over a clean link and over links with corrupted, dropped and
    inserted bytes; config mismatches refused."""
    _skip_without_tools()
    from sqzhw import runtime
    from sqzhw.driver.sim_transport import run_in_verilator

    program = _program(CONFIG)
    other = _program(OTHER)
    inputs = [_input(program, seed) for seed in (0, 1)]
    # Per-byte rates: requests are up to 1031 bytes (WRITE_MEM), responses mostly a few bytes, so the
    # device-bound direction gets low rates (1 and 0.6 faults per largest frame; a few per run).
    faults = [{"to": {"corrupt": 5e-4, "drop": 2.5e-4, "insert": 2.5e-4},
               "from": {"corrupt": 1e-2, "drop": 5e-3, "insert": 5e-3}, "seed": 11},
              {"to": {"corrupt": 3e-4, "drop": 1.5e-4, "insert": 1.5e-4},
               "from": {"corrupt": 3e-2, "drop": 1e-2, "insert": 1e-2}, "seed": 21}]
    t0 = time.perf_counter()
    out = run_in_verilator(CONFIG, full_scenario, program, other, inputs, faults, link="uart",
                           uart_divisor=UART_DIVISOR, sim_seconds=0.5)
    wall = time.perf_counter() - t0

    assert out["info"].tag == CONFIG.tag
    assert out["info"].window == out["window"] == protocol.DEFAULT_WINDOW   # windowed writes
    assert out["wrong_device"]["error"] == "ConfigMismatchError", out["wrong_device"]
    assert out["wrong_program"]["error"] == "ConfigMismatchError", out["wrong_program"]
    assert out["after"].tag == CONFIG.tag

    goldens = [runtime.run_golden(program, x) for x in inputs]
    for got, golden in zip(out["clean"], goldens):
        np.testing.assert_array_equal(got["sums"], golden.sums)
        np.testing.assert_array_equal(got["logits"], golden.logits)
        c = got["counters"]
        assert c["INSNS"] == len(program.instructions), c
        assert 0 < c["ARRAY_ACTIVE"] <= c["COMPUTE_BUSY"] <= c["CYCLES"], c
        assert 0 < c["LOAD_BUSY"] <= c["CYCLES"] and 0 < c["STORE_BUSY"] <= c["CYCLES"], c
        assert c["CYCLES"] < got["cycles"], "the engine ran longer than the whole inference"
    # Two different inputs give different sums (the comparison is not vacuous).
    assert not np.array_equal(out["clean"][0]["sums"], out["clean"][1]["sums"])
    assert out["clean_stats"]["retries"] == 0, out["clean_stats"]

    succeeded = 0
    for f in out["faulty"]:
        assert sum(f["to_device"].values()) > 0 and sum(f["from_device"].values()) > 0, f
        assert f["stats"]["retries"] > 0, f
        run = f["run"]
        if run["error"] is None:
            np.testing.assert_array_equal(run["value"], goldens[0].sums)   # never a wrong answer
            succeeded += 1
        else:
            assert run["error"] in ("LinkError", "DeviceTimeout"), run
    assert succeeded >= 1, "no faulty run got through: the fault rates are too high to test retries"

    s = out["stats"]
    print(f"\nsystem sim: {wall:.1f} s wall (with build), {s['cycles']:,} cycles, {s['bytes_sent']:,} bytes "
          f"sent, {s['bytes_received']:,} received, {s['wall_seconds']:.1f} s inside the simulator; load "
          f"{out['load']['bytes']} B in {out['load']['wall']:.2f} s "
          f"({out['load']['bytes'] / out['load']['wall']:,.0f} B/s); infer {out['clean'][0]['wall']:.2f} s; "
          f"faulty runs " + ", ".join(f"{f['wall']:.1f} s/{f['stats']['retries']} retries/{f['to_device']} to the "
                                     f"device/{f['from_device']} back" for f in out["faulty"]))


def _check_runs(out: dict, program, inputs) -> dict:
    """Every run of :func:`network_scenario` bit-exact with the golden model (and the inputs told
    apart), after a reload that sent nothing (the device's CHECKSUM_MEM agreed with the program);
    the first run's counters."""
    from sqzhw import runtime

    total = sum(len(blob) for _, blob in program.static_image())
    assert out["info"].has_checksum
    assert out["load"].verified and out["load"].bytes_total == total and out["load"].written
    assert out["reload"].resident and out["reload"].bytes_sent == 0, out["reload"]
    # INFO and STATUS, and one CHECKSUM_MEM per piece: requests of a few dozen bytes.
    assert out["reload_link"]["bytes_sent"] < 100, out["reload_link"]

    for got, x in zip(out["runs"], inputs, strict=True):
        golden = runtime.run_golden(program, x)
        np.testing.assert_array_equal(got["sums"], golden.sums)
        np.testing.assert_array_equal(got["logits"], golden.logits)
        assert got["counters"]["INSNS"] == len(program.instructions), got["counters"]
    assert not np.array_equal(out["runs"][0]["sums"], out["runs"][1]["sums"])
    return out["runs"][0]["counters"]


def test_network_on_simulated_ulx3s_board_config():
    """The default board's own config (``ulx3s``: the 8x8 engine of its bitstream, SDRAM controller
    and model) runs a compiled Fire network through the UART pins, bit-exact with the golden model:
    the engine `make bitstream BOARD=ulx3s` builds is the one simulated here."""
    _skip_without_tools()
    from boards import get_board
    from sqzhw.driver.sim_transport import run_in_verilator

    board = load_config(get_board("ulx3s").config)
    program = _program(board)
    inputs = [_input(program, seed) for seed in (6, 7)]
    out = run_in_verilator(board, network_scenario, program, inputs, link="uart", uart_divisor=UART_DIVISOR,
                           sim_seconds=0.5)
    assert out["info"].tag == board.tag
    c = _check_runs(out, program, inputs)
    print(f"\nulx3s system: {c['CYCLES']:,} engine cycles per inference "
          f"({c['CYCLES'] / board.clock_mhz:.1f} us at {board.clock_mhz:g} MHz), "
          f"{out['stats']['cycles']:,} simulated cycles in all")


def test_bypass_network_on_simulated_ulx3s_bypass_config():
    """The paper's complex bypass (SqueezeNet 1.0 with a residual ADD around every Fire module, 1x1
    projections where the channels differ) on the ULX3S system with the ``ulx3s_bypass`` config (the
    ADD unit, `make bitstream BOARD=ulx3s CONFIG=ulx3s_bypass`): loaded and run through the driver
    on the SDRAM controller and model, bit-exact with the golden model."""
    _skip_without_tools()
    from sqzhw import isa
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.driver.sim_transport import run_in_verilator
    from sqzhw.program import Preprocess

    cfg = load_config("ulx3s_bypass")
    size = 48
    qgraph = random_qgraph("complex_bypass", input_size=size, width_mult=0.25, num_classes=8, seed=12)
    program = compile_graph(qgraph, cfg, Preprocess(height=size, width=size))
    adds = sum(isa.decode_fields(word).opcode == isa.Opcode.ADD for word in program.instructions)
    assert adds >= 8, f"{adds} ADD instructions: the bypasses did not reach the engine"
    rng = np.random.default_rng(13)
    inputs = [rng.standard_normal((program.input.channels, size, size)).astype(np.float32) for _ in range(2)]
    out = run_in_verilator(cfg, network_scenario, program, inputs, mem_words=1 << 18, sim_seconds=2.0)
    assert out["info"].tag == cfg.tag
    c = _check_runs(out, program, inputs)
    print(f"\nulx3s_bypass system, complex bypass {size}x{size}: {adds} ADDs, {c['CYCLES']:,} engine cycles "
          f"per inference ({c['CYCLES'] / cfg.clock_mhz:.1f} us at {cfg.clock_mhz:g} MHz)")


def test_network_on_simulated_icebreaker_system():
    """The iCEBreaker's system (its area-reduced config, the SPRAM memory directly behind the
    arbiter): a compiled Fire network loaded and run through the driver, bit-exact with the golden
    model."""
    _skip_without_tools()
    from sqzhw.driver.sim_transport import run_in_verilator

    ice = load_config("icebreaker")
    program = _program(ice)
    inputs = [_input(program, seed) for seed in (4, 5)]
    out = run_in_verilator(ice, network_scenario, program, inputs, memory="spram", sim_seconds=0.5)
    assert out["info"].tag == ice.tag and out["info"].mem_bytes == 128 << 10
    c = _check_runs(out, program, inputs)
    print(f"\nicebreaker system: {c['CYCLES']:,} engine cycles per inference "
          f"({c['CYCLES'] / ice.clock_mhz / 1e3:.2f} ms at {ice.clock_mhz:g} MHz), "
          f"{out['stats']['cycles']:,} simulated cycles in all")


def test_network_on_simulated_ecpix5_ddr3_system():
    """The ECPIX-5's config on the DDR3 controller and its PHY+DRAM model (``memory="ddr3-model"``:
    datasheet init waits, read calibration, refresh): a compiled Fire network loaded and run through
    the driver, bit-exact with the golden model; a DDR3 rule broken on the way fails the run (the
    transport checks the model's ``mem_violation``)."""
    _skip_without_tools()
    from sqzhw.driver.sim_transport import run_in_verilator

    cfg = load_config("ecpix5")
    program = _program(cfg)
    inputs = [_input(program, seed) for seed in (8, 9)]
    out = run_in_verilator(cfg, network_scenario, program, inputs, memory="ddr3-model", sim_seconds=0.5)
    assert out["info"].tag == cfg.tag
    c = _check_runs(out, program, inputs)
    print(f"\necpix5 DDR3 system: {c['CYCLES']:,} engine cycles per inference "
          f"({c['CYCLES'] / cfg.clock_mhz:.1f} us at {cfg.clock_mhz:g} MHz), "
          f"{out['stats']['cycles']:,} simulated cycles in all")


@pytest.mark.parametrize("config, memory", [("small", "sdram-model"), ("ecpix5", "ddr3-model")])
def test_selftest_on_simulated_system(config, memory):
    """``sqzhw selftest``'s checks on the simulated system: data and address buses over the whole
    SDRAM / DDR3 model behind its controller (every row, bank and column address bit), random blocks
    at both ends, and a Fire network bit-exact with the golden model."""
    _skip_without_tools()
    from sqzhw.driver.sim_transport import run_in_verilator

    out = run_in_verilator(config, selftest_scenario, 2048, memory=memory, sim_seconds=0.5)
    assert out["passed"], "\n".join(f"{c['name']}: {c['detail']}" for c in out["checks"])
    assert [c["name"] for c in out["checks"]] == ["link", "data bus", "address bus", "block", "engine"]
    print(f"\n{config} {memory} self-test: " + "; ".join(c["detail"] for c in out["checks"][1:3]))


def test_uart_bit_level_frames_at_the_board_rate():
    """INFO, WRITE_MEM and READ_MEM through the UART pins, bit by bit, at the boards' real rates:
    the fewest cycles per bit that any board's default host-link rate leaves (the iCEBreaker's
    2 Mbaud at 18 MHz: 9), the receiver's tightest case; the ULX3S's 2 Mbaud at 50 MHz is 25. The
    write is two frames back to back (windowed), so the second arrives while the first executes and
    is answered: no byte lost, no retry."""
    _skip_without_tools()
    from boards import BOARDS, get_board
    from boards.common import host_link_baud
    from rtl_gen.uart import divisor_for
    from sqzhw.driver.sim_transport import run_in_verilator

    cycles = {}
    for name in BOARDS:
        spec = get_board(name)
        clk = load_config(spec.config).clock_mhz * 1e6
        cycles[name] = divisor_for(clk, host_link_baud(spec, clk))
    divisor = min(cycles.values())
    assert divisor >= 9 and cycles["ulx3s"] == 25, cycles
    out = run_in_verilator(CONFIG, uart_scenario, link="uart", uart_divisor=divisor, sim_seconds=0.05)
    assert out["info"].tag == CONFIG.tag
    assert out["back"] == out["data"]
    assert out["link"]["retries"] == 0
    assert out["stats"]["framing_errors"] == 0
    assert out["info"].window > 1 and out["link"]["requests"] == 5   # INFO, 2 WRITE_MEM, 2 READ_MEM
    # 8N1: every byte took at least 10 bit times (each way; a window overlaps the two directions).
    s = out["stats"]
    assert s["cycles"] >= 10 * divisor * max(s["bytes_sent"], s["bytes_received"])


def test_errors_reach_the_caller():
    """A scenario that is not module-level is refused up front; a driver error raised in the simulator
    process is re-raised here as itself; the simulated-time budget ends a wait that would hang."""
    _skip_without_tools()
    from sqzhw.driver.sim_transport import run_in_verilator

    with pytest.raises(TypeError, match="module-level"):
        run_in_verilator(CONFIG, lambda t: None)
    with pytest.raises(ConfigMismatchError, match=OTHER.tag):
        run_in_verilator(CONFIG, refuse_other_config)
    with pytest.raises(DeviceTimeout, match="budget"):
        run_in_verilator(CONFIG, wait_forever, sim_seconds=2e-3)
