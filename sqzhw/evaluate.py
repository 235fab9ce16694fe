"""Accuracy of the int8 pipeline against the float model: top-1 agreement over augmented views.

:func:`agreement` quantizes a model with calibration views of the shared images (one seed), then for
``n_views`` augmented views (another seed) compares onnxruntime's float logits (pre-softmax) with
the integer layer reference's logits (:func:`sqzhw.golden.layers.run_quantized`, the final int32
sums dequantized as ``(sum - N*zp) * scale / N``). It also checks the top-1 of the original images
against ``reference_top5.json``.

Run ``python -m sqzhw.evaluate`` for both shared models (``--help`` for options).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .compiler.quantize import DEFAULT_METHOD, METHODS, calibration_inputs, input_range, quantize
from .golden.layers import dequantize_output, quantize_input, run_quantized

__all__ = ["Report", "ImageResult", "agreement", "main", "SHARED", "EVAL_SEED", "CALIB_SEED"]

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
#: Seeds of the evaluation views and of the calibration views (different, so no view is in both).
EVAL_SEED = 2024
CALIB_SEED = 1234
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass
class ImageResult:
    """Top-1 of one original (unaugmented) image: the reference's, the float model's, the int8's."""
    image: str
    reference: int | None
    float_top1: int
    int8_top1: int


@dataclass
class Report:
    """Agreement of the int8 pipeline with the float model."""
    model: str
    preset: str
    method: str
    views: int
    agree: int
    mean_cosine: float
    min_cosine: float
    calibration: int
    originals: list[ImageResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def agreement(self) -> float:
        """Top-1 agreement with the float model, percent."""
        return 100.0 * self.agree / self.views if self.views else 0.0

    @property
    def originals_correct(self) -> int:
        """Original images whose int8 top-1 equals the reference top-1."""
        return sum(r.int8_top1 == r.reference for r in self.originals)

    def __str__(self) -> str:
        lines = [f"{self.model} (preset {self.preset}, calibration {self.method} on {self.calibration} "
                 f"views): "
                 f"top-1 agreement {self.agree}/{self.views} = {self.agreement:.1f} %, "
                 f"logit cosine mean {self.mean_cosine:.5f} min {self.min_cosine:.5f} "
                 f"({self.seconds:.0f} s)"]
        for r in self.originals:
            ok = "ok" if r.int8_top1 == r.reference else "DIFFERS"
            lines.append(f"  {r.image}: reference {r.reference}, float {r.float_top1}, "
                         f"int8 {r.int8_top1}  {ok}")
        return "\n".join(lines)


class _FloatLogits:
    """One onnxruntime session returning the pre-softmax logits (the Softmax's input, if any)."""

    def __init__(self, model_path: Path):
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(model_path))
        g = model.graph
        out = g.output[0].name
        last = [n for n in g.node if out in n.output]
        if last and last[0].op_type == "Softmax":
            out = last[0].input[0]
            if out not in {o.name for o in g.output}:
                g.output.append(onnx.ValueInfoProto(name=out))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = out

    def __call__(self, x_chw: np.ndarray) -> np.ndarray:
        (y,) = self.session.run([self.output], {self.input: np.asarray(x_chw, np.float32)[None]})
        return np.asarray(y, np.float64).ravel()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def _spec(preset, model_path: Path):
    from . import preprocess as pp

    if preset is None:
        preset = pp.guess_preset(model_path)
        if preset is None:
            raise ValueError(f"cannot guess the preprocessing of {str(model_path)!r}; name a preset "
                             f"({sorted(pp.PRESETS)})")
    if isinstance(preset, str):
        if preset not in pp.PRESETS:
            raise ValueError(f"unknown preprocessing preset {preset!r}; presets: {sorted(pp.PRESETS)}")
        return preset, pp.PRESETS[preset]
    return "custom", preset


