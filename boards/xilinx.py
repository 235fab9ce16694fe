"""Build reports for Xilinx boards: a yosys resource estimate when Vivado is absent, and Vivado's
own reports when it ran.

Vivado is not on PyPI, so an Arty build usually stops after writing its build tree. Before it stops,
:func:`yosys_estimate` runs YoWASP yosys's ``synth_xilinx`` up to LUT mapping (its WebAssembly ABC,
the LUT mapper, stops without a message on the real engine) and counts the cells Vivado would
have to place: DSP48E1, block RAM, flip-flops, carry chains. :func:`estimate_utilization` sets
them against the device (:data:`DEVICES`), so a config that cannot fit is refused with the cell
and the numbers instead of failing an hour into Vivado. When Vivado ran, :func:`parse_utilization`
and :func:`parse_timing` read its ``report_utilization`` and ``report_timing_summary`` files
(written by amaranth's Xilinx build script) into the same report fields the nextpnr builds fill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["XilinxDevice", "DEVICES", "device_for", "ESTIMATE_SCRIPT", "parse_yosys_stat",
           "estimate_utilization", "parse_utilization", "parse_timing"]


@dataclass(frozen=True)
class XilinxDevice:
    """What a 7-series part has of the cells the estimate counts (DS180, the 7-series overview)."""
    luts: int
    flip_flops: int
    dsp48e1: int
    ramb36: int          #: 36 Kb block RAM tiles; a RAMB18E1 is half of one
    carry4: int          #: one per slice


#: Parts of the boards sqzhw builds for, by the name amaranth-boards gives the device.
DEVICES = {
    "xc7a35t": XilinxDevice(luts=20_800, flip_flops=41_600, dsp48e1=90, ramb36=50, carry4=5_200),
    "xc7a100t": XilinxDevice(luts=63_400, flip_flops=126_800, dsp48e1=240, ramb36=135, carry4=15_850),
}


def device_for(device: str) -> XilinxDevice | None:
    """The :class:`XilinxDevice` of an amaranth-boards ``platform.device`` (``"xc7a35ti"`` is the
    industrial-grade xc7a35t), or ``None`` for a part not in :data:`DEVICES`."""
    for name, dev in DEVICES.items():
        if device.lower().startswith(name):
            return dev
    return None


#: yosys commands after the cell check: synthesis up to (not through) LUT mapping, then the count.
ESTIMATE_SCRIPT = "synth_xilinx -family xc7 -flatten -run :map_luts; stat"


def parse_yosys_stat(text: str) -> dict[str, int]:
    """Cell counts of the last ``stat`` table in yosys output (``{"DSP48E1": 77, ...}``): the lines
    under its ``N cells`` line (``Number of cells: N`` in yosys before 0.5x), up to a blank line."""
    heads = [m.end() for m in re.finditer(r"^\s*(?:Number of cells:\s*\d+|\d+ cells)\s*$", text, re.M)]
    if not heads:
        raise ValueError("parse_yosys_stat: no cell count in the yosys output (did `stat` run?)")
    counts: dict[str, int] = {}
    for line in text[heads[-1]:].splitlines()[1:]:
        if not line.strip():
            break
        # "  77   DSP48E1" (yosys 0.5x), "  DSP48E1   77" before
        match = re.match(r"\s*(\d+)\s+(\$?[A-Za-z_][\w$]*)\s*$", line)
        cell, n = (match.group(2), match.group(1)) if match else (None, None)
        if match is None and (match := re.match(r"\s*(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$", line)):
            cell, n = match.group(1), match.group(2)
        if cell is not None and cell != "submodules":
            counts[cell] = int(n)
    return counts


def estimate_utilization(counts: dict[str, int], device: XilinxDevice) -> dict[str, dict[str, int]]:
    """The report's ``utilization`` from yosys's cell counts (no LUTs: they are not mapped yet)."""
    ffs = sum(n for cell, n in counts.items() if re.fullmatch(r"FD[A-Z]*", cell))
    ramb36 = counts.get("RAMB36E1", 0) + (counts.get("RAMB18E1", 0) + 1) // 2
    return {"DSP48E1": {"used": counts.get("DSP48E1", 0), "available": device.dsp48e1},
            "RAMB36 tiles": {"used": ramb36, "available": device.ramb36},
            "flip-flops": {"used": ffs, "available": device.flip_flops},
            "CARRY4": {"used": counts.get("CARRY4", 0), "available": device.carry4}}


def _table_rows(text: str, header_words: tuple[str, ...]) -> list[tuple[list[str], list[str]]]:
    """``(header cells, row cells)`` of every ``| a | b |`` table row under a header with all of
    ``header_words``; a row's first cell keeps its leading spaces (its nesting)."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            if not line.startswith("+"):
                header = None
            continue
        cells = [c.rstrip() for c in line.strip().strip("|").split("|")]
        cells = [cells[0][1:] if cells[0].startswith(" ") else cells[0]] + [c.strip() for c in cells[1:]]
        if all(any(w == c.strip() for c in cells) for w in header_words):
            header = [c.strip() for c in cells]
        elif header is not None and len(cells) == len(header):
            rows.append((header, cells))
    return rows


