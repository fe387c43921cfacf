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
