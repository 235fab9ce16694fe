"""sim/randprog.py: the random instruction streams the RTL tests use (fast, golden model only)."""

import pytest

from sim.randprog import KINDS, dram_problem, field_slots, first_static_violation, fuzz_words, random_case
from sim.runner import place_words
from sqzhw import isa
from sqzhw.config import load_config
from sqzhw.golden.executor import Executor


@pytest.mark.parametrize("config_name", ["tiny", "default", "ulx3s"])
@pytest.mark.parametrize("kind", KINDS)
def test_random_cases_are_legal_and_run_on_the_golden_model(config_name, kind):
    config = load_config(config_name)
    if kind == "add" and not config.add_unit:
        # The ulx3s engine has no ADD unit: the generator cannot make a legal ADD case for it.
        with pytest.raises(AssertionError, match="has no ADD unit"):
            random_case(config, kind, 0)
        return
    for seed in range(8):
        case = random_case(config, kind, seed)
        assert first_static_violation(case.words, config) is None
        image, insn_addr = place_words(config, case.words, case.memory)
        before = bytes(image)
        result = Executor(config, image, case.wr_window).run(insn_addr, len(case.words))
        assert result.done, f"{kind} seed {seed}: {result.message}\n{case.listing()}"
        lo, hi = case.wr_window
        assert image[:lo] == before[:lo] and image[hi:] == before[hi:]
        assert image[lo:hi] != before[lo:hi], "the program stores nothing"


def test_field_slots_match_the_isa_encoding():
    for opcode in isa.Opcode:
        for name, (offset, width, signed) in field_slots(opcode).items():
            if name in ("target", "source"):
                continue  # enums: encode takes members
            value = -1 if signed else (1 << width) - 1
            word = isa.encode(opcode, **{name: value})
            assert (word >> offset) & ((1 << width) - 1) == (1 << width) - 1, (opcode, name)


def test_fuzz_streams_contain_illegal_instructions():
    config = load_config("tiny")
    illegal = 0
    for seed in range(40):
        case = fuzz_words(config, seed)
        found = first_static_violation(case.words, config)
        dram = any(dram_problem(w, config, len(case.memory), *case.wr_window) for w in case.words
                   if isa.check(w, config) is None)
        no_end = not any(w & 0xF == isa.Opcode.END.value for w in case.words)
        illegal += bool(found or dram or no_end)
    assert illegal >= 30
