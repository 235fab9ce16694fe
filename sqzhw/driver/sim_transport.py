"""Simulated hardware behind the driver: the board's system top in Verilator, through cocotb.

:func:`run_in_verilator` runs ordinary driver code against :class:`boards.common.SystemTop` (engine,
host link, SDRAM controller and a cycle-level SDRAM model, exported to Verilog) simulated by
Verilator::

    from sqzhw.driver import Accelerator
    from sqzhw.driver.sim_transport import run_in_verilator

    def infer(transport, program, x):          # runs inside the simulator process
        acc = Accelerator(transport, program.config)
        acc.load(program)
        return acc.infer_full(x).sums

    sums = run_in_verilator(program.config, infer, program, x)

How it works. The simulator is a separate process (cocotb embeds Python in it), so ``fn`` must be a
module-level function (it is imported there by module and name; a script's functions work too) and
its arguments and result must pickle. The cocotb test :mod:`sim.system_bench` starts ``fn`` in a
thread with :func:`cocotb.task.bridge`; the :class:`VerilatorTransport` it hands to ``fn`` turns
each ``write``/``read`` into a coroutine run by the simulator with :func:`cocotb.task.resume`, so the
simulation advances only while the driver waits for the device, exactly as a board's clock runs
while the host waits on its serial port.

The host's side of the link is HDL (``sim/hdl/system_top_wrapper.sv``): a burst of up to 1024
request bytes goes into the design with one wide signal write and is fed back-to-back, and the
response bytes collect in a ring buffer that cocotb reads once the link has gone quiet. A transfer
therefore costs a handful of simulator callbacks, not one per clock cycle. With ``link="uart"`` the
wrapper is a bit-level 8N1 UART at ``uart_divisor`` cycles per bit. A ``write`` returns once the
wrapper has taken the burst, answers or not: the driver's windowed writes keep several
``WRITE_MEM`` frames in flight here as on a board (the device's receive FIFO keeps the request bytes
that arrive while it answers).

Times. The transport's ``read(timeout)`` counts *simulated* seconds at the config's clock, and
every wait is bounded: by the driver's timeout, and by a total simulated-time budget
(``sim_seconds``) after which the transport raises :class:`~sqzhw.driver.DeviceTimeout`, so a broken
design fails instead of hanging. The Verilator build is cached under ``build/sim/system`` by config,
options and a hash of every source (``SQZHW_SIM_CACHE`` moves it), and concurrent builds (pytest-xdist)
take turns on a lock file.

Long runs (a whole SqueezeNet, ``bench/bench_board.py``): ``run_in_verilator(..., preload=pieces)``
puts ``(address, bytes)`` pieces into the SDRAM or DDR3 model's storage at time 0 (``$readmemh`` through
a hook added to the exported model) instead of over the link, and
:meth:`VerilatorTransport.wait_engine` lets the simulation run to the end of an engine run
instead of being polled. An all-zero memory deeper than :data:`ZERO_INIT_MAX_WORDS` words (the
multi-MiB SDRAM or DDR3 model) is exported without its initial block.

This module imports neither ``sim`` nor ``boards`` (nor cocotb) at import time; it needs the
source checkout for them when a simulation is built or run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import AccelConfig, load_config
from .accelerator import DeviceTimeout, DriverError
from .transports import FaultInjector

__all__ = ["run_in_verilator", "build_system", "SystemBuild", "VerilatorTransport", "SystemSimError",
           "RemoteError", "TX_BYTES", "RX_BYTES"]

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / "sim" / "hdl" / "system_top_wrapper.sv"
TOPLEVEL = "sqzhw_system_tb"
TEST_MODULE = "sim.system_bench"
#: Host-to-device burst (bytes per wide signal write) and device-to-host ring size of the wrapper.
TX_BYTES = 1024
RX_BYTES = 4096
#: Words in one iCE40 UP SPRAM block (``boards.common.SPRAMMemory.BLOCK_WORDS``).
SPRAM_BLOCK_WORDS = 1 << 14

#: Default simulated memory: 64 KiB (small networks; pass ``mem_words`` for more).
DEFAULT_MEM_BYTES = 64 << 10


class SystemSimError(RuntimeError):
    """The simulation itself failed: build error, simulator crash, harness misbehaviour, or an
    SDRAM/DDR3 timing violation reported by the memory model."""


class RemoteError(DriverError):
    """``fn`` raised an exception in the simulator process that could not be sent back as itself
    (its class does not pickle); the message holds its type, text and traceback."""


def _import_checkout() -> None:
    """Make the checkout's ``sim`` and ``boards`` packages importable (they are not installed)."""
    if not (REPO / "sim" / "runner.py").is_file() or not (REPO / "boards" / "common.py").is_file():
        raise SystemSimError(f"the simulated system needs the sqzhw source checkout (sim/ and boards/ "
                             f"beside {REPO / 'sqzhw'}); they are not part of the installed package")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


