"""Board bring-up: check a device's host link, external memory and engine through the driver.

The first time a bitstream meets a board, "the network gave a wrong answer" says nothing about
where the fault is. :func:`run_selftest` takes the path apart, cheapest and most basic first, and
names what failed:

1. **link** -- ``INFO``: the device answers, speaks this protocol, reports its config tag; the
   memory has started (a DDR3 board's read calibration).
2. **data bus** -- walking ones and zeros through one external-memory word: a stuck, swapped or
   shorted data line (or a byte lane whose read capture is off) shows as the bits that differ.
3. **address bus** -- a distinct word at byte offset 0 and at every power-of-two word offset up to
   the memory's size, written first, read back after: a stuck or shorted address line aliases two
   of them (the later write wins), which names the address bit.
4. **block** -- pseudo-random bytes written and read back at the bottom and the top of the memory
   (whole bursts, many rows and banks), with the link's measured rate; on a device with
   ``CHECKSUM_MEM`` the device's own CRC-32 of each block must equal the host's too, which checks
   the read path that :meth:`Accelerator.load` relies on independently of ``READ_MEM``.
5. **engine** -- a small random-weight Fire network compiled for the device's config, run on
   random inputs; its int32 sums must equal the golden model's bit for bit.

The memory checks overwrite what they touch: a loaded program must be loaded again afterwards
(:attr:`Accelerator.program` is cleared). ``sqzhw selftest --port /dev/ttyUSB0`` runs it on a board;
the tests run it on the in-process device model and on the simulated board in Verilator.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..config import AccelConfig
from .accelerator import Accelerator, DriverError

__all__ = ["Check", "SelfTestReport", "run_selftest", "check_link", "check_data_bus", "check_address_bus",
           "check_block", "check_engine", "config_for_tag"]


@dataclass
class Check:
    """One step's outcome: ``passed``, a one-line ``detail`` (what was checked, or what differed and
    where) and the step's wall time."""
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0


@dataclass
class SelfTestReport:
    """Every step run, in order; the run stops at the first failed step (later steps would only
    repeat its symptom)."""
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def text(self) -> str:
        lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.name:<12} {c.detail}  ({c.seconds:.2f} s)"
                 for c in self.checks]
        return "\n".join(lines + ["self-test " + ("passed" if self.passed else "FAILED")])


def _word(value: int, nbytes: int) -> bytes:
    return (value & ((1 << 8 * nbytes) - 1)).to_bytes(nbytes, "little")


def _differing_bits(expected: bytes, got: bytes) -> list[int]:
    x = int.from_bytes(expected, "little") ^ int.from_bytes(got, "little")
    return [b for b in range(8 * len(expected)) if x >> b & 1]


def check_link(acc: Accelerator) -> Check:
    """``INFO`` answered, and the external memory started."""
    t0 = time.monotonic()
    info = acc.info()
    acc.wait_memory()
    return Check("link", True, f"protocol {info.version}, config {info.tag}, {info.ext_bytes}-byte words, "
                               f"{info.mem_bytes:,} bytes of memory", time.monotonic() - t0)


