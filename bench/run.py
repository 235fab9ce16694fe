"""`make bench`: every benchmark section in one run, figures and ratios printed, plots written.

Sections: compiler (compile time, golden-model vs onnxruntime time per image, int8/float agreement),
rtl (cycles and utilization per layer, simulated cycles per second), board (Fmax, resources, frame
rate). A section whose prerequisites are missing says what is missing and the run goes on.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SECTIONS = ["bench_compiler", "bench_accuracy", "bench_rtl", "bench_board"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/bench", help="folder for plots and JSON")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only or SECTIONS:
        print(f"\n===== {name} =====", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            module.main(out)
        except Exception:  # a broken section must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"----- {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    if failed:
        print(f"\nsections that failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