# -- build -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SystemBuild:
    """A compiled Verilator simulation of the system top and what the transport needs to know."""
    path: Path
    config: AccelConfig
    link: str
    memory: str
    mem_bytes: int
    clk_hz: float
    uart_divisor: int | None
    idle_timeout: int       #: cycles after which the host link drops a partial request
    seconds: float = 0.0    #: export + Verilator build time (0 when it came from the cache)

    @property
    def period_ps(self) -> int:
        # Even: cocotb's Clock splits the period in two equal halves (60 MHz is 16667 ps).
        return 2 * round(1e12 / self.clk_hz / 2)


def _resolve_config(config: AccelConfig | str) -> AccelConfig:
    return load_config(config) if isinstance(config, str) else config


def build_system(config: AccelConfig | str, *, link: str = "stream", memory: str = "sdram-model",
                 mem_words: int | None = None, uart_divisor: int | None = None, engine: str = "real",
                 progress: Callable[[str], None] = print) -> SystemBuild:
    """Export :class:`boards.common.SystemTop` to Verilog and compile it with the host-side wrapper
    in Verilator (cached; safe to call from several processes at once).

    Parameters
    ----------
    config : AccelConfig or str
        The accelerator configuration (or a preset name).
    link : {"stream", "uart"}
        ``"stream"``: bytes straight into the host link (fast); ``"uart"``: through the board's
        UART pins, bit by bit, at ``uart_divisor`` cycles per bit.
    memory : {"sdram-model", "ddr3-model", "bram", "spram"}
        External memory: the SDRAM controller on the cycle-level SDRAM model, the DDR3 controller on
        the cycle-level DDR3 PHY+DRAM model (the ECPIX-5 part and datasheet init waits: 0.7 ms of
        simulated time before the memory answers), block RAM, or the iCEBreaker's single-port SPRAM
        blocks (behavioural, behind the arbiter and command slice as on that board).
    mem_words : int, optional
        Words of simulated memory (a power of two; default 64 KiB worth, 128 KiB for ``"spram"``).
    uart_divisor : int, optional
        Clock cycles per UART bit (``link="uart"``; default 8, a fast test setting; a board's
        real rate is ``round(clk_hz / sqzhw.protocol.DEFAULT_BAUD)``).
    engine : {"real", "standin", "auto"}
        See :func:`boards.common.make_engine`.
    progress : callable
        Receives one line per step (export, build).

    Returns
    -------
    SystemBuild
    """
    config = _resolve_config(config)
    if link not in ("stream", "uart"):
        raise ValueError(f"link = {link!r}: 'stream' or 'uart'")
    if memory not in ("sdram-model", "ddr3-model", "bram", "spram"):
        raise ValueError(f"memory = {memory!r}: 'sdram-model', 'ddr3-model', 'bram' or 'spram' (a simulation "
                         f"has no SDRAM/DDR3 pins)")
    if mem_words is None:
        mem_words = 4 * SPRAM_BLOCK_WORDS if memory == "spram" else DEFAULT_MEM_BYTES // config.ext_bytes
    if mem_words < 1 or mem_words & (mem_words - 1):
        raise ValueError(f"mem_words = {mem_words!r}: a power of two")
    if link == "uart":
        uart_divisor = 8 if uart_divisor is None else uart_divisor
        if not isinstance(uart_divisor, int) or uart_divisor < 4:
            raise ValueError(f"uart_divisor = {uart_divisor!r}: an integer of at least 4 cycles per bit")
    else:
        uart_divisor = None
    _import_checkout()
    from sim import runner

    problem = runner.simulator_available("verilator")
    if problem:
        raise SystemSimError(problem)
    sources = ([*(REPO / "rtl_gen").rglob("*.py"), REPO / "boards" / "common.py", WRAPPER]
               + [REPO / "sqzhw" / n for n in ("config.py", "isa.py", "quant.py", "protocol.py")])
    options = {"link": link, "memory": memory, "mem_words": mem_words, "uart_divisor": uart_divisor,
               "engine": engine, "tx": TX_BYTES, "rx": RX_BYTES, "config": config.to_dict(),
               "recipe": 4}   # this module's export steps (4: the DDR3 model's preload hook)
    key = runner._hash_files(sources, runner._tool_version("verilator"), json.dumps(options, sort_keys=True))
    path = runner._cache_root() / "system" / f"{link}-{memory}-{config.tag}-w{mem_words}-{key}"
    meta_path = path / "BUILT"
    with runner._locked(path.with_suffix(".lock")):
        if not meta_path.exists():
            _build(config, path, options, progress)
        meta = json.loads(meta_path.read_text())
    return SystemBuild(path=path, config=config, link=link, memory=memory, mem_bytes=meta["mem_bytes"],
                       clk_hz=meta["clk_hz"], uart_divisor=uart_divisor, idle_timeout=meta["idle_timeout"],
                       seconds=meta["seconds"] if meta.get("fresh_pid") == os.getpid() else 0.0)


