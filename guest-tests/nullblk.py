"""A block device that completes by polling, for IORING_SETUP_IOPOLL rings.

null_blk (built in: configs/base.config) makes devices through configfs; one
made here is memory-backed, so that what a polled write put there a later
polled read gets back, and has one poll queue (null_blk's poll_queues
module parameter allows one by default). The device goes when the `with`
block ends.

6.12's null_blk allocates a memory-backed device's pages as commands first
touch them, and its poll handler runs under bio_poll()'s rcu_read_lock():
a polled write to a page not yet allocated is "BUG: sleeping function
called from invalid context" in null_insert_page(). So the device's first
PREPARED bytes are written once through the page cache and fsync()ed (the
ordinary queue, which may sleep) before any ring polls them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIGFS = Path("/sys/kernel/config")

SETTINGS = (("size", "16"), ("blocksize", "4096"), ("memory_backed", "1"),
            ("poll_queues", "1"), ("irqmode", "0"))
PREPARED = 1 << 20


def _mount_configfs() -> None:
    if (CONFIGFS / "nullb").is_dir():
        return
    mounts = Path("/proc/mounts").read_text()
    if f" {CONFIGFS} configfs " not in mounts:
        subprocess.run(["mount", "-t", "configfs", "configfs", str(CONFIGFS)], check=True,
                       capture_output=True)


@contextmanager
def polled_nullb(name: str) -> Iterator[Path]:
    """/dev/<name>: a new memory-backed null_blk device with a poll queue."""
    _mount_configfs()
    root = CONFIGFS / "nullb"
    if not root.is_dir():
        raise RuntimeError(f"{root} is missing: the kernel has no CONFIG_BLK_DEV_NULL_BLK "
                           "(configs/base.config asks for it) or configfs is not mounted")
    dev = root / name
    dev.mkdir()
    try:
        for key, value in SETTINGS:
            (dev / key).write_text(f"{value}\n")
        (dev / "power").write_text("1\n")
        node = Path("/dev") / name  # a configfs device's disk takes the directory's name
        if not node.exists():
            raise RuntimeError(f"null_blk device {name} is powered on, but {node} did not appear")
        with node.open("r+b", buffering=0) as f:
            f.write(bytes(PREPARED))
            os.fsync(f.fileno())
        yield node
    finally:
        if (dev / "power").read_text().strip() == "1":
            (dev / "power").write_text("0\n")
        dev.rmdir()
