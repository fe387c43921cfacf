from pathlib import Path

import pytest

from harness.layout import Layout
from harness.patches import apply_series
from harness.procs import Completed
from harness.source import SourceError, makefile_version, prepare_source


class NoCommands:
    def run(self, argv, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError(f"a user's tree must not be touched: {argv}")


def kernel_tree(path: Path, sublevel: str = "117") -> Path:
    path.mkdir(parents=True)
    (path / "Makefile").write_text(f"VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = {sublevel}\n"
                                   "EXTRAVERSION = -rc1\nNAME = Baby Opossum Posse\n")
    (path / "Kconfig").write_text("")
    return path


def test_makefile_version(tmp_path: Path) -> None:
    assert makefile_version(kernel_tree(tmp_path / "k", "3")) == "6.12.3-rc1"


def test_user_tree_is_used_as_it_is(tmp_path: Path) -> None:
    tree = kernel_tree(tmp_path / "mine")
    layout = Layout(repo=tmp_path, cache=tmp_path / "cache")
    src = prepare_source(NoCommands(), layout, lambda s: None, tree)
    assert src.user_tree and src.baseline is None and src.version == "6.12.117-rc1"
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "series").write_text("")
    res = apply_series(NoCommands(), src, tmp_path / "patches", lambda s: None)
    assert res.skipped_reason and not res.applied


def test_not_a_kernel_tree_is_explained(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a kernel source tree"):
        prepare_source(NoCommands(), Layout(repo=tmp_path, cache=tmp_path / "c"),
                       lambda s: None, tmp_path)


def test_missing_tarball_names_the_package(tmp_path: Path) -> None:
    from harness.source import unpack_debian_source
    with pytest.raises(SourceError, match="linux-source-6.12"):
        unpack_debian_source(NoCommands(), Layout(repo=tmp_path, cache=tmp_path / "c"),
                             lambda s: None, tarball=tmp_path / "none.tar.xz")
