"""Host side of a run, shared by every backend (golden model, RTL simulation, board).

A compiled :class:`~sqzhw.program.Program` says how to prepare its input (preprocessing, int8
quantization, the first layer's im2col lowering, the block-major layout) and where its output lies;
this module does exactly that, so every backend feeds and reads the engine the same way::

    x = prepare_image(program, "car.png")           # float (3, H, W)
    raw = input_bytes(program, x)                    # the input region's contents
    memory = memory_image(program, raw)              # the whole initial external memory
    ... a backend runs the program on memory ...
    sums, logits = read_output(program, memory)      # int32 sums, float logits (no softmax)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .program import Program, ProgramError

__all__ = ["quantize_input", "lower_input", "input_bytes", "prepare_image", "prepare_input", "memory_image", "read_output",
           "run_golden", "RunResult", "GoldenBackend", "GoldenError", "im2col"]


class GoldenError(RuntimeError):
    """The golden model stopped with an engine error (names the error code and instruction)."""


def quantize_input(program: Program, x_float_chw: np.ndarray) -> np.ndarray:
    """The float network input as int8 ``(C, H, W)`` (the layer reference's rounding rule)."""
    from .compiler.graph import QParams
    from .golden.layers import quantize_input as q_in

    spec = program.input
    x = np.asarray(x_float_chw)
    if x.shape != (spec.channels, spec.height, spec.width):
        raise ProgramError(f"input shape {x.shape}, the program expects "
                           f"{(spec.channels, spec.height, spec.width)}")
    return q_in(x, QParams(spec.scale, spec.zero_point))


def im2col(x_q: np.ndarray, lowering, zero_point: int) -> np.ndarray:
    """``(kh*kw*C, OH, OW)`` int8: every output pixel's window, ordered ``(ky, kx, c)``, padded with
    ``zero_point``."""
    c, h, w = x_q.shape
    lo = lowering
    xp = np.pad(x_q, ((0, 0), (lo.pad_top, lo.pad_bottom), (lo.pad_left, lo.pad_right)),
                constant_values=zero_point)
    oh = (h + lo.pad_top + lo.pad_bottom - lo.kernel_h) // lo.stride_h + 1
    ow = (w + lo.pad_left + lo.pad_right - lo.kernel_w) // lo.stride_w + 1
    taps = [xp[:, ky:ky + (oh - 1) * lo.stride_h + 1:lo.stride_h, kx:kx + (ow - 1) * lo.stride_w + 1:lo.stride_w]
            for ky in range(lo.kernel_h) for kx in range(lo.kernel_w)]
    return np.stack(taps).reshape(lo.kernel_h * lo.kernel_w * c, oh, ow)


def lower_input(program: Program, x_q: np.ndarray) -> np.ndarray:
    """The int8 input as the engine reads it: im2col-lowered when the program says so."""
    x_q = np.asarray(x_q)
    if x_q.dtype != np.int8:
        raise ProgramError(f"quantized input must be int8, got {x_q.dtype}")
    spec = program.input
    if x_q.shape != (spec.channels, spec.height, spec.width):
        raise ProgramError(f"input shape {x_q.shape}, the program expects "
                           f"{(spec.channels, spec.height, spec.width)}")
    if spec.lowering is None:
        return x_q
    return im2col(x_q, spec.lowering, spec.zero_point)


def input_bytes(program: Program, x_float_chw: np.ndarray) -> bytes:
    """The input region's contents for a float ``(C, H, W)`` input."""
    lowered = lower_input(program, quantize_input(program, x_float_chw))
    return program.input.placement.pack(lowered, program.config.rows)


def prepare_image(program: Program, image) -> np.ndarray:
    """An image (path, or ``(H, W, 3)`` uint8 RGB array) as the float ``(C, H, W)`` input, with the
    program's preprocessing. A float ``(C, H, W)`` array of the input's shape is returned as is."""
    from . import preprocess as pp

    spec = program.input
    if isinstance(image, (str, Path)):
        image = pp.load_image(image)
    a = np.asarray(image)
    if a.ndim == 3 and a.shape == (spec.channels, spec.height, spec.width) and a.dtype != np.uint8:
        return a.astype(np.float32)
    return pp.preprocess(a, spec.preprocess)


def prepare_input(program: Program, image) -> bytes:
    """An image (path, RGB array or float input) straight to the input region's bytes
    (``docs/architecture.md``'s name for ``input_bytes(program, prepare_image(program, image))``)."""
    return input_bytes(program, prepare_image(program, image))


def memory_image(program: Program, input_raw: bytes) -> bytearray:
    """The whole initial external memory: instructions, weights and the input in place."""
    region = program.region("input")
    if len(input_raw) > region.size:
        raise ProgramError(f"input of {len(input_raw)} bytes does not fit the {region.size}-byte input region")
    mem = bytearray(program.memory_size)
    for addr, data in program.static_image() + [(region.base, bytes(input_raw))]:
        mem[addr:addr + len(data)] = data
    return mem


def read_output(program: Program, memory) -> tuple[np.ndarray, np.ndarray]:
    """``(sums, logits)``: the int32 global-pool sums in logical channel order and their
    dequantized values ``(sum - N*zp) * scale / N`` (no softmax)."""
    out = program.output
    raw = bytes(memory[out.base:out.base + out.size])
    if len(raw) < out.size:
        raise ProgramError(f"memory of {len(memory)} bytes ends before the output region "
                           f"[{out.base}, {out.base + out.size})")
    sums = np.frombuffer(raw, dtype="<i4")[np.asarray(out.channel_index, np.int64)].astype(np.int32)
    logits = (sums.astype(np.float64) - out.pixels * out.zero_point) * out.scale / out.pixels
    return sums, logits


@dataclass
class RunResult:
    """One inference on a backend: float logits (pre-softmax), int32 sums, the cycle estimate (or
    count) and the memory after the run."""
    logits: np.ndarray
    sums: np.ndarray
    cycles_estimate: int
    memory: bytearray


class GoldenBackend:
    """The ISA golden model as a backend: ``run(program, input_bytes) -> (memory, counters)``, the
    same shape as the RTL and board backends."""

    def __init__(self, check_hazards: bool = True):
        self.check_hazards = check_hazards

    def run(self, program: Program, input_raw: bytes) -> tuple[bytearray, dict]:
        from .golden.executor import Executor

        program.check_config(program.config)
        mem = memory_image(program, input_raw)
        ex = Executor(program.config, mem, program.writable, check_hazards=self.check_hazards)
        result = ex.run(program.insn_base, len(program.instructions))
        if not result.done:
            raise GoldenError(f"golden model: {result.error.name} at instruction {result.error_pc}: "
                              f"{result.message}" if result.error.value else "golden model did not finish")
        return mem, {**result.counters, "est_cycles": result.cycles}


def run_golden(program: Program, image_or_x) -> RunResult:
    """Classify one image (path, RGB array or float ``(C, H, W)`` input) with the golden model."""
    x = prepare_image(program, image_or_x)
    mem, counters = GoldenBackend().run(program, input_bytes(program, x))
    sums, logits = read_output(program, mem)
    return RunResult(logits, sums, int(counters["est_cycles"]), mem)
