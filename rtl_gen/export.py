"""Verilog export of the engine and its parameter report.

``python -m rtl_gen.export --config NAME --out DIR`` writes

* ``DIR/sqzhw_engine.v``: :class:`rtl_gen.engine.Engine` for the config, via
  :func:`amaranth.back.verilog.convert` (:func:`to_verilog`: also correct under SystemVerilog
  semantics, e.g. ``iverilog -g2012``), top module ``sqzhw_engine`` (ports flattened ``a.b`` ->
  ``a__b``, plus ``clk`` and ``rst``);
* ``DIR/report.json`` and ``DIR/report.txt``: config, tag, array size, buffer sizes in bytes, ISA field
  widths and the port list with directions and widths.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import enum, wiring

from sqzhw import isa
from sqzhw.config import AccelConfig, ConfigError, load_config

from .buffers import buffer_specs
from .engine import Engine

__all__ = ["MODULE_NAME", "port_list", "report", "to_verilog", "export", "main"]

MODULE_NAME = "sqzhw_engine"


def _width(shape) -> int:
    if isinstance(shape, type) and issubclass(shape, enum.Enum):
        return Shape.cast(shape).width
    return Shape.cast(shape).width


def port_list(engine: Engine) -> list[dict]:
    """Verilog ports of the exported module: ``name``, ``dir`` (``input``/``output``), ``width``."""
    ports = [{"name": "clk", "dir": "input", "width": 1}, {"name": "rst", "dir": "input", "width": 1}]
    for path, member in engine.signature.members.flatten():
        if not member.is_port:
            continue
        ports.append({"name": "__".join(str(p) for p in path),
                      "dir": "input" if member.flow is wiring.In else "output",
                      "width": _width(member.shape)})
    return ports


def _isa_fields() -> dict:
    out = {"instruction_bits": isa.INSN_BITS,
           "opcode": _width(isa.Opcode), "wait": isa.WaitFlags.as_shape().size, "opcodes": {}}
    for opcode in isa.Opcode:
        member = isa.fields_of(opcode)
        fields = {}
        if member:
            for name, field in isa.Payload.as_shape().members[member].as_shape():
                fields[name] = _width(field.shape)
        out["opcodes"][opcode.name] = fields
    return out


def report(config: AccelConfig, engine: Engine | None = None) -> dict:
    """The parameter report of the engine for ``config`` (what ``report.json`` holds)."""
    engine = engine or Engine(config)
    specs = buffer_specs(config)
    return {
        "module": MODULE_NAME,
        "config": config.to_dict(),
        "tag": config.tag,
        "array": {"rows": config.rows, "cols": config.cols, "macs_per_cycle": config.macs_per_cycle},
        "buffers": {name: {"entries": s.depth, "entry_bits": s.width, "bytes": s.bytes,
                           "read_ports": list(s.readers), "write_port": s.writer}
                    for name, s in specs.items()},
        "on_chip_bytes": sum(s.bytes for s in specs.values()),
        "ext_data_bits": config.ext_data_bits,
        "isa": _isa_fields(),
        "counters": [c.name for c in isa.Counter],
        "error_codes": {c.name: c.value for c in isa.ErrorCode},
        "ports": port_list(engine),
    }


def _text(rep: dict) -> str:
    lines = [f"sqzhw engine {rep['module']}: config {rep['config']['name']!r}, tag {rep['tag']}",
             f"array {rep['array']['rows']} x {rep['array']['cols']} ({rep['array']['macs_per_cycle']} MACs/cycle),"
             f" external bus {rep['ext_data_bits']} bits, clock target {rep['config']['clock_mhz']} MHz",
             "", "buffers:"]
    for name, b in rep["buffers"].items():
        lines.append(f"  {name.upper():6} {b['entries']:6} x {b['entry_bits']:5} bits = {b['bytes']:8} bytes"
                     f"  (write {b['write_port']}, read {', '.join(b['read_ports'])})")
    lines.append(f"  total  {rep['on_chip_bytes']} bytes")
    lines += ["", f"ISA: {rep['isa']['instruction_bits']}-bit instructions, opcode {rep['isa']['opcode']} bits,"
              f" wait {rep['isa']['wait']} bits"]
    for opcode, fields in rep["isa"]["opcodes"].items():
        if fields:
            lines.append(f"  {opcode:8} " + " ".join(f"{k}:{v}" for k, v in fields.items()))
    lines += ["", "ports:"]
    lines += [f"  {p['dir']:6} {p['width']:4}  {p['name']}" for p in rep["ports"]]
    return "\n".join(lines) + "\n"


#: Yosys' time-zero trigger for ``always @*`` blocks: ``reg \$auto$verilog_backend.cc:N:dump_module$K  = 0;``.
_TRIGGER = re.compile(r"^([ \t]*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog of ``component`` (:func:`amaranth.back.verilog.convert`, no ``src`` attributes) that
    simulates the same under Verilog-2005 and SystemVerilog semantics.

    Yosys makes every ``always @*`` block run at time zero by reading a trigger register declared
    ``reg T = 0;``. Verilog-2005 treats that initializer as an ``initial`` assignment (an X -> 0
    event at time zero), but SystemVerilog applies it before any process starts, with no event
    (IEEE 1800 6.8). So under ``iverilog -g2012`` (the simulation top is SystemVerilog) a block
    whose inputs all keep their initial values never runs and its outputs stay X: the STORE
    unit's ``cmd.ready`` (a function of its FSM state alone) was X until the first STORE, so was
    its ``busy``, and every instruction with wait flags stalled forever. Verilator evaluates all
    logic at time zero and hid it. Writing the trigger as ``reg T; initial T = 1'b0;`` is the
    Verilog-2005 meaning spelled out, and is an event under both standards.
    """
    text = verilog.convert(component, name=name, emit_src=False)
    text = _TRIGGER.sub(lambda mt: f"{mt[1]}reg {mt[2]};\n{mt[1]}initial {mt[2]}= 1'b0;", text)
    if re.search(r"^\s*reg \\\$auto\$verilog_backend\S* += ", text, re.M):   # another Yosys spelling
        raise RuntimeError(f"{name}: Yosys wrote an always @* trigger that rtl_gen.export.to_verilog does "
                           f"not recognise; update its pattern (else Icarus -g2012 leaves outputs X)")
    return text


def export(config: AccelConfig, out: str | Path, progress=print) -> dict:
    """Write ``sqzhw_engine.v`` and the reports for ``config`` into ``out``; return the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    progress(f"export: elaborating Engine({config.name!r}) ({config.tag})")
    engine = Engine(config)
    rep = report(config, engine)
    text = to_verilog(engine, MODULE_NAME)
    (out / f"{MODULE_NAME}.v").write_text(text)
    rep["verilog"] = f"{MODULE_NAME}.v"
    (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    (out / "report.txt").write_text(_text(rep))
    progress(f"export: wrote {out / (MODULE_NAME + '.v')} ({len(text) // 1024} KiB) and report.txt/json"
             f" in {time.monotonic() - t0:.1f} s")
    return rep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl_gen.export", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="preset name or path to a .toml")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    export(config, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
