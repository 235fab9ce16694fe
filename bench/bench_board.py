"""Board figures: each board build's Fmax and resources, and the SqueezeNet 1.1 frame rate at that Fmax.

Two boards, as in :data:`BOARDS`: the ULX3S (``ulx3s`` config, 16-bit IS42S16160 SDRAM) and the
ECPIX-5 (``ecpix5`` config, 64-bit words on its MT41K256M16 DDR3), then a comparison line: the frame
rate of each from the same run and their ratio.

The frame time is *measured*: SqueezeNet 1.1 (227x227, the real topology with seeded random
weights: cycles depend on shapes only) is compiled for the board config and one inference runs
through the host driver against the board's system top in Verilator
(:func:`sqzhw.driver.sim_transport.run_in_verilator`: engine + host link + the memory controller
and its cycle-level model at the config clock: the SDRAM controller and model of the ULX3S's part,
or the DDR3 controller and the PHY+DRAM model of the ECPIX-5's). The frame's cycles are the
engine's ``CYCLES`` counter of that inference, read back by the driver: every instruction, every
LOAD and STORE through the memory controller and its refreshes. The int32 result is checked
bit-exactly against the golden executor; a mismatch fails the bench.

The program (instructions and weights, ~1.4 MB) is put into the memory model through the
simulation's preload backdoor rather than over the simulated link, where it would cost 5 M cycles
and two minutes of simulation before the frame starts; the driver reads pieces of it back to check
(``--no-preload`` loads it over the link instead). The input crosses the link as usual. On a
shared 2-core machine the ULX3S measurement takes ~4 minutes: ~1.5 for the cached-per-source
Verilator build of the 8x8 system, ~0.5 for the input, ~2.5 for the frame (~50 k cycles/s); the
ECPIX-5's ~1 minute (its 64-bit words move the input in a quarter of the cycles; ~200 k cycles/s).
Before its load, the driver waits until the device's ``STATUS`` says the memory is up
(:meth:`~sqzhw.driver.Accelerator.wait_memory`: the ECPIX-5's DDR3 init and read calibration take
~0.7 ms of simulated time, the ULX3S's SDRAM power-up 0.2 ms); the bench records that wait.

Beside it, as a cross-check, the golden executor's *cycle model* with external-memory transfers
charged at the memory controller's modelled rate (the ``throughput_model`` of
:mod:`rtl_gen.sdram` or :mod:`rtl_gen.ddr3`, :func:`memory_rates`) and the ratio RTL / model.
Without Verilator the model figures stand alone, labelled as such.

The UART times of the input, the output and (once per model) the program are computed separately
at the board's host-link rate with the protocol's framing overhead (the simulation uses the
byte-stream link, whose time is not what is measured): the rate of the build report when it names
the USB-serial bridge (a build since the rate follows the bridge), else the board's default for the
config (:func:`boards.common.host_link_baud`: the ULX3S's FT231X at 2 Mbaud, the ECPIX-5's FT2232H
at 6 Mbaud).

The Fmax and resources come from the last ``make bitstream BOARD=<board>`` report
(``build/boards/<board>-<config>/report.json``); without it the configured clock is used, the
output says so ("config clock, no build report"; ``fmax_source`` in the JSON) and how to produce
the report. The frame time "at Fmax" is the simulated cycle count divided by Fmax (memory timings
in cycles grow slightly with the clock; the model line shows how much).

Run: ``python bench/bench_board.py [OUT_DIR]`` (``--board ulx3s|ecpix5`` for one board,
``--no-rtl`` for the model alone; ``--config`` and ``--input-size`` for a reduced run). Outputs
``bench_board.json`` (every board under ``boards``, the ``comparison``, and the first board's
entry at the top level, as before the ECPIX-5 came) and ``bench_board_units[_<board>].png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:   # rtl_gen, sim and boards come from the checkout
    sys.path.insert(0, str(REPO))

#: The units whose busy cycles the engine counts, with the model's unit of the same name.
UNIT_COUNTERS = ("LOAD_BUSY", "COMPUTE_BUSY", "STORE_BUSY")

#: The simulated memory kinds the bench runs on, as the text calls them.
MEMORY_NAMES = {"sdram-model": "SDRAM model", "ddr3-model": "DDR3 model"}


@dataclass(frozen=True)
class BoardBench:
    """A board the bench measures: its config and the simulated memory of its system top."""
    name: str       #: the board's name in ``boards`` (and ``--board``)
    title: str
    config: str
    memory: str     #: a :data:`MEMORY_NAMES` kind

    @property
    def report(self) -> Path:
        """Where ``make bitstream BOARD=<name>`` writes its report (Fmax, resources)."""
        return REPO / "build" / "boards" / f"{self.name}-{self.config}" / "report.json"


#: The boards, in the order the bench runs and compares them (the first is the reference).
BOARDS = {b.name: b for b in (BoardBench("ulx3s", "ULX3S", "ulx3s", "sdram-model"),
                              BoardBench("ecpix5", "ECPIX-5", "ecpix5", "ddr3-model"))}
REPORT = BOARDS["ulx3s"].report


def memory_rates(memory: str, clock_mhz: float) -> tuple[dict[str, float], int]:
    """The external memory's controller at ``clock_mhz``: its modelled cycles per word
    (``seq_read``, ``seq_write``, ``random_read``, ...; the ``throughput_model`` of
    :mod:`rtl_gen.sdram` or :mod:`rtl_gen.ddr3`) and the cycles a DMA row loses when it starts in a
    row its bank does not hold open (PRECHARGE, ACTIVATE, first command)."""
    if memory == "sdram-model":
        from rtl_gen.sdram import IS42S16160, SDRAMTiming, throughput_model

        timing = SDRAMTiming(cas_latency=2 if clock_mhz <= 100 else 3)
        tp = throughput_model(IS42S16160, timing, min(clock_mhz, 143.0))
        c = timing.cycles(min(clock_mhz, 143.0))
        return tp, c.rp + c.rcd + 1
    if memory == "ddr3-model":
        from rtl_gen.ddr3 import MT41K256M16, DDR3Timing, sync_cycles, throughput_model
        from rtl_gen.ecp5_ddr3 import phy_params

        # SystemTop's defaults for memory="ddr3-model": the ECPIX-5's part, timing and ECP5 PHY.
        timing, params = DDR3Timing(), phy_params()
        tp = throughput_model(MT41K256M16, timing, clock_mhz, params)
        ck = timing.ck(clock_mhz)
        rcd = max(sync_cycles(ck.rcd, 0, params.read_phase), sync_cycles(ck.rcd, 0, params.write_phase))
        return tp, sync_cycles(ck.rp, 0, 0) + rcd + 1
    raise ValueError(f"memory_rates: memory = {memory!r}: one of {sorted(MEMORY_NAMES)}")


def _ext_cycle_model(config, clock_mhz: float, memory: str = "sdram-model"):
    """A :class:`sqzhw.golden.executor.CycleModel` whose LOAD/STORE pay the external memory's
    cycles per word (:func:`memory_rates`); the model and the memory's rates."""
    from sqzhw.golden.executor import CycleModel, _entry_bytes
    from sqzhw.isa import LoadTarget, Opcode, StoreSource

    tp, row_miss = memory_rates(memory, clock_mhz)

    @dataclass(frozen=True)
    class ExtMemoryCycleModel(CycleModel):
        def cycles(self, d, cfg):
            base = super().cycles(d, cfg)
            if d.opcode not in (Opcode.LOAD, Opcode.STORE):
                return base
            f = d.fields
            E = cfg.ext_bytes
            if d.opcode is Opcode.LOAD:
                words = f["rows"] * f["row_len"] * _entry_bytes(cfg, LoadTarget(f["target"]).name) // E
                factor = tp["seq_read"]
            else:
                n = f["rows"] * f["row_len"]
                eb = cfg.acc_entry_bytes if StoreSource(f["source"]) is StoreSource.ACC else cfg.act_entry_bytes
                words = n * eb // E
                factor = tp["seq_write"]
            extra = words * (factor - 1) + f["rows"] * row_miss
            return base + math.ceil(extra)

    return ExtMemoryCycleModel(), tp