#: Memories deeper than this whose initial contents are all zero are exported without an initial
#: value. Amaranth writes a memory's init as one constant bit per bit and yosys then as one Verilog
#: line per word: for the 4 Mi-word SDRAM model a whole SqueezeNet needs, that is minutes of export,
#: ~10 GB and a 130 MB initial block Verilator cannot digest. Verilator starts such an array at
#: zero anyway (its default ``+verilator+rand+reset+0``), and on a board SDRAM starts undefined.
ZERO_INIT_MAX_WORDS = 1 << 16


@contextlib.contextmanager
def _without_zero_init(max_words: int):
    """While active, Amaranth's RTLIL backend emits no ``$meminit_v2`` for an all-zero memory of
    more than ``max_words`` words (see :data:`ZERO_INIT_MAX_WORDS`)."""
    from amaranth.back import rtlil

    emitter = rtlil.ModuleEmitter
    original = emitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if cell.depth > max_words and not any(cell.init):
            return None
        return original(self, cell_idx, cell)

    emitter.emit_memory = emit_memory
    try:
        yield
    finally:
        emitter.emit_memory = original


#: The simulator's plusarg naming a ``$readmemh`` file that preloads the memory model's storage.
PRELOAD_PLUSARG = "sqzhw_preload"

#: The memory model module of each memory kind that has a preload backdoor: the submodule name
#: :class:`boards.common.SystemTop` gives the model (its exported module ends ``.<name>``) and what
#: error messages call it. Both models keep their words in a ``storage`` memory indexed by word address.
PRELOAD_MODELS = {"sdram-model": ("sdram_model", "SDRAM"), "ddr3-model": ("ddr3_model", "DDR3")}


def _add_preload_hook(text: str, memory: str = "sdram-model") -> str:
    """Add the preload backdoor to the ``memory`` model's module in the exported Verilog (see
    :data:`PRELOAD_MODELS`): with ``+sqzhw_preload=FILE`` the simulator ``$readmemh``s FILE into its
    storage at time 0, before reset ends (no engine, controller or link cycle is skipped or changed
    by it)."""
    if memory not in PRELOAD_MODELS:
        raise ValueError(f"preload hook: memory = {memory!r}: one of {sorted(PRELOAD_MODELS)}")
    suffix, label = PRELOAD_MODELS[memory]
    modules = re.findall(rf"^module (\\\S*\.{suffix}) ", text, re.M)
    if len(modules) != 1:
        raise SystemSimError(f"preload hook: expected one {label} model module in the exported Verilog, "
                             f"found {modules}")
    start = text.index(f"module {modules[0]} ")
    end = text.index("\nendmodule", start)
    if not re.search(r"^\s*reg \[\d+:0\] storage \[\d+:0\];", text[start:end], re.M):
        raise SystemSimError(f"preload hook: no `storage` memory in {modules[0]}")
    hook = ("\n  // sqzhw.driver.sim_transport: preload backdoor (+sqzhw_preload=FILE, $readmemh).\n"
            "  initial begin : sqzhw_preload\n"
            "    reg [8*4096-1:0] preload_file;\n"
            f"    if ($value$plusargs(\"{PRELOAD_PLUSARG}=%s\", preload_file)) $readmemh(preload_file, storage);\n"
            "  end")
    return text[:end] + hook + text[end:]


