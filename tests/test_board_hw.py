"""On a real board (hardware in the loop): the bring-up self-test, a network bit-exact with the
golden model, checked and resident program loads, and the engine's error path, through the serial
port named by ``$SQZHW_BOARD_PORT`` (``make hwtest PORT=/dev/ttyUSB0``; ``$SQZHW_BOARD_BAUD`` forces
a rate). Without it every test here skips, saying so: CI has no board. ``SQZHW_BOARD_PORT=loopback:
CONFIG`` runs them against the in-process device model instead (a dry run of these tests themselves,
which ``tests/test_selftest.py`` does in CI so that they cannot rot unseen).

The board must run a bitstream of a preset config (``make bitstream BOARD=...``); the tests overwrite
its memory.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

PORT = os.environ.get("SQZHW_BOARD_PORT")

pytestmark = [pytest.mark.hardware,
              pytest.mark.skipif(not PORT, reason="no board attached: set SQZHW_BOARD_PORT=/dev/ttyUSB0 "
                                                  "(make hwtest PORT=...) to run the hardware tests")]


@pytest.fixture(scope="module")
def board():
    from sqzhw.driver import Accelerator
    from sqzhw.driver.selftest import config_for_tag
    from sqzhw.driver.transports import open_serial

    if PORT.startswith("loopback:"):
        from sqzhw.config import load_config
        from sqzhw.driver import DeviceModel, LoopbackTransport
        transport = LoopbackTransport(DeviceModel(load_config(PORT.split(":", 1)[1]), 1 << 22))
    else:
        baud = int(os.environ["SQZHW_BOARD_BAUD"]) if os.environ.get("SQZHW_BOARD_BAUD") else None
        transport = open_serial(PORT, baud)
    acc = Accelerator(transport)
    config = config_for_tag(acc.info().tag)
    if config is None:
        acc.close()
        pytest.fail(f"the board on {PORT} reports config tag {acc.device.tag}, which no preset in configs/ "
                    f"has: build its bitstream from a preset")
    yield acc, config
    acc.close()


def test_selftest(board):
    from sqzhw.driver.selftest import run_selftest

    acc, config = board
    report = run_selftest(acc, config, block_bytes=256 << 10)
    print("\n" + report.text())
    assert report.passed, report.text()


def _program(config, seed: int):
    """A random-weight network for the board's config: SqueezeNet 1.0 with the paper's complex bypass
    (48x48) when it has the ADD unit, else a Fire module (16x16)."""
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.program import Preprocess

    kind, size = ("complex_bypass", 48) if config.add_unit else ("fire", 16)
    return compile_graph(random_qgraph(kind, input_size=size, width_mult=0.25, num_classes=16, seed=seed),
                         config, Preprocess(height=size, width=size))


def test_network_bit_exact_and_resident_reload(board):
    from sqzhw import runtime

    acc, config = board
    program = _program(config, seed=11)
    first = acc.load(program)
    assert first.verified == acc.device.has_checksum
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.standard_normal((program.input.channels, program.input.height, program.input.width))
        x = x.astype(np.float32)
        result = acc.infer_full(x)
        np.testing.assert_array_equal(np.asarray(result.sums), np.asarray(runtime.run_golden(program, x).sums))
    if acc.device.has_checksum:
        again = acc.load(program)             # the board still holds it: nothing crosses the link
        assert again.resident and again.bytes_sent == 0


def test_engine_error_reaches_the_caller(board):
    from sqzhw import isa
    from sqzhw.driver import EngineError

    acc, config = board
    program = _program(config, seed=12)
    acc.load(program)
    # An instruction stream that runs past the program's write window: the engine stops with an error.
    with pytest.raises(EngineError) as exc:
        acc.execute(program.region("instructions").base, len(program.instructions), 0, 0)
    assert exc.value.code == isa.ErrorCode.DRAM_RANGE
    acc.reset()
    assert acc.status().error in (isa.ErrorCode.NONE, 0)
