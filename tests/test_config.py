"""AccelConfig: presets load, derived sizes, validation messages, tag."""

import dataclasses

import pytest

from sqzhw.config import AccelConfig, ConfigError, load_config, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_presets_load(name):
    config = load_config(name)
    assert config.name == name
    assert config.cols % config.rows == 0
    assert config.rows % config.ext_bytes == 0
    # Round trip through the dict form a program file stores.
    assert AccelConfig.from_dict(config.to_dict()) == config


def test_required_presets_exist():
    assert {"tiny", "default", "ulx3s", "small"} <= set(preset_names())


def test_tag_names_every_hardware_parameter():
    config = load_config("default")
    assert config.tag.startswith(f"{config.rows}x{config.cols}_i8w8a32_")
    for field in ("act_buf_entries", "wgt_buf_tiles", "acc_buf_entries", "out_buf_entries",
                  "param_buf_entries", "ext_data_bits"):
        value = getattr(config, field)
        changed = dataclasses.replace(config, **{field: value // 2 if field == "ext_data_bits" else value * 2})
        assert changed.tag != config.tag, field
    # The name and the clock do not change what a program runs on.
    assert dataclasses.replace(config, name="other", clock_mhz=1.0).tag == config.tag


def test_derived_sizes():
    config = load_config("tiny")
    assert config.block == config.rows
    assert config.wgt_tile_bytes == config.rows * config.cols
    assert config.acc_entry_bytes == 4 * config.cols
    assert config.on_chip_bytes > 0


@pytest.mark.parametrize("change, message", [
    ({"rows": 3}, "rows = 3: must be a power of two"),
    ({"cols": 6}, "cols = 6: must be a multiple of rows"),
    ({"ext_data_bits": 64}, "must divide an activation entry"),
    ({"act_buf_entries": 0}, "act_buf_entries = 0: must be a positive integer"),
    ({"acc_bits": 16}, "only int8"),
    ({"wgt_buf_tiles": 1 << 17}, "at most 65536"),
])
def test_invalid_configs_name_the_field(change, message):
    values = {**load_config("tiny").to_dict(), **change}
    with pytest.raises(ConfigError, match=message):
        AccelConfig.from_dict(values)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="no config preset 'nope'.*tiny"):
        load_config("nope")


def test_unknown_field(tmp_path):
    path = tmp_path / "odd.toml"
    path.write_text('rows = 4\ncols = 4\nact_buf_entries = 8\nwgt_buf_tiles = 8\nacc_buf_entries = 8\n'
                    'out_buf_entries = 8\nparam_buf_entries = 8\nbogus = 1\n')
    with pytest.raises(ConfigError, match="unknown field.*bogus"):
        load_config(path)


@pytest.mark.parametrize("change, field", [
    ({"requant_lanes": 3}, "requant_lanes"), ({"requant_lanes": 8}, "requant_lanes"),
    ({"requant_lanes": -1}, "requant_lanes"), ({"add_unit": 1}, "add_unit"),
    ({"add_lanes": 1}, "add_lanes"), ({"add_lanes": 8}, "add_lanes"), ({"add_lanes": True}, "add_lanes"),
    ({"fetch_depth": -1}, "fetch_depth"), ({"fetch_depth": 17}, "fetch_depth"),
    ({"fetch_depth": True}, "fetch_depth"), ({"broadcast_array": 1}, "broadcast_array"),
    ({"broadcast_array": True}, "broadcast_array"),   # tiny has 4 rows: only <= 2 broadcast
])
def test_area_knobs_validated(change, field):
    values = {**load_config("tiny").to_dict(), **change}
    with pytest.raises(ConfigError, match=f"{field} = "):
        AccelConfig.from_dict(values)


def test_area_knob_defaults_and_tag():
    tiny = load_config("tiny")
    assert (tiny.requant_lanes, tiny.add_unit, tiny.store_lanes) == (0, True, tiny.rows)
    serial = AccelConfig.from_dict({**tiny.to_dict(), "requant_lanes": 1})
    assert serial.store_lanes == 1 and serial.tag == tiny.tag     # throughput only
    no_add = AccelConfig.from_dict({**tiny.to_dict(), "add_unit": False})
    assert no_add.tag == tiny.tag + "_noadd"                       # changes what can run
    ice = load_config("icebreaker")
    assert ice.rows >= 2 and ice.store_lanes == 1 and not ice.add_unit
    assert tiny.add_lanes == 0 and tiny.add_requant_lanes == tiny.rows
    half = AccelConfig.from_dict({**tiny.to_dict(), "add_lanes": tiny.rows // 2})
    assert half.add_requant_lanes == tiny.rows // 2 and half.tag == tiny.tag   # area only


def test_fetch_depth_default_and_tag():
    tiny = load_config("tiny")
    assert tiny.fetch_depth == 4
    assert AccelConfig.from_dict({**tiny.to_dict(), "fetch_depth": 0}).tag == tiny.tag  # throughput only
    assert load_config("icebreaker").fetch_depth == 0


@pytest.mark.parametrize("change, field", [
    ({"ext_addr_bits": 9}, "ext_addr_bits"), ({"ext_addr_bits": 33}, "ext_addr_bits"),
    ({"ext_addr_bits": True}, "ext_addr_bits"), ({"ext_addr_bits": 17.0}, "ext_addr_bits"),
    ({"max_reads": 0}, "max_reads"), ({"max_reads": 65}, "max_reads"), ({"max_reads": True}, "max_reads"),
])
def test_address_and_read_knobs_validated(change, field):
    values = {**load_config("tiny").to_dict(), **change}
    with pytest.raises(ConfigError, match=f"{field} = "):
        AccelConfig.from_dict(values)


def test_address_and_read_knobs_defaults_and_tag():
    from sqzhw.isa import mem_limit

    tiny = load_config("tiny")
    assert (tiny.ext_addr_bits, tiny.max_reads) == (32, 16)
    for name in ("default", "ulx3s"):      # their engines (and cycle counts) stay as they were
        assert (load_config(name).ext_addr_bits, load_config(name).max_reads) == (32, 16)
    narrow = AccelConfig.from_dict({**tiny.to_dict(), "ext_addr_bits": 10, "max_reads": 1})
    assert narrow.tag == tiny.tag                                   # area only
    ice = load_config("icebreaker")
    assert (ice.ext_addr_bits, ice.max_reads) == (17, 4)             # the 128 KiB SPRAM
    # The one DRAM limit of the golden model and the engine: mem_bytes, at most 2**ext_addr_bits.
    assert mem_limit(ice, 1 << 20) == 1 << 17 and mem_limit(ice, 4096) == 4096
    assert mem_limit(tiny, (1 << 32) - 1) == (1 << 32) - 1


def test_broadcast_array_default_and_tag():
    tiny = load_config("tiny")
    assert not tiny.broadcast_array
    small = load_config("small")
    assert AccelConfig.from_dict({**small.to_dict(), "broadcast_array": True}).tag == small.tag
    assert load_config("icebreaker").broadcast_array
