"""Self-tests of test_uring_iter.py's checks against recorded helper output, on the host.

fixtures/uring_iter/<mode>.txt is the output of c/iter_<mode>.c (recorded
when it was c/uring_iter.c <mode>, whose output the programs print unchanged
but for the KTAP test name) from a guest run of the patched kernel, as the
guest test saves it under $HARNESS_RESULTS/helpers/. The recorded
output must pass its check, and each mutation below, standing for one way
the iterator could be wrong, must be caught with a message naming it: a
check that cannot fail would pass them all.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import iter_checks
import test_uring_iter as tui
from helpers import Finished

FIXTURES = Path(__file__).parent / "fixtures" / "uring_iter"


def load(name: str, text: str | None = None) -> iter_checks.HelperRun:
    if text is None:
        text = (FIXTURES / f"{name}.txt").read_text()
    args = tuple(name.split("-"))
    finished = Finished(argv=("uring_iter", *args), returncode=0, timed_out=False, output=text,
                        seconds=1.0)
    return iter_checks.parse_output(finished)


def sub_line(text: str, line_re: str, old: str, new: str, count: int = 1) -> str:
    """Replace @old by @new (regexes) in the first @count lines matching @line_re."""
    out, done = [], 0
    for line in text.splitlines():
        if done < count and re.search(line_re, line):
            changed = re.sub(old, new, line, count=1)
            assert changed != line, f"mutation {old!r} does not apply to {line!r}"
            line, done = changed, done + 1
        out.append(line)
    assert done == count, f"only {done} lines match {line_re!r}"
    return "\n".join(out) + "\n"


def bump_hex(m: re.Match[str]) -> str:
    return f"{m[1]}{int(m[2], 16) + 1:x}"


CHECKERS = {
    "bufs": tui.check_small_pages,
    "huge-hugetlb": tui.check_huge,
    "files": tui.check_files,
    "edeadlk": tui.check_reads,
    "attach": tui.check_attach,
}


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_recorded_output_passes(name: str) -> None:
    run = load(name)
    assert CHECKERS[name](run).problems == []


def problems(name: str, text: str) -> str:
    return "\n".join(CHECKERS[name](load(name, text)).problems)


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text()


# (fixture, line regex, old, new, words the report must contain)
MUTATIONS = [
    # buffers
    ("bufs", r"^iter buf buf .*slot=4 .*bvec_index=5 ", r"(pfn=)([0-9a-f]+)", bump_hex,
     "pagemap PFN"),
    ("bufs", r"^iter buf buf .*slot=2 .*bvec_index=0 ", r"bv_offset=100", "bv_offset=0",
     "bv_offset"),
    ("bufs", r"^iter buf buf .*slot=2 .*bvec_index=3 ", r"bv_len=300", "bv_len=299",
     "bv_len"),
    ("bufs", r"^iter buf buf .*slot=4 ", r"acct_pages=16", "acct_pages=15", "acct_pages"),
    ("bufs", r"^iter buf buf .*slot=0 ", r"addr=7", "addr=8", "user address"),
    ("bufs", r"^iter buf buf .*slot=0 ", r"refs=1", "refs=2", "refs"),
    ("bufs", r"^iter buf buf .*slot=0 ", r"(tbl=)([0-9a-f]+)", bump_hex, "the table"),
    ("bufs", r"^iter buf buf .*slot=3 ", r"(bvec=)([0-9a-f]+)", bump_hex, "&ubuf->bvec"),
    ("bufs", r"^iter buf buf .*slot=3 ", r"(bv_page=)([0-9a-f]+)", bump_hex,
     "sizeof(struct page)"),
    ("bufs", r"^iter buf buf .*slot=3 ", r"(ring=)([0-9a-f]+)", bump_hex,
     "distinct ring pointers"),
    ("bufs", r"^iter buf buf .*slot=3 ", r"slot=3", "slot=1", "slots shown"),
    ("bufs", r"^iter buf buf .*slot=3 ", r"folio_shift=12", "folio_shift=13", "folio_shift"),
    ("bufs", r"^iter buf end ", r"nr_user_bufs=8", "nr_user_bufs=7", "nr_user_bufs"),
    ("bufs", r"^iter buf end ", r"cq_entries=64", "cq_entries=32", "cq_entries"),
    ("bufs", r"^iter buf end ", r"^iter buf end buf", "iter buf end file", "final call is for"),
    ("bufs", r"^iter buf buf .*slot=4 .*bvec_index=7 ", r"seq=\d+", "seq=0", "seq_num"),
    ("bufs", r"^iter buf-chunked buf .*slot=6 ", r"bv_len=100", "bv_len=101", "buf-chunked"),
    ("bufs", r"^iter buf-unmapped buf .*slot=0 ", r"(pfn=)([0-9a-f]+)", bump_hex,
     "buf-unmapped"),
    ("bufs", r"^vmpin ", r"after_kb=\d+", "after_kb=0", "VmPin"),
    ("bufs", r"^counters when=buf-chunked ", r"buf_stops=2", "buf_stops=1", "final calls"),
    ("bufs", r"^fdinfo +6: ", r"/100$", "/101", "fdinfo UserBufs row 6"),
    # huge pages
    ("huge-hugetlb", r"^iter buf buf .*slot=0 .*bvec_index=1 ", r"(pfn=)([0-9a-f]+)", bump_hex,
     "pagemap PFN"),
    ("huge-hugetlb", r"^iter buf buf .*slot=0 .*bvec_index=0 ", r"bv_offset=12305",
     "bv_offset=17", "bv_offset"),
    ("huge-hugetlb", r"^iter buf buf .*slot=0 ", r"folio_shift=21", "folio_shift=12",
     "folio_shift"),
    ("huge-hugetlb", r"^iter buf buf .*slot=1 ", r"acct_pages=0", "acct_pages=1", "acct_pages"),
    # files
    ("files", r"^iter file file .*slot=0 ", r"ino=2 ", "ino=3 ", "i_ino"),
    ("files", r"^iter file file .*slot=0 ", r"dev=3a", "dev=3b", "s_dev"),
    ("files", r"^iter file file .*slot=10 ", r"rdev=100003", "rdev=3", "i_rdev"),
    ("files", r"^iter file file .*slot=0 ", r"mode=8180", "mode=81a4", "i_mode"),
    ("files", r"^iter file file .*slot=3 ", r"f_flags=800", "f_flags=0", "f_flags"),
    ("files", r"^iter file file .*slot=2 ", r"f_mode=4d801e", "f_mode=4d801d", "f_mode"),
    ("files", r"^iter file file .*slot=9 ", r"pos=5", "pos=0", "f_pos"),
    ("files", r"^iter file file .*slot=8 ", r"count=2", "count=1", "f_count"),
    ("files", r"^iter file file .*slot=7 ", r"sk_type=2", "sk_type=1", "sock->type"),
    ("files", r"^iter file file .*slot=9 ", r"name=file_c", "name=file_d", "dentry name"),
    ("files", r"^iter file file .*slot=8 ", r"(file=)([0-9a-f]+)", bump_hex,
     "distinct struct files"),
    ("files", r"^iter file file .*slot=9 ", r"slot=9", "slot=11", "slots shown"),
    ("files", r"^iter file file .*slot=2 ", r"(tbl=)([0-9a-f]+)", lambda m: f"{m[1]}0",
     "file_table"),
    ("files", r"^iter file end ", r"nr_user_files=12", "nr_user_files=11", "nr_user_files"),
    ("files", r"^iter file-chunked file .*slot=6 ", r"pos=0", "pos=1", "file-chunked"),
    ("files", r"^taskfd fd=5 ", r"ino=\d+ dev_major=0 dev_minor=\d+",
     "ino=4 dev_major=0 dev_minor=58", "direct descriptor's file"),
    ("files", r"^fdinfo +1: ", r"<none>", "file_a", "fdinfo UserFiles row 1"),
    # reads through io_uring
    ("edeadlk", r"^case name=self-inline iter=buf ", r"res=-35", "res=655", "CQE res"),
    ("edeadlk", r"^case name=sqpoll-inline iter=file ", r"res=-35", "res=-11", "CQE res"),
    ("edeadlk", r"^case name=self-iowq iter=file ", r"same=1", "same=0", "content"),
    ("edeadlk", r"^case name=read-after-edeadlk iter=buf ", r"same=1", "same=0",
     "read-after-edeadlk"),
    ("edeadlk", r"^case name=other-inline iter=buf ", r"status=0", "status=-35", "status"),
    # attach errors
    ("attach", r"^attach case=closed iter=buf ", r"errno=9", "errno=95", "closed"),
    ("attach", r"^attach case=zero_is_ring iter=file ", r"errno=9", "errno=0", "zero_is_ring"),
    ("attach", r"^attach case=bpf_link iter=file ", r"errno=95", "errno=9", "bpf_link"),
    ("attach", r"^attach case=ring iter=buf ", r"errno=0", "errno=22", "attach the buf"),
]


@pytest.mark.parametrize("name,line_re,old,new,words", MUTATIONS,
                         ids=[f"{m[0]}:{m[4]}:{i}" for i, m in enumerate(MUTATIONS)])
def test_mutation_is_caught(name: str, line_re: str, old: str, new: object, words: str) -> None:
    text = sub_line(fixture(name), line_re, old, new)  # type: ignore[arg-type]
    report = problems(name, text)
    assert report, "the mutation went unnoticed"
    assert words in report, report


@pytest.mark.parametrize("name,kind", [("bufs", "buf"), ("files", "file")])
def test_missing_or_extra_final_call_is_caught(name: str, kind: str) -> None:
    lines = fixture(name).splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith(f"iter {kind} end "))
    without = "\n".join(lines[:end] + lines[end + 1:]) + "\n"
    assert "final-call lines: got 0" in problems(name, without)
    twice = "\n".join(lines[:end + 1] + lines[end:]) + "\n"
    assert "final-call lines: got 2" in problems(name, twice)
    # the final call must come after every object
    first = next(i for i, line in enumerate(lines) if line.startswith(f"iter {kind} {kind} "))
    early = lines[:first] + [lines[end]] + lines[first:end] + lines[end + 1:]
    assert "not the last one" in problems(name, "\n".join(early) + "\n")


def test_helper_failure_is_a_failure() -> None:
    text = fixture("bufs").replace("ok 1 bufs", "not ok 1 bufs # attach")
    with pytest.raises(pytest.fail.Exception, match="exited 0"):
        load("bufs", text)
    finished = Finished(argv=("uring_iter", "bufs"), returncode=None, timed_out=True,
                        output="step walk buf whole\n", seconds=360.0)
    with pytest.raises(pytest.fail.Exception, match="stuck in the kernel"):
        iter_checks.parse_output(finished)


def test_skip_exit_skips() -> None:
    finished = Finished(argv=("uring_iter", "bufs"), returncode=77, timed_out=False,
                        output="TAP version 13\n1..1\nok 1 bufs # SKIP no UAPI\n", seconds=0.1)
    with pytest.raises(pytest.skip.Exception, match="no UAPI"):
        iter_checks.parse_output(finished)
