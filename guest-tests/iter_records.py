"""The record lines of the iterator programs (c/iter_*.c, c/lockorder_*.c).

They print what they set up and observed, and copy every line the
iterators (bpf/uring_iter.bpf.c) print, as "<kind> [word ...] key=value ...".
A file's dentry name may be empty or hold anything, spaces included, so in
the kinds that show one it comes last and "name=" takes the rest of the line.
Which kinds those are differs per family, hence record_parser().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(kw_only=True)
class Rec:
    """One "<kind> [word ...] key=value ... [name=rest of line]" line."""

    kind: str
    words: list[str]
    kv: dict[str, str]
    raw: str

    def dec(self, key: str) -> int:
        return int(self.kv[key])

    def hexv(self, key: str) -> int:
        return int(self.kv[key], 16)

    def octv(self, key: str) -> int:
        return int(self.kv[key], 8)

    def get(self, key: str, default: str = "") -> str:
        return self.kv.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.kv[key]

    def __contains__(self, key: str) -> bool:
        return key in self.kv


def record_parser(*name_last: str) -> Callable[[str], Rec]:
    """A line parser for output whose records of the kinds name_last end in "name=..."."""
    prefixes = tuple(f"{kind} " for kind in name_last)

    def parse_rec(line: str) -> Rec:
        body, name = line, None
        if line.startswith(prefixes) and " name=" in line:
            body, _, name = line.partition(" name=")
        tokens = body.split()
        kv: dict[str, str] = {}
        words: list[str] = []
        for token in tokens[1:]:
            key, eq, value = token.partition("=")
            if eq:
                kv[key] = value
            else:
                words.append(token)
        if name is not None:
            kv["name"] = name
        return Rec(kind=tokens[0] if tokens else "", words=words, kv=kv, raw=line)

    return parse_rec