def check_data_bus(acc: Accelerator, addr: int = 0) -> Check:
    """Walking ones and walking zeros through the word at ``addr``."""
    t0 = time.monotonic()
    e = acc.device.ext_bytes
    bits = 8 * e
    bad: dict[int, int] = {}    # data bit -> patterns in which it read wrong
    for inverted in (False, True):
        for bit in range(bits):
            value = (1 << bit) ^ (((1 << bits) - 1) if inverted else 0)
            acc.write(addr, _word(value, e), what="data bus test")
            got = acc.read(addr, e, what="data bus test")
            for b in _differing_bits(_word(value, e), got):
                bad[b] = bad.get(b, 0) + 1
    seconds = time.monotonic() - t0
    if bad:
        lanes = sorted({b // 8 for b in bad})
        return Check("data bus", False, f"word at 0x{addr:x}: data bit(s) {sorted(bad)} read wrong "
                                        f"(byte lane(s) {lanes}) in walking ones/zeros", seconds)
    return Check("data bus", True, f"{bits} data bits, walking ones and zeros at 0x{addr:x}", seconds)


def _address_pattern(index: int, nbytes: int) -> bytes:
    # Distinct per offset and never all-zero or all-one: an alias cannot read back as the right word.
    return _word((index + 1) * 0x9E3779B97F4A7C15 ^ 0x5A5A5A5A5A5A5A5A, nbytes)


def check_address_bus(acc: Accelerator, mem_bytes: int | None = None) -> Check:
    """A distinct word at offset 0 and at each power-of-two word offset below ``mem_bytes``
    (default: all of the device's memory), all written, then all read back."""
    t0 = time.monotonic()
    d = acc.device
    e, size = d.ext_bytes, mem_bytes or d.mem_bytes
    offsets = [0] + [e << k for k in range(64) if (e << k) + e <= size]
    for i, off in enumerate(offsets):
        acc.write(off, _address_pattern(i, e), what="address bus test")
    wrong = []
    for i, off in enumerate(offsets):
        got = acc.read(off, e, what="address bus test")
        if got != _address_pattern(i, e):
            # Which offset's word it holds says which address bit is stuck or shorted.
            owner = next((j for j in range(len(offsets)) if got == _address_pattern(j, e)), None)
            wrong.append(f"0x{off:x} holds " + (f"the word written at 0x{offsets[owner]:x}"
                                                 if owner is not None else f"{got.hex()}"))
    seconds = time.monotonic() - t0
    word_bits = (size // e - 1).bit_length()
    if wrong:
        detail = (f"{len(wrong)} of {len(offsets)} words aliased or lost (a stuck or shorted address line): "
                  + "; ".join(wrong[:6]))
        return Check("address bus", False, detail, seconds)
    return Check("address bus", True, f"{word_bits} word-address bits up to 0x{offsets[-1]:x}, no aliasing",
                 seconds)


def check_block(acc: Accelerator, nbytes: int = 64 << 10, seed: int = 1,
                mem_bytes: int | None = None) -> Check:
    """``nbytes`` of pseudo-random data at the bottom and at the top of the memory, read back, and
    (``CHECKSUM_MEM``) their CRC-32 as the device computes it compared with the host's."""
    t0 = time.monotonic()
    d = acc.device
    e, size = d.ext_bytes, mem_bytes or d.mem_bytes
    n = max(e, min(nbytes, size // 2) // e * e)
    rng = np.random.default_rng(seed)
    mismatches = []
    moved = 0
    for base in sorted({0, (size - n) // e * e}):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        acc.write(base, data, what=f"block test @0x{base:x}")
        got = acc.read(base, n, what=f"block test @0x{base:x}")
        moved += 2 * n
        diff = np.flatnonzero(np.frombuffer(data, np.uint8) != np.frombuffer(got, np.uint8))
        if diff.size:
            first = int(diff[0])
            mismatches.append(f"{diff.size} byte(s) differ in {n:,} at 0x{base:x}, first at "
                              f"0x{base + first:x} (wrote 0x{data[first]:02x}, read 0x{got[first]:02x})")
        if d.has_checksum:
            crc, expected = acc.checksum(base, n, what=f"block test @0x{base:x}"), zlib.crc32(data)
            if crc != expected:
                mismatches.append(f"the device's CRC-32 of the {n:,} bytes at 0x{base:x} (CHECKSUM_MEM) is "
                                  f"0x{crc:08x}, the data's 0x{expected:08x} (READ_MEM read them back "
                                  f"{'wrong' if diff.size else 'right'}): program loads check with it")
    seconds = time.monotonic() - t0
    if mismatches:
        return Check("block", False, "; ".join(mismatches), seconds)
    rate = f", {moved / seconds / 1e3:,.1f} kB/s over the link" if seconds > 0 else ""
    crc = ", the device's CRC-32 agrees" if d.has_checksum else " (the device has no CHECKSUM_MEM)"
    return Check("block", True, f"{n:,} random bytes at the bottom and the top of the memory{crc}{rate}",
                 seconds)


def config_for_tag(tag: str) -> AccelConfig | None:
    """The preset (``configs/``) whose tag is ``tag``, or ``None``."""
    from ..config import load_config, preset_names

    for name in preset_names():
        config = load_config(name)
        if config.tag == tag:
            return config
    return None


def check_engine(acc: Accelerator, config: AccelConfig, inputs: int = 2, seed: int = 7,
                 size: int = 8) -> Check:
    """A random-weight Fire network compiled for ``config``, ``inputs`` random inputs, int32 sums
    compared with the golden model's bit for bit."""
    from .. import runtime
    from ..compiler.codegen import compile_graph
    from ..compiler.testing import random_qgraph
    from ..program import Preprocess

    t0 = time.monotonic()
    program = compile_graph(random_qgraph("fire", input_size=size, width_mult=0.25, num_classes=8, seed=seed),
                            config, Preprocess(height=size, width=size))
    acc.load(program)
    rng = np.random.default_rng(seed)
    cycles = []
    for i in range(inputs):
        x = rng.standard_normal((program.input.channels, size, size)).astype(np.float32)
        result = acc.infer_full(x)
        got, expected = np.asarray(result.sums), np.asarray(runtime.run_golden(program, x).sums)
        if not np.array_equal(got, expected):
            k = int(np.flatnonzero(got != expected)[0])
            detail = (f"input {i}: {int(np.sum(got != expected))} of {got.size} output sums differ from the "
                      f"golden model (first at index {k}: got {int(got[k])}, expected {int(expected[k])})")
            return Check("engine", False, detail, time.monotonic() - t0)
        cycles.append(int(next(v for k, v in result.counters.items() if k.name == "CYCLES")))
    return Check("engine", True, f"{len(program.instructions)}-instruction Fire network, {inputs} inputs "
                                 f"bit-exact with the golden model, {cycles[-1]:,} engine cycles each",
                 time.monotonic() - t0)


def run_selftest(acc: Accelerator, config: AccelConfig | None = None, *, block_bytes: int = 64 << 10,
                 memory_bytes: int | None = None, engine: bool = True,
                 progress: Callable[[Check], None] | None = None) -> SelfTestReport:
    """Run the checks in order (see the module docstring) and stop at the first that fails.

    Parameters
    ----------
    acc : Accelerator
        The device (its loaded program is overwritten and forgotten).
    config : AccelConfig, optional
        The device's config, for the engine check; default: the preset whose tag the device reports
        (the engine check fails, naming the tag, when there is none).
    block_bytes : int
        Bytes of the block check at each end of the memory.
    memory_bytes : int, optional
        Test only the first ``memory_bytes`` of the memory (default: all of it).
    engine : bool
        Run the engine check.
    progress : callable, optional
        Called with each :class:`Check` as it completes.
    """
    report = SelfTestReport()
    acc.program = None

    def step(fn, name: str) -> bool:
        t0 = time.monotonic()
        try:
            check = fn()
        except DriverError as exc:   # the link or the device failed on the way: that is the finding
            check = Check(name, False, f"{type(exc).__name__}: {exc}", time.monotonic() - t0)
        report.checks.append(check)
        if progress:
            progress(check)
        return check.passed

    if not step(lambda: check_link(acc), "link"):
        return report
    size = min(memory_bytes or acc.device.mem_bytes, acc.device.mem_bytes)
    for fn, name in ((lambda: check_data_bus(acc), "data bus"),
                     (lambda: check_address_bus(acc, size), "address bus"),
                     (lambda: check_block(acc, block_bytes, mem_bytes=size), "block")):
        if not step(fn, name):
            return report
    if engine:
        def engine_check() -> Check:
            cfg = config or config_for_tag(acc.device.tag)
            if cfg is None:
                return Check("engine", False, f"no preset in configs/ has the device's tag {acc.device.tag}: "
                                              f"pass its config (--config FILE.toml)")
            return check_engine(acc, cfg)
        step(engine_check, "engine")
    acc.program = None
    return report
