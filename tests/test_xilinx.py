"""Xilinx build reports (boards/xilinx.py): yosys's cell counts into an estimate against the part,
and Vivado's utilization and timing-summary reports into the report's fields. The Vivado texts are
in tests/vivado_reports.py, in the layouts Vivado 2019.1, 2023.2 and 2024.1 write for 7-series
parts (the public reports they follow are listed there)."""

from __future__ import annotations

import pytest

from boards.build import BuildError, _summary_text, _vivado_reports, label_clocks
from boards.xilinx import (DEVICES, VivadoReportError, device_for, estimate_utilization, parse_timing,
                           parse_timing_summary, parse_utilization, parse_yosys_stat)
from tests.vivado_reports import (TIMING_A35T_2019_FAILED, TIMING_A35T_2023_MET, TIMING_A100T_2024_FAILED,
                                  UTIL_A35T_2019, UTIL_A35T_2023, UTIL_A100T_2024)

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


def _main_rows(util: dict) -> dict:
    return {k: util[k] for k in ("Slice LUTs", "Slice Registers", "Block RAM Tile", "DSPs")}


def test_vivado_utilization_layouts():
    """With (2020+) and without (2019) the Prohibited column; half block RAM tiles kept as halves."""
    assert _main_rows(parse_utilization(UTIL_A35T_2023)) == {
        "Slice LUTs": {"used": 8123, "available": 20800},
        "Slice Registers": {"used": 7012, "available": 41600},
        "Block RAM Tile": {"used": 28, "available": 50}, "DSPs": {"used": 77, "available": 90}}
    util = parse_utilization(UTIL_A35T_2019)
    assert util["Block RAM Tile"] == {"used": 27.5, "available": 50}         # 27 RAMB36 + 1 RAMB18
    assert util["Slice LUTs"] == {"used": 8347, "available": 20800}
    assert _main_rows(parse_utilization(UTIL_A100T_2024)) == {
        "Slice LUTs": {"used": 8210, "available": 63400},
        "Slice Registers": {"used": 7046, "available": 126800},
        "Block RAM Tile": {"used": 28.5, "available": 135}, "DSPs": {"used": 77, "available": 240}}
    for util in (parse_utilization(UTIL_A35T_2023), parse_utilization(UTIL_A35T_2019)):
        # top-level rows of every section; breakdowns (RAMB36/FIFO*, DSP48E1 only, ...) left out
        assert util["Bonded IOB"] == {"used": 55, "available": 210}
        assert util["MMCME2_ADV"] == {"used": 1, "available": 5} and util["IDELAYCTRL"]["used"] == 1
        assert util["OLOGIC"] == {"used": 43, "available": 210} and util["Unique Control Sets"]["used"] > 200
        assert not {"LUT as Distributed RAM", "RAMB36/FIFO*", "RAMB18", "DSP48E1 only", "SLICEL"} & set(util)
        assert all(type(u["used"]) is int for name, u in util.items() if name != "Block RAM Tile")


def test_vivado_utilization_name_variants():
    """The synthesis report's ``Slice LUTs*`` is ``Slice LUTs``; UltraScale's CLB rows count too."""
    synth = UTIL_A35T_2019.replace("| Slice LUTs                 |", "| Slice LUTs*                |")
    assert synth != UTIL_A35T_2019 and parse_utilization(synth) == parse_utilization(UTIL_A35T_2019)
    clb = UTIL_A35T_2023.replace("| Slice LUTs      ", "| CLB LUTs        ").replace(
        "| Slice Registers ", "| CLB Registers   ")
    assert parse_utilization(clb)["CLB LUTs"] == {"used": 8123, "available": 20800}
    # editors strip trailing blanks; thousands separators read as numbers
    stripped = "\n".join(line.rstrip() for line in UTIL_A35T_2023.splitlines())
    assert parse_utilization(stripped) == parse_utilization(UTIL_A35T_2023)
    commas = UTIL_A100T_2024.replace("|    126800 |", "|   126,800 |")
    assert parse_utilization(commas)["Slice Registers"] == {"used": 7046, "available": 126800}


