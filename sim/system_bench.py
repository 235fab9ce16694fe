"""cocotb test module for ``sim/hdl/system_top_wrapper.sv`` (the full system top): runs host driver
code against the simulated board.

:func:`sqzhw.driver.sim_transport.run_in_verilator` starts one simulator process per call and
passes the job in a pickle named by ``SQZHW_SYSTEM_JOB``: the build (clock, link, timeouts), the
function to run (by module and name), its arguments and the simulated-time budget. The test starts
the clock, resets the system and calls ``fn(transport, *args)`` in a thread through
:func:`cocotb.task.bridge`; the transport's ``write``/``read`` come back into the simulator through
:func:`cocotb.task.resume`. The function's result or exception goes to the pickle named by
``SQZHW_SYSTEM_RESULT``: driver errors are results for the caller to judge, not test failures. The
test fails only when the harness itself breaks (no result could be written).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge

from sqzhw.driver.sim_transport import VerilatorTransport, call_and_capture, run_job

__all__ = ["run_host_program"]


@cocotb.test()
async def run_host_program(dut) -> None:
    job, fn = run_job()
    build = job["build"]
    Clock(dut.clk, build.period_ps, unit="ps", impl="gpi").start()
    transport = VerilatorTransport(dut, build, sim_seconds=job["sim_seconds"])
    await transport.reset()
    # Every wait inside the transport is bounded by sim_seconds, so the thread always comes back.
    result = await bridge(call_and_capture)(fn, transport, tuple(job["args"]))
    result["stats"] = transport.stats()
    try:
        data = pickle.dumps(result)
    except Exception as exc:  # an unpicklable return value is the caller's error, reported as such
        data = pickle.dumps({"ok": False, "exc": TypeError(f"the result of {job['fn']['qualname']} does "
                                                            f"not pickle: {exc}"),
                             "traceback": "", "stats": result["stats"]})
    Path(os.environ["SQZHW_SYSTEM_RESULT"]).write_bytes(data)
