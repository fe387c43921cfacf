"""Config: virtme-ng's minimal config plus our fragments, verified.

virtme-configkernel writes the config (its defconfig plus the fragments in
configs/).  olddefconfig may silently drop an option whose dependencies are
not met, so every option a fragment asks for is checked against the final
.config, and a missing one is an error that names it (as kunit_tool does).
The config is regenerated in a scratch directory and only copied into the
build directory when it differs, so an unchanged config rebuilds nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from .errors import HarnessError
from .procs import Runner

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


class ConfigError(HarnessError):
    pass


@dataclass(frozen=True)
class Option:
    name: str
    value: str  # 'y', 'm', 'n', a number or a quoted string
    origin: str  # "file:line", for messages


def parse_config_text(text: str, origin: str = "<config>") -> dict[str, Option]:
    options: dict[str, Option] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        m = _SET.match(line)
        if m:
            options[m.group(1)] = Option(m.group(1), m.group(2), f"{origin}:{lineno}")
            continue
        m = _UNSET.match(line)
        if m:
            options[m.group(1)] = Option(m.group(1), "n", f"{origin}:{lineno}")
            continue
        if line and not line.startswith("#"):
            raise ConfigError(f"{origin}:{lineno}: not a Kconfig line: {raw!r}")
    return options


def merge_fragments(fragments: list[Path]) -> dict[str, Option]:
    """Union of the fragments; two fragments disagreeing is an error."""
    merged: dict[str, Option] = {}
    conflicts = []
    for frag in fragments:
        for name, opt in parse_config_text(frag.read_text(), str(frag)).items():
            old = merged.get(name)
            if old is not None and old.value != opt.value:
                conflicts.append(f"{name}: {old.value} ({old.origin}) vs {opt.value} ({opt.origin})")
            merged[name] = opt
    if conflicts:
        raise ConfigError("config fragments disagree:\n  " + "\n  ".join(conflicts))
    return merged


def missing_options(requested: Mapping[str, Option], actual: Mapping[str, Option]) -> list[str]:
    """Requested options whose value did not survive into the final config."""
    missing = []
    for name, opt in requested.items():
        got = actual.get(name)
        have = got.value if got else "n"
        if have != opt.value:
            missing.append(f"{name}={opt.value} ({opt.origin}) is {name}={have} in .config")
    return missing


@dataclass(frozen=True, kw_only=True)
class ConfigResult:
    config_path: Path
    changed: bool
    fragments: list[Path]
    digest: str  # sha256 of the final .config


def fragment_files(config_dir: Path, names: list[str]) -> list[Path]:
    files = []
    for name in names:
        path = config_dir / f"{name}.config"
        if not path.exists():
            raise ConfigError(f"config fragment {path} does not exist "
                              f"(have: {', '.join(sorted(p.stem for p in config_dir.glob('*.config')))})")
        files.append(path)
    return files


def configure(runner: Runner, *, source: Path, build_dir: Path, fragments: list[Path],
              configkernel: str, say: Callable[[str], None]) -> ConfigResult:
    requested = merge_fragments(fragments)
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kconfig-", dir=build_dir.parent) as scratch:
        argv = [configkernel, "--defconfig"]
        for frag in fragments:
            argv += ["--custom", str(frag)]
        argv.append(f"O={scratch}")
        runner.run(argv, cwd=source)
        new_config = Path(scratch) / ".config"
        if not new_config.exists():
            raise ConfigError(f"{configkernel} wrote no .config")
        actual = parse_config_text(new_config.read_text(), str(new_config))
        missing = missing_options(requested, actual)
        if missing:
            raise ConfigError("options asked for by configs/ were dropped by olddefconfig "
                              "(unmet dependencies or overridden by virtme-ng's mandatory "
                              "items):\n  " + "\n  ".join(missing))
        target = build_dir / ".config"
        new_bytes = new_config.read_bytes()
        changed = not target.exists() or target.read_bytes() != new_bytes
        if changed:
            shutil.copyfile(new_config, target)
            say(f"config: wrote {target} ({len(requested)} options from "
                f"{', '.join(f.name for f in fragments)} verified)")
        else:
            say(f"config: unchanged, {len(requested)} requested options verified")
    return ConfigResult(config_path=build_dir / ".config", changed=changed, fragments=fragments,
                        digest=hashlib.sha256(new_bytes).hexdigest())
