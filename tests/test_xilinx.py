"""Xilinx build reports (boards/xilinx.py): yosys's cell counts into an estimate against the part,
and Vivado's utilization and timing-summary reports into the report's fields. The Vivado texts
below follow the layout of ``report_utilization`` and ``report_timing_summary`` (columns right-
aligned under dashes, a clock without setup paths has blank slack columns)."""

from __future__ import annotations

import pytest

from boards.xilinx import (DEVICES, device_for, estimate_utilization, parse_timing, parse_utilization,
                           parse_yosys_stat)

YOSYS_STAT_NEW = """
=== top ===

        5151 public wires
       17316 cells
        1811   $_AND_
          77   DSP48E1
           2   RAMB18E1
          27   RAMB36E1
        7530 submodules
         600   CARRY4
        6853   FDRE
          42   FDSE

Warnings: 20 unique messages, 20 total
"""

YOSYS_STAT_OLD = """
   Number of wires:                 10
   Number of cells:                  4
     DSP48E1                         3
     FDCE                            1

"""

UTILIZATION = """\
1. Slice Logic
--------------

+----------------------------+-------+-------+------------+-----------+-------+
|          Site Type         |  Used | Fixed | Prohibited | Available | Util% |
+----------------------------+-------+-------+------------+-----------+-------+
| Slice LUTs                 | 14321 |     0 |          0 |     20800 | 68.85 |
|   LUT as Logic             | 14000 |     0 |          0 |     20800 | 67.31 |
|   LUT as Memory            |   321 |     0 |          0 |      9600 |  3.34 |
| Slice Registers            |  9876 |     0 |          0 |     41600 | 23.74 |
| F7 Muxes                   |   512 |     0 |          0 |     16300 |  3.14 |
+----------------------------+-------+-------+------------+-----------+-------+

3. Memory
---------

+-------------------+------+-------+------------+-----------+-------+
|     Site Type     | Used | Fixed | Prohibited | Available | Util% |
+-------------------+------+-------+------------+-----------+-------+
| Block RAM Tile    | 28.5 |     0 |          0 |        50 | 57.00 |
|   RAMB36/FIFO*    |   28 |     0 |          0 |        50 | 56.00 |
|   RAMB18          |    1 |     0 |          0 |       100 |  1.00 |
+-------------------+------+-------+------------+-----------+-------+

4. DSP
------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |   77 |     0 |          0 |        90 | 85.56 |
|   DSP48E1 only |   77 |       |            |           |       |
+----------------+------+-------+------------+-----------+-------+
"""

TIMING = """\
------------------------------------------------------------------------------------------------
| Clock Summary
| -------------
------------------------------------------------------------------------------------------------

Clock                 Waveform(ns)       Period(ns)      Frequency(MHz)
-----                 ------------       ----------      --------------
clk100_0__io          {0.000 5.000}      10.000          100.000
  clk_sync            {0.000 5.000}      10.000          100.000
  clk_sys2x           {0.000 2.500}      5.000           200.000
  clkfb               {0.000 5.000}      10.000          100.000


------------------------------------------------------------------------------------------------
| Intra Clock Table
| -----------------
------------------------------------------------------------------------------------------------

Clock                   WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints
-----                   -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------
clk100_0__io              6.500        0.000                      0                    4        0.120        0.000                      0                    4        3.000        0.000                       0                     2
  clk_sync               -0.526      -12.345                     40                26000        0.050        0.000                      0                26000        4.020        0.000                       0                 10500
  clk_sys2x               1.234        0.000                      0                  180        0.100        0.000                      0                  180        1.100        0.000                       0                    60
  clkfb                                                                                                                                                         8.751        0.000                       0                     3
"""


def test_yosys_stat_both_layouts():
    counts = parse_yosys_stat(YOSYS_STAT_NEW)
    assert counts["DSP48E1"] == 77 and counts["RAMB36E1"] == 27 and counts["CARRY4"] == 600
    assert "submodules" not in counts and counts["FDSE"] == 42
    assert parse_yosys_stat(YOSYS_STAT_OLD) == {"DSP48E1": 3, "FDCE": 1}
    with pytest.raises(ValueError, match="did `stat` run"):
        parse_yosys_stat("no table here")


def test_estimate_against_the_part():
    dev = device_for("xc7a35ti")
    assert dev is DEVICES["xc7a35t"] and device_for("xc7a100tcsg324") is DEVICES["xc7a100t"]
    assert device_for("xc7k325t") is None
    util = estimate_utilization(parse_yosys_stat(YOSYS_STAT_NEW), dev)
    assert util["DSP48E1"] == {"used": 77, "available": 90}
    assert util["RAMB36 tiles"] == {"used": 28, "available": 50}      # two RAMB18 = one tile
    assert util["flip-flops"] == {"used": 6895, "available": 41_600}


def test_vivado_utilization_top_level_rows():
    util = parse_utilization(UTILIZATION)
    assert util == {"Slice LUTs": {"used": 14321, "available": 20800},
                    "Slice Registers": {"used": 9876, "available": 41600},
                    "F7 Muxes": {"used": 512, "available": 16300},
                    "Block RAM Tile": {"used": 28, "available": 50},     # 28.5 rounds to even
                    "DSPs": {"used": 77, "available": 90}}


def test_vivado_timing_fmax_from_slack():
    fmax = parse_timing(TIMING)
    # a failing clock: 1000 / (10 + 0.526) = 95.0 MHz; clkfb has no setup paths (blank WNS)
    assert fmax == {"clk100_0__io": {"achieved": 285.71, "constraint": 100.0},
                    "clk_sync": {"achieved": 95.0, "constraint": 100.0},
                    "clk_sys2x": {"achieved": 265.53, "constraint": 200.0}}
    assert parse_timing("no timing summary") == {}
