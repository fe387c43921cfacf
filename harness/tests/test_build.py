import subprocess
from pathlib import Path

from harness.build import Progress, first_error_lines, make_argv


def test_first_errors_from_a_real_compiler_failure(tmp_path: Path) -> None:
    src = tmp_path / "rsrc.c"
    src.write_text("int io_fn(void)\n{\n\treturn undeclared_thing;\n}\n")
    done = subprocess.run(["gcc", "-c", str(src), "-o", str(tmp_path / "x.o")],
                          capture_output=True, text=True)
    lines = ["  CC      io_uring/rsrc.o", *done.stderr.splitlines(),
             "make[4]: *** [scripts/Makefile.build:229: io_uring/rsrc.o] Error 1"]
    errors = first_error_lines(lines)
    assert any("rsrc.c:3" in l and "undeclared_thing" in l for l in errors)
    assert any(l.startswith("make[4]: ***") for l in errors)


def test_make_argv_is_out_of_tree_with_ccache() -> None:
    argv = make_argv(Path("/src"), Path("/b"), 2, "headers_install")
    assert argv == ["make", "-C", "/src", "O=/b", "CC=ccache gcc", "-j2", "headers_install"]


def test_progress_counts_build_steps() -> None:
    said: list[str] = []
    p = Progress(said.append, every=0)
    for line in ["  CC      kernel/fork.o", "  LD      vmlinux.o", "warning: x", "  AR  lib.a"]:
        p(line)
    assert p.count == 3 and len(said) == 3 and "lib.a" in said[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_gives_step_percent_and_eta_from_the_last_full_build() -> None:
    said: list[str] = []
    clock = Clock()
    p = Progress(said.append, every=30, total=1000, clock=clock)
    for n in range(1, 251):
        clock.now = n * 0.2            # 250 steps in 50 s: 5 steps a second
        p(f"  CC      obj{n}.o")
    # one plain line every 30 s of build: at step 150 (30 s), none before
    assert said == ["build: step 150/1000 (15%), 30s, ETA 2m50s, at obj150.o"]


def test_progress_without_a_previous_build_says_so() -> None:
    said: list[str] = []
    clock = Clock()
    p = Progress(said.append, every=0, clock=clock)
    clock.now = 5
    p("  CC      kernel/fork.o")
    assert said == ["build: step 1 (no earlier full build to compare), 5s, at kernel/fork.o"]


def test_progress_on_a_terminal_redraws_one_line() -> None:
    drawn: list[str] = []
    said: list[str] = []
    clock = Clock()
    p = Progress(said.append, total=10, clock=clock, tty=drawn.append, redraw=1)
    for n in range(1, 12):
        clock.now = n
        p(f"  CC      o{n}.o")
    p.done()
    assert said == [] and all(d.startswith("\r\x1b[K") for d in drawn)
    assert "step 10/10 (99%)" in drawn[-3] and "step 11/10 (99%)" in drawn[-2]
    assert drawn[-1] == "\r\x1b[K"      # the line is cleared for the next message


def test_steps_are_remembered_for_full_builds_only(tmp_path: Path) -> None:
    from harness.build import previous_steps, remember_steps
    assert previous_steps(tmp_path) is None
    remember_steps(tmp_path, 4000, 1200)
    remember_steps(tmp_path, 12, 5)          # incremental: says nothing of the total
    assert previous_steps(tmp_path) == 4000
    remember_steps(tmp_path, 4100, 1250)
    assert previous_steps(tmp_path) == 4100
