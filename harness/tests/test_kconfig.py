from pathlib import Path

import pytest

from harness.kconfig import (ConfigError, merge_fragments, missing_options, parse_config_text)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_parse_handles_set_unset_and_values() -> None:
    opts = parse_config_text('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=20\nCONFIG_D="x y"\n'
                             "# a comment\n\n")
    assert {k: o.value for k, o in opts.items()} == {
        "CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": "20", "CONFIG_D": '"x y"'}


def test_parse_rejects_garbage_with_location() -> None:
    with pytest.raises(ConfigError, match="frag:2"):
        parse_config_text("CONFIG_A=y\nCONFIG_B y\n", "frag")


def test_merge_reports_conflicts_between_fragments(tmp_path: Path) -> None:
    a = write(tmp_path, "a.config", "CONFIG_KASAN=y\n")
    b = write(tmp_path, "b.config", "CONFIG_KASAN=n\n")
    with pytest.raises(ConfigError, match="CONFIG_KASAN: y .*a.config.* vs n"):
        merge_fragments([a, b])


def test_missing_options_names_dropped_option(tmp_path: Path) -> None:
    req = merge_fragments([write(tmp_path, "d.config",
                                 "CONFIG_PROVE_LOCKING=y\nCONFIG_DRM=n\nCONFIG_HZ=20\n")])
    final = parse_config_text("# CONFIG_PROVE_LOCKING is not set\nCONFIG_HZ=20\n")
    missing = missing_options(req, final)
    assert len(missing) == 1 and "CONFIG_PROVE_LOCKING=y" in missing[0]


def test_repository_fragments_merge_cleanly() -> None:
    configs = Path(__file__).resolve().parents[2] / "configs"
    merged = merge_fragments(sorted(configs.glob("*.config")))
    assert merged["CONFIG_PROVE_LOCKING"].value == "y"
    assert merged["CONFIG_DEBUG_INFO_BTF"].value == "y"
