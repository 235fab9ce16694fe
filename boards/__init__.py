"""Board tops and ``make bitstream``: one module per board, each exporting ``SPEC``
(:class:`boards.common.BoardSpec`); :func:`get_board` looks one up by name."""

from __future__ import annotations

import importlib

__all__ = ["BOARDS", "DEFAULT_BOARD", "get_board"]

#: Board name -> module (``boards/<module>.py``).
BOARDS = {"ulx3s": "ulx3s", "ecpix5": "ecpix5", "orangecrab": "orangecrab", "icebreaker": "icebreaker",
          "arty": "arty"}
DEFAULT_BOARD = "ulx3s"


def get_board(name: str):
    """The :class:`~boards.common.BoardSpec` of board ``name`` (``ValueError`` naming the choices)."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; boards: {sorted(BOARDS)}")
    return importlib.import_module(f"boards.{BOARDS[name]}").SPEC
