"""Full-system simulation: the board's SystemTop (engine + host link + memory) in a simulator,
driven through the driver API exactly as a board is.

The byte-level variant (``link="stream"``) feeds the host link directly so programs transfer fast;
one test goes through the real UART pins bit by bit on a few frames. Faults are injected in the
transport: the driver must retry or raise, never return a wrong answer.
"""

import os
from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from sqzhw import isa
from sqzhw.compiler.testing import copy_program
from sqzhw.config import load_config
from sqzhw.driver import Accelerator, FaultInjector

pytestmark = pytest.mark.rtl
boards_common = pytest.importorskip("boards.common", reason="boards.common (SystemTop) has not landed")

TINY = load_config("tiny")
PERIOD = 1e-8


class SystemSimTransport:
    """The driver's transport onto ``SystemTop`` in the Amaranth simulator.

    ``link="stream"``: bytes go straight into ``host_rx``; ``link="uart"``: the testbench drives the
    ``uart_rx`` pin bit by bit and decodes ``uart_tx`` (``divisor`` cycles per bit).
    ``read`` runs the simulation until a response has arrived and the link is quiet, or until
    ``budget`` cycles pass (a timeout).
    """
    byte_time = 0.0
    default_timeout = 0.0

    def __init__(self, top, faults: FaultInjector | None = None, budget: int = 200_000,
                 divisor: int | None = None) -> None:
        self.top = top
        self.faults = faults
        self.budget = budget
        self.divisor = divisor
        self.to_dut: deque[int] = deque()
        self.from_dut = bytearray()
        self.cycles = 0
        self.last_activity = 0
        sim = Simulator(top)
        sim.add_clock(PERIOD)
        if divisor is None:
            sim.add_testbench(self._feed_stream)
            sim.add_testbench(self._sink_stream)
        else:
            sim.add_testbench(self._feed_uart)
            sim.add_testbench(self._sink_uart)
        self.sim = sim

    def _run(self, cycles: int) -> None:
        self.cycles += cycles
        self.sim.run_until(self.cycles * PERIOD)

    async def _feed_stream(self, ctx):
        rx = self.top.host_rx
        while True:
            if not self.to_dut:
                await ctx.tick()
                continue
            ctx.set(rx.payload, self.to_dut.popleft())
            ctx.set(rx.valid, 1)
            while not ctx.get(rx.ready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(rx.valid, 0)
            self.last_activity = self.cycles

    async def _sink_stream(self, ctx):
        tx = self.top.host_tx
        ctx.set(tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(tx.valid, tx.payload):
            if valid:
                self.from_dut.append(payload)
                self.last_activity = self.cycles

    async def _feed_uart(self, ctx):
        while True:
            if not self.to_dut:
                await ctx.tick()
                continue
            byte = self.to_dut.popleft()
            for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                ctx.set(self.top.uart_rx, level)
                await ctx.tick().repeat(self.divisor)
            self.last_activity = self.cycles

    async def _sink_uart(self, ctx):
        d = self.divisor
        while True:
            while ctx.get(self.top.uart_tx):      # a plain loop: the sim may stop at any tick
                await ctx.tick()
            await ctx.tick().repeat(d // 2)
            bits = []
            for _ in range(9):
                await ctx.tick().repeat(d)
                bits.append(ctx.get(self.top.uart_tx))
            assert bits[8] == 1, "UART TX stop bit low"
            self.from_dut.append(sum(b << i for i, b in enumerate(bits[:8])))
            self.last_activity = self.cycles

    def write(self, data: bytes) -> None:
        self.to_dut.extend(self.faults(data) if self.faults else data)

    def read(self, timeout: float) -> bytes:
        quiet = 200 if self.divisor is None else 30 * self.divisor
        step = 200
        for _ in range(self.budget // step):
            self._run(step)
            if self.from_dut and not self.to_dut and self.cycles - self.last_activity > quiet:
                out = bytes(self.from_dut)
                self.from_dut.clear()
                return out
        return b""

    def close(self) -> None:
        pass


def system(link: str = "stream", divisor: int | None = None, **kw):
    top = boards_common.SystemTop(TINY, memory="bram", link=link, uart_divisor=divisor,
                                  mem_words=kw.pop("mem_words", 4096), engine="real")
    return top


@pytest.mark.parametrize("faulty", [False, True])
def test_program_through_driver(faulty):
    top = system()
    faults = FaultInjector(corrupt=3e-3, drop=2e-3, insert=1e-3, seed=4) if faulty else None
    acc = Accelerator(SystemSimTransport(top, faults), TINY, retries=10)
    info = acc.info()
    assert info.tag == TINY.tag
    src, dst = 0x400, 0x800
    payload = os.urandom(64)
    acc.write(0, isa.pack_program(copy_program(src, dst, 4, 4)))
    acc.write(src, payload)
    status = acc.execute(0, 4, dst, dst + 64)
    assert status.done
    assert acc.read(dst, 64) == payload
    counters = acc.counters()
    assert counters[isa.Counter.INSNS] == 4 and counters[isa.Counter.CYCLES] > 0


def _fire_program(config):
    """The small compiled Fire module (6x6 input) the network tests run."""
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    qgraph = random_qgraph("fire", input_size=6, width_mult=0.25, num_classes=8, seed=3)
    return compile_graph(qgraph, config, Preprocess(height=6, width=6))


def _infer_bit_exact(acc, program, runtime) -> None:
    """Load ``program``, infer one random input, compare sums and logits with the golden model."""
    acc.load(program)
    x = np.random.default_rng(0).standard_normal((program.input.channels, 6, 6)).astype(np.float32)
    logits = acc.infer(x)
    golden = runtime.run_golden(program, x)
    np.testing.assert_array_equal(acc.last.sums, golden.sums)
    np.testing.assert_array_equal(logits, golden.logits)


def test_network_bit_exact():
    """A compiled Fire module through the driver, bit-exact with the golden model."""
    runtime = pytest.importorskip("sqzhw.runtime")
    program = _fire_program(TINY)
    words = 1 << (-(-max(program.memory_size, 4096) // TINY.ext_bytes) - 1).bit_length()
    top = boards_common.SystemTop(TINY, memory="bram", link="stream", mem_words=words, engine="real")
    acc = Accelerator(SystemSimTransport(top, budget=2_000_000), TINY, retries=4)
    _infer_bit_exact(acc, program, runtime)


def test_uart_bit_level_frames():
    divisor = 8
    top = system(link="uart", divisor=divisor)
    acc = Accelerator(SystemSimTransport(top, divisor=divisor, budget=100_000), TINY, retries=2)
    assert acc.info().tag == TINY.tag
    data = os.urandom(8)
    acc.write(0x100, data)
    assert acc.read(0x100, 8) == data


def test_icebreaker_system_on_spram():
    """The iCEBreaker's system: its config, the SPRAM memory (behavioural blocks) directly behind
    the arbiter (no command slice), a program through the driver, in all four blocks."""
    cfg = load_config("icebreaker")
    top = boards_common.SystemTop(cfg, memory="spram", link="stream", mem_slice=False, engine="real")
    assert top.mem_bytes == 128 << 10
    acc = Accelerator(SystemSimTransport(top, budget=400_000), cfg, retries=4)
    assert acc.info().mem_bytes == 128 << 10
    prog, src, dst = 0x18000, 0x8000, 0x1F000
    n = 16 * cfg.cols                          # 16 activation entries of `cols` bytes
    payload = os.urandom(n)
    acc.write(prog, isa.pack_program(copy_program(src, dst, 4, 4)))
    acc.write(src, payload)
    status = acc.execute(prog, 4, dst, dst + n)
    assert status.done
    assert acc.read(dst, n) == payload
    assert acc.read(src, n) == payload
    assert acc.counters()[isa.Counter.INSNS] == 4


def test_ram_counters_read_the_same_counts():
    """The iCEBreaker's counters in a block RAM beside the engine (``ram_counters``): after each of
    two runs (the second clears the first's counts) READ_COUNTERS returns exactly what the
    engine's own counter registers return for the same runs."""
    cfg = load_config("icebreaker")
    got = []
    for ram_counters in (False, True):
        top = boards_common.SystemTop(cfg, memory="spram", link="stream", mem_slice=False, engine="real",
                                      ram_counters=ram_counters)
        acc = Accelerator(SystemSimTransport(top, budget=400_000), cfg, retries=4)
        src, dst, n = 0x8000, 0x1F000, 16 * cfg.cols
        acc.write(src, bytes(range(n)))
        runs = []
        for rows, prog in ((4, 0x18000), (2, 0x18100)):
            acc.write(prog, isa.pack_program(copy_program(src, dst, rows, 4)))
            assert acc.execute(prog, 4, dst, dst + n).done
            runs.append(acc.counters())
        got.append(runs)
    assert got[0] == got[1]
    assert got[1][0][isa.Counter.INSNS] == 4 and got[1][0][isa.Counter.CYCLES] > got[1][1][isa.Counter.CYCLES] > 0


def test_network_bit_exact_on_ddr3_model():
    """The ECPIX-5 config on the DDR3 controller and its PHY+DRAM model (``memory="ddr3-model"``,
    init waits shortened): a compiled Fire module through the driver, bit-exact with the golden
    model, and no DDR3 rule broken on the way."""
    runtime = pytest.importorskip("sqzhw.runtime")
    from rtl_gen.ddr3 import DDR3Timing
    from rtl_gen.ddr3_model import Violation

    cfg = load_config("ecpix5")
    program = _fire_program(cfg)
    words = 1 << (-(-max(program.memory_size, 1 << 14) // cfg.ext_bytes) - 1).bit_length()
    timing = DDR3Timing(t_reset=200.0, t_cke=500.0, t_zqinit_ck=64, t_dllk_ck=64)
    top = boards_common.SystemTop(cfg, memory="ddr3-model", link="stream", mem_words=words, engine="real",
                                  ddr3_timing=timing)
    transport = SystemSimTransport(top, budget=2_000_000)
    state = {}

    async def watch(ctx):
        async for _clk, _rst, violation, init_done in ctx.tick().sample(top.mem_violation, top.mem_init_done):
            if violation != Violation.NONE and "violation" not in state:
                state["violation"] = (violation, transport.cycles)
            if init_done:
                state["init_done"] = True

    transport.sim.add_process(watch)
    acc = Accelerator(transport, cfg, retries=4)
    _infer_bit_exact(acc, program, runtime)
    assert state.get("init_done"), "the DDR3 controller never finished init and calibration"
    assert "violation" not in state, f"DDR3 model violation {state['violation']}"