def test_vivado_utilization_errors_name_file_and_what_is_missing():
    with pytest.raises(VivadoReportError, match=r"^build/top_utilization_place.rpt: no '\| Site Type"):
        parse_utilization("", source="build/top_utilization_place.rpt")
    hierarchical = """\
+------------+--------+------------+------------+---------+------+------+--------+--------+--------------+
|  Instance  | Module | Total LUTs | Logic LUTs | LUTRAMs | SRLs |  FFs | RAMB36 | RAMB18 | DSP48 Blocks |
+------------+--------+------------+------------+---------+------+------+--------+--------+--------------+
| top        |  (top) |       8123 |       7795 |     256 |   72 | 7012 |     27 |      2 |           77 |
+------------+--------+------------+------------+---------+------+------+--------+--------+--------------+
"""
    with pytest.raises(VivadoReportError, match="not a report_utilization report"):
        parse_utilization(hierarchical)
    truncated = UTIL_A35T_2023[:UTIL_A35T_2023.index("3. Memory\n---")]
    with pytest.raises(VivadoReportError, match=r"^x.rpt: no block RAM, DSPs row .* truncated"):
        parse_utilization(truncated, source="x.rpt")


def test_vivado_timing_met_fmax_from_the_intra_clock_table():
    fmax = parse_timing(TIMING_A35T_2023_MET)
    assert list(fmax) == ["clk100_0__io", "mmcm_fb", "mmcm_idelay_ref", "mmcm_sync", "mmcm_sys2x",
                          "mmcm_sys2x_90"]
    sync = fmax["mmcm_sync"]
    # Fmax = 1000 / (period - WNS): the Clock Summary's 10 ns, the Intra Clock Table's 0.412 ns
    assert sync == {"achieved": 104.3, "constraint": 100.0, "period_ns": 10.0, "wns_ns": 0.412,
                    "source": "Intra Clock Table setup WNS, Clock Summary period"}
    assert fmax["mmcm_sys2x"]["achieved"] == round(1000 / (5.0 - 2.871), 2)
    assert fmax["mmcm_sys2x_90"]["constraint"] == 200.0     # {1.250 3.750}: the 90 degree waveform
    for clock in ("clk100_0__io", "mmcm_fb", "mmcm_idelay_ref", "mmcm_sys2x_90"):
        # only pulse-width checks: reported as having no setup paths, not as infinitely fast
        assert fmax[clock]["achieved"] is None and fmax[clock]["wns_ns"] is None
        assert fmax[clock]["note"] == "no setup paths within this clock"
    summary = parse_timing_summary(TIMING_A35T_2023_MET)
    assert summary["met"] is True and summary["wns_ns"] == 0.412 and summary["whs_ns"] == 0.043
    assert summary["tns_failing_endpoints"] == 0 and summary["tpws_total_endpoints"] == 7383
    assert summary["inter_clock"] == [
        {"from": "mmcm_sync", "to": "mmcm_sys2x", "wns_ns": 1.093, "whs_ns": 0.087},
        {"from": "mmcm_sys2x", "to": "mmcm_sync", "wns_ns": 2.214, "whs_ns": 0.164}]


def test_vivado_timing_failed():
    fmax = parse_timing(TIMING_A35T_2019_FAILED)
    assert fmax["mmcm_sync"]["achieved"] == 92.23 and fmax["mmcm_sync"]["wns_ns"] == -0.842   # 1000 / 10.842
    summary = parse_timing_summary(TIMING_A35T_2019_FAILED)
    assert summary["met"] is False and summary["tns_ns"] == -37.513
    assert summary["tns_failing_endpoints"] == 118 and summary["ths_failing_endpoints"] == 0
    # xc7a100t, 80 MHz engine: each clock meets its own target, a sync -> sys2x path does not
    fmax = parse_timing(TIMING_A100T_2024_FAILED)
    assert {c: f["achieved"] for c, f in fmax.items() if f["achieved"]} == {"mmcm_sync": 88.39,
                                                                           "mmcm_sys2x": 317.66}
    assert fmax["mmcm_sync"]["constraint"] == 80.0 and fmax["mmcm_sys2x_90"]["constraint"] == 160.0
    summary = parse_timing_summary(TIMING_A100T_2024_FAILED)
    assert summary["met"] is False and summary["wns_ns"] == -0.214
    assert summary["inter_clock"][0] == {"from": "mmcm_sync", "to": "mmcm_sys2x", "wns_ns": -0.214,
                                         "whs_ns": 0.079}
    stripped = "\n".join(line.rstrip() for line in TIMING_A100T_2024_FAILED.splitlines())
    assert parse_timing(stripped) == fmax and parse_timing_summary(stripped) == summary


