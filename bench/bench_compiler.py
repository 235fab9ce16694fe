"""Compile time for SqueezeNet 1.1, golden-model time per image and onnxruntime float time per image."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO.parent / "shared" / "models"


def _model(out: Path) -> tuple[Path, str]:
    real = MODELS / "squeezenet1.1.onnx"
    if real.exists():
        return real, "real"
    from sqzhw.models import build_squeezenet, save_model
    path = out / "squeezenet1.1-generated.onnx"
    save_model(build_squeezenet("1.1", style="deepscale", input_size=(227, 227), seed=0), path)
    return path, "generated"


def main(out: Path) -> None:
    from sqzhw import preprocess as pp
    from sqzhw import runtime
    from sqzhw.compiler import frontend, quantize
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.float_ref import run_onnxruntime
    from sqzhw.config import load_config

    model, kind = _model(out)
    spec = pp.PRESETS["deepscale-1.1"]
    figures: dict[str, float] = {}
    programs = {}
    for config_name in ("default", "tiny"):
        config = load_config(config_name)
        t0 = time.perf_counter()
        graph = frontend.import_onnx(model, input_size=(spec.height, spec.width))
        t1 = time.perf_counter()
        qgraph = quantize.quantize(graph, quantize.calibration_inputs(None, spec, count=8, seed=1),
                                   input_range=quantize.input_range(spec))
        t2 = time.perf_counter()
        program = compile_graph(qgraph, config, spec)
        t3 = time.perf_counter()
        print(f"SqueezeNet 1.1 ({kind}) on {config_name}: import {t1 - t0:.2f} s, quantize "
              f"(8 calibration inputs) {t2 - t1:.2f} s, codegen {t3 - t2:.2f} s, total {t3 - t0:.2f} s, "
              f"{len(program.instructions)} instructions")
        figures[f"compile_s_{config_name}"] = t3 - t0
        figures[f"codegen_s_{config_name}"] = t3 - t2
        programs[config_name] = program

    program = programs["default"]
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, (3, spec.height, spec.width)).astype(np.float32)
    n = 3
    runtime.run_golden(program, x)  # warm up
    t0 = time.perf_counter()
    for _ in range(n):
        runtime.run_golden(program, x)
    golden = (time.perf_counter() - t0) / n
    run_onnxruntime(model, x, logits=True)
    t0 = time.perf_counter()
    for _ in range(n):
        run_onnxruntime(model, x, logits=True)
    ort = (time.perf_counter() - t0) / n
    print(f"golden model (ISA executor, {program.config.name}): {golden * 1e3:.1f} ms/image; "
          f"onnxruntime float: {ort * 1e3:.1f} ms/image; ratio golden/onnxruntime = {golden / ort:.1f}x")
    figures.update(golden_ms=golden * 1e3, onnxruntime_ms=ort * 1e3, ratio=golden / ort)
    (out / "compiler.json").write_text(json.dumps(figures, indent=2))
