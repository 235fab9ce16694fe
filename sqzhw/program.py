"""A compiled program: what the compiler emits, the golden model and the hardware run, the driver loads.

A :class:`Program` holds the instruction stream, the weight image, the external-memory map, how the
host prepares an input (preprocessing, quantization, the first layer's im2col lowering, the
block-major layout) and how it reads the output back. It carries the :class:`AccelConfig` tag it was
compiled for; backends refuse a program for another configuration.

File format (``.sqz``), little-endian::

    magic "SQZHWPRG" | u32 format version | u32 header bytes | u32 instruction bytes |
    u32 image bytes | u32 CRC-32 of everything after this field | header (UTF-8 JSON) |
    instructions | weight image
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import isa
from .config import AccelConfig

__all__ = ["FORMAT_VERSION", "ProgramError", "Region", "Segment", "TensorPlacement", "Preprocess",
           "Im2col", "InputSpec", "OutputSpec", "LayerInfo", "Program"]

FORMAT_VERSION = 1
_MAGIC = b"SQZHWPRG"
_FIXED = struct.Struct("<8sIIIII")


class ProgramError(ValueError):
    """A program file or object that cannot be used (truncated, corrupted, wrong version or config)."""


@dataclass(frozen=True)
class Region:
    """A named range of external memory. ``kind`` is one of ``instructions``, ``weights``, ``input``,
    ``activations``, ``output``."""
    name: str
    kind: str
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass(frozen=True)
class Segment:
    """Logical channels ``logical .. logical+count-1`` of a tensor live in physical channels
    ``physical .. physical+count-1`` of its block-major placement."""
    logical: int
    physical: int
    count: int


@dataclass(frozen=True)
class TensorPlacement:
    """Where an int8 activation tensor lives in external memory (block-major, see :mod:`sqzhw.isa`).

    Physical channel ``p`` of pixel ``(y, x)`` is at byte
    ``base + (p // L) * height * width * L + (y * width + x) * L + p % L``.
    """
    name: str
    base: int
    channels: int
    height: int
    width: int
    blocks: int
    segments: tuple[Segment, ...]
    scale: float
    zero_point: int

    def physical_channels(self) -> np.ndarray:
        """Physical channel of each logical channel."""
        index = np.empty(self.channels, dtype=np.int64)
        for s in self.segments:
            index[s.logical:s.logical + s.count] = np.arange(s.physical, s.physical + s.count)
        return index

    def size_bytes(self, block: int) -> int:
        return self.blocks * self.height * self.width * block

    def pack(self, chw: np.ndarray, block: int, fill: int | None = None) -> bytes:
        """Lay out an int8 ``(C, H, W)`` tensor as its bytes in external memory; unused lanes get
        ``fill`` (default: the zero point)."""
        if chw.shape != (self.channels, self.height, self.width):
            raise ProgramError(f"tensor {self.name!r}: expected shape {(self.channels, self.height, self.width)},"
                               f" got {chw.shape}")
        fill = self.zero_point if fill is None else fill
        phys = np.full((self.blocks * block, self.height, self.width), fill, dtype=np.int8)
        phys[self.physical_channels()] = chw
        # (blocks, L, H, W) -> (blocks, H, W, L)
        return phys.reshape(self.blocks, block, self.height, self.width).transpose(0, 2, 3, 1).tobytes()

    def unpack(self, raw: bytes, block: int) -> np.ndarray:
        """Inverse of :meth:`pack`: the ``(C, H, W)`` int8 tensor from its bytes."""
        n = self.size_bytes(block)
        if len(raw) < n:
            raise ProgramError(f"tensor {self.name!r}: need {n} bytes, got {len(raw)}")
        arr = np.frombuffer(raw[:n], dtype=np.int8).reshape(self.blocks, self.height, self.width, block)
        phys = arr.transpose(0, 3, 1, 2).reshape(self.blocks * block, self.height, self.width)
        return phys[self.physical_channels()]


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes the float input tensor: resize to ``height x width`` (bilinear),
    order channels, then ``(pixel * pixel_scale - mean) / std`` per channel (in the model's channel
    order)."""
    height: int
    width: int
    channel_order: str = "RGB"          # "RGB" or "BGR"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pixel_scale: float = 1.0            # 1/255 for inputs in [0, 1]


@dataclass(frozen=True)
class Im2col:
    """The first layer's convolution, lowered on the host: every output pixel's ``kernel_h x
    kernel_w x C`` input window becomes one pixel of ``kernel_h*kernel_w*C`` channels, ordered
    ``(ky, kx, c)``, padded with the input zero point."""
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int


@dataclass(frozen=True)
class InputSpec:
    """The network input: its float preprocessing, its int8 quantization, an optional im2col
    lowering, and where the (lowered) tensor goes in memory."""
    preprocess: Preprocess
    scale: float
    zero_point: int
    channels: int
    height: int
    width: int
    lowering: Im2col | None
    placement: TensorPlacement


@dataclass(frozen=True)
class OutputSpec:
    """The network output: ``channels`` int32 sums over ``pixels`` pixels of an int8 tensor with
    ``scale``/``zero_point`` at ``base`` (``channels`` consecutive little-endian int32 in physical
    channel order, see ``channel_index``). Real value: ``(sum - pixels*zero_point) * scale / pixels``.
    ``softmax`` says whether the float model ends in a softmax (applied on the host)."""
    base: int
    channels: int
    pixels: int
    scale: float
    zero_point: int
    channel_index: tuple[int, ...]
    size: int
    softmax: bool = False


@dataclass(frozen=True)
class LayerInfo:
    """One layer of the compiled network, for ``sqzhw info`` and per-layer statistics."""
    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    macs: int
    weight_bytes: int
    insn_start: int
    insn_count: int
    est_cycles: int = 0


@dataclass
class Program:
    config: AccelConfig
    instructions: list[int]
    image: bytes
    regions: list[Region]
    input: InputSpec
    output: OutputSpec
    tensors: list[TensorPlacement] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)
    model_name: str = ""
    notes: dict = field(default_factory=dict)

    # -- memory map --------------------------------------------------------------------------

    def region(self, kind: str) -> Region:
        for r in self.regions:
            if r.kind == kind:
                return r
        raise ProgramError(f"program has no {kind!r} region")

    @property
    def memory_size(self) -> int:
        return max(r.end for r in self.regions)

    @property
    def writable(self) -> tuple[int, int]:
        """The ``[lo, hi)`` byte window the engine may write: activations and output."""
        spans = [r for r in self.regions if r.kind in ("activations", "output")]
        return min(r.base for r in spans), max(r.end for r in spans)

    @property
    def insn_base(self) -> int:
        return self.region("instructions").base

    def tensor(self, name: str) -> TensorPlacement:
        for t in self.tensors:
            if t.name == name:
                return t
        raise ProgramError(f"program has no tensor {name!r}")

    def static_image(self) -> list[tuple[int, bytes]]:
        """``(address, bytes)`` pieces the host writes before any run: instructions and weights."""
        return [(self.insn_base, isa.pack_program(self.instructions)),
                (self.region("weights").base, self.image)]

    def check_config(self, config: AccelConfig) -> None:
        """Refuse to run on hardware of another configuration."""
        if config.tag != self.config.tag:
            raise ProgramError(f"program was compiled for config {self.config.name!r} "
                               f"({self.config.tag}), the target is {config.name!r} ({config.tag})")

    # -- serialization -----------------------------------------------------------------------

    def _header(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "config_tag": self.config.tag,
            "regions": [dataclasses.asdict(r) for r in self.regions],
            "input": dataclasses.asdict(self.input),
            "output": dataclasses.asdict(self.output),
            "tensors": [dataclasses.asdict(t) for t in self.tensors],
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
            "model_name": self.model_name,
            "notes": self.notes,
        }

    def to_bytes(self) -> bytes:
        header = json.dumps(self._header(), sort_keys=True).encode()
        insns = isa.pack_program(self.instructions)
        body = header + insns + self.image
        fixed = _FIXED.pack(_MAGIC, FORMAT_VERSION, len(header), len(insns), len(self.image),
                            zlib.crc32(body))
        return fixed + body

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, raw: bytes, source: str = "<bytes>") -> "Program":
        if len(raw) < _FIXED.size:
            raise ProgramError(f"{source}: {len(raw)} bytes is too short for a sqzhw program "
                               f"(truncated or not a program)")
        magic, version, n_header, n_insns, n_image, crc = _FIXED.unpack_from(raw)
        if magic != _MAGIC:
            raise ProgramError(f"{source}: not a sqzhw program (magic {magic!r})")
        if version != FORMAT_VERSION:
            raise ProgramError(f"{source}: program format version {version}, this sqzhw reads "
                               f"version {FORMAT_VERSION}; recompile the model")
        body = raw[_FIXED.size:]
        expected = n_header + n_insns + n_image
        if len(body) != expected:
            raise ProgramError(f"{source}: {'truncated' if len(body) < expected else 'trailing data'}: "
                               f"{len(body)} bytes after the header, expected {expected}")
        if zlib.crc32(body) != crc:
            raise ProgramError(f"{source}: checksum mismatch (file corrupted)")
        try:
            h = json.loads(body[:n_header])
            config = AccelConfig.from_dict(h["config"])
            if config.tag != h["config_tag"]:
                raise ProgramError(f"{source}: config tag {h['config_tag']!r} does not match its config")

            def placement(d: dict) -> TensorPlacement:
                return TensorPlacement(**{**d, "segments": tuple(Segment(**s) for s in d["segments"])})

            i = h["input"]
            inp = InputSpec(**{**i,
                               "preprocess": Preprocess(**{k: tuple(v) if isinstance(v, list) else v
                                                           for k, v in i["preprocess"].items()}),
                               "lowering": Im2col(**i["lowering"]) if i["lowering"] else None,
                               "placement": placement(i["placement"])})
            out = OutputSpec(**{**h["output"], "channel_index": tuple(h["output"]["channel_index"])})
            return cls(
                config=config,
                instructions=isa.unpack_program(body[n_header:n_header + n_insns]),
                image=bytes(body[n_header + n_insns:]),
                regions=[Region(**r) for r in h["regions"]],
                input=inp, output=out,
                tensors=[placement(t) for t in h["tensors"]],
                layers=[LayerInfo(**{**layer, "in_shape": tuple(layer["in_shape"]),
                                     "out_shape": tuple(layer["out_shape"])}) for layer in h["layers"]],
                model_name=h.get("model_name", ""), notes=h.get("notes", {}),
            )
        except ProgramError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ProgramError(f"{source}: malformed program header: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "Program":
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ProgramError(f"cannot read program {str(path)!r}: {exc.strerror}") from None
        return cls.from_bytes(raw, source=str(path))