def write_preload_file(path: Path, pieces, ext_bytes: int, mem_bytes: int) -> int:
    """Write ``(byte address, bytes)`` pieces as a ``$readmemh`` file of ``ext_bytes``-byte
    little-endian words (``@`` word addresses); the number of words written.

    Raises
    ------
    ValueError
        A piece that is not word-aligned, overlaps another or lies outside ``mem_bytes``.
    """
    import numpy as np

    dtype = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}.get(ext_bytes)
    if dtype is None:
        raise ValueError(f"preload: {ext_bytes}-byte words are not supported")
    spans = []
    words = 0
    with open(path, "w") as f:
        for i, (addr, blob) in enumerate(pieces):
            blob = bytes(blob)
            if addr % ext_bytes or len(blob) % ext_bytes:
                raise ValueError(f"preload piece {i} at 0x{addr:x} ({len(blob)} bytes) is not aligned to "
                                 f"{ext_bytes}-byte words")
            if addr < 0 or addr + len(blob) > mem_bytes:
                raise ValueError(f"preload piece {i} at 0x{addr:x} ({len(blob)} bytes) is outside the "
                                 f"simulated {mem_bytes} bytes of memory")
            for lo, hi in spans:
                if addr < hi and lo < addr + len(blob):
                    raise ValueError(f"preload piece {i} at 0x{addr:x} overlaps [0x{lo:x}, 0x{hi:x})")
            spans.append((addr, addr + len(blob)))
            if not blob:
                continue
            values = np.frombuffer(blob, dtype=dtype)
            digits = 2 * ext_bytes
            f.write(f"@{addr // ext_bytes:x}\n")
            f.write("\n".join(f"{v:0{digits}x}" for v in values.tolist()))
            f.write("\n")
            words += len(values)
    return words


def _build(config: AccelConfig, path: Path, options: dict, progress: Callable[[str], None]) -> None:
    from amaranth.back import verilog

    from boards.common import SystemTop
    from sim import runner

    t0 = time.perf_counter()
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    progress(f"exporting SystemTop({config.name}, memory={options['memory']!r}, link={options['link']!r}) "
             f"to Verilog ...")
    top = SystemTop(config, memory=options["memory"], link=options["link"], mem_words=options["mem_words"],
                    uart_divisor=options["uart_divisor"], engine=options["engine"])
    preloadable = options["memory"] in PRELOAD_MODELS
    # The memory model's storage (mem_words deep, the design's deepest memory) never gets a zero
    # initial block: the preload must not race one.
    max_words = min(ZERO_INIT_MAX_WORDS, options["mem_words"] - 1) if preloadable else ZERO_INIT_MAX_WORDS
    with _without_zero_init(max_words):
        text = verilog.convert(top, name="sqzhw_system")
    if preloadable:
        text = _add_preload_hook(text, options["memory"])
    (path / "sqzhw_system.v").write_text(text)
    meta = {"mem_bytes": top.mem_bytes, "clk_hz": top.clk_hz,
            "idle_timeout": int(getattr(top.hostlink, "idle_timeout", 10_000)),
            "engine": top.engine_name}
    t_export = time.perf_counter() - t0
    progress(f"exported in {t_export:.1f} s; building it in Verilator in {path} ...")
    defines = {}
    if options["link"] == "uart":
        defines["SQZHW_UART_LINK"] = 1
    if options["memory"] == "sdram-model":
        defines["SQZHW_SDRAM_MODEL"] = 1
    if options["memory"] == "ddr3-model":
        defines["SQZHW_DDR3_MODEL"] = 1
    params = {"TX_BYTES": TX_BYTES, "RX_BYTES": RX_BYTES, "DIVISOR": options["uart_divisor"] or 8}
    # cocotb's runner passes --public-flat-rw, which keeps every one of the engine's signals visible
    # to VPI: twice the C++ and a slower model. Only the wrapper's ports need to be visible, so
    # sim.runner.verilate builds it with a control file that makes just those public.
    try:
        runner.verilate(path, TOPLEVEL, [path / "sqzhw_system.v", WRAPPER], public_rw=("*",),
                        defines=defines, parameters=params)
    except runner.SimError as exc:
        raise SystemSimError(f"Verilator build of the {config.name} system failed: {exc}") from None
    meta["seconds"] = time.perf_counter() - t0
    meta["export_seconds"] = t_export
    meta["fresh_pid"] = os.getpid()
    (path / "BUILT").write_text(json.dumps(meta))
    progress(f"built the {config.name} system simulation in {meta['seconds']:.1f} s "
             f"(export {t_export:.1f} s)")