def parse_utilization(text: str) -> dict[str, dict[str, int]]:
    """``{site type: {"used", "available"}}`` from Vivado's ``report_utilization`` (top-level rows
    of its tables: Slice LUTs, Slice Registers, Block RAM Tile, DSPs, Bonded IOB, ...)."""
    util: dict[str, dict[str, int]] = {}
    for header, cells in _table_rows(text, ("Site Type", "Used", "Available")):
        name = cells[0]
        if name.startswith(" ") or not name.strip():
            continue      # a breakdown of the row above
        try:
            used = float(cells[header.index("Used")])
            available = float(cells[header.index("Available")])
        except ValueError:
            continue
        if available > 0:
            util[name.strip()] = {"used": int(round(used)), "available": int(round(available))}
    return util


def _plain_table(text: str, title: str) -> tuple[list[str], list[tuple[int, int]]]:
    """One of ``report_timing_summary``'s whitespace tables (after ``| title``): its rows (below the
    dashed underline, up to the next blank line) and the ``(start, end)`` of each column's dashes."""
    at = text.find(f"| {title}")
    if at < 0:
        return [], []
    lines = text[at:].splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^-+\s+-+", line)), None)
    if start is None:
        return [], []
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[start])]
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line)
    return rows, spans


def parse_timing(text: str) -> dict[str, dict[str, float]]:
    """``{clock: {"achieved", "constraint"}}`` in MHz from Vivado's ``report_timing_summary``: the
    constraint from the Clock Summary's period, the achieved frequency from the Intra Clock Table's
    setup slack (``1000 / (period - WNS)``); a clock without setup paths is left out."""
    periods = {}
    for line in _plain_table(text, "Clock Summary")[0]:
        row = line.split()       # Clock  {rise fall}  Period  Frequency, left-aligned
        if len(row) >= 4:
            try:
                periods[row[0]] = float(row[-2])
            except ValueError:
                continue
    fmax = {}
    rows, spans = _plain_table(text, "Intra Clock Table")
    for line in rows:
        if len(spans) < 2:
            break
        # numbers are right-aligned under their dashes (a long clock name runs past its own); a
        # clock without setup paths has them blank
        name_end = len(line) - len(line.lstrip()) + len(line.split()[0])
        name = line[:name_end].strip()
        wns_text = line[name_end:spans[1][1]].strip()
        if name not in periods or not wns_text:
            continue
        try:
            wns = float(wns_text)
        except ValueError:
            continue
        period = periods[name]
        fmax[name] = {"achieved": round(1000.0 / (period - wns), 2), "constraint": round(1000.0 / period, 2)}
    return fmax
