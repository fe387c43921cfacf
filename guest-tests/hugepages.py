"""2 MiB huge pages for the tests that register huge-page backed buffers.

hugetlb: the pool is empty after boot; reserved_hugetlb() grows it by what
is missing for the duration of a `with` block and shrinks it back after.
THP: only usable when the kernel has CONFIG_TRANSPARENT_HUGEPAGE and it is
not switched off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HUGETLB_2M = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


@contextmanager
def reserved_hugetlb(count: int, pool: Path = HUGETLB_2M) -> Iterator[str | None]:
    """Make at least `count` 2M hugetlb pages free; yields None, or why it could not."""
    if not pool.is_dir():
        yield f"no 2M hugetlb pool ({pool} missing: CONFIG_HUGETLBFS not set?)"
        return
    nr_path, free_path = pool / "nr_hugepages", pool / "free_hugepages"
    original = _read_int(nr_path)
    free = _read_int(free_path)
    if free >= count:
        yield None
        return
    try:
        nr_path.write_text(f"{original + count - free}\n")
    except OSError as e:
        yield f"cannot grow the 2M hugetlb pool through {nr_path}: {e}"
        return
    try:
        now_free = _read_int(free_path)
        if now_free < count:
            yield (f"the kernel found only {now_free} free 2M pages for the hugetlb pool "
                   f"(wanted {count}; memory too fragmented?)")
        else:
            yield None
    finally:
        nr_path.write_text(f"{original}\n")


def thp_unavailable(enabled: Path = THP_ENABLED) -> str | None:
    """None if MADV_HUGEPAGE can give THP folios, else why not."""
    try:
        setting = enabled.read_text()
    except FileNotFoundError:
        return "the kernel has no transparent huge pages (CONFIG_TRANSPARENT_HUGEPAGE is not set)"
    if "[never]" in setting:
        return f"transparent huge pages are switched off ({enabled}: {setting.strip()})"
    return None
