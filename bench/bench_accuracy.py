"""int8 vs float top-1 agreement and logit cosine similarity over augmented views (both real models)."""

from __future__ import annotations

from pathlib import Path


def main(out: Path) -> None:
    from sqzhw import evaluate
    evaluate.main(out=out)
