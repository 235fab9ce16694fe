"""UART RX/TX in the Amaranth simulator: bit timing, baud-rate error, back-pressure, framing errors."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl_gen.testing import collect_quietly
from rtl_gen.uart import (FT231X, FT2232H, SERIAL_ADAPTER, SerialBridge, UARTRx, UARTTx, baud_text,
                          divisor_for, fastest_exact_baud)

DIV = 16


async def drive_line(ctx, pin, frames, bit_cycles: float, gap_cycles: int = 5):
    """Send ``frames`` (start..stop bit levels) on ``pin`` with ``bit_cycles`` (may be fractional)
    cycles per bit: each level is held from round(t) to round(t + bit_cycles)."""
    t = 0.0
    now = 0
    for bits in frames:
        for level in bits:
            ctx.set(pin, level)
            t += bit_cycles
            while now < round(t):
                await ctx.tick()
                now += 1
        ctx.set(pin, 1)
        for _ in range(gap_cycles):
            await ctx.tick()
            now += 1
        t = float(now)


def frame_bits(byte: int, stop: int = 1) -> list[int]:
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def run_rx(frames, bit_cycles, ready_prob=1.0, seed=0, divisor=DIV, glitch=0):
    """Received bytes, framing-error and overrun pulse counts."""
    dut = UARTRx(divisor)
    rng = np.random.default_rng(seed)
    got, errors, overruns = [], [0], [0]
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    total = int(sum(len(f) for f in frames) * bit_cycles + 10 * len(frames) + 4 * divisor) + 3 * glitch

    async def sender(ctx):
        if glitch:
            ctx.set(dut.rx, 0)
            await ctx.tick().repeat(glitch)
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(2 * divisor)
        await drive_line(ctx, dut.rx, frames, bit_cycles)

    async def receiver(ctx):
        for _ in range(total):   # bounded: every wait has a timeout
            ctx.set(dut.o.ready, int(rng.random() < ready_prob))
            await ctx.tick()

    async def watch(ctx):
        async for _, _, valid, ready, payload, ferr, ovr in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.framing_error, dut.overrun):
            if valid and ready:
                got.append(payload)
            errors[0] += ferr
            overruns[0] += ovr

    sim.add_testbench(sender)
    sim.add_testbench(receiver)
    sim.add_process(watch)
    sim.run()
    return got, errors[0], overruns[0]


@pytest.mark.parametrize("error", [-0.02, -0.01, 0.0, 0.01, 0.02])
def test_rx_baud_error(error):
    rng = np.random.default_rng(int((error + 1) * 100))
    data = [int(b) for b in rng.integers(0, 256, 12)] + [0x00, 0xFF, 0x55, 0xAA]
    got, ferr, ovr = run_rx([frame_bits(b) for b in data], DIV * (1 + error), seed=1)
    assert got == data
    assert (ferr, ovr) == (0, 0)


def test_rx_backpressure():
    rng = np.random.default_rng(7)
    data = [int(b) for b in rng.integers(0, 256, 16)]
    got, ferr, ovr = run_rx([frame_bits(b) for b in data], DIV * 1.015, ready_prob=0.3, seed=3)
    assert got == data
    assert (ferr, ovr) == (0, 0)


def test_rx_overrun_drops_bytes_never_corrupts():
    data = [0x11, 0x22, 0x33, 0x44]
    got, ferr, ovr = run_rx([frame_bits(b) for b in data], DIV, ready_prob=0.0)
    assert got == []
    # the first byte waits in the output register, the others are dropped and flagged
    assert ovr == len(data) - 1


def test_rx_framing_error():
    frames = [frame_bits(0x5A), frame_bits(0x3C, stop=0), frame_bits(0xC3)]
    got, ferr, ovr = run_rx(frames, DIV)
    assert got == [0x5A, 0xC3]
    assert ferr == 1


def test_rx_ignores_glitch():
    # a low pulse shorter than half a bit is not a start bit
    got, ferr, _ = run_rx([frame_bits(0x81)], DIV, glitch=DIV // 2 - 3)
    assert got == [0x81]
    assert ferr == 0


def run_tx(data, valid_prob=1.0, seed=0, divisor=DIV):
    """Decode the tx line by mid-bit sampling; also check each bit lasts exactly ``divisor``."""
    dut = UARTTx(divisor)
    rng = np.random.default_rng(seed)
    line: list[int] = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    total = len(data) * (10 * divisor + 40) + 100

    async def feeder(ctx):
        for b in data:
            while rng.random() >= valid_prob:
                await ctx.tick()
            ctx.set(dut.i.payload, b)
            ctx.set(dut.i.valid, 1)
            for _ in range(20 * divisor):
                await ctx.tick()
                if ctx.get(dut.i.ready):
                    break
            else:
                raise AssertionError("UARTTx never took a byte")
            ctx.set(dut.i.valid, 0)

    async def sampler(ctx):
        for _ in range(total):
            await ctx.tick()
            line.append(ctx.get(dut.tx))

    sim.add_testbench(feeder)
    sim.add_testbench(sampler)
    sim.run()
    out = []
    i = 0
    while i < len(line):
        if line[i] == 0:
            run = line[i:i + 10 * divisor]
            bits = [run[k * divisor + divisor // 2] for k in range(10)]
            assert all(v == bits[k] for k in range(10) for v in run[k * divisor:(k + 1) * divisor]), \
                "bit not held for exactly one bit time"
            assert bits[0] == 0 and bits[9] == 1
            out.append(sum(b << k for k, b in enumerate(bits[1:9])))
            i += 10 * divisor - divisor // 2     # resume hunting inside the stop bit
        else:
            i += 1
    return out


def test_tx_bytes():
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80]
    assert run_tx(data) == data


def test_tx_random_idle():
    rng = np.random.default_rng(5)
    data = [int(b) for b in rng.integers(0, 256, 10)]
    assert run_tx(data, valid_prob=0.05, seed=2, divisor=8) == data


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_divisor_for():
    assert divisor_for(50e6, 115200) == 434
    assert divisor_for(12e6, 3_000_000) == 4
    with pytest.raises(ValueError, match="too slow"):
        divisor_for(1e6, 1_000_000)
    with pytest.raises(ValueError, match="off by"):
        divisor_for(10e6, 1_500_000)
    with pytest.raises(ValueError, match="divisor"):
        UARTRx(2)
    collect_quietly()   # the refused receiver


def test_bridge_exact_rates():
    """FTDI rates: the base clock over 1, 1.5 and n + k/8 (n >= 2), fastest first, none above the
    bridge's maximum; an adapter of unknown make has only its listed rates."""
    first = [r for _, r in zip(range(4), FT231X.exact_rates())]
    assert first == [3_000_000, 2_000_000, 1_500_000, round(3e6 / 2.125)]
    assert [r for _, r in zip(range(3), FT2232H.exact_rates())] == [12_000_000, 8_000_000, 6_000_000]
    rates = set(FT2232H.exact_rates())
    assert {4_000_000, 3_000_000, 2_000_000, 1_000_000, round(12e6 / 2.875), 115_385} <= rates
    assert 10_000_000 not in rates and 7_000_000 not in rates     # 12 MHz / 1.2, / 1.71: no such divisor
    assert 2_500_000 not in set(FT231X.exact_rates())             # 3 MHz / 1.2
    assert list(SERIAL_ADAPTER.exact_rates()) == [1_000_000]
    mixed = SerialBridge("x", 2_000_000, base_hz=3_000_000, rates=(2_500_000, 1_800_000, 2_000_000))
    assert [r for _, r in zip(range(4), mixed.exact_rates())] == [2_000_000, 1_800_000, 1_500_000, 1_411_765]


