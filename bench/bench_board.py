"""Board figures: the ULX3S build's Fmax and resources, and the SqueezeNet 1.1 frame rate at that Fmax.

The frame time is the golden executor's cycle model of a SqueezeNet 1.1 (227x227, the real
topology with seeded random weights: cycles depend on shapes only) compiled for the board config,
with external-memory transfers charged at the SDRAM controller's measured-and-modelled rate
(:func:`rtl_gen.sdram.throughput_model`: one word per cycle in a row, a precharge+activate per
row change, the refresh share) instead of one word per cycle. The UART times of the input, the
output and (once per model) the program are added separately at the link's baud rate with the
protocol's framing overhead.

The Fmax and resources come from the last ``make bitstream BOARD=ulx3s`` report
(``build/boards/ulx3s-ulx3s/report.json``); without it the configured clock is used and the
section says how to produce the report.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "build" / "boards" / "ulx3s-ulx3s" / "report.json"


def _sdram_cycle_model(config, clock_mhz: float):
    """A :class:`sqzhw.golden.executor.CycleModel` whose LOAD/STORE pay the SDRAM's cycles per word."""
    from rtl_gen.sdram import IS42S16160, SDRAMTiming, throughput_model
    from sqzhw.golden.executor import CycleModel, _entry_bytes
    from sqzhw.isa import LoadTarget, Opcode, StoreSource

    timing = SDRAMTiming(cas_latency=2 if clock_mhz <= 100 else 3)
    tp = throughput_model(IS42S16160, timing, min(clock_mhz, 143.0))
    c = timing.cycles(min(clock_mhz, 143.0))
    row_miss = c.rp + c.rcd + 1   # a DMA row starting in a row the bank does not hold open

    @dataclass(frozen=True)
    class SDRAMCycleModel(CycleModel):
        def cycles(self, d, cfg):
            base = super().cycles(d, cfg)
            if d.opcode not in (Opcode.LOAD, Opcode.STORE):
                return base
            f = d.fields
            E = cfg.ext_bytes
            if d.opcode is Opcode.LOAD:
                words = f["rows"] * f["row_len"] * _entry_bytes(cfg, LoadTarget(f["target"]).name) // E
                factor = tp["seq_read"]
            else:
                n = f["rows"] * f["row_len"]
                eb = cfg.acc_entry_bytes if StoreSource(f["source"]) is StoreSource.ACC else cfg.act_entry_bytes
                words = n * eb // E
                factor = tp["seq_write"]
            extra = words * (factor - 1) + f["rows"] * row_miss
            return base + math.ceil(extra)

    return SDRAMCycleModel(), tp


def uart_seconds(n_bytes: int, baud: int, max_payload: int | None = None, request: bool = True) -> float:
    """Time to move ``n_bytes`` of memory over the host link: frames of at most ``max_payload``
    bytes, each with its header, address/args and CRC, plus the reply frame; 10 bits per byte."""
    from sqzhw import protocol
    max_payload = max_payload or protocol.MAX_PAYLOAD
    frames = max(1, math.ceil(n_bytes / max_payload))
    overhead = protocol.REQUEST_HEADER_BYTES + protocol.CRC_BYTES + protocol.RESPONSE_HEADER_BYTES \
        + protocol.CRC_BYTES
    args = protocol.WRITE_ADDR_BYTES if request else 6
    return (n_bytes + frames * (overhead + args)) * 10 / baud


def main(out_dir) -> dict:
    from sqzhw.compiler.codegen import compile_graph
    from sqzhw.compiler.testing import random_qgraph
    from sqzhw.config import load_config
    from sqzhw.golden.executor import estimate_cycles
    from sqzhw.preprocess import Preprocess

    out_dir = Path(out_dir)
    config = load_config("ulx3s")
    if REPORT.exists():
        report = json.loads(REPORT.read_text())
        fmax = report.get("fmax_sync_mhz") or config.clock_mhz
        print(f"ULX3S build report {REPORT} (config {report['config']['name']}, tag {report['tag']}, "
              f"engine {report['engine']}, built in {report['build_seconds']:.0f} s)")
        for clk, f in report.get("fmax", {}).items():
            print(f"  Fmax {clk}: {f['achieved']:.2f} MHz (target {f['constraint']:.2f})")
        for cell, u in sorted(report.get("utilization", {}).items()):
            if u["used"]:
                print(f"  {cell:14s} {u['used']:7d} / {u['available']:7d} ({100 * u['used'] / u['available']:.1f} %)")
        baud = report.get("baud", 115200)
    else:
        report = None
        fmax = config.clock_mhz
        baud = 115200
        print(f"no ULX3S build report at {REPORT}: run `make bitstream BOARD=ulx3s` (10+ minutes with the "
              f"YoWASP tools) to get Fmax and resources; using the config's {fmax:g} MHz below")
    clock = min(fmax, config.clock_mhz)   # the PLL runs the config's clock; above Fmax it would fail

    t0 = time.perf_counter()
    print("compiling SqueezeNet 1.1 (227x227, seeded random weights) for the ulx3s config...", flush=True)
    qgraph = random_qgraph("squeezenet1.1", input_size=227, seed=0)
    program = compile_graph(qgraph, config, Preprocess(height=227, width=227))
    print(f"  {len(program.instructions)} instructions in {time.perf_counter() - t0:.1f} s", flush=True)

    results = {}
    for label, mhz in (("config clock", clock), ("Fmax", fmax)):
        model, tp = _sdram_cycle_model(config, mhz)
        timing = estimate_cycles(program.instructions, config, model)
        ideal = estimate_cycles(program.instructions, config)
        seconds = timing.total / (mhz * 1e6)
        results[label] = {"mhz": mhz, "cycles": int(timing.total), "cycles_ideal_memory": int(ideal.total),
                          "frame_ms": seconds * 1e3, "fps_engine": 1 / seconds,
                          "sdram_seq_read_cycles_per_word": tp["seq_read"],
                          "sdram_random_read_cycles_per_word": tp["random_read"]}
    in_bytes = program.region("input").size
    out_bytes = program.region("output").size
    prog_bytes = len(program.image)
    t_in = uart_seconds(in_bytes, baud)
    t_out = uart_seconds(out_bytes, baud, request=False)
    t_prog = uart_seconds(prog_bytes, baud)
    for label, r in results.items():
        frame = r["frame_ms"] / 1e3 + t_in + t_out
        r.update({"fps_with_uart": 1 / frame})
        print(f"SqueezeNet 1.1 at {r['mhz']:.1f} MHz ({label}): {r['cycles']:,} cycles "
              f"({r['cycles_ideal_memory']:,} with 1 word/cycle memory) = {r['frame_ms']:.1f} ms, "
              f"{r['fps_engine']:.2f} frames/s engine only, {r['fps_with_uart']:.3f} frames/s with the UART")
    print(f"UART at {baud} baud: input {in_bytes:,} B = {t_in:.2f} s, output {out_bytes:,} B = "
          f"{t_out:.3f} s per frame; program {prog_bytes:,} B = {t_prog:.1f} s once per model")
    summary = {"report": str(REPORT) if report else None, "fmax_mhz": fmax, "baud": baud,
               "input_bytes": in_bytes, "output_bytes": out_bytes, "program_bytes": prog_bytes,
               "uart_input_s": t_in, "uart_output_s": t_out, "uart_program_s": t_prog, "rates": results,
               "utilization": report.get("utilization") if report else None}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_board.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    import sys
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "bench")
