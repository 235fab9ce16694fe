"""The RTL requantizer against :func:`sqzhw.quant.requantize` (Amaranth simulator).

Generated vectors cover every rounding corner (exact ties of both signs, shift 0 and 62, multiplier
0 and 2**31-1, accumulators at both int32 ends, bias wrap-around, ReLU on and off, both clamps), fed
with random idle cycles on the input and random back-pressure on the output.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl_gen.requant import Requantizer
from sqzhw.config import AccelConfig
from sqzhw.quant import MAX_SHIFT, effective_params, requantize, wrap_int32
from rtl_gen.testing import collect_quietly

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
M_MAX = (1 << 31) - 1


def _lane_case(rng: random.Random) -> tuple[int, int, int, int]:
    """One ``(acc, bias, multiplier, shift)``, biased towards the corners of the rule."""
    kind = rng.randrange(10)
    # Raw PARAM fields beyond the compiler's range (shift > 62, multiplier bit 31) are in too:
    # the requantizer applies quant.effective_params to them.
    shift = rng.choice([0, 1, 2, 31, 32, 61, MAX_SHIFT, rng.randrange(MAX_SHIFT + 1), 63, 255])
    mult = rng.choice([0, 1, M_MAX, 1 << 30, rng.randrange(1 << 31), rng.randrange(1 << 16),
                       (1 << 31) | rng.randrange(1 << 31), (1 << 32) - 1])
    acc = rng.choice([I32_MIN, I32_MAX, 0, -1, 1, rng.randrange(I32_MIN, I32_MAX + 1),
                      rng.randrange(-5000, 5000)])
    bias = rng.choice([0, rng.randrange(I32_MIN, I32_MAX + 1), rng.randrange(-1000, 1000)])
    if kind == 0:
        # An exact tie: acc * mult = (2k + 1) * 2**(shift-1), positive or negative.
        shift = rng.randrange(1, 20)
        mult = 1
        acc = (2 * rng.randrange(-300, 300) + 1) << (shift - 1)
        bias = 0
    elif kind == 1:
        # Ties with a real multiplier: acc*M + 2**(n-1) divisible by 2**n.
        shift = rng.randrange(1, 40)
        mult = rng.randrange(1, 1 << 20) | 1
        target = (2 * rng.randrange(-200, 200) + 1) << (shift - 1)
        acc, bias = target // mult, 0  # not always exact: then it is just a nearby value
    elif kind == 2:
        # Bias wrap-around: sum past an int32 end.
        acc = rng.choice([I32_MAX - rng.randrange(100), I32_MIN + rng.randrange(100)])
        bias = (rng.randrange(1, 1 << 30)) * (1 if acc > 0 else -1)
    elif kind == 3:
        # Results landing near the clamps (shift chosen so the scaled value is around +-128..255).
        mult, shift = 1 << 30, 30
        acc, bias = rng.randrange(-300, 300), 0
    return acc, bias, mult, shift


def _vectors(lanes: int, n: int, seed: int):
    rng = random.Random(seed)
    vectors = []
    for _ in range(n):
        cases = [_lane_case(rng) for _ in range(lanes)]
        vectors.append({
            "acc": [c[0] for c in cases],
            "bias": [c[1] for c in cases],
            "mult": [c[2] for c in cases],
            "shift": [c[3] for c in cases],
            "zp_out": rng.choice([-128, 127, 0, rng.randrange(-128, 128)]),
            "relu": rng.randrange(2),
        })
    return vectors


def _expected(v) -> np.ndarray:
    acc = wrap_int32(np.array(v["acc"], np.int64) + np.array(v["bias"], np.int64))
    mult, shift = effective_params(np.array(v["mult"]), np.array(v["shift"]))
    return requantize(acc, mult, shift, v["zp_out"], bool(v["relu"]))


def _payload(v) -> dict:
    return {
        "acc": v["acc"],
        "params": [{"bias": b, "multiplier": m, "shift": s, "reserved": 0}
                   for b, m, s in zip(v["bias"], v["mult"], v["shift"])],
        "zp_out": v["zp_out"],
        "relu": v["relu"],
    }


def run_requantizer(lanes: int, vectors, seed: int, idle: float, stall: float,
                    options: dict | None = None) -> np.ndarray:
    """Push ``vectors`` through a :class:`Requantizer` (``options``: its keyword arguments); returns
    the outputs in order."""
    dut = Requantizer(lanes, **(options or {}))
    rng = random.Random(seed)
    results = []

    async def producer(ctx):
        for v in vectors:
            while rng.random() < idle:
                await ctx.tick()
            ctx.set(dut.i.payload, _payload(v))
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        for _ in vectors:
            ctx.set(dut.o.ready, 0)
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(dut.o.ready, 1)
            (payload,) = await ctx.tick().sample(dut.o.payload).until(dut.o.valid)
            results.append([int(payload[j]) for j in range(lanes)])
        ctx.set(dut.o.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    # Timeout: every vector needs at most a few cycles plus its idle/stall cycles.
    sim.run_until(1e-6 * (len(vectors) * 20 + 100))
    assert len(results) == len(vectors), f"timeout: {len(results)} of {len(vectors)} vectors came out"
    return np.array(results, dtype=np.int64)


@pytest.mark.parametrize("lanes,n,idle,stall", [(4, 1500, 0.3, 0.3), (1, 300, 0.0, 0.0), (16, 100, 0.5, 0.5)])
def test_requantizer_matches_reference(lanes, n, idle, stall):
    vectors = _vectors(lanes, n, seed=lanes * 1000 + n)
    got = run_requantizer(lanes, vectors, seed=n, idle=idle, stall=stall)
    want = np.array([_expected(v) for v in vectors], dtype=np.int64)
    np.testing.assert_array_equal(got, want)
    if n >= 1000:
        _assert_corners_covered(vectors, want)


def _assert_corners_covered(vectors, want) -> None:
    """The generated set really holds every corner the docstring promises."""
    seen = {"tie+": 0, "tie-": 0, "shift0": 0, "shift62": 0, "mult0": 0, "multmax": 0, "acc_min": 0,
            "acc_max": 0, "wrap": 0, "clamp_hi": 0, "clamp_lo": 0, "relu_clamp": 0}
    for v, out in zip(vectors, want):
        for j, (a, b, m, s) in enumerate(zip(v["acc"], v["bias"], v["mult"], v["shift"])):
            total = a + b
            wrapped = int(wrap_int32(total))
            prod = wrapped * m
            if s and prod % (1 << s) == 1 << (s - 1):
                seen["tie+" if prod > 0 else "tie-"] += 1
            seen["shift0"] += s == 0
            seen["shift62"] += s == MAX_SHIFT
            seen["mult0"] += m == 0
            seen["multmax"] += m == M_MAX
            seen["acc_min"] += a == I32_MIN
            seen["acc_max"] += a == I32_MAX
            seen["wrap"] += wrapped != total
            seen["clamp_hi"] += out[j] == 127 and v["zp_out"] != 127
            seen["clamp_lo"] += out[j] == -128 and not v["relu"]
            seen["relu_clamp"] += bool(v["relu"]) and out[j] == v["zp_out"] and v["zp_out"] > -128
    missing = [k for k, count in seen.items() if count < 5]
    assert not missing, f"corner cases not generated: {missing} ({seen})"


def test_requantizer_exhaustive_corners():
    """Every combination of the extreme operands, in one lane each."""
    accs = [I32_MIN, I32_MIN + 1, -1, 0, 1, I32_MAX]
    mults = [0, 1, M_MAX]
    shifts = [0, 1, 31, MAX_SHIFT]
    combos = [(a, m, s) for a in accs for m in mults for s in shifts]
    lanes = 8
    vectors = []
    for zp, relu in [(-128, 0), (127, 1), (5, 1), (0, 0)]:
        for k in range(0, len(combos), lanes):
            chunk = (combos[k:k + lanes] * lanes)[:lanes]
            vectors.append({"acc": [c[0] for c in chunk], "bias": [0] * lanes,
                            "mult": [c[1] for c in chunk], "shift": [c[2] for c in chunk],
                            "zp_out": zp, "relu": relu})
    got = run_requantizer(lanes, vectors, seed=1, idle=0.2, stall=0.2)
    want = np.array([_expected(v) for v in vectors], dtype=np.int64)
    np.testing.assert_array_equal(got, want)


def test_ties_round_toward_plus_infinity():
    """Hand-checked ties: 2.5 -> 3, -2.5 -> -2, 0.5 -> 1, -0.5 -> 0 (shift 1, multiplier 1)."""
    v = {"acc": [5, -5, 1, -1], "bias": [0] * 4, "mult": [1] * 4, "shift": [1] * 4, "zp_out": 0, "relu": 0}
    got = run_requantizer(4, [v], seed=0, idle=0, stall=0)
    np.testing.assert_array_equal(got[0], [3, -2, 1, 0])


def test_lanes_from_config_and_bad_lanes():
    rq = Requantizer(AccelConfig("t", 4, 8, 64, 8, 64, 64, 4, ext_data_bits=32))
    assert rq.lanes == 4
    del rq
    collect_quietly()
    with pytest.raises(ValueError, match="lanes") as exc:
        Requantizer(0)
    del exc
    collect_quietly()


def test_full_throughput_and_latency():
    """One vector per cycle with no stalls; the first output after LATENCY cycles."""
    lanes, n = 2, 20
    vectors = _vectors(lanes, n, seed=7)
    dut = Requantizer(lanes)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(n + Requantizer.LATENCY + 2):
            if cycle < n:
                ctx.set(dut.i.payload, _payload(vectors[cycle]))
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            _, _, _, valid, ready = await ctx.tick().sample(dut.o.payload, dut.o.valid, dut.i.ready)
            assert ready
            if valid:
                seen.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(1e-6 * 100)
    assert seen == list(range(Requantizer.LATENCY, Requantizer.LATENCY + n))


@pytest.mark.parametrize("m31_zero", [False, True])
@pytest.mark.parametrize("zp_out,relu", [(-128, 0), (17, 1), (127, 0), (-128, 1), (127, 1)])
def test_store_variant_without_stall_or_per_vector_constants(zp_out, relu, m31_zero):
    """``stall=False, per_vector=False`` (the STORE unit's): same results when the output is always
    taken and ``zp_out``/``relu`` are held for the whole stream; with ``m31_zero`` (a compact PARAM
    buffer's) too, on multipliers whose bit 31 is 0 as that buffer keeps them."""
    vectors = _vectors(1, 400, seed=77 + zp_out + relu)
    for v in vectors:
        v["zp_out"], v["relu"] = zp_out, relu
        if m31_zero:
            v["mult"] = [mult & ((1 << 31) - 1) for mult in v["mult"]]
    got = run_requantizer(1, vectors, seed=5, idle=0.3, stall=0.0,
                          options={"stall": False, "per_vector": False, "m31_zero": m31_zero})
    want = np.array([_expected(v) for v in vectors], dtype=np.int64)
    np.testing.assert_array_equal(got, want)
