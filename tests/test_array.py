"""The systolic array against NumPy matrix products (Amaranth simulator).

Random int8 tiles and activations, tile switches at the tightest legal cycles of the documented
timing contract (both "load as early as allowed" and "load just before first use"), bubbles in
the activation stream, exact latency.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl_gen.array import SystolicArray
from rtl_gen.testing import collect_quietly


def _plan(rows, cols, tiles, seg_lengths, *, bubble: float, late: bool, rng: random.Random):
    """Cycle-by-cycle stimulus: returns ``(loads, vectors)`` with ``loads[cycle] = (tile_idx, bank)``
    and ``vectors`` a list of ``(cycle, data, tile_idx)``, obeying the module's timing contract."""
    d = rows + cols - 2
    loads, vectors = {}, []
    cycle = 0
    last_vec = {}
    prev_load = -1
    for k, n in enumerate(seg_lengths):
        free_at = last_vec.get(k - 2, -10**9) + d  # the bank's previous tile has drained
        if late:
            first = max(cycle, free_at + 1, prev_load + 2)
            load = first - 1
        else:
            load = max(free_at, prev_load + 1, 0)
            first = max(cycle, load + 1)
        loads[load] = (k, k % 2)
        prev_load = load
        cycle = first
        for i in range(n):
            if i:
                while rng.random() < bubble:
                    cycle += 1
            data = np.array([rng.randrange(-128, 128) for _ in range(rows)], dtype=np.int64)
            vectors.append((cycle, data, k))
            cycle += 1
        last_vec[k] = cycle - 1
    return loads, vectors


def run_array(rows, cols, seg_lengths, *, bubble=0.0, late=False, seed=0):
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    tiles = [nprng.integers(-128, 128, size=(rows, cols)) for _ in seg_lengths]
    # Extreme tiles/activations now and then: all -128 squared is the largest partial sum.
    if len(tiles) > 1:
        tiles[1][:] = -128
    loads, vectors = _plan(rows, cols, tiles, seg_lengths, bubble=bubble, late=late, rng=rng)
    if vectors:
        vectors[0][1][:] = -128
    by_cycle = {c: (data, k) for c, data, k in vectors}
    dut = SystolicArray(rows, cols)
    end = vectors[-1][0] + dut.latency + 3
    seen = []

    async def bench(ctx):
        for cycle in range(end):
            if cycle in loads:
                k, bank = loads[cycle]
                ctx.set(dut.w.payload, {"tile": tiles[k].tolist(), "bank": bank})
                ctx.set(dut.w.valid, 1)
            else:
                # Junk on an idle weight port must be ignored.
                ctx.set(dut.w.payload.tile, nprng.integers(-128, 128, size=(rows, cols)).tolist())
                ctx.set(dut.w.valid, 0)
            if cycle in by_cycle:
                data, k = by_cycle[cycle]
                ctx.set(dut.a.payload, {"data": data.tolist(), "bank": k % 2})
                ctx.set(dut.a.valid, 1)
            else:
                # Junk in a bubble, including the wrong bank.
                ctx.set(dut.a.payload, {"data": [rng.randrange(-128, 128) for _ in range(rows)],
                                        "bank": rng.randrange(2)})
                ctx.set(dut.a.valid, 0)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                seen.append((cycle, [int(payload[c]) for c in range(cols)]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(1e-6 * (end + 10))
    assert [c for c, _ in seen] == [c + dut.latency for c, _, _ in vectors], "wrong output timing"
    got = np.array([s for _, s in seen], dtype=np.int64)
    want = np.array([data @ tiles[k] for _, data, k in vectors], dtype=np.int64)
    np.testing.assert_array_equal(got, want)
    return vectors


@pytest.mark.parametrize("rows,cols", [(4, 4), (4, 8), (2, 2), (1, 1), (3, 5)])
def test_random_tiles_with_bubbles(rows, cols):
    run_array(rows, cols, [7, 1, 12, 3, 9], bubble=0.3, seed=rows * 10 + cols)


@pytest.mark.parametrize("late", [False, True])
@pytest.mark.parametrize("rows,cols", [(4, 4), (2, 4), (4, 8)])
def test_tile_switch_without_bubble(rows, cols, late):
    """Tiles of exactly ``min_tile_cycles`` vectors stream back to back: no idle cycle anywhere."""
    n = max(1, rows + cols - 2)
    vectors = run_array(rows, cols, [n] * 5, late=late, seed=1)
    cycles = [c for c, _, _ in vectors]
    assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))


def test_larger_array():
    run_array(8, 8, [20, 14, 30], bubble=0.1, seed=3)


def test_psum_width_is_enough():
    arr = SystolicArray(16, 32)
    shape, latency = arr.psum_shape, arr.latency
    del arr
    collect_quietly()
    assert shape.signed
    assert -(1 << (shape.width - 1)) <= 16 * 127 * -128
    assert (1 << (shape.width - 1)) - 1 >= 16 * 128 * 128
    assert latency == 16 + 32 + 1


def test_bad_shape():
    with pytest.raises(ValueError, match="cols") as exc:
        SystolicArray(4, 0)
    del exc
    collect_quietly()