def agreement(model_path: str | Path, preset=None, n_views: int = 200, seed: int = EVAL_SEED,
              calib_seed: int = CALIB_SEED, calib_count: int = 32, method: str = DEFAULT_METHOD,
              images: str | Path | None = None, progress: Callable[[int, int, str], None] | None = None
              ) -> Report:
    """Top-1 agreement of the int8 pipeline with the float model over augmented views.

    Parameters
    ----------
    model_path : path of a float ONNX model ending in a global average pool (and maybe a softmax).
    preset : name in :data:`sqzhw.preprocess.PRESETS`, a :class:`~sqzhw.program.Preprocess`, or None
        to guess from the model.
    n_views : augmented evaluation views, cycling over the images.
    seed, calib_seed : seeds of the evaluation and calibration augmentations (must differ).
    calib_count : calibration views.
    method : activation range method of :func:`sqzhw.compiler.quantize.quantize`.
    images : folder of images (default ``../shared/images``); a ``reference_top5.json`` there, keyed
        by the model's file name, gives the reference top-1 of the originals.
    progress : callable(index, total, name), called after each view.
    """
    from . import preprocess as pp
    from .compiler.frontend import import_onnx

    if seed == calib_seed:
        raise ValueError("the evaluation and calibration seeds must differ")
    t0 = time.perf_counter()
    model_path = Path(model_path)
    images = Path(images) if images is not None else SHARED / "images"
    files = sorted(f for f in images.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) \
        if images.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no images in {str(images)!r}")
    preset_name, spec = _spec(preset, model_path)
    graph = import_onnx(model_path, input_size=(spec.height, spec.width))
    qgraph = quantize(graph, calibration_inputs(images, spec, calib_count, calib_seed), method=method,
                      input_range=input_range(spec))
    float_logits = _FloatLogits(model_path)

    def both(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sums = run_quantized(qgraph, quantize_input(x, qgraph.input_q))[qgraph.output]
        return float_logits(x), dequantize_output(sums, qgraph)

    refs = {}
    ref_file = images / "reference_top5.json"
    if ref_file.exists():
        refs = json.loads(ref_file.read_text()).get(model_path.name, {})
    pictures = [pp.load_image(f) for f in files]
    originals = []
    for f, picture in zip(files, pictures):
        fl, ql = both(pp.preprocess(picture, spec))
        ref = refs.get(f.name, {}).get("top5", [None])[0]
        originals.append(ImageResult(f.name, ref, int(np.argmax(fl)), int(np.argmax(ql))))

    rng = np.random.default_rng(seed)
    agree, cosines = 0, []
    for i in range(n_views):
        fl, ql = both(pp.preprocess(pp.augment(pictures[i % len(pictures)], rng), spec))
        agree += int(np.argmax(fl) == np.argmax(ql))
        cosines.append(_cosine(fl, ql))
        if progress is not None:
            progress(i, n_views, files[i % len(files)].name)
    return Report(model_path.name, preset_name, method, n_views, agree,
                  float(np.mean(cosines)) if cosines else float("nan"),
                  float(np.min(cosines)) if cosines else float("nan"), calib_count, originals,
                  time.perf_counter() - t0)


def _progress(prefix: str):
    def report(index: int, total: int, name: str) -> None:
        if (index + 1) % 20 == 0 or index + 1 == total:
            print(f"{prefix}: {index + 1}/{total} views", file=sys.stderr, flush=True)
    return report


def main(argv: list[str] | None = None, out: str | Path | None = None) -> int:
    """Print the agreement report for the shared models (or the ones named).

    ``out`` (or ``--out``): a folder to also write the reports to, as ``accuracy.json``. Called with
    ``out`` and no ``argv`` (as ``make bench`` does), the command line is not read.
    """
    if argv is None and out is not None:
        argv = []
    p = argparse.ArgumentParser(prog="python -m sqzhw.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="ONNX models (default: both shared SqueezeNets)")
    p.add_argument("--preset", help="preprocessing preset (default: guessed from the model)")
    p.add_argument("--views", type=int, default=200, help="augmented evaluation views (default 200)")
    p.add_argument("--calib", type=int, default=32, help="calibration views (default 32)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD, help="activation range method")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help="evaluation seed")
    p.add_argument("--images", help="image folder (default ../shared/images)")
    p.add_argument("--out", help="folder to write accuracy.json to")
    args = p.parse_args(argv)
    out = args.out if args.out is not None else out
    reports = []
    models = args.models or [SHARED / "models" / f"squeezenet{v}.onnx" for v in ("1.1", "1.0")]
    for m in models:
        if not Path(m).exists():
            print(f"error: model {str(m)!r} does not exist", file=sys.stderr)
            return 2
        try:
            report = agreement(m, args.preset, args.views, args.seed, calib_count=args.calib,
                               method=args.method, images=args.images, progress=_progress(Path(m).name))
        except (ValueError, OSError) as exc:  # bad model, preset or image folder: one line, no traceback
            print(f"error: {m}: {exc}", file=sys.stderr)
            return 2
        print(report, flush=True)
        reports.append(dict(dataclasses.asdict(report), agreement=report.agreement))
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "accuracy.json").write_text(json.dumps(reports, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