# -- the transport (inside the simulator process) ----------------------------------------------------

def _u(handle) -> int:
    """A signal's value as an unsigned integer (X/Z bits read as 0)."""
    text = str(handle.value).lower()
    return int("".join("1" if c == "1" else "0" for c in text if c in "01xzuwlh-") or "0", 2)


class VerilatorTransport:
    """The driver's transport onto the simulated system top, for use inside :func:`run_in_verilator`.

    ``write`` and ``read`` must be called from the thread that :mod:`sim.system_bench` starts
    with :func:`cocotb.task.bridge`; each runs the simulation until its bytes are handed over or
    the response has arrived. Times are simulated seconds.

    Parameters
    ----------
    dut : cocotb handle of ``sqzhw_system_tb``
    build : SystemBuild
    sim_seconds : float
        Simulated-time budget of the whole run; exhausting it raises :class:`DeviceTimeout`.

    Attributes
    ----------
    to_device, from_device : FaultInjector or None
        Corrupt, drop or insert bytes on their way into / out of the device (assign at any time).
    """

    def __init__(self, dut, build: SystemBuild, sim_seconds: float = 1.0) -> None:
        from cocotb.task import resume

        self.dut = dut
        self.build = build
        self.clk_hz = build.clk_hz
        self.period_ps = build.period_ps
        self.to_device: FaultInjector | None = None
        self.from_device: FaultInjector | None = None
        uart = build.link == "uart"
        self.byte_cycles = 10 * build.uart_divisor if uart else 4
        #: A response is complete once the link has been quiet this long.
        self.quiet_cycles = 3 * self.byte_cycles if uart else 64
        self.byte_time = self.byte_cycles / self.clk_hz
        # Longer than the host link's idle timeout: after a dropped byte, the device has given up
        # the partial request before the driver sends it again.
        self.default_timeout = (build.idle_timeout + 4096) / self.clk_hz
        self.budget_cycles = int(sim_seconds * self.clk_hz)
        self.start_cycle = 0
        self._go = 0
        self._seen = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.reads = 0
        self.idle_reads = 0
        self.wall_in_sim = 0.0
        self._write = resume(self._write_async)
        self._read = resume(self._read_async)
        self._wait_engine = resume(self._wait_engine_async)

    # The Transport protocol.

    def write(self, data: bytes) -> None:
        t0 = time.perf_counter()
        try:
            self._write(bytes(data))
        finally:
            self.wall_in_sim += time.perf_counter() - t0

    def read(self, timeout: float) -> bytes:
        t0 = time.perf_counter()
        try:
            return self._read(timeout)
        finally:
            self.wall_in_sim += time.perf_counter() - t0

    def close(self) -> None:
        pass

    def wait_engine(self, max_cycles: int | None = None) -> bool:
        """Run the simulation until the engine's ``busy`` output is low, at most ``max_cycles``
        cycles (default: the rest of the simulated-time budget); whether it is.

        A simulation-only shortcut for the driver's status polling during a long run: each poll
        costs a request, a response and several simulator round trips, and a whole network needs
        tens of thousands of them. It reads no state the driver could not: call
        :meth:`~sqzhw.driver.Accelerator.status` afterwards as usual. The engine's own counters do
        not depend on whether the host polls (measured: equal, or a few cycles apart where the run
        starts at another phase of the SDRAM refresh).
        """
        t0 = time.perf_counter()
        try:
            return self._wait_engine(max_cycles)
        finally:
            self.wall_in_sim += time.perf_counter() - t0

    # Simulation side.

    async def _wait_engine_async(self, max_cycles: int | None) -> bool:
        from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

        busy = self.dut.busy
        if not _u(busy):
            return True
        left = self._budget_left("waiting for the engine")
        cycles = left if max_cycles is None else max(1, min(int(max_cycles), left))
        await First(FallingEdge(busy), Timer(cycles * self.period_ps, unit="ps"))
        await RisingEdge(self.dut.clk)     # back onto a clock edge (see _wait_high)
        self._check_violation()
        return not _u(busy)

    @property
    def cycles(self) -> int:
        """Clock cycles simulated since reset."""
        return _u(self.dut.cycles)

    def stats(self) -> dict:
        """Simulated cycles and seconds, bytes each way, and the wall time spent simulating."""
        cycles = self.cycles
        return {"cycles": cycles, "sim_seconds": cycles / self.clk_hz, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "reads": self.reads, "idle_reads": self.idle_reads,
                "wall_seconds": self.wall_in_sim,
                "framing_errors": _u(self.dut.framing_errors)}

    def _budget_left(self, what: str) -> int:
        left = self.start_cycle + self.budget_cycles - self.cycles
        if left <= 0:
            raise DeviceTimeout(f"simulated system: the budget of {self.budget_cycles / self.clk_hz:g} "
                                f"simulated seconds ({self.budget_cycles} cycles) is used up ({what})")
        return left

    async def _wait_high(self, signal, cycles: int) -> bool:
        """Wait until ``signal`` is 1, at most ``cycles`` clock cycles; whether it is."""
        from cocotb.triggers import First, RisingEdge, Timer

        if _u(signal):
            return True
        await First(RisingEdge(signal), Timer(max(1, cycles) * self.period_ps, unit="ps"))
        # Back onto a clock edge: a Timer may fire in the time step of an edge before the design
        # has evaluated it, and signal writes made there would land only after the next edge's
        # reads. After an awaited clock edge, reads see that edge and writes apply before the next.
        await RisingEdge(self.dut.clk)
        return bool(_u(signal))

    async def _write_async(self, data: bytes) -> None:
        from cocotb.triggers import RisingEdge

        dut = self.dut
        self.bytes_sent += len(data)
        if self.to_device is not None:
            data = self.to_device(data)
        for off in range(0, len(data), TX_BYTES):
            chunk = data[off:off + TX_BYTES]
            # The wrapper holds one burst: wait until the link has taken the previous one, as a
            # serial port's write waits for its buffer. A windowed host may send while the device
            # executes and answers earlier frames (the host link keeps the bytes in its receive
            # FIFO; on the stream link the FIFO's `ready` paces them), so this may span one frame's
            # execution and answer besides the burst itself.
            limit = 2 * (self.build.idle_timeout + TX_BYTES * self.byte_cycles)
            if not await self._wait_high(dut.h2d_idle, min(limit, self._budget_left("writing"))):
                self._budget_left("writing")
                raise DeviceTimeout(f"simulated system: the host link did not take a burst of request "
                                    f"bytes in {limit} cycles ({self.cycles - self.start_cycle} cycles into "
                                    f"the run)")
            dut.h2d_data.value = int.from_bytes(chunk, "little")
            dut.h2d_len.value = len(chunk)
            self._go ^= 1
            dut.h2d_go.value = self._go
            await RisingEdge(dut.clk)
            if _u(dut.h2d_idle) and len(chunk):
                raise SystemSimError("the wrapper did not take a burst of request bytes (the harness "
                                     "lost its clock alignment)")

    async def _read_async(self, timeout: float) -> bytes:
        from cocotb.triggers import RisingEdge

        dut = self.dut
        self.reads += 1
        dut.d2h_seen.value = self._seen
        dut.quiet_cycles.value = self.quiet_cycles
        await RisingEdge(dut.clk)       # the wrapper sees the new read pointer
        cycles = max(1, math.ceil(timeout * self.clk_hz))
        await self._wait_high(dut.d2h_wake, min(cycles, self._budget_left("reading")))
        count = _u(dut.d2h_count)
        n = (count - self._seen) & 0xFFFF_FFFF
        self._check_violation()
        if n == 0:
            self.idle_reads += 1
            self._budget_left("waiting for a response")
            return b""
        if n > RX_BYTES:
            raise SystemSimError(f"{n} response bytes overran the wrapper's {RX_BYTES}-byte ring buffer")
        ring = _u(dut.d2h_ring).to_bytes(RX_BYTES, "little")
        start = self._seen % RX_BYTES
        out = (ring + ring)[start:start + n]
        self._seen = count
        self.bytes_received += n
        if self.from_device is not None:
            out = self.from_device(out)
        return out

    def _check_violation(self) -> None:
        code = _u(self.dut.mem_violation)
        if code:
            ddr3 = self.build.memory == "ddr3-model"
            try:
                if ddr3:
                    from rtl_gen.ddr3_model import Violation
                else:
                    from rtl_gen.sdram_model import Violation
                name = Violation(code).name
            except Exception:  # the name is only for the message
                name = str(code)
            raise SystemSimError(f"the {'DDR3' if ddr3 else 'SDRAM'} model reports a timing violation: "
                                 f"{name} (at cycle {self.cycles})")

    async def reset(self, cycles: int = 4) -> None:
        """Hold the system in reset for ``cycles`` cycles (the wrapper's inputs idle)."""
        from cocotb.triggers import ClockCycles

        dut = self.dut
        dut.rst.value = 1
        dut.h2d_data.value = 0
        dut.h2d_len.value = 0
        dut.h2d_go.value = 0
        dut.d2h_seen.value = 0
        dut.quiet_cycles.value = self.quiet_cycles
        self._go = self._seen = 0
        await ClockCycles(dut.clk, cycles)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 1)
        self.start_cycle = self.cycles


