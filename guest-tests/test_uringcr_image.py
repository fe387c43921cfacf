"""Checkpoint scenarios, the image reader: real images damaged at random (cr_fuzz),
of another version, and with counters moved past 2^32.
"""

from __future__ import annotations

import re
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from helpers import Helpers
from uringcr_run import (UCR_FAILED, Owner, Uringcr, owner_of)

FUZZ_LINE = re.compile(r"^fuzz rounds=(\d+) refused=(\d+) accepted=(\d+) sealed_refused=(\d+)$")
FUZZ_RESTORE = re.compile(r"^fuzz-restore restored=(\d+) failed=(\d+)$")

def _image_of(helpers: Helpers, ucr: Uringcr, owners: list[Owner], image: Path,
              name: str, *args: str) -> None:
    owner = owner_of(helpers, owners, name, *args)
    ucr.dump(owner, image, label=f"dump-{name}")
    owner.go(helpers.budget.remaining())


def test_image_version_mismatch(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                                tmp_path: Path) -> None:
    """An image of another version is refused naming both versions, resealed or not."""
    image = tmp_path / "image"
    _image_of(helpers, ucr, owners, image, "cr_pending", "empty")
    manifest = image / "manifest"
    text = manifest.read_text()
    version = int(text.split("\n", 1)[0].removeprefix("uringcr-image "))
    other = version + 1
    manifest.write_text(text.replace(f"uringcr-image {version}\n", f"uringcr-image {other}\n", 1))
    finished = ucr.run("show", image, label="show-damaged")
    assert finished.returncode == UCR_FAILED and "CRC32 mismatch" in finished.output
    # resealed: the version line itself is what the reader refuses
    from_lines = manifest.read_text().splitlines(keepends=True)
    body = "".join(line for line in from_lines if not line.startswith("manifest "))
    manifest.write_text(body + f"manifest crc32=0x{zlib.crc32(body.encode()):08x}\n")
    finished = ucr.run("show", image, label="show-version")
    assert finished.returncode == UCR_FAILED, finished.describe()
    assert (f"image version '{other}'" in finished.output
            and f"reads version {version}" in finished.output), finished.describe()


@pytest.mark.timeout_s(90)  # three dumps and 1800 rounds: a minute under TCG
def test_fuzz_images(helpers: Helpers, ucr: Uringcr, owners: list[Owner], tmp_path: Path,
                     record_property: Any) -> None:
    """Random truncations, byte flips and garbage in real images: each refused cleanly
    (or, resealed and in a binary part, read, shown and restored, and a restore that
    fails leaves nothing behind); never a crash or a hang."""
    rounds = 600
    for name, args in (("cr_files", ()), ("cr_pending", ("big",)), ("cr_bufs", ("hugetlb=0",))):
        image = tmp_path / f"image-{name}"
        _image_of(helpers, ucr, owners, image, name, *args)
        t0 = time.monotonic()
        finished = helpers.run("cr_fuzz", f"dir={image}", f"work={tmp_path / ('w-' + name)}",
                               f"rounds={rounds}", "seed=7")
        line = finished.match(FUZZ_LINE)
        total = sum(int(x) for x in line.groups()[1:])
        assert int(line.group(1)) == rounds == total
        # both kinds of damage were met: behind the checksums and at them
        assert int(line.group(2)) > 0 and int(line.group(4)) > 0, line.group(0)
        record_property(f"fuzz_{name}_seconds", round(time.monotonic() - t0, 2))
        record_property(f"fuzz_{name}", line.group(0))
        # the images the reader took were restored too; a failed one left nothing
        restore = finished.match(FUZZ_RESTORE)
        assert int(restore.group(1)) + int(restore.group(2)) == int(line.group(3))
        record_property(f"fuzz_{name}_restore", restore.group(0))


def _reseal(image: Path) -> None:
    """New sizes and CRC32s in the manifest, as uringcr writes them (README, "The image")."""
    manifest = image / "manifest"
    lines = []
    for line in manifest.read_text().splitlines():
        if line.startswith("part "):
            name = line.split()[1].removeprefix("name=")
            data = (image / name).read_bytes()
            line = f"part name={name} size={len(data)} crc32=0x{zlib.crc32(data):08x}"
        elif line.startswith("manifest "):
            continue
        lines.append(line + "\n")
    body = "".join(lines)
    manifest.write_text(body + f"manifest crc32=0x{zlib.crc32(body.encode()):08x}\n")


def test_image_counters_wrap(helpers: Helpers, ucr: Uringcr, owners: list[Owner],
                             tmp_path: Path) -> None:
    """Counters that wrap past 2^32 in an image: the reader takes them and finds the
    pending entries across the wrap. (The image is a real one with its counters moved
    to just below 2^32: a ring gets there only after 2^32 requests.)"""
    image = tmp_path / "image"
    _image_of(helpers, ucr, owners, image, "cr_pending", "plain")
    text = (image / "ring0.txt").read_text()
    fields = {k: int(v) for line in text.splitlines() if line.startswith(("memory ", "kernel "))
              for k, v in (kv.split("=") for kv in line.split()[1:]) if v.isdigit()}
    base = 2**32 - 2
    moved = {"sq_head": base, "sq_tail": (base + fields["sq_tail"] - fields["sq_head"]) % 2**32,
             "cq_head": base - 1, "cq_tail": (base - 1 + fields["cq_tail"] - fields["cq_head"]) % 2**32}
    moved["cached_sq_head"], moved["cached_cq_tail"] = moved["sq_head"], moved["cq_tail"]
    out = []
    for line in text.splitlines():
        if line.startswith(("memory ", "kernel ")):
            parts = [line.split()[0]]
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                parts.append(f"{k}={moved[k]}" if k in moved else kv)
            line = " ".join(parts)
        out.append(line + "\n")
    (image / "ring0.txt").write_text("".join(out))
    _reseal(image)
    ring = ucr.show(image)["rings"][0]
    assert ring["memory"]["sq_head"] == base and ring["memory"]["sq_tail"] < base
    positions = [s["position"] for s in ring["sqes_pending"]]
    assert positions == [(base + i) % 2**32 for i in range(fields["sq_tail"] - fields["sq_head"])]
    assert [c["position"] for c in ring["cqes_pending"]] == \
        [(base - 1 + i) % 2**32 for i in range(fields["cq_tail"] - fields["cq_head"])]
    assert len(ring["sqes_pending"]) == 3 and len(ring["cqes_pending"]) == 3
    # a restore would replay 2^32 - 2 NOPs (about 2 h under TCG at the measured rate):
    # refused up front when a bound is given, nothing set up
    finished = ucr.run("verify", image, "--max-replay", "1000000", label="verify-wrapped")
    assert finished.returncode == UCR_FAILED, finished.describe()
    m = re.search(r"take (\d+) operations to replay, more than the 1000000 allowed", finished.output)
    assert m and int(m.group(1)) >= base, finished.describe()