def test_vivado_timing_errors_name_file_and_what_is_missing():
    with pytest.raises(VivadoReportError, match=r"^t.rpt: no 'Clock Summary' section; not a report_timing"):
        parse_timing(UTIL_A35T_2023, source="t.rpt")
    truncated = TIMING_A35T_2023_MET[:TIMING_A35T_2023_MET.index("| Intra Clock Table")]
    with pytest.raises(VivadoReportError, match="no 'Intra Clock Table' section"):
        parse_timing(truncated)
    met = "All user specified timing constraints are met."
    with pytest.raises(VivadoReportError, match="no verdict line"):
        parse_timing_summary(TIMING_A35T_2023_MET.replace(met, ""))
    with pytest.raises(VivadoReportError, match="Vivado found no timing constraints"):
        parse_timing_summary(TIMING_A35T_2023_MET.replace(met, "There are no user specified timing "
                                                                    "constraints."))
    renamed = TIMING_A35T_2023_MET.replace("  mmcm_sys2x       {0.0", "  mmcm_sys2y       {0.0")
    assert renamed != TIMING_A35T_2023_MET
    with pytest.raises(VivadoReportError, match="'mmcm_sys2x' of the Intra Clock Table is not in the Clock"):
        parse_timing(renamed)


def test_vivado_reports_into_the_build_report(tmp_path):
    """What ``build`` does after Vivado: the two report files into the report's fields (a file
    missing or unreadable is a BuildError naming it), Vivado's clocks labelled by name, the summary
    with the clocks that have no setup paths and Vivado's verdict."""
    with pytest.raises(BuildError, match="Vivado finished but wrote no .*top_utilization_place.rpt"):
        _vivado_reports("arty", tmp_path)
    (tmp_path / "top_utilization_place.rpt").write_text(UTIL_A100T_2024)
    (tmp_path / "top_timing.rpt").write_text("ERROR: [Common 17-69] Command failed\n")
    with pytest.raises(BuildError, match=r"board arty: .*top_timing.rpt: no 'Clock Summary' section"):
        _vivado_reports("arty", tmp_path)
    (tmp_path / "top_timing.rpt").write_text(TIMING_A100T_2024_FAILED)
    report = _vivado_reports("arty", tmp_path)
    assert set(report) == {"utilization", "fmax", "vivado_timing"} and report["vivado_timing"]["met"] is False
    label_clocks(report["fmax"], 80.0, 100.0)
    assert {c: f["domain"] for c, f in report["fmax"].items()} == {
        "clk100_0__io": "oscillator", "mmcm_fb": "MMCM feedback", "mmcm_idelay_ref": "idelay_ref",
        "mmcm_sync": "sync (engine)", "mmcm_sys2x": "sys2x (DRAM)", "mmcm_sys2x_90": "sys2x_90 (DQS)"}
    fmax = parse_timing(TIMING_A35T_2023_MET)
    label_clocks(fmax, 100.0, 100.0)         # sync, oscillator and feedback all at 100 MHz
    assert [fmax[c]["domain"] for c in ("clk100_0__io", "mmcm_fb", "mmcm_sync")] == [
        "oscillator", "MMCM feedback", "sync (engine)"]
    report.update({"board": "arty", "config": {"name": "arty"}, "tag": "8x8_x", "engine": "real",
                   "device": "xc7a100ti csg324 speed 1L", "memory": "DDR3", "clock_mhz": 80.0,
                   "pll_mhz": 80.0, "baud": 4_000_000, "uart_divisor": 20, "bridge": "FTDI FT2232H",
                   "pll_params": None, "build_seconds": 3600.0, "notes": "", "bitstream": "top.bit"})
    text = _summary_text(report)
    assert "sync (engine)  net mmcm_sync" in text and "88.39 MHz (target 80.00: met)" in text
    assert "- MHz (target 200.00: no setup paths within this clock)" in text
    assert ("Vivado       timing constraints NOT met: setup WNS -0.214 ns (9 failing endpoints), hold WHS "
            "0.041 ns, pulse width WPWS 2.845 ns; between clocks worst mmcm_sync -> mmcm_sys2x "
            "WNS -0.214 ns") in text
    assert "Block RAM Tile      28.5 /     135  ( 21.1 %)" in text