def uart_seconds(n_bytes: int, baud: int, max_payload: int | None = None, request: bool = True,
                 window: int | None = None, turnaround_s: float = 0.001) -> float:
    """Time to move ``n_bytes`` of memory over the host link, a model: frames of at most
    ``max_payload`` bytes, each with its header, address/args and CRC, plus the reply frame; 10 bits
    per byte; and ``turnaround_s`` per response the host waits for (the USB round trip: a USB serial
    bridge holds a short response until its latency timer expires, 1-16 ms on an FTDI).

    ``window``: ``WRITE_MEM`` frames in flight (``request=True``; default the devices'
    :data:`sqzhw.protocol.DEFAULT_WINDOW`, as the driver writes). Reads (``request=False``) are
    stop-and-wait whatever ``window`` says. Stop-and-wait (``window=1``) pays each frame's request,
    reply and turnaround in turn; a window overlaps them: one frame per ``max(request line time,
    round trip / window)`` and the last one's whole round trip. ``window=1, turnaround_s=0``: the
    line time of both directions.
    """
    from sqzhw import protocol
    max_payload = max_payload or protocol.MAX_PAYLOAD
    window = protocol.DEFAULT_WINDOW if window is None else window
    frames = max(1, math.ceil(n_bytes / max_payload))
    overhead = protocol.REQUEST_HEADER_BYTES + protocol.CRC_BYTES + protocol.RESPONSE_HEADER_BYTES \
        + protocol.CRC_BYTES
    args = protocol.WRITE_ADDR_BYTES if request else 6
    line = (n_bytes + frames * (overhead + args)) * 10 / baud
    if window <= 1 or not request:
        return line + frames * turnaround_s
    round_trip = line / frames + turnaround_s
    request_line = (n_bytes / frames + protocol.REQUEST_HEADER_BYTES + protocol.CRC_BYTES + args) * 10 / baud
    return (frames - 1) * max(request_line, round_trip / window) + round_trip


def _say(line: str) -> None:
    print(line, flush=True)


# -- pure helpers ------------------------------------------------------------------------------------

