"""The requantization rule, in one place.

Every stage that turns an int32 accumulator into an 8-bit activation (the layer reference, the ISA
golden model, the RTL requantizer's tests) calls :func:`requantize`. Nothing else may reimplement it.

Conventions
-----------
* Activations are stored as int8 with a per-tensor zero point ``zp`` in [-128, 127]:
  ``real = scale * (q - zp)``. (A uint8 tensor ``u`` with zero point ``z`` is the int8 tensor
  ``u - 128`` with zero point ``z - 128``; the bits are the same up to the top bit.)
* Weights are int8, symmetric (zero point 0), per output channel, in [-127, 127].
* Biases and accumulators are int32; the accumulator of ``sum(q_a * q_w)`` has the input zero point
  folded into the bias: ``bias' = bias - zp_in * sum(q_w)``, exact because padding inserts ``zp_in``.
* A real multiplier ``m`` is ``M * 2**-n`` with ``0 <= M < 2**31`` and ``0 <= n <= 62``.
"""

import math

import numpy as np

__all__ = ["requantize", "round_shift", "quantize_multiplier", "wrap_int32", "add_multipliers",
           "effective_params", "MAX_SHIFT", "ADD_INPUT_BITS"]

#: Largest shift ``n``: keeps ``acc * M + 2**(n-1)`` inside int64 for any int32 ``acc`` and ``M``.
MAX_SHIFT = 62

#: The bypass add scales both inputs to this many fractional bits of the larger input scale.
ADD_INPUT_BITS = 14


def wrap_int32(values) -> np.ndarray:
    """Two's-complement wrap to int32, as a 32-bit hardware adder does."""
    return np.asarray(values, dtype=np.int64).astype(np.uint32).astype(np.int32)


def round_shift(values, shift) -> np.ndarray:
    """``values * 2**-shift`` rounded to the nearest integer, ties toward +infinity.

    Computed as ``(values + ((1 << shift) >> 1)) >> shift`` with an arithmetic right shift, on int64.
    ``shift = 0`` returns ``values`` unchanged.
    """
    values = np.asarray(values, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    return (values + ((np.int64(1) << shift) >> 1)) >> shift


def requantize(acc, multiplier, shift, zp_out: int, relu: bool) -> np.ndarray:
    """Requantize int32 accumulators to int8 activations.

    ``y = clamp(zp_out + round_shift(acc * multiplier, shift), lo, 127)`` where ``lo = zp_out`` with
    ReLU and ``-128`` without, and ``round_shift`` rounds half toward +infinity (see
    :func:`round_shift`). The product is exact (int64). ``multiplier`` and ``shift`` broadcast
    against ``acc`` (per output channel: the last axis).

    Parameters
    ----------
    acc : array of int32
        Accumulators, bias already added (with int32 wrap-around, see :func:`wrap_int32`).
    multiplier : int or array
        ``M``, ``0 <= M < 2**31``.
    shift : int or array
        ``n``, ``0 <= n <= 62``.
    zp_out : int
        Output zero point, -128..127.
    relu : bool
        Clamp below at ``zp_out`` (the real value 0) instead of -128.

    Returns
    -------
    ndarray of int8
    """
    acc = np.asarray(acc)
    if acc.dtype != np.int32:
        raise TypeError(f"requantize takes int32 accumulators, got {acc.dtype}")
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any(multiplier < 0) or np.any(multiplier >= 1 << 31):
        raise ValueError("multiplier must be in [0, 2**31)")
    if np.any(shift < 0) or np.any(shift > MAX_SHIFT):
        raise ValueError(f"shift must be in [0, {MAX_SHIFT}]")
    if not -128 <= zp_out <= 127:
        raise ValueError(f"zp_out {zp_out} is not an int8")
    scaled = round_shift(acc.astype(np.int64) * multiplier, shift)
    lo = zp_out if relu else -128
    return np.clip(scaled + zp_out, lo, 127).astype(np.int8)


def effective_params(multiplier_field, shift_field) -> tuple[np.ndarray, np.ndarray]:
    """The ``(M, n)`` the engine uses for raw PARAM-lane fields (see :class:`sqzhw.isa.ParamLane`):
    bits 30:0 of the 32-bit multiplier field and ``min(shift, MAX_SHIFT)`` of the 8-bit shift field.

    The compiler never emits anything else; this makes arbitrary parameter bytes (fuzzing, a
    corrupted image) well defined instead of an error deep inside the datapath.
    """
    multiplier = np.asarray(multiplier_field, dtype=np.int64) & ((1 << 31) - 1)
    shift = np.minimum(np.asarray(shift_field, dtype=np.int64) & 0xFF, MAX_SHIFT)
    return multiplier, shift


def quantize_multiplier(real: float) -> tuple[int, int]:
    """The ``(M, n)`` with ``M * 2**-n`` closest to ``real``, ``2**30 <= M < 2**31`` where ``n``
    allows (31 bits of precision), else the nearest representable value.

    Raises ``ValueError`` for negative, non-finite or too large (``>= 2**31``) multipliers.
    """
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"multiplier {real!r} must be finite and non-negative")
    if real == 0:
        return 0, 0
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2**exponent, 0.5 <= mantissa < 1
    shift = 31 - exponent
    if shift < 0:
        raise ValueError(f"multiplier {real!r} is too large (at most 2**31)")
    shift = min(shift, MAX_SHIFT)
    m = round(real * 2.0 ** shift)
    if m == 1 << 31:  # the mantissa rounded up to the next power of two
        m //= 2
        shift -= 1
        if shift < 0:
            raise ValueError(f"multiplier {real!r} is too large (at most 2**31)")
    return int(m), int(shift)


def add_multipliers(scale_a: float, scale_b: float, scale_out: float) -> tuple[int, int, int, int]:
    """Integer weights of the bypass add ``out = a + b`` (real values).

    Returns ``(ka, kb, M, n)`` such that ``q_out = requantize(ka*(q_a - zp_a) + kb*(q_b - zp_b), M, n,
    zp_out, relu)``: the inputs are expressed in units of ``max(scale_a, scale_b) * 2**-ADD_INPUT_BITS``
    (``ka``, ``kb`` fit int16) and ``M * 2**-n`` turns that unit into output units.
    """
    unit = max(scale_a, scale_b) / (1 << ADD_INPUT_BITS)
    ka, kb = round(scale_a / unit), round(scale_b / unit)
    m, n = quantize_multiplier(unit / scale_out)
    return int(ka), int(kb), m, n
