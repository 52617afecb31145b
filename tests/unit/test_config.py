"""Configuration: defaults, user overrides (per detector too), and errors that name key and value."""

from __future__ import annotations

import pytest

from rdmt_core.config import load_config
from rdmt_core.errors import ConfigError


def test_defaults_ship_with_the_package():
    config = load_config()
    mission = config.evaluators_for("dark", "WFI01").mission
    assert mission.limits["dark_rate_p95"] == 0.7 and mission.limits["n_warm_pixels"] == 1_000_000
    assert config.evaluators_for("dark", "WFI01").soc.limits["n_hot_pixels"] == 100_000
    assert config.evaluators_for("dark", "WFI01").change.tolerance == 0.11
    assert config.outputs.store and config.outputs.notify


def test_user_file_overrides_any_part_and_per_detector(tmp_path):
    path = tmp_path / "rdmt.yaml"
    path.write_text(
        """
outputs: {notify: false}
monitors:
  dark:
    options: {hot_from: 0.2}
    evaluators:
      change: {tolerance: 0.2}
    detectors:
      WFI07:
        options: {warm_from: 0.05}
        evaluators:
          mission: {limits: {dark_rate_mean: 0.5}}
"""
    )
    config = load_config(path)
    assert not config.outputs.notify and config.outputs.store
    assert config.evaluators_for("dark", "WFI01").change.tolerance == 0.2
    assert config.evaluators_for("dark", "WFI01").mission.limits["dark_rate_mean"] == 1.0
    wfi07 = config.evaluators_for("dark", "WFI07")
    assert wfi07.mission.limits["dark_rate_mean"] == 0.5 and wfi07.mission.limits["dark_rate_p50"] == 0.51
    assert wfi07.change.tolerance == 0.2
    assert config.options_for("dark", "WFI07").warm_from == 0.05
    assert config.options_for("dark", "WFI07").hot_from == 0.2
    assert config.options_for("dark", "WFI01").warm_from == 0.02


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "monitors: {dark: {evaluators: {change: {tolerance: lots}}}}",
            "monitors.dark.evaluators.change.tolerance",
        ),
        ("monitors: {dark: {evaluators: {change: {tolerance: lots}}}}", "'lots'"),
        ("outputs: {stroe: true}", "outputs.stroe"),
        ("monitors: {darkk: {}}", "unknown monitor 'darkk'"),
        ("monitors: {dark: {options: {hot_from: 0.001}}}", "dead_below < warm_from < hot_from"),
        ("monitors: {dark: {detectors: {WFI19: {}}}}", "WFI19"),
        ("monitors: {dark: {detectors: {WFI03: {evaluators: {soc: {limits: {n_hot_pixels: x}}}}}}}", "WFI03"),
        ("- just\n- a list", "top level must be a mapping"),
        ("outputs: [unclosed", "not valid YAML"),
    ],
)
def test_invalid_config_names_file_key_and_value(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and expected in message
    assert "\n" not in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