def mem_words_for(memory_bytes: int, ext_bytes: int, min_words: int = 1) -> int:
    """The smallest power of two of ``ext_bytes``-byte words that holds ``memory_bytes`` bytes
    (and at least ``min_words``, itself a power of two: the SDRAM model's one row per bank)."""
    if memory_bytes < 0 or ext_bytes < 1:
        raise ValueError(f"mem_words_for: memory_bytes = {memory_bytes}, ext_bytes = {ext_bytes}")
    if min_words < 1 or min_words & (min_words - 1):
        raise ValueError(f"mem_words_for: min_words = {min_words} is not a power of two")
    words = max(1, -(-memory_bytes // ext_bytes))
    return max(min_words, 1 << (words - 1).bit_length())


def model_mem_words(memory: str, memory_bytes: int, ext_bytes: int) -> int:
    """Words of the ``memory`` model (a :data:`MEMORY_NAMES` kind) a program of ``memory_bytes``
    needs: at least one row per bank, and for the DDR3 model the controller's calibration words
    above the program (the host sees ``mem_bytes`` without them)."""
    if memory == "sdram-model":
        from rtl_gen.sdram import IS42S16160
        return mem_words_for(memory_bytes, ext_bytes, 1 << (IS42S16160.col_bits + IS42S16160.bank_bits))
    if memory == "ddr3-model":
        from rtl_gen.ddr3 import MT41K256M16, DDR3Controller
        return mem_words_for(memory_bytes + DDR3Controller.CALIB_WORDS * ext_bytes, ext_bytes,
                             1 << (MT41K256M16.colword_bits + MT41K256M16.bank_bits))
    raise ValueError(f"model_mem_words: memory = {memory!r}: one of {sorted(MEMORY_NAMES)}")


def frame_figures(cycles: int, mhz: float, uart_in_s: float, uart_out_s: float) -> dict:
    """Frame time and rates of ``cycles`` engine cycles at ``mhz``: engine alone, and with the
    input and output crossing the UART (the program is loaded once per model, not per frame)."""
    if cycles <= 0 or mhz <= 0:
        raise ValueError(f"frame_figures: cycles = {cycles}, mhz = {mhz}: both must be positive")
    seconds = cycles / (mhz * 1e6)
    return {"mhz": mhz, "cycles": int(cycles), "frame_ms": seconds * 1e3, "fps_engine": 1 / seconds,
            "fps_with_uart": 1 / (seconds + uart_in_s + uart_out_s)}


def model_figures(program, mhz: float, memory: str = "sdram-model") -> dict:
    """The cycle model's prediction for ``program`` with the external ``memory`` (a
    :data:`MEMORY_NAMES` kind) charged at ``mhz``, and with an ideal one-word-per-cycle memory;
    per-unit busy cycles under the counters' names; the memory's cycles per word as
    ``<sdram|ddr3>_{seq,random}_read_cycles_per_word``."""
    from sqzhw.golden.executor import estimate_cycles
    from sqzhw.isa import Unit

    model, tp = _ext_cycle_model(program.config, mhz, memory)
    kind = memory.split("-")[0]
    timing = estimate_cycles(program.instructions, program.config, model)
    ideal = estimate_cycles(program.instructions, program.config)
    busy = {f"{u.name}_BUSY": int(timing.unit_busy[u]) for u in (Unit.LOAD, Unit.COMPUTE, Unit.STORE)}
    return {"mhz": mhz, "cycles": int(timing.total), "cycles_ideal_memory": int(ideal.total),
            "unit_busy": busy, "memory": memory, f"{kind}_seq_read_cycles_per_word": tp["seq_read"],
            f"{kind}_random_read_cycles_per_word": tp["random_read"]}


def compare_sums(got: np.ndarray, want: np.ndarray) -> str | None:
    """``None`` when ``got`` equals ``want`` bit for bit, else what differs (for a loud failure)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != golden {want.shape}"
    if got.dtype.kind not in "iu" or want.dtype.kind not in "iu":
        return f"dtype {got.dtype} / golden {want.dtype}: both must be integers"
    bad = np.flatnonzero(got.astype(np.int64) != want.astype(np.int64))
    if bad.size == 0:
        return None
    i = int(bad[0])
    return (f"{bad.size} of {want.size} int32 sums differ; first at index {i}: RTL {int(got.flat[i])}, "
            f"golden {int(want.flat[i])}")


# -- inside the simulator process --------------------------------------------------------------------

class _ProgressFile:
    """Progress lines from the simulator process, appended to a file the bench tails (the
    simulator's own stdout goes to its log)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.t0 = time.perf_counter()

    def __call__(self, line: str) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(f"  [{time.perf_counter() - self.t0:6.1f} s] {line}\n")


def rtl_inference(transport, program, x: np.ndarray, progress_path: str | None = None,
                  preloaded: bool = False) -> dict:
    """Load ``program`` and run one inference of ``x`` through the driver (runs in the simulator).

    With ``preloaded`` the program's static image is already in the memory model (the backdoor of
    :func:`~sqzhw.driver.sim_transport.run_in_verilator`): instead of writing it, the driver reads
    the first and last bytes of each piece back over the link and refuses to go on if they differ.

    The driver first waits for the memory's start-up (``STATUS``), as on a board.

    Returns the int32 sums, the engine's counters of the inference (by name), and the simulated
    cycles and wall seconds of the load and of the inference.
    """
    from sqzhw.driver import Accelerator, ConfigMismatchError, DriverError

    class SimAccelerator(Accelerator):
        """Lets the simulation run until the engine is idle before each status poll: the same
        calls and results, without tens of thousands of polls of a running network (the engine's
        counters do not depend on them beyond a few cycles of SDRAM refresh phase)."""

        def status(self):
            if hasattr(self.transport, "wait_engine"):
                self.transport.wait_engine()
            return super().status()

    t_start = time.perf_counter()
    say = _ProgressFile(progress_path)
    marks = {"next": 0.0}

    def on_bytes(done: int, total: int, what: str) -> None:
        if done >= total or done / total >= marks["next"]:
            marks["next"] = done / total + 0.1
            say(f"{what}: {done:,} / {total:,} bytes (cycle {transport.cycles:,})")

    # run_timeout is wall-clock time: a full network takes minutes of simulation. The simulated-time
    # budget of run_in_verilator bounds every wait instead.
    acc = SimAccelerator(transport, program.config, run_timeout=24 * 3600.0, progress=on_bytes)
    info = acc.info()
    t0, c0 = time.perf_counter(), transport.cycles
    acc.wait_memory(timeout=3600.0)   # wall-clock; the simulated-time budget bounds it first
    startup = {"cycles": transport.cycles - c0, "wall_s": time.perf_counter() - t0}
    say(f"memory up at cycle {transport.cycles:,} (start-up wait {startup['cycles']:,} cycles)")
    say(f"device {info.tag}, {info.mem_bytes:,} bytes of memory; loading the program ...")
    t0, c0 = time.perf_counter(), transport.cycles
    if preloaded:
        if program.config.tag != info.tag:
            raise ConfigMismatchError(f"program was compiled for {program.config.tag}, the device is {info.tag}")
        for addr, blob in program.static_image():
            for off in sorted({0, max(0, len(blob) - 512)}):
                want = blob[off:off + 512]
                if acc.read(addr + off, len(want), what="preload check") != want:
                    raise DriverError(f"preload backdoor: memory at 0x{addr + off:x} does not hold the "
                                      f"program's bytes")
        acc.program = program     # what load() would have written is there
    else:
        acc.load(program)
    load = {"cycles": transport.cycles - c0, "wall_s": time.perf_counter() - t0, "preloaded": preloaded,
            "bytes": sum(len(blob) for _, blob in program.static_image())}
    say(f"{'preloaded (checked)' if preloaded else 'loaded'} {load['bytes']:,} bytes in {load['cycles']:,} "
        f"cycles ({load['wall_s']:.1f} s); inference ...")
    marks["next"] = 0.0
    t0, c0 = time.perf_counter(), transport.cycles
    r = acc.infer_full(x)
    infer = {"cycles": transport.cycles - c0, "wall_s": time.perf_counter() - t0}
    counters = {c.name: int(v) for c, v in r.counters.items()}
    say(f"inference done: engine {counters.get('CYCLES', 0):,} cycles, {infer['cycles']:,} simulated "
        f"cycles with the input/output transfers ({infer['wall_s']:.1f} s)")
    return {"sums": np.asarray(r.sums), "counters": counters, "startup": startup, "load": load, "infer": infer,
            "link": vars(acc.stats).copy(), "stats": transport.stats(),
            "wall_s": time.perf_counter() - t_start}


# -- the measurement ---------------------------------------------------------------------------------

class _Tail(threading.Thread):
    """Prints the lines appended to ``path`` while the simulation runs."""

    def __init__(self, path: Path, progress: Callable[[str], None]) -> None:
        super().__init__(daemon=True)
        self.path, self.progress = path, progress
        self.stop = threading.Event()
        self.offset = 0

    def flush(self) -> None:
        if self.path.exists():
            with open(self.path) as f:
                f.seek(self.offset)
                text = f.read()
            done = text.rfind("\n") + 1
            self.offset += len(text[:done].encode())
            for line in text[:done].splitlines():
                self.progress(line)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.flush()


def compile_network(config, model: str = "squeezenet1.1", input_size: int = 227, seed: int = 0,
                    **graph_kwargs):
    """The program the measurement runs: ``model`` with seeded random weights for ``config``."""
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.preprocess import Preprocess

    qgraph = random_qgraph(model, input_size=input_size, seed=seed, **graph_kwargs)
    return compile_graph(qgraph, config, Preprocess(height=input_size, width=input_size))


def measure_rtl_frame(config, *, model: str = "squeezenet1.1", input_size: int = 227, seed: int = 0,
                      graph_kwargs: dict | None = None, preload: bool = True, work_dir: Path | None = None,
                      memory: str = "sdram-model", progress: Callable[[str], None] | None = None) -> dict:
    """One inference of ``model`` on the simulated board system, its engine cycles, and the golden
    and cycle-model figures to judge it by.

    Parameters
    ----------
    config : AccelConfig or str
        The board config (16-bit external memory for the SDRAM model, the ULX3S's part; 64-bit for
        the DDR3 model, the ECPIX-5's).
    model, input_size, seed, graph_kwargs :
        The network (:func:`sqzhw.compiler.testing.random_qgraph`); the input is seeded too.
    preload : bool
        Put the program (instructions and weights) into the memory model through the simulation's
        backdoor instead of over the simulated link (at 4 cycles per byte, ~1.4 MB would take
        5 M cycles and 2 minutes of simulation). The per-frame input still crosses the link, and
        the frame's cycles are the engine's: every LOAD and STORE goes through the controller.
    work_dir : Path, optional
        Where the progress file of the simulator process goes (default: a temporary folder).
    memory : {"sdram-model", "ddr3-model"}
        The simulated external memory (controller and cycle-level model).
    progress : callable
        One line per step: compile, golden, Verilator build, load, inference.

    Returns
    -------
    dict
        ``sums`` and ``golden_sums`` (int arrays), ``mismatch`` (``None`` when bit-exact),
        ``bit_exact``, ``cycles`` (the engine's CYCLES counter of the inference), ``counters``,
        ``model_prediction`` (:func:`model_figures` at the config clock), ``ratio_rtl_model``, the load and
        inference phases, ``mem_words``, ``build_s``, ``sim_wall_s`` (driver code in the simulator),
        ``run_wall_s`` (the simulator run with its start-up), ``sim_cycles``,
        ``sim_cycles_per_s``.

    Raises
    ------
    sqzhw.driver.sim_transport.SystemSimError
        Verilator is missing, or the build or the simulation failed.
    """
    import tempfile

    from sqzhw import runtime
    from sqzhw.config import load_config
    from sqzhw.driver.sim_transport import build_system, run_in_verilator

    config = load_config(config) if isinstance(config, str) else config
    if memory not in MEMORY_NAMES:
        raise ValueError(f"measure_rtl_frame: memory = {memory!r}: one of {sorted(MEMORY_NAMES)}")
    progress = progress or _say
    t0 = time.perf_counter()
    progress(f"compiling {model} ({input_size}x{input_size}, seeded random weights) for {config.name} ...")
    program = compile_network(config, model, input_size, seed, **(graph_kwargs or {}))
    progress(f"  {len(program.instructions)} instructions, {program.memory_size:,} bytes of memory "
             f"({time.perf_counter() - t0:.1f} s)")
    spec = program.input
    x = np.random.default_rng(seed).standard_normal((spec.channels, spec.height, spec.width)).astype(np.float32)
    t0 = time.perf_counter()
    golden = runtime.run_golden(program, x)
    progress(f"golden executor: {time.perf_counter() - t0:.1f} s")
    predicted = model_figures(program, config.clock_mhz, memory)

    mem_words = model_mem_words(memory, program.memory_size, config.ext_bytes)
    progress(f"Verilator build of the {config.name} system ({MEMORY_NAMES[memory]}, {mem_words:,} words of "
             f"{config.ext_data_bits} bits) ...")
    t0 = time.perf_counter()
    build = build_system(config, link="stream", memory=memory, mem_words=mem_words,
                         progress=lambda s: progress("  " + s))
    build_s = time.perf_counter() - t0
    progress(f"  build ready in {build_s:.1f} s" + (" (cached)" if build.seconds == 0 else ""))

    # Simulated-time budget: the load at the stream link's 4 cycles per byte and ten times the
    # model's frame, generously; a hung design ends with DeviceTimeout instead of running forever.
    link_bytes = sum(len(b) for _, b in program.static_image()) + program.region("input").size \
        + program.region("output").size
    budget_cycles = 20 * link_bytes + 10 * predicted["cycles"] + 1_000_000
    tmp = tempfile.TemporaryDirectory(prefix="bench_board-") if work_dir is None else None
    # Absolute: the simulator process runs in its own folder and appends to this file.
    folder = (Path(tmp.name) if tmp else Path(work_dir)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    progress_path = folder / "rtl_progress.log"
    progress_path.write_text("")
    tail = _Tail(progress_path, progress)
    tail.start()
    t0 = time.perf_counter()
    try:
        out = run_in_verilator(config, rtl_inference, program, x, str(progress_path), preload,
                               link="stream", memory=memory, mem_words=mem_words,
                               preload=program.static_image() if preload else None,
                               sim_seconds=budget_cycles / build.clk_hz, progress=lambda s: progress("  " + s))
    finally:
        tail.stop.set()
        tail.join()
        tail.flush()
        if tmp:
            tmp.cleanup()
    run_wall = time.perf_counter() - t0     # with the simulator's start (and a rebuild if the RTL changed)
    sim_wall = out["wall_s"]

    cycles = out["counters"]["CYCLES"]
    mismatch = compare_sums(out["sums"], golden.sums)
    sim_cycles = out["stats"]["cycles"]
    return {"config": config.name, "memory": memory, "model": model, "input_size": input_size, "seed": seed,
            "instructions": len(program.instructions), "memory_bytes": program.memory_size,
            "mem_words": mem_words, "sums": out["sums"], "golden_sums": np.asarray(golden.sums),
            "bit_exact": mismatch is None, "mismatch": mismatch, "cycles": int(cycles),
            "counters": out["counters"], "model_prediction": predicted,
            "ratio_rtl_model": cycles / predicted["cycles"], "memory_startup": out["startup"],
            "load": out["load"], "infer": out["infer"],
            "link_retries": out["link"]["retries"], "clock_mhz": build.clk_hz / 1e6,
            "build_s": build_s, "run_wall_s": run_wall, "sim_wall_s": sim_wall, "sim_cycles": int(sim_cycles),
            "sim_cycles_per_s": sim_cycles / sim_wall if sim_wall > 0 else 0.0,
            "infer_cycles_per_s": out["infer"]["cycles"] / out["infer"]["wall_s"] if out["infer"]["wall_s"] else 0.0}


def rtl_json(rtl: dict) -> dict:
    """``rtl`` without its arrays (for ``bench_board.json``)."""
    return {k: v for k, v in rtl.items() if k not in ("sums", "golden_sums")}


def plot_units(rtl: dict, path: Path) -> Path | None:
    """Bar chart of the engine's busy/stall counters of the frame beside the model's unit busy
    cycles; ``None`` if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    c = rtl["counters"]
    names = ["CYCLES", *UNIT_COUNTERS, "ARRAY_ACTIVE", "DISPATCH_STALL", "MEM_READ_STALL", "MEM_WRITE_STALL"]
    pred = rtl["model_prediction"]
    model = {"CYCLES": pred["cycles"], **pred["unit_busy"]}
    xs = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    memory = MEMORY_NAMES.get(rtl.get("memory", "sdram-model"), rtl.get("memory"))
    ax.bar(xs - 0.2, [c.get(n, 0) / 1e6 for n in names], 0.4, label=f"RTL counters (Verilator, {memory})")
    ax.bar(xs + 0.2, [model.get(n, 0) / 1e6 for n in names], 0.4, label="cycle model")
    ax.set_xticks(xs, [n.lower().replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("million cycles")
    ax.set_title(f"{rtl['model']} {rtl['input_size']}x{rtl['input_size']} on {rtl['config']}: one frame, "
                 f"RTL/model = {rtl['ratio_rtl_model']:.3f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- the bench ---------------------------------------------------------------------------------------

def _read_report(board: BoardBench, config, say: Callable[[str], None]) -> dict | None:
    """The board's build report if it is there and for this config, else ``None`` (and why)."""
    path = board.report
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    if report.get("tag") != config.tag:
        say(f"the {board.title} build report {path} is for config tag {report.get('tag')}, not {config.tag} "
            f"(the {config.name!r} config changed since): ignored; rerun `make bitstream BOARD={board.name}`")
        return None
    return report


def host_link(board: BoardBench, config, report: dict | None) -> dict:
    """The board's host link for the UART times: ``{"baud", "bridge", "source"}``. A build report
    that names its bridge states the bitstream's rate; an older report's rate (1 Mbaud for every
    board before the rate followed the bridge) and a missing report give way to the board's default
    for ``config`` (:func:`boards.common.host_link_baud`; without amaranth-boards, which the board
    modules import, :data:`sqzhw.protocol.DEFAULT_BAUD`)."""
    if report is not None and report.get("bridge") and report.get("baud"):
        return {"baud": int(report["baud"]), "bridge": report["bridge"], "source": "build report"}
    try:
        from boards import get_board
        from boards.common import host_link_baud
        spec = get_board(board.name)
    except ImportError as exc:
        from sqzhw import protocol
        return {"baud": protocol.DEFAULT_BAUD, "bridge": "bridge unknown",
                "source": f"protocol default ({exc})"}
    return {"baud": host_link_baud(spec, config.clock_mhz * 1e6), "bridge": spec.bridge.name,
            "source": "board default"}


def board_section(board: BoardBench, out_dir: Path, *, rtl: bool = True, config_name: str | None = None,
                  input_size: int = 227, graph_kwargs: dict | None = None, preload: bool = True,
                  progress: Callable[[str], None] = _say) -> dict:
    """One board's figures: Fmax and resources from its build report, the RTL frame on its simulated
    system (:func:`measure_rtl_frame` on ``board.memory``), the cycle model beside it and the UART
    times. Returns the board's ``bench_board.json`` entry plus ``measurement`` (with its arrays,
    or ``None``); writes the board's plot. ``config_name`` replaces the board's config (reduced runs).
    """
    from rtl_gen.uart import baud_text
    from sqzhw.config import load_config

    say = progress
    config = load_config(config_name or board.config)
    memory_name = MEMORY_NAMES[board.memory]
    report = _read_report(board, config, say)
    if report is not None:
        fmax = report.get("fmax_sync_mhz") or config.clock_mhz
        say(f"{board.title} build report {board.report} (config {report['config']['name']}, tag {report['tag']}, "
            f"engine {report['engine']}, built in {report['build_seconds']:.0f} s)")
        for clk, f in report.get("fmax", {}).items():
            say(f"  Fmax {f.get('domain') or clk}: {f['achieved']:.2f} MHz (target {f['constraint']:.2f})")
        for cell, u in sorted(report.get("utilization", {}).items()):
            if u["used"]:
                say(f"  {cell:14s} {u['used']:7d} / {u['available']:7d} ({100 * u['used'] / u['available']:.1f} %)")
    else:
        fmax = config.clock_mhz
        say(f"no {board.title} build report at {board.report}: run `make bitstream BOARD={board.name}` (10+ "
            f"minutes with the YoWASP tools) to get Fmax and resources; using the config's {fmax:g} MHz below "
            f"(labelled \"Fmax\" in the JSON, with fmax_source \"config clock\")")
    clock = min(fmax, config.clock_mhz)   # the PLL runs the config's clock; above Fmax it would fail

    # The RTL measurement (or why there is none).
    measured, why_not = None, None
    if rtl:
        from sim.runner import simulator_available
        why_not = simulator_available("verilator")
    else:
        why_not = "disabled (--no-rtl)"
    t0 = time.perf_counter()
    if why_not is None:
        measured = measure_rtl_frame(config, input_size=input_size, graph_kwargs=graph_kwargs,
                                     preload=preload, work_dir=out_dir, memory=board.memory, progress=progress)
    else:
        say(f"NO RTL MEASUREMENT: {why_not}. The frame figures below are the CYCLE MODEL's estimate, "
            f"not simulated cycles.")
    rtl_seconds = time.perf_counter() - t0

    program = compile_network(config, input_size=input_size, **(graph_kwargs or {}))
    in_bytes = program.region("input").size
    out_bytes = program.region("output").size
    prog_bytes = len(program.image)
    link = host_link(board, config, report)
    baud = link["baud"]
    t_in = uart_seconds(in_bytes, baud)
    t_out = uart_seconds(out_bytes, baud, request=False)
    t_prog = uart_seconds(prog_bytes, baud)
    # The link model's other way: every WRITE_MEM stop-and-wait (window 1), a USB turnaround each.
    from sqzhw.protocol import DEFAULT_WINDOW
    stop_and_wait = {"input_s": uart_seconds(in_bytes, baud, window=1),
                     "program_s": uart_seconds(prog_bytes, baud, window=1)}

    model_rates = {}
    for label, mhz in (("config clock", clock), ("Fmax", fmax)):
        pred = model_figures(program, mhz, board.memory)
        model_rates[label] = {**pred, **frame_figures(pred["cycles"], mhz, t_in, t_out)}
    rtl_rates = {}
    if measured is not None:
        for label, mhz in (("config clock", clock), ("Fmax", fmax)):
            rtl_rates[label] = frame_figures(measured["cycles"], mhz, t_in, t_out)

    name = f"SqueezeNet 1.1 ({input_size}x{input_size}{', reduced' if graph_kwargs else ''}) on {config.name}"
    fmax_label = "Fmax" if report is not None else "config clock, no build report"
    if measured is not None:
        m = measured
        say(f"RTL frame ({name}, Verilator, {memory_name} at {m['clock_mhz']:g} MHz, bit-exact with the "
            f"golden model: {'yes' if m['bit_exact'] else 'NO'}):")
        for label, r in rtl_rates.items():
            label = fmax_label if label == "Fmax" else label
            say(f"  at {r['mhz']:.1f} MHz ({label}): {r['cycles']:,} cycles = {r['frame_ms']:.1f} ms, "
                f"{r['fps_engine']:.2f} frames/s engine only, {r['fps_with_uart']:.3f} frames/s with the "
                f"UART at {baud_text(baud)}")
        c = m["counters"]
        say(f"  counters: load busy {c['LOAD_BUSY']:,}, compute busy {c['COMPUTE_BUSY']:,}, store busy "
            f"{c['STORE_BUSY']:,}, array active {c['ARRAY_ACTIVE']:,} "
            f"({100 * c['ARRAY_ACTIVE'] / max(1, c['CYCLES']):.1f} %), memory read stall "
            f"{c['MEM_READ_STALL']:,}, write stall {c['MEM_WRITE_STALL']:,}, dispatch stall "
            f"{c['DISPATCH_STALL']:,}, {c['INSNS']:,} instructions")
        say(f"  cycle model (cross-check) at {m['model_prediction']['mhz']:g} MHz: "
            f"{m['model_prediction']['cycles']:,} cycles; RTL / model = {m['ratio_rtl_model']:.4f}")
        say(f"  simulation: {m['sim_cycles']:,} cycles in {m['sim_wall_s']:.1f} s wall = "
            f"{m['sim_cycles_per_s']:,.0f} cycles/s (simulator run {m['run_wall_s']:.1f} s; inference alone "
            f"{m['infer_cycles_per_s']:,.0f} cycles/s); load {m['load']['cycles']:,} cycles in "
            f"{m['load']['wall_s']:.1f} s, inference {m['infer']['cycles']:,} cycles in {m['infer']['wall_s']:.1f} s; "
            f"program {'preloaded through the backdoor' if m['load']['preloaded'] else 'loaded over the link'}; "
            f"Verilator build {m['build_s']:.1f} s; {m['mem_words']:,} words of {memory_name}; whole measurement "
            f"{rtl_seconds:.1f} s")
    for label, r in model_rates.items():
        tag = "cycle model (secondary)" if measured is not None else "CYCLE MODEL ONLY"
        label = fmax_label if label == "Fmax" else label
        say(f"{tag}, {name} at {r['mhz']:.1f} MHz ({label}): {r['cycles']:,} cycles "
            f"({r['cycles_ideal_memory']:,} with 1 word/cycle memory) = {r['frame_ms']:.1f} ms, "
            f"{r['fps_engine']:.2f} frames/s engine only, {r['fps_with_uart']:.3f} frames/s with the UART "
            f"at {baud_text(baud)}")
    say(f"UART at {baud} baud ({link['bridge']}, {link['source']}): input {in_bytes:,} B = {t_in:.2f} s, "
        f"output {out_bytes:,} B = {t_out:.3f} s per frame; program {prog_bytes:,} B = {t_prog:.1f} s "
        f"once per model")

    say(f"  (UART times: a link model with a 1 ms USB turnaround per response wait; writes keep "
        f"{DEFAULT_WINDOW} frames in flight as the driver does; stop-and-wait the input would take "
        f"{stop_and_wait['input_s']:.2f} s and the program {stop_and_wait['program_s']:.1f} s)")
    png = out_dir / ("bench_board_units.png" if board.name == "ulx3s" else f"bench_board_units_{board.name}.png")
    plot = plot_units(measured, png) if measured is not None else None
    summary = {"board": board.name, "memory": board.memory,
               "report": str(board.report) if report else None, "fmax_mhz": fmax,
               "fmax_source": "report" if report else "config clock", "baud": baud,
               "bridge": link["bridge"], "baud_source": link["source"],
               "config": config.name, "input_size": input_size,
               "input_bytes": in_bytes, "output_bytes": out_bytes, "program_bytes": prog_bytes,
               "uart_input_s": t_in, "uart_output_s": t_out, "uart_program_s": t_prog,
               "frame_source": "rtl" if measured is not None else "cycle-model",
               "rtl": rtl_json(measured) if measured is not None else {"available": False, "reason": why_not},
               "rtl_rates": rtl_rates, "model_rates": model_rates,
               # The primary figures: the RTL's when measured, else the model's.
               "rates": rtl_rates if measured is not None else model_rates,
               "plot": str(plot) if plot else None,
               "utilization": report.get("utilization") if report else None,
               "seconds": rtl_seconds}
    summary["uart_model"] = {"window": DEFAULT_WINDOW, "turnaround_s": 0.001,
                             "stop_and_wait": stop_and_wait}
    return {**summary, "measurement": measured}


def compare_boards(sections: dict[str, dict]) -> dict | None:
    """Frames per second of each measured board at its Fmax (its config clock without a report),
    engine only and with the UART, and each board's ratio to the first; ``None`` below two boards."""
    done = {n: s for n, s in sections.items() if "rates" in s}
    if len(done) < 2:
        return None
    first = next(iter(done))
    fps = {n: s["rates"]["Fmax"]["fps_engine"] for n, s in done.items()}
    fps_uart = {n: s["rates"]["Fmax"]["fps_with_uart"] for n, s in done.items()}
    return {"reference": first, "fps_engine": fps, "fps_with_uart": fps_uart,
            "mhz": {n: s["rates"]["Fmax"]["mhz"] for n, s in done.items()},
            "baud": {n: s.get("baud") for n, s in done.items()},
            "fmax_source": {n: s["fmax_source"] for n, s in done.items()},
            "frame_source": {n: s["frame_source"] for n, s in done.items()},
            "ratio_fps_engine": {n: fps[n] / fps[first] for n in done},
            "ratio_fps_with_uart": {n: fps_uart[n] / fps_uart[first] for n in done}}


def main(out_dir, *, boards: tuple[str, ...] = tuple(BOARDS), rtl: bool = True, config_name: str | None = None,
         input_size: int = 227, graph_kwargs: dict | None = None, preload: bool = True,
         progress: Callable[[str], None] | None = None) -> dict:
    """The board section of ``make bench``: each of ``boards`` (:data:`BOARDS` names, by default all
    of them) in turn, then a comparison line; writes ``bench_board.json`` (and a plot per board) to
    ``out_dir`` and returns its contents.

    ``bench_board.json`` holds every board's entry under ``boards`` (by name), the ``comparison``
    (:func:`compare_boards`, with two boards or more), and, at the top level, the first board's entry
    (the ULX3S's keys as before the other boards came). The returned dict also has ``measurement``:
    the first board's :func:`measure_rtl_frame` result with its arrays (or ``None``).

    Raises RuntimeError after writing them if a board's RTL is not bit-exact or its measurement
    failed (the other boards still run). ``config_name``, ``input_size`` and ``graph_kwargs`` shrink
    the run (tests; ``config_name`` replaces every board's config); the bench proper is SqueezeNet
    1.1 at 227x227 on each board's config. ``preload``: see :func:`measure_rtl_frame`.
    """
    say = progress or _say
    unknown = [b for b in boards if b not in BOARDS]
    if unknown or not boards:
        raise ValueError(f"bench_board: boards = {boards!r}: one or more of {sorted(BOARDS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict] = {}
    measurements: dict[str, dict | None] = {}
    failures: list[str] = []
    for name in boards:
        board = BOARDS[name]
        if len(boards) > 1:
            say(f"--- {board.title} ({board.config} config, {MEMORY_NAMES[board.memory]}) ---")
        try:
            section = board_section(board, out_dir, rtl=rtl, config_name=config_name, input_size=input_size,
                                    graph_kwargs=graph_kwargs, preload=preload, progress=say)
        except Exception as exc:  # noqa: BLE001 -- one board's broken run must not hide the others' figures
            say(f"!!! {board.title}: the measurement failed: {type(exc).__name__}: {exc}")
            sections[name] = {"board": name, "memory": board.memory, "error": f"{type(exc).__name__}: {exc}"}
            measurements[name] = None
            failures.append(f"{board.title}: {type(exc).__name__}: {exc}")
            continue
        measurements[name] = section.pop("measurement")
        sections[name] = section
        m = measurements[name]
        if m is not None and not m["bit_exact"]:
            say(f"\n!!! {board.title}: RTL RESULT DIFFERS FROM THE GOLDEN MODEL: {m['mismatch']} !!!\n")
            failures.append(f"{board.title}: the RTL inference is not bit-exact with the golden executor "
                            f"({m['mismatch']})")

    comparison = compare_boards(sections)
    if comparison is not None:
        from rtl_gen.uart import baud_text
        ref = comparison["reference"]
        parts = []
        for n, fps in comparison["fps_engine"].items():
            clock = "Fmax" if comparison["fmax_source"][n] == "report" else "config clock"
            src = "RTL" if comparison["frame_source"][n] == "rtl" else "CYCLE MODEL"
            parts.append(f"{BOARDS[n].title} {fps:.2f} frames/s ({src}, {comparison['mhz'][n]:.1f} MHz {clock}; "
                         f"{comparison['fps_with_uart'][n]:.3f} with the UART"
                         + (f" at {baud_text(comparison['baud'][n])})" if comparison["baud"][n] else ")"))
        ratios = ", ".join(f"{BOARDS[n].title} / {BOARDS[ref].title} = {r:.3f}"
                           for n, r in comparison["ratio_fps_engine"].items() if n != ref)
        say(f"comparison (this run, engine only): {'; '.join(parts)}; {ratios}")

    first = sections[boards[0]]
    data = {**first, "boards": sections, "comparison": comparison}
    (out_dir / "bench_board.json").write_text(json.dumps(data, indent=2))
    if failures:
        raise RuntimeError("bench_board: " + "; ".join(failures))
    return {**data, "measurement": measurements[boards[0]]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "build" / "bench"), help="output folder")
    parser.add_argument("--board", choices=[*BOARDS, "all"], default="all",
                        help="the board to measure (default: all of them, then their comparison)")
    parser.add_argument("--no-rtl", action="store_true", help="cycle model only (no Verilator run)")
    parser.add_argument("--config", default=None,
                        help="replace the board's config (its external memory width must match the board's)")
    parser.add_argument("--input-size", type=int, default=227, help="network input size")
    parser.add_argument("--no-preload", action="store_true",
                        help="load the program over the simulated link instead of the memory model's backdoor")
    args = parser.parse_args()
    main(Path(args.out), boards=tuple(BOARDS) if args.board == "all" else (args.board,), rtl=not args.no_rtl,
         config_name=args.config, input_size=args.input_size, preload=not args.no_preload)
