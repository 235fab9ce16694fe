"""Image loading, preprocessing presets and augmentation.

:func:`preprocess` follows ``../shared/models/README.md`` exactly: Pillow
``Image.fromarray(rgb).resize((W, H), Image.BILINEAR)``, then the model's channel order, then
``(pixel * pixel_scale - mean) / std`` per channel (mean and std in the model's channel order), as
``(3, H, W)`` float32. The spec is a :class:`sqzhw.program.Preprocess`, the same object a compiled
program carries, so the host prepares inputs the way the compiler assumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .program import Preprocess

__all__ = ["PRESETS", "IMAGE_SUFFIXES", "load_image", "preprocess", "guess_preset", "augment", "image_files"]

PRESETS: dict[str, Preprocess] = {
    # DeepScale SqueezeNet 1.1 (Caffe): BGR raw pixels; the mean is folded into conv1.
    "deepscale-1.1": Preprocess(height=227, width=227, channel_order="BGR"),
    # DeepScale SqueezeNet 1.0 (Caffe): BGR minus the per-channel mean (B, G, R).
    "deepscale-1.0": Preprocess(height=227, width=227, channel_order="BGR", mean=(104.0, 117.0, 123.0)),
    # torchvision / model zoo: RGB in [0, 1], ImageNet mean and std.
    "torchvision": Preprocess(height=224, width=224, channel_order="RGB", mean=(0.485, 0.456, 0.406),
                              std=(0.229, 0.224, 0.225), pixel_scale=1 / 255),
}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff", ".gif")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grey, palette and alpha images converted)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except OSError as e:
        raise ValueError(f"{str(path)!r} is not a readable image: {e}") from e


def _as_rgb(image_rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(image_rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {a.dtype} {a.shape}")
    return a


def preprocess(image_rgb: np.ndarray, spec: Preprocess) -> np.ndarray:
    """Turn an ``(H, W, 3)`` uint8 RGB image into the model's ``(3, height, width)`` float32 input.

    Bilinear resize with Pillow (skipped when the size already matches), channel order, then
    ``(pixel * pixel_scale - mean) / std``.
    """
    a = _as_rgb(image_rgb)
    if spec.channel_order not in ("RGB", "BGR"):
        raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {spec.channel_order!r}")
    if a.shape[:2] != (spec.height, spec.width):
        a = np.asarray(Image.fromarray(a).resize((spec.width, spec.height), Image.BILINEAR))
    x = a.astype(np.float32)
    if spec.channel_order == "BGR":
        x = x[:, :, ::-1]
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    x = (x * np.float32(spec.pixel_scale) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def guess_preset(model_path_or_graph) -> str | None:
    """Name of the :data:`PRESETS` entry a model most likely expects, or None.

    A 3x227x227 input is DeepScale's Caffe SqueezeNet (the shared models): 1.0 if the first conv is
    7x7, 1.1 if it is 3x3. A 3x224x224 input is torchvision / model-zoo style. Accepts a path, an
    ``onnx.ModelProto`` or a :class:`sqzhw.compiler.graph.Graph`.
    """
    from .compiler.graph import Conv, Graph

    graph = model_path_or_graph
    if not isinstance(graph, Graph):
        from .compiler.frontend import FrontendError, import_onnx
        try:
            graph = import_onnx(graph)
        except FrontendError:
            return None
    if graph.input_shape == (3, 227, 227):
        first = next((n for n in graph.nodes if isinstance(n, Conv) and n.input == graph.input), None)
        if first is None:
            return None
        k = first.weight.shape[2:]
        return {(7, 7): "deepscale-1.0", (3, 3): "deepscale-1.1"}.get(tuple(k))
    if graph.input_shape == (3, 224, 224):
        return "torchvision"
    return None


def augment(image_rgb: np.ndarray, rng: np.random.Generator, *, min_area: float = 0.5,
            max_aspect: float = 4 / 3, flip: float = 0.5, brightness: float = 0.2,
            contrast: float = 0.2) -> np.ndarray:
    """A randomly augmented view of an image, for accuracy evaluation over many views.

    A random crop covering ``min_area``..1 of the image with an aspect ratio within ``1/max_aspect ..
    max_aspect`` of the image's (so a random scale and position), resized back to the original size
    (bilinear), a horizontal flip with probability ``flip``, then brightness and contrast each scaled
    by a factor in ``1 +- brightness`` / ``1 +- contrast``. Returns ``(H, W, 3)`` uint8 RGB of the input's size.
    """
    a = _as_rgb(image_rgb)
    h, w = a.shape[:2]
    # Area fraction and aspect ratio relative to the image's own (1, 1 = the whole image).
    area = rng.uniform(min_area, 1.0)
    aspect = np.exp(rng.uniform(-np.log(max_aspect), np.log(max_aspect)))
    ch = int(round(min(h, max(1.0, h * np.sqrt(area / aspect)))))
    cw = int(round(min(w, max(1.0, w * np.sqrt(area * aspect)))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    crop = Image.fromarray(a[y0:y0 + ch, x0:x0 + cw]).resize((w, h), Image.BILINEAR)
    x = np.asarray(crop).astype(np.float32)
    if rng.random() < flip:
        x = x[:, ::-1]
    x = x * rng.uniform(1 - brightness, 1 + brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, case-insensitive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
