"""External-memory images as ``$readmemh`` / ``$writememh`` files.

Word ``w`` of an ``E``-byte memory is bytes ``[w*E, (w+1)*E)`` read little-endian (byte 0 in bits
7:0), one word per line as ``2*E`` hex digits, most significant first (docs/architecture.md,
"Byte order").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MemImageError", "words_needed", "to_memh", "write_memh", "read_memh"]


class MemImageError(ValueError):
    """A memory file that does not match the expected word width or size."""


def words_needed(n_bytes: int, ext_bytes: int) -> int:
    """Words of ``ext_bytes`` covering ``n_bytes`` bytes."""
    return -(-n_bytes // ext_bytes)


def to_memh(data: bytes | bytearray, ext_bytes: int) -> str:
    """The ``$readmemh`` text of ``data`` (zero-padded to whole words)."""
    n_words = words_needed(len(data), ext_bytes)
    padded = np.zeros(n_words * ext_bytes, dtype=np.uint8)
    padded[:len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)
    # Reverse the bytes of each word so the hex string reads most significant byte first.
    text = padded.reshape(n_words, ext_bytes)[:, ::-1].tobytes().hex()
    width = 2 * ext_bytes
    return "\n".join(text[i:i + width] for i in range(0, len(text), width)) + "\n"


def write_memh(path: str | Path, data: bytes | bytearray, ext_bytes: int) -> int:
    """Write ``data`` as a ``$readmemh`` file; returns the number of words."""
    Path(path).write_text(to_memh(data, ext_bytes))
    return words_needed(len(data), ext_bytes)


def read_memh(path: str | Path, ext_bytes: int, n_bytes: int | None = None) -> bytearray:
    """Read a ``$writememh`` file (as Verilator or Icarus write it) back into bytes.

    Comment lines (``//``) and blank lines are skipped; an ``@addr`` line moves the word address.
    Words holding X or Z bits are an error (the memory model is 2-state, so they mean a broken file).
    Returns ``n_bytes`` bytes (default: all words in the file).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MemImageError(f"cannot read memory dump {str(path)!r}: {exc.strerror}") from None
    width = 2 * ext_bytes
    words: list[str] = []
    address = 0
    tokens = (t for line in text.splitlines() for t in line.split("//", 1)[0].split())
    for token in tokens:
        if token.startswith("@"):
            address = int(token[1:], 16)
            if address > len(words):
                words.extend(["0" * width] * (address - len(words)))
            elif address < len(words):
                raise MemImageError(f"{path}: address @{token[1:]} goes backwards")
            continue
        word = token.replace("_", "")
        if len(word) > width:
            raise MemImageError(f"{path}: word {len(words)} has {len(word)} hex digits, expected "
                                f"at most {width} for a {8 * ext_bytes}-bit memory")
        words.append(word.rjust(width, "0"))
    try:
        raw = bytes.fromhex("".join(words))
    except ValueError:
        bad = next(i for i, w in enumerate(words) if any(c not in "0123456789abcdefABCDEF" for c in w))
        raise MemImageError(f"{path}: word {bad} is not hex: {words[bad]!r}") from None
    mem = np.frombuffer(raw, dtype=np.uint8).reshape(len(words), ext_bytes)[:, ::-1].tobytes()
    if n_bytes is not None:
        if n_bytes > len(mem):
            raise MemImageError(f"{path}: holds {len(mem)} bytes, expected at least {n_bytes}")
        mem = mem[:n_bytes]
    return bytearray(mem)