@pytest.mark.parametrize("bridge, mhz, baud, cycles", [
    (FT231X, 50, 2_000_000, 25),          # ULX3S: 3 Mbaud would be 16.67 cycles (1.96 % off)
    (FT231X, 40, 2_000_000, 20),          # ULX3S, ulx3s_bypass config
    (FT231X, 25, 1_000_000, 25),          # the small config: 2 Mbaud would be 12.5, 1.5 Mbaud 16.67
    (FT2232H, 60, 6_000_000, 10),         # ECPIX-5: 12 Mbaud would be 5 cycles, 8 Mbaud 7.5
    (FT2232H, 18, 2_000_000, 9),          # iCEBreaker: 3 Mbaud would be 6 cycles
    (FT2232H, 100, 4_000_000, 25),        # Arty: 4.17 Mbaud (12 MHz / 2.875) is 24 cycles 0.17 % off
    (SERIAL_ADAPTER, 60, 1_000_000, 60),  # OrangeCrab
])
def test_fastest_exact_baud(bridge, mhz, baud, cycles):
    assert fastest_exact_baud(bridge, mhz * 1e6) == baud
    assert divisor_for(mhz * 1e6, baud) == cycles


def test_fastest_exact_baud_limits():
    # fewer cycles per bit allowed: the bridge's top rate
    assert fastest_exact_baud(FT2232H, 60e6, min_cycles=5) == 12_000_000
    # a looser tolerance takes the nearly exact rate
    assert fastest_exact_baud(FT2232H, 100e6, tolerance=2e-3) == round(12e6 / 2.875)
    with pytest.raises(ValueError, match="no rate of the USB-serial adapter that a 27.5 MHz clock"):
        fastest_exact_baud(SERIAL_ADAPTER, 27.5e6)
    with pytest.raises(ValueError, match="at least 4"):
        fastest_exact_baud(FT231X, 50e6, min_cycles=2)
    assert [baud_text(b) for b in (2_000_000, 1_411_765, 115_200, 300)] == [
        "2 Mbaud", "1.412 Mbaud", "115.2 kbaud", "300 baud"]
