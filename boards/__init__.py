"""Board tops and ``make bitstream``: one module per board, each exporting ``SPEC``
(:class:`boards.common.BoardSpec`); :func:`get_board` looks one up by name."""

from __future__ import annotations

import importlib

__all__ = ["BOARDS", "DEFAULT_BOARD", "get_board", "host_link_rates"]

#: Board name -> module (``boards/<module>.py``).
BOARDS = {"ulx3s": "ulx3s", "ecpix5": "ecpix5", "orangecrab": "orangecrab", "icebreaker": "icebreaker",
          "arty": "arty"}
DEFAULT_BOARD = "ulx3s"


def get_board(name: str):
    """The :class:`~boards.common.BoardSpec` of board ``name`` (``ValueError`` naming the choices)."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; boards: {sorted(BOARDS)}")
    return importlib.import_module(f"boards.{BOARDS[name]}").SPEC


def host_link_rates() -> tuple[int, ...]:
    """Each board's default host-link rate at its own config (:func:`boards.common.host_link_baud`),
    the most likely first: the default board's, then by how many boards use it (faster first on a
    tie); :data:`sqzhw.protocol.DEFAULT_BAUD` last. The driver's ``HOST_LINK_BAUDS``
    (:func:`sqzhw.driver.transports.open_serial` tries them) must equal it (a test checks)."""
    from collections import Counter

    from sqzhw import protocol
    from sqzhw.config import load_config

    from .common import host_link_baud

    rates = {}
    for name in BOARDS:
        spec = get_board(name)
        rates[name] = host_link_baud(spec, load_config(spec.config).clock_mhz * 1e6)
    count = Counter(rates.values())
    first = rates[DEFAULT_BOARD]
    order = sorted(count, key=lambda r: (r != first, -count[r], -r))
    return tuple(dict.fromkeys([*order, protocol.DEFAULT_BAUD]))
