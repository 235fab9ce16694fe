"""Build reports for Xilinx boards: a yosys resource estimate when Vivado is absent, and Vivado's
own reports when it ran.

Vivado is not on PyPI, so an Arty build usually stops after writing its build tree. Before it stops,
:func:`yosys_estimate` runs YoWASP yosys's ``synth_xilinx`` up to LUT mapping (its WebAssembly ABC,
the LUT mapper, stops without a message on the real engine) and counts the cells Vivado would
have to place: DSP48E1, block RAM, flip-flops, carry chains. :func:`estimate_utilization` sets
them against the device (:data:`DEVICES`), so a config that cannot fit is refused with the cell
and the numbers instead of failing an hour into Vivado. When Vivado ran, :func:`parse_utilization`
and :func:`parse_timing` read its ``report_utilization`` and ``report_timing_summary`` files
(written by amaranth's Xilinx build script) into the same report fields the nextpnr builds fill, and
:func:`parse_timing_summary` reads Vivado's own verdict. They read the layouts Vivado 2018-2024
writes for 7-series parts (tests/vivado_reports.py) and raise :class:`VivadoReportError`, naming the
file and what it lacks, on anything else: a report that does not read is never an empty one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["XilinxDevice", "DEVICES", "device_for", "ESTIMATE_SCRIPT", "parse_yosys_stat",
           "estimate_utilization", "VivadoReportError", "parse_utilization", "parse_timing",
           "parse_timing_summary"]


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


class VivadoReportError(ValueError):
    """A Vivado report that does not read as the report it should be; the message names the file
    (``source``) and what was missing from it."""


#: Rows of ``report_utilization`` a 7-series (or UltraScale) report always has, by what they count.
_REQUIRED_SITES = (("LUTs", ("Slice LUTs", "CLB LUTs")), ("registers", ("Slice Registers", "CLB Registers")),
                   ("block RAM", ("Block RAM Tile",)), ("DSPs", ("DSPs", "DSP48E1", "DSP48E2")))


def _number(cell: str) -> float | None:
    """A report cell as a number (thousands separators dropped), ``None`` if blank or not a number."""
    try:
        return float(cell.replace(",", "").strip())
    except ValueError:
        return None


def _count(value: float) -> int | float:
    # Block RAM tiles come in halves (a RAMB18 is half a tile): keep 27.5, not 27 or 28.
    return int(value) if value.is_integer() else value


def _boxed_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """``(header, rows)`` of every ``+---+`` boxed table; a row's first cell keeps its indent (its
    nesting under the row above), the other cells are stripped."""
    lines, tables, i = text.splitlines(), [], 0
    while i + 2 < len(lines):
        if not (lines[i].startswith("+-") and lines[i + 1].startswith("|") and lines[i + 2].startswith("+-")):
            i += 1
            continue
        header = [c.strip() for c in lines[i + 1].strip().strip("|").split("|")]
        rows, i = [], i + 3
        while i < len(lines) and lines[i].startswith("|"):
            cells = lines[i].rstrip()[1:-1].split("|")
            rows.append([cells[0][1:].rstrip()] + [c.strip() for c in cells[1:]])
            i += 1
        tables.append((header, rows))
    return tables


def parse_utilization(text: str,
                      source: str = "report_utilization output") -> dict[str, dict[str, int | float]]:
    """``{site type: {"used", "available"}}`` from Vivado's ``report_utilization``.

    Parameters
    ----------
    text : str
        The report (amaranth's ``top_utilization_place.rpt``).
    source : str
        What to call it in an error (the file's path).

    Returns
    -------
    dict
        The top-level rows of its Site Type tables that have an Available count (Slice LUTs, Slice
        Registers, Block RAM Tile, DSPs, Bonded IOB, BUFGCTRL, MMCME2_ADV, ...), first occurrence
        of a name kept (section 2 repeats some of section 1). Names lose the ``*`` of the synthesis
        report's ``Slice LUTs*``; counts are ints but for half block RAM tiles (``27.5``). Any
        layout Vivado has used: with or without the Prohibited column.

    Raises
    ------
    VivadoReportError
        No Site Type table (not a ``report_utilization`` report, or a ``-hierarchical`` one), or no
        LUT, register, block RAM or DSP row.
    """
    tables = [(h, rows) for h, rows in _boxed_tables(text) if {"Site Type", "Used", "Available"} <= set(h)]
    if not tables:
        raise VivadoReportError(f"{source}: no '| Site Type | Used | ... | Available |' table; not a "
                                f"report_utilization report (or a -hierarchical one)")
    util: dict[str, dict[str, int | float]] = {}
    for header, rows in tables:
        used_at, avail_at = header.index("Used"), header.index("Available")
        for cells in rows:
            if len(cells) != len(header) or cells[0].startswith(" ") or not cells[0]:
                continue    # a breakdown of the row above
            used, available = _number(cells[used_at]), _number(cells[avail_at])
            if used is not None and available:
                name = cells[0].rstrip("*").strip()
                util.setdefault(name, {"used": _count(used), "available": _count(available)})
    missing = [what for what, names in _REQUIRED_SITES if not any(n in util for n in names)]
    if missing:
        raise VivadoReportError(f"{source}: no {', '.join(missing)} row with Used and Available counts in "
                                f"its Site Type tables (found: {', '.join(util) or 'none'}); truncated?")
    return util


def _banner_sections(text: str) -> dict[str, list[str]]:
    """``report_timing_summary``'s sections, ``{title: body lines}``: each opens with a dashed line,
    ``| Title``, ``| -----``, a dashed line, and runs to the next such banner (first title kept)."""
    lines = text.splitlines()

    def banner(i: int) -> bool:
        return (i + 3 < len(lines) and re.fullmatch(r"-{20,}", lines[i].strip()) is not None
                and lines[i + 1].startswith("| ") and lines[i + 2].startswith("| -")
                and re.fullmatch(r"-{20,}", lines[i + 3].strip()) is not None)

    starts = [i for i in range(len(lines)) if banner(i)]
    sections: dict[str, list[str]] = {}
    for k, i in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        sections.setdefault(lines[i + 1][2:].strip(), lines[i + 4:end])
    return sections


def _column_table(body: list[str]) -> list[dict[str, str]]:
    """The rows of the first whitespace table in a section body (a header line, dashes under each
    column name, rows up to a blank line) as ``{column name: cell}``; blank cells are left out. A
    cell belongs to the column it starts under (names, left-aligned) or ends under (numbers,
    right-aligned), else the nearest, so long clock names and wide numbers stay in their column."""
    at = next((i for i, line in enumerate(body) if i > 0 and re.fullmatch(r"\s*-+(\s+-+)+\s*", line)), None)
    if at is None:
        return []
    spans = [m.span() for m in re.finditer(r"-+", body[at])]
    names = [body[at - 1][s:e].strip() for s, e in spans]
    rows = []
    for line in body[at + 1:]:
        if not line.strip():
            break
        cells: dict[str, list[str]] = {}
        for m in re.finditer(r"\S+", line):
            col = min(range(len(spans)),
                      key=lambda c: min(abs(m.start() - spans[c][0]), abs(m.end() - spans[c][1])))
            cells.setdefault(names[col], []).append(m.group())
        rows.append({name: " ".join(words) for name, words in cells.items()})
    return rows


def _section(sections: dict[str, list[str]], title: str, source: str) -> list[str]:
    if title not in sections:
        raise VivadoReportError(f"{source}: no '{title}' section; not a report_timing_summary report, or a "
                                f"truncated one (sections found: {', '.join(sections) or 'none'})")
    return sections[title]


def parse_timing(text: str, source: str = "report_timing_summary output") -> dict[str, dict]:
    """Fmax per clock from Vivado's ``report_timing_summary``.

    Parameters
    ----------
    text : str
        The report (amaranth's ``top_timing.rpt``).
    source : str
        What to call it in an error (the file's path).

    Returns
    -------
    dict
        ``{clock: {"achieved", "constraint", "period_ns", "wns_ns", "source"}}``, every clock of the
        Clock Summary. ``constraint`` is ``1000 / period`` (MHz, period from the Clock Summary);
        ``achieved`` is ``1000 / (period - WNS)`` with WNS the clock's setup slack in the Intra Clock
        Table (its paths from and to itself; paths between clocks are in the Inter Clock Table,
        :func:`parse_timing_summary`). It assumes the worst path has a whole period, as a
        register-to-register path in one clock has. A clock with no setup paths of its own (the
        oscillator that only feeds the MMCM, the MMCM feedback, a clock with only pulse-width
        checks: blank WNS) has ``achieved`` ``None`` and a ``note``, as does one whose slack exceeds
        its period.

    Raises
    ------
    VivadoReportError
        No Clock Summary or Intra Clock Table, a Clock Summary without clocks, or an Intra Clock
        Table clock the Clock Summary does not have.
    """
    sections = _banner_sections(text)
    periods = {}
    for row in _column_table(_section(sections, "Clock Summary", source)):
        period = _number(row.get("Period(ns)", ""))
        if "Clock" in row and period:
            periods[row["Clock"]] = period
    if not periods:
        raise VivadoReportError(f"{source}: its Clock Summary lists no clock with a period; Vivado found no "
                                f"clock constraints?")
    wns = {}
    for row in _column_table(_section(sections, "Intra Clock Table", source)):
        if row.get("Clock") not in periods:
            raise VivadoReportError(f"{source}: clock {row.get('Clock')!r} of the Intra Clock Table is not "
                                    f"in the Clock Summary ({', '.join(periods)})")
        wns[row["Clock"]] = _number(row.get("WNS(ns)", ""))
    fmax = {}
    for clock, period in periods.items():
        slack = wns.get(clock)
        entry = {"achieved": None, "constraint": round(1000.0 / period, 2), "period_ns": period,
                 "wns_ns": slack, "source": "Intra Clock Table setup WNS, Clock Summary period"}
        if slack is None:
            entry["note"] = "no setup paths within this clock"
        elif period - slack <= 0:
            entry["note"] = f"setup slack {slack} ns exceeds the period (multicycle paths?): no Fmax"
        else:
            entry["achieved"] = round(1000.0 / (period - slack), 2)
        fmax[clock] = entry
    return fmax


def _key(column: str) -> str:
    # "WNS(ns)" -> "wns_ns", "TNS Failing Endpoints" -> "tns_failing_endpoints"
    return re.sub(r"\W+", "_", column.replace("(ns)", " ns").lower()).strip("_")


def parse_timing_summary(text: str, source: str = "report_timing_summary output") -> dict:
    """Vivado's verdict and design-wide slacks from ``report_timing_summary``.

    Parameters
    ----------
    text : str
        The report (amaranth's ``top_timing.rpt``).
    source : str
        What to call it in an error (the file's path).

    Returns
    -------
    dict
        ``met`` (Vivado's verdict under the Design Timing Summary: setup, hold and pulse width of
        every path, between clocks too), the Design Timing Summary's columns (``wns_ns``, ``tns_ns``,
        ``tns_failing_endpoints``, ``whs_ns``, ... ``tpws_total_endpoints``; ``None`` where blank) and
        ``inter_clock``: ``[{"from", "to", "wns_ns", "whs_ns"}]`` from the Inter Clock Table.

    Raises
    ------
    VivadoReportError
        No Design Timing Summary, no numbers in it, or no verdict line.
    """
    sections = _banner_sections(text)
    body = _section(sections, "Design Timing Summary", source)
    rows = _column_table(body)
    if not rows:
        raise VivadoReportError(f"{source}: its Design Timing Summary has no WNS/TNS/WHS table")
    verdicts = {"All user specified timing constraints are met.": True,
                "Timing constraints are not met.": False}
    said = [verdicts[line.strip()] for line in body if line.strip() in verdicts]
    if not said:
        unconstrained = "no user specified timing constraints" in "\n".join(body)
        why = ("Vivado found no timing constraints" if unconstrained
               else "no verdict line ('All user specified timing constraints are met.' or 'Timing "
                    "constraints are not met.')")
        raise VivadoReportError(f"{source}: Design Timing Summary: {why}")
    summary: dict = {"met": said[0]}
    for column, cell in rows[0].items():
        value = _number(cell)
        summary[_key(column)] = int(value) if value is not None and "Endpoints" in column else value
    for column in ("WNS(ns)", "TNS(ns)", "WHS(ns)", "THS(ns)", "WPWS(ns)", "TPWS(ns)"):
        summary.setdefault(_key(column), None)
    summary["inter_clock"] = [
        {"from": row.get("From Clock", ""), "to": row.get("To Clock", ""),
         "wns_ns": _number(row.get("WNS(ns)", "")), "whs_ns": _number(row.get("WHS(ns)", ""))}
        for row in _column_table(sections.get("Inter Clock Table", []))]
    return summary
