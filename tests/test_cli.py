"""The sqzhw command line, end to end on a small generated SqueezeNet (runs anywhere)."""

import json

import numpy as np
import onnx
import pytest
from PIL import Image

from sqzhw.cli import main


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from sqzhw.models import build_squeezenet, save_model

    d = tmp_path_factory.mktemp("cli")
    model = build_squeezenet("1.1", style="torchvision", input_size=(64, 64), num_classes=16,
                             width_mult=0.25, seed=3)
    save_model(model, d / "tiny_sq.onnx")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    return d


@pytest.fixture(scope="module")
def program(workdir):
    out = workdir / "tiny_sq.sqz"
    assert main(["compile", str(workdir / "tiny_sq.onnx"), "-o", str(out), "--config", "tiny",
                 "--preset", "torchvision", "--size", "64", "64", "--calib-count", "4"]) == 0
    return out


def test_help_on_every_command(capsys):
    for command in ("compile", "run", "selftest", "info", "disasm", "float", "demo"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert "usage: sqzhw " + command in capsys.readouterr().out


def test_run_json_matches_info_and_golden(program, workdir, capsys):
    capsys.readouterr()
    assert main(["run", str(program), str(workdir / "img0.png"), str(workdir / "img1.png"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    for obj in lines:
        assert len(obj["logits"]) == 16
        assert obj["top5"] == [int(k) for k in np.argsort(-np.asarray(obj["logits"]), kind="stable")[:5]]


def test_run_on_a_board_finds_its_rate(program, workdir, capsys, monkeypatch):
    """``--backend board`` without ``--baud`` lets the driver find the rate (``open_serial``), once for
    all the images, and puts it in the JSON; ``--baud`` forces one; a board that never answers is a
    clear error naming the port."""
    from sqzhw.config import load_config
    from sqzhw.driver import DeviceTimeout, transports

    calls = []

    def fake_open(port, baud=None):
        calls.append((port, baud))
        if port == "/dev/ttyDEAD":
            raise DeviceTimeout(f"no sqzhw device answered on {port} at 2,000,000, 1,000,000 baud")
        transport = transports.LoopbackTransport(transports.DeviceModel(load_config("tiny"), 1 << 22))
        transport.baud = baud or 2_000_000
        return transport

    monkeypatch.setattr(transports, "open_serial", fake_open)
    images = [str(workdir / "img0.png"), str(workdir / "img1.png")]
    capsys.readouterr()
    assert main(["run", str(program), *images, "--json"]) == 0
    golden = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    port = ["--backend", "board", "--port", "/dev/ttyFAKE0"]
    assert main(["run", str(program), *images, *port, "--json"]) == 0
    board = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert calls == [("/dev/ttyFAKE0", None)]
    assert [o["baud"] for o in board] == [2_000_000, 2_000_000]
    assert [o["logits"] for o in board] == [o["logits"] for o in golden]
    assert main(["run", str(program), images[0], *port, "--baud", "1000000"]) == 0
    assert calls[-1] == ("/dev/ttyFAKE0", 1_000_000)
    capsys.readouterr()
    assert main(["run", str(program), images[0], "--backend", "board", "--port", "/dev/ttyDEAD"]) == 2
    assert "/dev/ttyDEAD" in capsys.readouterr().err


def test_run_prints_top_classes(program, workdir, capsys):
    capsys.readouterr()
    assert main(["run", str(program), str(workdir / "img0.png"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("class ") == 3


def test_info_and_disasm(program, tmp_path, capsys):
    capsys.readouterr()
    plot = tmp_path / "layers.png"
    assert main(["info", str(program), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "MACs" in out
    assert plot.stat().st_size > 1000
    assert main(["disasm", str(program), "--range", "0:5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip().startswith("0:") for line in lines)


def test_float_command(workdir, capsys):
    capsys.readouterr()
    assert main(["float", str(workdir / "tiny_sq.onnx"), str(workdir / "img0.png"), "--preset", "torchvision",
                 "--size", "64", "64", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out.splitlines()[0])
    assert len(obj["logits"]) == 16


def test_corrupted_program_is_a_clear_error(program, tmp_path, capsys):
    raw = bytearray(program.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.sqz"
    bad.write_bytes(bytes(raw))
    assert main(["info", str(bad)]) == 2
    assert "checksum" in capsys.readouterr().err
    bad.write_bytes(program.read_bytes()[:100])
    assert main(["run", str(bad), "x.png"]) == 2
    assert "truncated" in capsys.readouterr().err


def test_unsupported_op_names_the_node(workdir, tmp_path, capsys):
    model = onnx.load(workdir / "tiny_sq.onnx")
    node = next(n for n in model.graph.node if n.op_type == "Relu")
    node.op_type = "Selu"
    path = tmp_path / "selu.onnx"
    onnx.save(model, path)
    assert main(["compile", str(path), "-o", str(tmp_path / "x.sqz"), "--config", "tiny"]) == 2
    err = capsys.readouterr().err
    assert node.name in err and "Selu" in err


def test_run_on_a_board_loads_once_and_checks_with_the_golden_model(program, workdir, capsys, monkeypatch):
    """``--backend board`` over the in-process device model standing in for the serial port: the
    program crosses the link once for both images, and ``--check`` compares with the golden model."""
    from sqzhw import runtime
    from sqzhw.driver import transports
    from sqzhw.program import Program
    from sqzhw.protocol import Command

    prog = Program.load(program)
    devices = []

    def fake_serial(port, baud=None, **kw):
        assert port == "/dev/fake0"
        devices.append(transports.DeviceModel(prog.config, 1 << 22))
        transport = transports.LoopbackTransport(devices[-1])
        transport.baud = 2_000_000
        return transport

    monkeypatch.setattr(transports, "open_serial", fake_serial)
    capsys.readouterr()
    images = [str(workdir / "img0.png"), str(workdir / "img1.png")]
    assert main(["run", str(program), *images, "--backend", "board", "--port", "/dev/fake0", "--check",
                 "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert len(devices) == 1 and len(lines) == 2
    assert all(obj["bit_exact_with_golden"] is True and obj["cycles"] > 0 for obj in lines)
    assert main(["run", str(program), *images, "--json"]) == 0
    golden = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for board, ref in zip(lines, golden):
        np.testing.assert_array_equal(board["logits"], ref["logits"])
    written = sum(len(f.payload) - 4 for f in devices[0].executed if f.command is Command.WRITE_MEM)
    static = sum(len(blob) for _, blob in prog.static_image())
    inputs = sum(len(runtime.prepare_input(prog, image)) for image in images)
    assert static + inputs <= written < static + inputs + 8 * devices[0].config.ext_bytes
    assert "load" in captured.err   # the program's transfer showed progress


def test_second_run_on_a_board_sends_no_program(program, workdir, capsys, monkeypatch):
    """``sqzhw run --backend board`` twice on the same board (the device model keeps its memory between
    the runs, as a board does): the second run finds the program resident by CRC-32 and sends only
    the input; both runs say what the load did."""
    from sqzhw import runtime
    from sqzhw.driver import transports
    from sqzhw.program import Program
    from sqzhw.protocol import Command

    prog = Program.load(program)
    device = transports.DeviceModel(prog.config, 1 << 22)

    def fake_serial(port, baud=None, **kw):
        transport = transports.LoopbackTransport(device)
        transport.baud = 2_000_000
        return transport

    monkeypatch.setattr(transports, "open_serial", fake_serial)
    image = str(workdir / "img0.png")
    written = []
    for _ in range(2):
        device.executed.clear()
        capsys.readouterr()
        assert main(["run", str(program), image, "--backend", "board", "--port", "/dev/fake0", "--json"]) == 0
        written.append(sum(len(f.payload) - 4 for f in device.executed if f.command is Command.WRITE_MEM))
        err = capsys.readouterr().err
    static = sum(len(blob) for _, blob in prog.static_image())
    inputs = len(runtime.prepare_input(prog, image))
    assert written[0] >= static + inputs and written[1] < inputs + 8 * prog.config.ext_bytes
    assert "already on the device" in err and "nothing sent" in err


def test_check_needs_the_board_backend(program, workdir, capsys):
    assert main(["run", str(program), str(workdir / "img0.png"), "--check"]) == 2
    assert "--backend board" in capsys.readouterr().err


def test_selftest_on_a_board(capsys, monkeypatch):
    """``sqzhw selftest`` over the device model standing in for the serial port: every step passes
    and is printed; a board whose memory loses an address line fails with exit status 1."""
    from sqzhw.config import load_config
    from sqzhw.driver import transports

    small = load_config("small")
    broken = {"on": False}

    def fake_serial(port, baud=None, **kw):
        dev = transports.DeviceModel(small, 1 << 18)
        if broken["on"]:
            dev._execute = _aliasing(dev._execute, dev)
        return transports.LoopbackTransport(dev)

    monkeypatch.setattr(transports, "open_serial", fake_serial)
    assert main(["selftest", "--port", "/dev/fake0", "--block-bytes", "4096"]) == 0
    out = capsys.readouterr().out
    for step in ("link", "data bus", "address bus", "block", "engine"):
        assert f"PASS  {step}" in out
    assert "self-test passed" in out
    broken["on"] = True
    assert main(["selftest", "--port", "/dev/fake0", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is False and result["checks"][-1]["name"] == "address bus"


def _aliasing(execute, dev):
    """``dev._execute`` with byte-address bit 12 ignored on writes (a broken address line)."""
    from sqzhw.protocol import Command, Frame

    def wrapped(f):
        if f.command is Command.WRITE_MEM:
            addr = int.from_bytes(f.payload[:4], "little") & ~(1 << 12)
            f = Frame(f.command, f.seq, addr.to_bytes(4, "little") + f.payload[4:])
        return execute(f)
    return wrapped
