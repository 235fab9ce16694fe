"""RTL benchmark: SqueezeNet 1.1 on the engine in Verilator — cycles and utilization per layer and in
total, what limits utilization — and the simulators' speed (Verilator vs Icarus on one program).

``main(out_dir)`` prints the tables and writes ``out_dir/utilization.png`` and
``out_dir/bench_rtl.json``. Run alone with ``python bench/bench_rtl.py --out build/bench``
(``--size 67`` for a quick look; the default is the real 227x227 input).

Per-layer figures come from one simulator run per layer: the golden model executes the program up
to the layer (same memory and on-chip state the engine would have), then the engine runs the layer's
instruction range (``program.layers``) alone and its counters are read. Utilization is the layer's
useful MACs / (rows * cols * cycles). The whole network is also run once end to end (its total
includes the overlap between layers that the per-layer runs cannot show).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sim import runner  # noqa: E402
from sim.randprog import random_case  # noqa: E402
from sqzhw import isa  # noqa: E402
from sqzhw.config import AccelConfig, load_config  # noqa: E402

MODEL = REPO.parent / "shared" / "models" / "squeezenet1.1.onnx"
IMAGES = REPO.parent / "shared" / "images"


def _log(msg: str) -> None:
    print(msg, flush=True)


# -- the program ---------------------------------------------------------------------------------

def squeezenet_program(config: AccelConfig, size: int = 227):
    """SqueezeNet 1.1 compiled for ``config``: the real model from ../shared when present (calibrated
    on ../shared/images), else a generated one with random weights. Returns ``(program, input bytes,
    description)``."""
    from sqzhw import runtime
    from sqzhw.compiler.codegen import compile_graph

    if MODEL.exists():
        from sqzhw import preprocess as pp
        from sqzhw.compiler import frontend, quantize
        from sqzhw.program import Preprocess

        base = pp.PRESETS["deepscale-1.1"]
        spec = Preprocess(height=size, width=size, channel_order=base.channel_order, mean=base.mean,
                          std=base.std, pixel_scale=base.pixel_scale)
        graph = frontend.import_onnx(MODEL, input_size=(size, size))
        calib = quantize.calibration_inputs(IMAGES if IMAGES.exists() else None, spec, count=8, seed=1234)
        qgraph = quantize.quantize(graph, calib, input_range=quantize.input_range(spec))
        program = compile_graph(qgraph, config, spec)
        image = sorted(IMAGES.glob("*.png"))[0] if IMAGES.exists() else None
        what = f"{MODEL.name} (real weights), input {size}x{size}"
    else:
        from sqzhw.compiler.testing import random_qgraph
        from sqzhw.program import Preprocess

        qgraph = random_qgraph("squeezenet1.1", size, 1.0, 1000, seed=1)
        program = compile_graph(qgraph, config, Preprocess(height=size, width=size))
        image = None
        what = f"generated SqueezeNet 1.1 (random weights; {MODEL} is absent), input {size}x{size}"
    if image is not None and hasattr(runtime, "prepare_input"):
        raw = runtime.prepare_input(program, image)
    else:
        x = np.random.default_rng(0).normal(0, 1, (3, size, size)).astype(np.float32)
        if image is not None and hasattr(runtime, "prepare_image"):
            x = runtime.prepare_image(program, image)
        raw = runtime.input_bytes(program, x)
    return program, bytes(raw), what


# -- per-layer runs ------------------------------------------------------------------------------

def per_layer(program, raw: bytes, simulator: str = "verilator", latency: int = runner.DEFAULT_LATENCY):
    """One engine run per layer of ``program.layers`` from the golden model's state before it."""
    from sqzhw.golden.executor import Executor

    config = program.config
    memory = runner.program_memory(program, raw)
    longest = max(layer.insn_count for layer in program.layers) + 1
    area = -(-len(memory) // 64) * 64
    image = memory + bytearray(area - len(memory) + longest * isa.INSN_BYTES)
    executor = Executor(config, image, program.writable)
    end = isa.encode(isa.Opcode.END, wait=(isa.Unit.LOAD, isa.Unit.COMPUTE, isa.Unit.STORE))
    rows = []
    covered = 0
    for i, layer in enumerate(program.layers):
        if layer.insn_start > covered:   # instructions between layers (barriers): golden only
            gap = program.instructions[covered:layer.insn_start] + [end]
            image[area:area + len(gap) * isa.INSN_BYTES] = isa.pack_program(gap)
            executor.run(area, len(gap))
        words = program.instructions[layer.insn_start:layer.insn_start + layer.insn_count] + [end]
        before = bytes(image[:len(memory)])
        image[area:area + len(words) * isa.INSN_BYTES] = isa.pack_program(words)
        golden = executor.run(area, len(words))
        if not golden.done:
            raise RuntimeError(f"golden model: layer {layer.name}: {golden.message}")
        r = runner.run_words(config, words, before, program.writable, simulator=simulator, latency=latency,
                             progress=lambda s: None)
        if not r.done:
            raise RuntimeError(f"layer {layer.name}: engine error {r.error} at instruction {r.error_pc}")
        c = {k.name.lower(): v for k, v in r.counters.items()}
        util = layer.macs / (config.macs_per_cycle * r.cycles) if r.cycles else 0.0
        row = {"layer": layer.name, "op": layer.op, "out_shape": list(layer.out_shape), "macs": layer.macs,
               "insns": layer.insn_count, "cycles": r.cycles, "utilization": util,
               "array_macs": golden.array_macs, "golden_est_cycles": golden.cycles, **c,
               "wall_seconds": r.wall_seconds}
        row["limit"] = limiter(row)
        rows.append(row)
        covered = layer.insn_start + layer.insn_count
        _log(f"  [{i + 1}/{len(program.layers)}] {layer.name:24s} {r.cycles:>10,} cycles  "
             f"util {100 * util:5.1f}%  {row['limit']}")
    return rows


def limiter(row: dict) -> str:
    """What limits a layer's utilization, from its counters."""
    cycles = max(1, row["cycles"])
    if row["macs"] == 0:
        return "no MACs (pooling / data movement)"
    active = row["array_active"] / cycles
    padding = row["macs"] / row["array_macs"] if row.get("array_macs") else 1.0
    if active > 0.8:
        return f"compute-bound (array fed {100 * active:.0f}% of cycles; lane padding wastes {100 * (1 - padding):.0f}%)"
    causes = {"loads (external-memory reads)": row["load_busy"],
              "stores (external-memory writes)": row["store_busy"],
              "dispatch waits (serialized units)": row["dispatch_stall"]}
    top = max(causes, key=causes.get)
    return (f"{top}: {100 * causes[top] / cycles:.0f}% of cycles; array fed {100 * active:.0f}%, "
            f"read stalls {100 * row['mem_read_stall'] / cycles:.0f}%")


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["layer"] for r in rows]
    util = [100 * r["utilization"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(8, 0.4 * len(rows)), 4.5))
    ax.bar(range(len(rows)), util, color="tab:blue")
    ax.set_xticks(range(len(rows)), names, rotation=75, ha="right", fontsize=8)
    ax.set_ylabel("MAC-array utilization (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- simulator speed -----------------------------------------------------------------------------

def simulator_speed(config: AccelConfig, seed: int = 5, repeats: dict | None = None) -> dict:
    """Simulated cycles per wall-clock second on Verilator and Icarus for one random CONV case whose
    body is repeated (``repeats[simulator]`` times, so each run outlasts its start-up), with the fixed
    cost of a run (process start, memory load and dump: measured with an END-only program) taken
    out. Verilator gets more repeats than Icarus so both runs last seconds."""
    repeats = repeats or {"verilator": 400, "icarus": 20}
    case = random_case(config, "conv", seed)
    every_unit = {isa.Unit.LOAD, isa.Unit.COMPUTE, isa.Unit.STORE}
    body = case.words[:-1] if isa.decode_fields(case.words[-1]).opcode is isa.Opcode.END else case.words
    end = [isa.encode(isa.Opcode.END, every_unit)]
    out = {}
    for simulator in runner.SIMULATORS:
        problem = runner.simulator_available(simulator)
        if problem:
            out[simulator] = {"skipped": problem}
            continue
        # A NOP barrier between repetitions keeps them from overlapping.
        words = (body + [isa.encode(isa.Opcode.NOP, every_unit)]) * repeats[simulator] + end
        base = runner.run_words(config, end, case.memory, case.wr_window, simulator=simulator, progress=_log)
        r = runner.run_words(config, words, case.memory, case.wr_window, simulator=simulator, progress=_log)
        dt = max(1e-3, r.wall_seconds - base.wall_seconds)
        out[simulator] = {"cycles": r.cycles, "wall_seconds": r.wall_seconds, "fixed_seconds": base.wall_seconds,
                          "cycles_per_second": (r.cycles - base.cycles) / dt}
    if all("cycles_per_second" in v for v in out.values()):
        out["verilator_over_icarus"] = out["verilator"]["cycles_per_second"] / out["icarus"]["cycles_per_second"]
    return out


# -- main ----------------------------------------------------------------------------------------

def main(out_dir, *, size: int = 227, config_name: str = "default", layers: bool = True,
         speed: bool = True) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(config_name)
    report: dict = {"config": config.name, "tag": config.tag, "size": size}
    t0 = time.perf_counter()
    program, raw, what = squeezenet_program(config, size)
    _log(f"compiled {what} for {config.name} ({config.tag}): {len(program.instructions)} instructions, "
         f"{len(program.layers)} layers, memory {program.memory_size:,} bytes ({time.perf_counter() - t0:.1f} s)")
    report["model"] = what
    total_macs = sum(layer.macs for layer in program.layers)

    _log("whole network, one Verilator run ...")
    r = runner.run_program(program, raw, "verilator", progress=_log)
    util = total_macs / (config.macs_per_cycle * r.cycles)
    _log(f"TOTAL: {r.cycles:,} cycles ({r.cycles / (config.clock_mhz * 1e3):.2f} ms at {config.clock_mhz} MHz), "
         f"{total_macs:,} MACs, utilization {100 * util:.1f}% of {config.rows}x{config.cols}; "
         f"simulated in {r.wall_seconds:.0f} s ({r.cycles_per_second:,.0f} cycles/s)")
    report["total"] = {"cycles": r.cycles, "macs": total_macs, "utilization": util, "done": r.done,
                       "wall_seconds": r.wall_seconds,
                       "counters": {c.name.lower(): v for c, v in r.counters.items()}}
    cyc = max(1, r.cycles)
    _log("  counters: " + ", ".join(f"{c.name.lower()} {100 * v / cyc:.0f}%" for c, v in r.counters.items()
                                    if c not in (isa.Counter.CYCLES, isa.Counter.INSNS)))

    if layers and program.layers:
        _log("per layer (one run each) ...")
        rows = per_layer(program, raw)
        report["layers"] = rows
        _log(f"{'layer':24s} {'op':10s} {'MACs':>12s} {'cycles':>10s} {'util':>6s}  limit")
        for row in rows:
            _log(f"{row['layer']:24s} {row['op']:10s} {row['macs']:>12,} {row['cycles']:>10,} "
                 f"{100 * row['utilization']:5.1f}%  {row['limit']}")
        layer_cycles = sum(row["cycles"] for row in rows)
        _log(f"sum of per-layer cycles {layer_cycles:,} vs whole run {r.cycles:,} "
             f"(difference: overlap across layer boundaries and pipeline fill)")
        worst = sorted(rows, key=lambda row: row["cycles"] * (1 - row["utilization"]), reverse=True)[:3]
        _log("most lost cycles: " + "; ".join(f"{w['layer']} ({w['limit']})" for w in worst))
        plot(rows, out / "utilization.png",
             f"SqueezeNet 1.1 {size}x{size} on {config.name} {config.rows}x{config.cols}: "
             f"total {100 * util:.1f}% utilization, {r.cycles:,} cycles")
        _log(f"wrote {out / 'utilization.png'}")

    if speed:
        _log("simulator speed (one program, repeated; start-up subtracted) ...")
        report["speed"] = {}
        for name in dict.fromkeys(["tiny", config.name]):
            # Icarus runs the 16x16 engine at a few hundred cycles/s: fewer repeats there.
            s = simulator_speed(load_config(name), repeats={"verilator": 400 if name == "tiny" else 100,
                                                            "icarus": 20 if name == "tiny" else 3})
            report["speed"][name] = s
            for sim_name in runner.SIMULATORS:
                v = s[sim_name]
                _log(f"  {name:8s} {sim_name:9s} " + (f"{v['cycles_per_second']:>12,.0f} cycles/s "
                     f"(run {v['wall_seconds']:.1f} s of which {v['fixed_seconds']:.1f} s fixed)"
                     if "cycles_per_second" in v else v["skipped"]))
            if "verilator_over_icarus" in s:
                _log(f"  {name:8s} Verilator is {s['verilator_over_icarus']:.1f}x faster than Icarus")
    (out / "bench_rtl.json").write_text(json.dumps(report, indent=1, default=str))
    _log(f"wrote {out / 'bench_rtl.json'} ({time.perf_counter() - t0:.0f} s)")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--size", type=int, default=227, help="input height and width")
    parser.add_argument("--config", default="default")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer runs")
    parser.add_argument("--no-speed", action="store_true", help="skip the Verilator/Icarus speed comparison")
    a = parser.parse_args()
    main(a.out, size=a.size, config_name=a.config, layers=not a.no_layers, speed=not a.no_speed)
