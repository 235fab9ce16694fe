"""cocotb test module for ``sim/hdl/sim_top.sv``: one engine run per simulator process.

The runner (:mod:`sim.runner`) passes the run through a JSON job file named by the environment
variable ``SQZHW_SIM_JOB``::

    {"insn_addr": int, "insn_count": int, "mem_bytes": int, "wr_lo": int, "wr_hi": int,
     "timeout_cycles": int, "clock_ns": int, "sv_clock": bool, "result": "<path of the JSON result>"}

With ``sv_clock`` (the Verilator build) the SV top makes its own clock and the test only watches
``clk``; otherwise (Icarus) the test starts a cocotb clock of ``clock_ns``.

The memory image and the plusargs (``+MEM_INIT``, ``+MEM_DUMP``, latency, stalls, the built-in
cycle timeout) are on the simulator's command line. The test drives the control inputs once, pulses
``start`` and then only waits for ``finished`` (done, error or the SV top's cycle timeout), with a
simulated-time timeout as a second guard; cocotb does nothing per cycle. It writes the status,
cycle count and counters to the result file and pulses ``dump`` so the memory is written out.

Engine outcomes (done, error, timeout) are results, not test failures: the Python side decides
what a test expects. The test fails only when the harness itself misbehaves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

__all__ = ["run_engine"]

N_COUNTERS = 9


def _u(handle) -> int:
    """An unsigned integer from a signal; X/Z bits (an engine output left undriven) read as 0."""
    text = str(handle.value).lower()
    return int("".join("1" if c == "1" else "0" for c in text if c in "01xzuwlh-") or "0", 2)


@cocotb.test()
async def run_engine(dut) -> None:
    job = json.loads(Path(os.environ["SQZHW_SIM_JOB"]).read_text())
    clock_ns = int(job.get("clock_ns", 10))
    if not job.get("sv_clock", False):
        Clock(dut.clk, clock_ns, unit="ns", impl="gpi").start()

    dut.rst.value = 1
    dut.start.value = 0
    dut.dump.value = 0
    dut.insn_addr.value = job["insn_addr"]
    dut.insn_count.value = job["insn_count"]
    dut.mem_bytes.value = job["mem_bytes"]
    dut.wr_lo.value = job["wr_lo"]
    dut.wr_hi.value = job["wr_hi"]
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0

    # The SV top's own timeout ends the wait in simulated cycles; this Timer is the backstop if
    # the top itself is broken (twice the cycle budget, or a generous default).
    timeout_cycles = int(job["timeout_cycles"])
    guard_cycles = 2 * timeout_cycles + 1000 if timeout_cycles else 1 << 40
    await RisingEdge(dut.clk)
    if not _u(dut.finished):
        await First(RisingEdge(dut.finished), Timer(guard_cycles * clock_ns, unit="ns"))
    await RisingEdge(dut.clk)  # let the counters settle on their final values

    counters_word = _u(dut.counters)
    result = {
        "done": bool(_u(dut.done)),
        "error": _u(dut.error),
        "error_pc": _u(dut.error_pc),
        "busy": bool(_u(dut.busy)),
        "timed_out": bool(_u(dut.timed_out)),
        "finished": bool(_u(dut.finished)),
        "cycles": _u(dut.cycles),
        "counters": [(counters_word >> (32 * i)) & 0xFFFF_FFFF for i in range(N_COUNTERS)],
        "n_reads": _u(dut.n_reads),
        "n_writes": _u(dut.n_writes),
        "n_oob": _u(dut.n_oob),
        "n_wr_outside": _u(dut.n_wr_outside),
    }
    # The top registers its inputs: dump reaches the memory model one edge later, and the edge
    # after that is a spare one so the dump is written before the simulation ends.
    dut.dump.value = 1
    await RisingEdge(dut.clk)
    dut.dump.value = 0
    await ClockCycles(dut.clk, 2)
    Path(job["result"]).write_text(json.dumps(result))