# -- running driver code -----------------------------------------------------------------------------

def _function_ref(fn: Callable) -> dict:
    """How the simulator process finds ``fn``: by module and qualified name (a script by path)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not callable(fn) or module is None or not qualname or "<" in qualname:
        raise TypeError(f"run_in_verilator: fn must be a module-level function (it runs in the simulator "
                        f"process, which imports it by name), got {fn!r}")
    ref = {"module": module, "qualname": qualname, "file": None}
    if module == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if not main_file:
            raise TypeError(f"run_in_verilator: {qualname} is defined in an interactive session; put it "
                            f"in a module or script file")
        ref["file"] = str(Path(main_file).resolve())
    return ref


def resolve_function(ref: dict) -> Callable:
    """The function :func:`_function_ref` describes (used by :mod:`sim.system_bench`)."""
    if ref["file"]:
        spec = importlib.util.spec_from_file_location("_sqzhw_sim_script", ref["file"])
        module = importlib.util.module_from_spec(spec)
        sys.modules["_sqzhw_sim_script"] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(ref["module"])
    obj = module
    for part in ref["qualname"].split("."):
        obj = getattr(obj, part)
    return obj


def run_in_verilator(config: AccelConfig | str, fn: Callable[..., Any], *args, link: str = "stream",
                     memory: str = "sdram-model", mem_words: int | None = None,
                     uart_divisor: int | None = None, engine: str = "real", sim_seconds: float = 1.0,
                     keep: bool = False, progress: Callable[[str], None] = print,
                     preload: list[tuple[int, bytes]] | None = None) -> Any:
    """Run ``fn(transport, *args)`` against the simulated board and return its result.

    ``transport`` is a :class:`VerilatorTransport` onto :class:`boards.common.SystemTop` ``(config,
    memory, link)`` in Verilator: wrap it in :class:`~sqzhw.driver.Accelerator` and use the driver
    as with a board. One simulator process runs the whole of ``fn``; the device keeps its memory
    and state from one call to the next within it.

    Parameters
    ----------
    config : AccelConfig or str
        The simulated device's configuration (a preset name such as ``"small"`` or ``"ulx3s"``).
    fn : callable
        A module-level function (see the module docstring); its result must pickle.
    *args
        Passed to ``fn`` after the transport (must pickle: programs and arrays do).
    link, memory, mem_words, uart_divisor, engine :
        The simulated system, see :func:`build_system`.
    sim_seconds : float
        Simulated-time budget; running out raises :class:`~sqzhw.driver.DeviceTimeout` in ``fn``.
    keep : bool
        Keep the run folder (simulator log) under ``build/sim/system/runs``.
    progress : callable
        Build and run messages.
    preload : list of (int, bytes), optional
        A backdoor for long runs (``memory="sdram-model"`` or ``"ddr3-model"``): these ``(byte
        address, bytes)`` pieces (word-aligned, below the device's ``mem_bytes``: never the DDR3
        controller's calibration words) are in the memory model's storage from time 0, as if
        written before the run, without moving them over the simulated link. Everything the engine does still
        goes through the controller and the model. A driver that relies on it must not
        ``load()`` those bytes again (see ``bench/bench_board.py``).

    Returns
    -------
    Whatever ``fn`` returns.

    Raises
    ------
    Exception
        Whatever ``fn`` raised (a :class:`RemoteError` carrying its traceback if it does not pickle).
    SystemSimError
        The build or the simulation itself failed.
    """
    if os.environ.get("SQZHW_SYSTEM_JOB"):
        # fn's module is imported in the simulator process: a script that calls run_in_verilator
        # at its top level, without an ``if __name__ == "__main__":`` guard, would recurse forever.
        raise SystemSimError("run_in_verilator called inside a simulator process: guard the script's "
                             "top-level code with `if __name__ == \"__main__\":`")
    config = _resolve_config(config)
    ref = _function_ref(fn)
    try:
        payload = pickle.dumps({"fn": ref, "args": args, "sim_seconds": float(sim_seconds)})
    except Exception as exc:
        raise TypeError(f"run_in_verilator: the arguments of {ref['qualname']} must pickle "
                        f"(they go to the simulator process): {exc}") from None
    if preload is not None and memory not in PRELOAD_MODELS:
        raise ValueError(f"run_in_verilator: preload needs memory = 'sdram-model' or 'ddr3-model', "
                         f"not {memory!r}")
    info = build_system(config, link=link, memory=memory, mem_words=mem_words, uart_divisor=uart_divisor,
                        engine=engine, progress=progress)
    from cocotb_tools.runner import get_runner
    from sim import runner

    runner._setup_path()
    run_root = runner._cache_root() / "system" / "runs"
    run_root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{config.name}-{link}-", dir=run_root))
    failed = True
    try:
        job = run_dir / "job.pkl"
        job.write_bytes(pickle.dumps({"build": info, **pickle.loads(payload)}))
        result_path = run_dir / "result.pkl"
        log_path = run_dir / "sim.log"
        plusargs = []
        if preload is not None:
            hex_path = run_dir / "preload.hex"
            n = write_preload_file(hex_path, preload, config.ext_bytes, info.mem_bytes)
            progress(f"preloading {n * config.ext_bytes:,} bytes into the {PRELOAD_MODELS[memory][1]} model "
                     f"(backdoor)")
            plusargs.append(f"+{PRELOAD_PLUSARG}={hex_path}")
        progress(f"simulating the {config.name} system ({link} link, {memory}) with "
                 f"{ref['qualname']} ...")
        t0 = time.perf_counter()
        try:
            get_runner("verilator").test(
                test_module=TEST_MODULE, hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                build_dir=info.path, test_dir=run_dir, results_xml=str(run_dir / "results.xml"),
                extra_env={"SQZHW_SYSTEM_JOB": str(job), "SQZHW_SYSTEM_RESULT": str(result_path),
                           "COCOTB_ANSI_OUTPUT": "0"},
                plusargs=plusargs, log_file=log_path)
        except (RuntimeError, SystemExit) as exc:
            raise SystemSimError(f"the simulation of the {config.name} system failed ({exc!r}); log "
                                 f"{log_path}:\n{_tail(log_path)}") from None
        if not result_path.exists():
            raise SystemSimError(f"the system testbench wrote no result; log {log_path}:\n{_tail(log_path)}")
        result = pickle.loads(result_path.read_bytes())
        stats = result.get("stats", {})
        progress(f"simulated {stats.get('cycles', 0):,} cycles in {time.perf_counter() - t0:.1f} s wall "
                 f"({stats.get('bytes_sent', 0):,} bytes to the device, {stats.get('bytes_received', 0):,} "
                 f"back)")
        failed = False
        if result["ok"]:
            return result["value"]
        exc = result.get("exc")
        if exc is None:
            raise RemoteError(f"{ref['qualname']} raised in the simulator process:\n{result['traceback']}")
        exc.add_note(f"raised in the simulator process:\n{result['traceback']}")
        raise exc
    finally:
        if not keep and not failed:
            shutil.rmtree(run_dir, ignore_errors=True)


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def run_job() -> tuple[dict, Callable]:
    """For :mod:`sim.system_bench`: the job of this simulator process and its function."""
    job = pickle.loads(Path(os.environ["SQZHW_SYSTEM_JOB"]).read_bytes())
    return job, resolve_function(job["fn"])


def call_and_capture(fn: Callable, transport: VerilatorTransport, args: tuple) -> dict:
    """Run ``fn`` (in the bridge thread) and capture its result or exception, picklable."""
    try:
        return {"ok": True, "value": fn(transport, *args)}
    except Exception as exc:  # fn's errors are results: the caller re-raises them
        tb = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(exc))
            sent = exc
        except Exception:
            sent = None
        return {"ok": False, "exc": sent, "traceback": tb}
