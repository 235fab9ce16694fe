"""Tests of rtl_gen.control: the RTL legality checker against sqzhw.isa.check on fuzzed words, and
the fetch unit against a memory model with latency and stalls."""

import random

import pytest
from amaranth.sim import Simulator

from rtl_gen.control import Checker
from rtl_gen.testing import dram_violation, random_word
from sqzhw import isa
from sqzhw.config import load_config


@pytest.mark.parametrize("name", ["tiny", "default", "small"])
def test_checker_matches_isa_check(name):
    config = load_config(name)
    dut = Checker(config)
    rng = random.Random(1234)
    mem_bytes, wr_lo, wr_hi = 1 << 20, 1 << 18, (1 << 20) - 4096
    words = [random_word(rng, config, mem_bytes) for _ in range(1500)]
    mismatches = []
    seen = set()

    async def bench(ctx):
        ctx.set(dut.mem_bytes, mem_bytes)
        ctx.set(dut.wr_lo, wr_lo)
        ctx.set(dut.wr_hi, wr_hi)
        for word in words:
            ctx.set(dut.insn, isa.Instruction.from_bits(word))
            got = isa.ErrorCode(ctx.get(dut.code.as_value()))
            violation = isa.check(word, config)
            if violation is not None:
                want = violation.code
            elif dram_violation(word, config, mem_bytes, wr_lo, wr_hi):
                want = isa.ErrorCode.DRAM_RANGE
            else:
                want = isa.ErrorCode.NONE
            seen.add(want)
            if got != want:
                mismatches.append((isa.disassemble(word), want, got))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert not mismatches, mismatches[:5]
    # The fuzzer must reach every outcome, or the comparison proves little.
    assert seen >= {isa.ErrorCode.NONE, isa.ErrorCode.BAD_OPCODE, isa.ErrorCode.BAD_FIELD,
                    isa.ErrorCode.BUF_RANGE, isa.ErrorCode.DRAM_ALIGN, isa.ErrorCode.DRAM_RANGE}
