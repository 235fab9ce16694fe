"""The ``sqzhw`` command line: compile, run, inspect and compare SqueezeNet programs.

Every command has ``--help``. Errors that a user can fix (a bad model, a corrupted program, a missing
file) print one line naming the problem and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class UserError(Exception):
    """An error with a message for the user (no traceback)."""


# -- helpers -----------------------------------------------------------------------------------

def _progress(prefix: str):
    """A progress callback ``(index, total, name)``: one rewritten line on a terminal, one line per
    step in a log."""
    tty = sys.stderr.isatty()

    def report(index: int, total: int, name: str) -> None:
        step = f"{prefix} [{min(index + 1, total)}/{total}] {name}"
        if tty:
            print(f"\r{step:<70}", end="" if index + 1 < total else "\n", file=sys.stderr, flush=True)
        else:
            print(step, file=sys.stderr, flush=True)
    return report


def _images(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise UserError(f"image {str(p)!r} does not exist")
    if not files:
        raise UserError(f"no images found in {paths}")
    return files


def _default_labels(num_classes: int) -> list[str] | None:
    labels = SHARED / "models" / "imagenet_labels.txt"
    if num_classes == 1000 and labels.exists():
        return labels.read_text().splitlines()
    return None


def _read_labels(path: str | None, num_classes: int) -> list[str] | None:
    if path is None:
        return _default_labels(num_classes)
    try:
        labels = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read labels {path!r}: {exc.strerror}") from None
    if len(labels) != num_classes:
        raise UserError(f"labels file {path!r} has {len(labels)} lines, the model has {num_classes} classes")
    return labels


def _preprocess_from_args(args, graph=None, model_path: str | None = None):
    """The preprocessing spec: a named preset (or the one guessed from the model), overridden by
    explicit flags."""
    from . import preprocess as pp
    from .program import Preprocess

    preset_name = args.preset or pp.guess_preset(model_path if graph is None else graph)
    if preset_name is not None:
        if preset_name not in pp.PRESETS:
            raise UserError(f"unknown preset {preset_name!r}; presets: {sorted(pp.PRESETS)}")
        spec = pp.PRESETS[preset_name]
    else:
        shape = graph.input_shape if graph is not None else (3, 224, 224)
        spec = Preprocess(height=shape[1], width=shape[2])
    values = {"height": spec.height, "width": spec.width, "channel_order": spec.channel_order,
              "mean": spec.mean, "std": spec.std, "pixel_scale": spec.pixel_scale}
    if args.size:
        values["height"], values["width"] = args.size
    if args.mean:
        values["mean"] = tuple(args.mean * 3 if len(args.mean) == 1 else args.mean)
    if args.scale:
        values["std"] = tuple(1.0 / s for s in (args.scale * 3 if len(args.scale) == 1 else args.scale))
    if args.std:
        values["std"] = tuple(args.std * 3 if len(args.std) == 1 else args.std)
    if args.pixel_scale is not None:
        values["pixel_scale"] = args.pixel_scale
    if args.bgr:
        values["channel_order"] = "BGR"
    if args.rgb:
        values["channel_order"] = "RGB"
    for key in ("mean", "std"):
        if len(values[key]) != 3:
            raise UserError(f"--{key} takes 1 or 3 values, got {len(values[key])}")
    return Preprocess(**values), preset_name


def _add_preprocess_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing (stored in the compiled program)")
    g.add_argument("--preset", help="named preprocessing: deepscale-1.1, deepscale-1.0, torchvision "
                                    "(default: guessed from the model)")
    g.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default: the model's)")
    g.add_argument("--mean", nargs="+", type=float, help="per-channel mean subtracted (model channel order)")
    g.add_argument("--scale", nargs="+", type=float, help="per-channel factor applied after the mean (Caffe style)")
    g.add_argument("--std", nargs="+", type=float, help="per-channel divisor applied after the mean")
    g.add_argument("--pixel-scale", type=float, help="factor applied to 0..255 pixels first (1/255 for 0..1)")
    order = g.add_mutually_exclusive_group()
    order.add_argument("--bgr", action="store_true", help="the model takes BGR channels")
    order.add_argument("--rgb", action="store_true", help="the model takes RGB channels")


def _print_top(name: str, probs: np.ndarray, labels: list[str] | None, top: int, extra: str = "") -> None:
    order = np.argsort(-probs)[:top]
    print(f"{name}{extra}")
    for rank, k in enumerate(order):
        label = labels[k] if labels else f"class {k}"
        print(f"  {rank + 1}. {k:4d} {probs[k]:8.4f}  {label}")


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


# -- commands ----------------------------------------------------------------------------------

def cmd_compile(args) -> int:
    from .compiler import frontend, quantize
    from .compiler.codegen import compile_graph
    from .config import load_config

    config = load_config(args.config)
    t0 = time.perf_counter()
    graph = frontend.import_onnx(args.model, input_size=tuple(args.size) if args.size else None)
    spec, preset = _preprocess_from_args(args, graph, args.model)
    if (spec.height, spec.width) != graph.input_shape[1:]:
        graph = frontend.import_onnx(args.model, input_size=(spec.height, spec.width))
    print(f"imported {args.model}: {len(graph.nodes)} layers, input {graph.input_shape}, "
          f"preprocessing {preset or 'from flags'}", file=sys.stderr)
    calib = quantize.calibration_inputs(args.calib, spec, count=args.calib_count, seed=1234)
    qgraph = quantize.quantize(graph, calib, input_range=quantize.input_range(spec))
    program = compile_graph(qgraph, config, spec, progress=_progress("compiling"))
    labels = _read_labels(args.labels, program.output.channels)
    if labels:
        program.notes["labels"] = labels
    program.model_name = Path(args.model).stem
    program.save(args.output)
    dt = time.perf_counter() - t0
    print(f"wrote {args.output}: {len(program.instructions)} instructions, {len(program.image)} weight "
          f"bytes, config {config.name} ({config.tag}), {dt:.1f} s")
    return 0


def _checkout_on_path(folder: str) -> None:
    """``sim`` and ``boards`` are not installed (generic names): import them from the checkout."""
    if not (REPO / folder / "__init__.py").exists():
        raise UserError(f"this needs the sqzhw source checkout: {REPO / folder} is missing")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


class _BoardSession:
    """``--backend board``: one link to the board for every image of a run. The program crosses the
    link once (it is the longest transfer: 1.3 MB for SqueezeNet 1.1), each image's input after it;
    both show progress. A board that has ``CHECKSUM_MEM`` and still holds the program (an earlier
    run since it was configured) gets none of it again: the load compares CRC-32s first."""

    def __init__(self, program, port: str | None, baud: int | None, check: bool = False) -> None:
        if not port:
            raise UserError("--backend board needs --port (e.g. /dev/ttyUSB0)")
        from .driver import Accelerator
        from .driver.transports import open_serial
        self.program, self.check = program, check
        self.macs = sum(layer.macs for layer in program.layers)
        self.transport = open_serial(port, baud)   # without a rate: the one the board answers at
        self.accelerator = Accelerator(self.transport, progress=_transfer_progress())
        self.loaded = False

    def __call__(self, image: Path):
        from . import runtime

        acc = self.accelerator
        if not self.loaded:
            # A program still in the board's memory (an earlier run, CRC-32 checked) is not sent again.
            result = acc.load(self.program)
            print(f"load {self.program.model_name or 'program'}: {result.summary()} ({result.seconds:.2f} s)",
                  file=sys.stderr, flush=True)
            self.loaded = True
        p = self.program
        x = runtime.prepare_image(p, image)
        logits = acc.infer(x)
        figures = {k.name.lower(): v for k, v in acc.last.counters.items()}
        figures["utilization"] = self.macs / (p.config.macs_per_cycle * max(1, figures["cycles"]))
        figures["seconds"] = round(acc.last.seconds, 3)   # link transfers included
        figures["baud"] = self.transport.baud
        if self.check:
            # The golden model on the same input bytes: the board's int32 sums must equal it bit for bit.
            golden_sums = runtime.run_golden(p, x).sums
            figures["bit_exact_with_golden"] = bool(np.array_equal(acc.last.sums, golden_sums))
        return logits, figures

    def close(self) -> None:
        self.accelerator.close()


def _transfer_progress():
    """A driver progress callback ``(done, total, what)``: one rewritten line per transfer on a
    terminal; in a log, a line when a transfer of 4 KiB or more ends, and at each quarter of one of
    256 KiB or more."""
    tty = sys.stderr.isatty()
    state = {"what": None, "quarter": 0}

    def report(done: int, total: int, what: str) -> None:
        if what != state["what"]:
            state.update(what=what, quarter=0)
        line = f"{what}: {done:,}/{total:,} bytes"
        if tty:
            print(f"\r{line:<78}", end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif total >= 4096 and 4 * done >= (state["quarter"] + 1) * total:
            state["quarter"] = 4 * done // total
            if done == total or total >= 256 << 10:
                print(line, file=sys.stderr, flush=True)
    return report


def _backend(program, backend: str, port: str | None = None, baud: int | None = None, check: bool = False):
    """A callable ``image -> (logits, figures)`` for ``backend`` (float pre-softmax logits and a dict
    of counters/figures), with a ``close()``."""
    from . import runtime

    if backend == "board":
        return _BoardSession(program, port, baud, check)

    class _Local:
        def __call__(self, image: Path):
            if backend == "golden":
                result = runtime.run_golden(program, image)
                return result.logits, {"est_cycles": result.cycles_estimate}
            _checkout_on_path("sim")
            from sim.runner import SimError, rtl_backend_run
            try:
                return rtl_backend_run(program, image)
            except SimError as exc:  # a build failure, an engine error status or a timeout
                raise UserError(f"RTL simulation of {image}: {exc}") from None

        def close(self) -> None:
            pass

    if backend not in ("golden", "rtl"):
        raise UserError(f"unknown backend {backend!r}")
    return _Local()


def _plain(value):
    """A figure as JSON takes it (NumPy integers as int)."""
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value


def cmd_run(args) -> int:
    from .program import Program

    program = Program.load(args.program)
    labels = program.notes.get("labels")
    results = []
    mismatches = 0
    images = _images(args.images)
    if args.check and args.backend != "board":
        raise UserError("--check compares a board's results with the golden model: it needs --backend board "
                        "(--backend rtl always checks)")
    run = _backend(program, args.backend, args.port, args.baud, args.check)
    try:
        for image in images:
            logits, figures = run(image)
            mismatches += figures.get("bit_exact_with_golden") is False
            probs = _softmax(logits) if program.output.softmax else logits
            order = [int(k) for k in np.argsort(-probs)[:args.top]]
            if args.json:
                results.append({"image": str(image), "top5": [int(k) for k in np.argsort(-probs)[:5]],
                                "top": order, "logits": [float(v) for v in logits],
                                "labels": [labels[k] for k in order] if labels else None,
                                **{k: _plain(v) for k, v in figures.items()}})
            else:
                extra = ""
                if "cycles" in figures:
                    extra = f"  ({figures['cycles']:,} cycles, array utilization {figures['utilization']:.1%}"
                    if "bit_exact_with_golden" in figures:
                        extra += (", bit-exact with the golden model" if figures["bit_exact_with_golden"]
                                  else ", DIFFERS from the golden model")
                    if "seconds" in figures:
                        extra += f", {figures['seconds']:.2f} s with the link"
                    extra += ")"
                elif "est_cycles" in figures:
                    extra = f"  (estimated {figures['est_cycles']} cycles)"
                _print_top(str(image), probs, labels, args.top, extra)
    finally:
        run.close()
    if args.json:
        for r in results:
            print(json.dumps(r))
    if mismatches:
        print(f"sqzhw run: {mismatches} image(s) differ from the golden model", file=sys.stderr)
        return 1
    return 0


def cmd_selftest(args) -> int:
    from .config import load_config
    from .driver import Accelerator
    from .driver.selftest import run_selftest
    from .driver.transports import open_serial

    config = load_config(args.config) if args.config else None
    tty = sys.stdout.isatty() and not args.json

    def shown(check) -> None:
        if not args.json:
            print(f"{'PASS' if check.passed else 'FAIL'}  {check.name:<12} {check.detail}  "
                  f"({check.seconds:.2f} s)", flush=True)

    progress = _transfer_progress() if tty else None
    with Accelerator(open_serial(args.port, args.baud), progress=progress) as acc:
        report = run_selftest(acc, config, block_bytes=args.block_bytes, memory_bytes=args.memory_bytes,
                              engine=not args.no_engine, progress=shown)
    if args.json:
        print(json.dumps({"passed": report.passed, "checks": [vars(c) for c in report.checks]}))
    else:
        print("self-test " + ("passed" if report.passed else "FAILED"))
    return 0 if report.passed else 1


def cmd_info(args) -> int:
    from .program import Program

    program = Program.load(args.program)
    c = program.config
    print(f"program {args.program}: model {program.model_name or '?'}, config {c.name} ({c.tag})")
    print(f"  {len(program.instructions)} instructions, weight image {len(program.image)} bytes, "
          f"memory {program.memory_size} bytes")
    for r in program.regions:
        print(f"  region {r.name:<14} {r.kind:<12} 0x{r.base:08x} .. 0x{r.end:08x} ({r.size} bytes)")
    p = program.input.preprocess
    print(f"  input {p.height}x{p.width} {p.channel_order}, mean {p.mean}, std {p.std}, "
          f"pixel scale {p.pixel_scale}; int8 scale {program.input.scale:.6g} zp {program.input.zero_point}"
          + (f"; im2col {program.input.lowering.kernel_h}x{program.input.lowering.kernel_w}"
             if program.input.lowering else ""))
    header = f"{'layer':<28} {'op':<18} {'in':>14} {'out':>14} {'MACs':>12} {'wbytes':>8} {'insns':>6} {'est cyc':>10} {'util':>6}"
    print(header)
    print("-" * len(header))
    total_macs = total_cycles = 0
    for layer in program.layers:
        util = layer.macs / (c.macs_per_cycle * layer.est_cycles) if layer.est_cycles else 0.0
        total_macs += layer.macs
        total_cycles += layer.est_cycles
        shape = lambda s: "x".join(map(str, s))  # noqa: E731
        print(f"{layer.name[:28]:<28} {layer.op:<18} {shape(layer.in_shape):>14} {shape(layer.out_shape):>14} "
              f"{layer.macs:>12,} {layer.weight_bytes:>8,} {layer.insn_count:>6} {layer.est_cycles:>10,} {util:>6.1%}")
    print("-" * len(header))
    util = total_macs / (c.macs_per_cycle * total_cycles) if total_cycles else 0.0
    print(f"{'total':<28} {'':<18} {'':>14} {'':>14} {total_macs:>12,} {len(program.image):>8,} "
          f"{len(program.instructions):>6} {total_cycles:>10,} {util:>6.1%}")
    print(f"  at {c.clock_mhz} MHz: {total_cycles / (c.clock_mhz * 1e6) * 1e3:.2f} ms per image (estimate)")
    if args.plot:
        _plot_layers(program, args.plot)
        print(f"  wrote {args.plot}")
    return 0


def _plot_layers(program, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = program.config
    layers = [layer for layer in program.layers if layer.est_cycles]
    names = [layer.name for layer in layers]
    cycles = [layer.est_cycles for layer in layers]
    util = [layer.macs / (c.macs_per_cycle * layer.est_cycles) for layer in layers]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, len(names) * 0.35), 7), sharex=True)
    ax1.bar(range(len(names)), cycles)
    ax1.set_ylabel("estimated cycles")
    ax1.set_title(f"{program.model_name} on {c.name} ({c.rows}x{c.cols})")
    ax2.bar(range(len(names)), [100 * u for u in util], color="tab:green")
    ax2.set_ylabel("array utilization %")
    ax2.set_ylim(0, 100)
    ax2.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cmd_disasm(args) -> int:
    from . import isa
    from .program import Program

    program = Program.load(args.program)
    starts = {layer.insn_start: layer.name for layer in program.layers}
    lo, hi = 0, len(program.instructions)
    if args.range:
        try:
            a, _, b = args.range.partition(":")
            lo, hi = int(a or 0), int(b or hi)
        except ValueError:
            raise UserError(f"--range takes START:END, got {args.range!r}") from None
    for i in range(lo, min(hi, len(program.instructions))):
        if i in starts:
            print(f"; --- {starts[i]}")
        print(f"{i:6d}: {isa.disassemble(program.instructions[i])}")
    return 0


def cmd_float(args) -> int:
    from . import preprocess as pp
    from .compiler import frontend
    from .compiler.float_ref import run_onnxruntime

    graph = frontend.import_onnx(args.model, input_size=tuple(args.size) if args.size else None)
    spec, _ = _preprocess_from_args(args, graph, args.model)
    labels = _read_labels(args.labels, graph.shapes[graph.output][0])
    results = []
    for image in _images(args.images):
        x = pp.preprocess(pp.load_image(image), spec)
        out = run_onnxruntime(args.model, x, logits=True)
        logits = np.asarray(out.get("logits", out["output"]), dtype=np.float64).reshape(-1)
        probs = _softmax(logits) if graph.softmax else logits
        if args.json:
            results.append({"image": str(image), "top5": [int(k) for k in np.argsort(-probs)[:5]],
                            "logits": [float(v) for v in logits]})
        else:
            _print_top(str(image), probs, labels, args.top, "  (float, onnxruntime)")
    for r in results:
        print(json.dumps(r))
    return 0


def cmd_demo(args) -> int:
    """The main job: compile the real SqueezeNet 1.1 (or a generated one), classify the sample
    images with the int8 golden model and compare with the float model."""
    from . import preprocess as pp
    from . import runtime
    from .compiler import frontend, quantize
    from .compiler.codegen import compile_graph
    from .compiler.float_ref import run_onnxruntime
    from .config import load_config

    config = load_config(args.config)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = SHARED / "models" / "squeezenet1.1.onnx"
    images_dir = SHARED / "images"
    if model.exists():
        preset = pp.PRESETS["deepscale-1.1"]
        print(f"model: {model} (real, pretrained)")
    else:
        from .models import build_squeezenet, save_model
        model = out_dir / "squeezenet1.1-generated.onnx"
        save_model(build_squeezenet("1.1", style="deepscale", input_size=(227, 227), seed=0), model)
        preset = pp.PRESETS["deepscale-1.1"]
        print(f"model: {model} (generated with random weights: {SHARED / 'models'} is absent)")
    graph = frontend.import_onnx(model, input_size=(preset.height, preset.width))
    calib_dir = images_dir if images_dir.exists() else None
    qgraph = quantize.quantize(graph, quantize.calibration_inputs(calib_dir, preset, count=32, seed=1234),
                               input_range=quantize.input_range(preset))
    program = compile_graph(qgraph, config, preset, progress=_progress("compiling"))
    labels = _default_labels(program.output.channels)
    if labels:
        program.notes["labels"] = labels
    program.model_name = model.stem
    path = out_dir / f"{model.stem}.{config.name}.sqz"
    program.save(path)
    print(f"compiled to {path} for config {config.name} ({config.tag}): "
          f"{len(program.instructions)} instructions")
    images = _images([str(images_dir)]) if images_dir.exists() else []
    if not images:
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (preset.height, preset.width, 3), dtype=np.uint8)]
    agree = 0
    for image in images:
        x = runtime.prepare_image(program, image)
        result = runtime.run_golden(program, x)
        fl_out = run_onnxruntime(model, x, logits=True)
        fl = np.asarray(fl_out.get("logits", fl_out["output"])).reshape(-1)
        k_int, k_float = int(np.argmax(result.logits)), int(np.argmax(fl))
        agree += k_int == k_float
        name = image.name if isinstance(image, Path) else "random image"
        label = labels[k_int] if labels else f"class {k_int}"
        print(f"{name:<14} int8: {k_int:4d} {label[:40]:<40} float: {k_float:4d}  "
              f"{'agree' if k_int == k_float else 'DIFFER'}")
    print(f"top-1 agreement int8 vs float: {agree}/{len(images)}")
    return 0


# -- argument parsing --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from .config import preset_names

    parser = argparse.ArgumentParser(prog="sqzhw", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="compile an ONNX SqueezeNet to a .sqz program",
                       description="Import, quantize (int8, post-training) and compile an ONNX model.")
    p.add_argument("model", help="ONNX model")
    p.add_argument("-o", "--output", required=True, help="program file to write (.sqz)")
    p.add_argument("--config", default="default", help=f"accelerator config: {', '.join(preset_names())} or a .toml")
    p.add_argument("--calib", help="folder of calibration images (default: generated inputs)")
    p.add_argument("--calib-count", type=int, default=32, help="calibration inputs (default 32)")
    p.add_argument("--labels", help="class names, one per line (default: ImageNet's for 1000 classes)")
    _add_preprocess_flags(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="classify images with a compiled program",
                       description="Run a .sqz program on images and print the top classes.")
    p.add_argument("program", help=".sqz program")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--backend", choices=["golden", "rtl", "board"], default="golden",
                   help="golden model (default), the RTL in Verilator, or a board")
    p.add_argument("--port", help="serial port of the board (--backend board)")
    p.add_argument("--baud", type=int, help="UART rate of the board's bitstream (default: try each board's "
                                            "rate, `make boards`, and keep the one that answers)")
    p.add_argument("--check", action="store_true",
                   help="--backend board: also run the golden model on each input and report whether the "
                        "board's int32 sums equal it bit for bit (exit status 1 if not)")
    p.add_argument("--top", type=int, default=5, help="classes to print (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per image (top5, logits, ...)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("selftest", help="bring-up check of a board: link, memory buses, memory, engine",
                       description="Check a board step by step through its host link: the link, the "
                                   "external memory's data and address buses, random blocks at both "
                                   "ends of the memory, and a small network bit-exact with the golden "
                                   "model. Overwrites the board's memory.")
    p.add_argument("--port", required=True, help="serial port of the board")
    p.add_argument("--baud", type=int, help="UART rate of the bitstream (default: the one it answers at)")
    p.add_argument("--config", help="the bitstream's config (default: the preset of the tag the board reports)")
    p.add_argument("--block-bytes", type=int, default=64 << 10,
                   help="random bytes written and read back at each end of the memory (default 64 KiB)")
    p.add_argument("--memory-bytes", type=int, help="test only this much of the memory (default: all)")
    p.add_argument("--no-engine", action="store_true", help="skip the engine check")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("info", help="per-layer table of a compiled program",
                       description="Shapes, MACs, weight bytes, instructions and estimated cycles per layer.")
    p.add_argument("program", help=".sqz program")
    p.add_argument("--plot", help="also write a PNG of per-layer cycles and utilization")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("disasm", help="disassemble a compiled program",
                       description="Print every instruction of a .sqz program.")
    p.add_argument("program", help=".sqz program")
    p.add_argument("--range", help="START:END instruction indices")
    p.set_defaults(func=cmd_disasm)

    p = sub.add_parser("float", help="run the float model in onnxruntime with the same preprocessing",
                       description="Classify images with the float ONNX model (onnxruntime).")
    p.add_argument("model", help="ONNX model")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--top", type=int, default=5, help="classes to print (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--labels", help="class names, one per line")
    _add_preprocess_flags(p)
    p.set_defaults(func=cmd_float)

    p = sub.add_parser("demo", help="compile SqueezeNet 1.1 and classify the sample images (the main job)",
                       description=cmd_demo.__doc__)
    p.add_argument("--config", default="default", help="accelerator config (default: default)")
    p.add_argument("--out", default="build/demo", help="output folder (default build/demo)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .config import ConfigError
    from .program import ProgramError

    expected: tuple[type[BaseException], ...] = (UserError, ConfigError, ProgramError, FileNotFoundError)
    try:
        from .compiler.frontend import FrontendError
        expected += (FrontendError,)
    except ImportError:
        pass
    try:
        from .compiler.codegen import CodegenError
        expected += (CodegenError,)
    except ImportError:
        pass
    try:
        from .driver import DriverError  # link, timeout, config-tag and engine errors of a board
        expected += (DriverError,)
    except ImportError:
        pass
    try:
        return args.func(args)
    except expected as exc:
        print(f"sqzhw {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sqzhw info ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
