"""Report: render a RunResult as summary.json, JUnit XML and terminal text."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .results import RunResult, Status


def finish_run(run: RunResult, results: Path) -> None:
    """Every run's end: summary.json, junit.xml, results/latest, the terminal summary,
    the plain counts line and the results directory, printed last."""
    write_summary_json(run, results / "summary.json")
    write_junit(run, results / "junit.xml")
    latest = results.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(results.name)
    except OSError:
        pass
    print(terminal_summary(run))
    print(plain_counts_line(run))
    print(f"results: {results}")


def restore_lines(run: RunResult) -> list[str]:
    """One line per restored scenario: restore time, the counter replay, the verdict."""
    lines = []
    for t in run.tests:
        r = t.restore
        if not r:
            continue
        if "unparsable" in r:
            parts = ["figures unparsable"]
        else:
            parts = [f"{r.get('restore_us', 0) / 1000:.1f} ms",
                     f"{r.get('nops', 0)} NOPs replayed in {r.get('replay_us', 0) / 1000:.1f} ms"]
            if r.get("drops") or r.get("msgs"):
                parts.append(f"{r.get('drops', 0)} SQ drops, {r.get('msgs', 0)} MSG_RING posts")
            if r.get("pers_calls"):
                parts.append(f"{r['pers_calls']} personality calls")
            parts.append("equal" if r.get("equal") else "NOT equal")
        lines.append(f"  restore       {t.name}: {', '.join(parts)} -> {t.status.value}")
    return lines


def checkpoint_lines(run: RunResult) -> list[str]:
    """One line per checkpoint scenario with uringcr's figures (CRIU's names)."""
    lines = []
    for t in run.tests:
        c = t.checkpoint
        if not c:
            continue
        parts = [f"{k.removesuffix('_time_us')} {c[k] / 1000:.1f} ms"
                 for k in ("freezing_time_us", "frozen_time_us", "dump_time_us") if k in c]
        if "bytes_written" in c:
            parts.append(f"{c['bytes_written']} bytes")
        if "pages_written" in c:
            parts.append(f"{c['pages_written']} pages")
        if "edeadlk_retries" in c:
            parts.append(f"{c['edeadlk_retries']} EDEADLK retries")
        if "unparsable" in c:
            parts.append("figures unparsable")
        lines.append(f"  checkpoint    {t.name}: {', '.join(parts)} -> {t.status.value}")
    return lines


def write_summary_json(run: RunResult, path: Path) -> None:
    path.write_text(json.dumps(run.to_json(), indent=2) + "\n")


def write_junit(run: RunResult, path: Path) -> None:
    root = ET.Element("testsuites", name="uring-iter-harness")
    suites: dict[str, ET.Element] = {}
    for stage in run.stages:
        suite = suites.setdefault("stages", ET.SubElement(root, "testsuite", name="stages"))
        case = ET.SubElement(suite, "testcase", classname="stages", name=stage.name,
                             time=f"{stage.seconds:.3f}")
        if not stage.status.ok:
            ET.SubElement(case, "failure", message=stage.detail[:500]).text = stage.detail
        elif stage.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=stage.detail[:500])
    for test in run.tests:
        if test.suite not in suites:
            suites[test.suite] = ET.SubElement(root, "testsuite", name=test.suite)
        case = ET.SubElement(suites[test.suite], "testcase", classname=test.suite, name=test.name,
                             time=f"{test.seconds:.3f}")
        excerpts = "\n\n".join(f.excerpt for f in run.findings
                               if f.suite == test.suite and f.test == test.name)
        if test.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=test.message[:500])
        elif test.status is Status.FAIL:
            ET.SubElement(case, "failure", message=test.message[:500]).text = \
                test.message + ("\n\n" + excerpts if excerpts else "")
        elif test.status in (Status.CRASHED, Status.ERROR, Status.INCONCLUSIVE):
            ET.SubElement(case, "error", type=test.status.value,
                          message=test.message[:500]).text = test.message
        if test.status is Status.PASS and excerpts:
            ET.SubElement(case, "system-out").text = excerpts
    for suite in suites.values():
        cases = list(suite)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def terminal_summary(run: RunResult) -> str:
    lines = ["", "=" * 72]
    for stage in run.stages:
        extra = f"  {stage.detail.splitlines()[0]}" if stage.detail else ""
        lines.append(f"  stage {stage.name:<14} {stage.status.value:<12} {stage.seconds:7.1f}s{extra}")
    if run.info:
        keys = ("kernel_release", "accel", "timeout_scale", "patches")
        lines.append("  " + ", ".join(f"{k}={run.info[k]}" for k in keys if k in run.info))
    bad = [t for t in run.tests if not t.status.ok]
    for t in run.tests:
        if t.outcomes:
            tally = " ".join(f"{k}={v}" for k, v in t.outcomes.items())
            lines.append(f"  scenario      {t.name}: {tally} -> {t.status.value}")
            for name, counts in t.scenarios.items():
                rounds = f" {counts['rounds']} rounds" if "rounds" in counts else ""
                took = f" in {counts['ms'] / 1000:.1f}s" if "ms" in counts else ""
                detail = " ".join(f"{k}={v}" for k, v in counts.items()
                                  if k not in ("rounds", "ms"))
                lines.append(f"                  {name}:{rounds} {detail}{took}")
    lines += checkpoint_lines(run)
    lines += restore_lines(run)
    for key, value in run.info.items():
        if key.startswith("reproduce:") and isinstance(value, dict):
            lines.append(f"  {value.get('line', '')}")
    for t in run.tests:
        if t.expected and t.status is Status.PASS:
            lines.append(f"  detector ok   {t.full_name}: {t.message[:100]}")
    # the splat itself for expected lockdep reports (the negative control): the
    # two locks and where, so a CI log shows what lockdep saw
    for f in run.findings:
        if f.expected and f.kind == "LOCKDEP" and f.test is not None:
            lines.append(f"  splat         {f.suite}: {f.title}")
            lines += [f"                | {line}" for line in splat_lines(f.excerpt)]
    for t in bad:
        lines.append(f"  {t.status.value.upper():<12}  {t.full_name}: {t.message.splitlines()[0][:150] if t.message else ''}")
    unexpected = [f for f in run.findings if not f.expected]
    for f in unexpected:
        where = f"{f.suite}::{f.test}" if f.test else f"{f.suite} (outside tests)"
        lines.append(f"  finding       {f.title}  [{where}]")
    lines.append("  tests: " + counts_text(run))
    lines.append(f"  RESULT: {'PASS' if run.ok else 'FAIL'}")
    lines.append("=" * 72)
    if os.environ.get("GITHUB_ACTIONS"):
        for t in bad:
            lines.append(f"::error title={t.full_name}::{t.message.splitlines()[0] if t.message else t.status.value}")
    return "\n".join(lines)


def splat_lines(excerpt: str, limit: int = 8) -> list[str]:
    """The lines of a lockdep report that name the problem and the locks."""
    keep = ("WARNING:", "is trying to acquire", "already holding", "(&", "at: ")
    picked = []
    for line in excerpt.splitlines():
        text = line.strip()
        if text and not set(text) <= set("=-") and any(k in text for k in keep):
            picked.append(text[:110])
        if len(picked) == limit:
            break
    return picked


def counts_text(run: RunResult) -> str:
    """'N passed, N failed, N skipped' and what the failures were; the same
    numbers as plain_counts_line()."""
    tl = run.tally()
    text = f"{tl['passed']} passed, {tl['failed']} failed, {tl['skipped']} skipped"
    parts = [f"{v} {k}" for k, v in run.counts().items() if v and k not in ("pass", "skip")]
    if tl["failed_stages"]:
        parts.append(f"{tl['failed_stages']} stage(s) failed")
    return text + (f" ({', '.join(parts)})" if parts else "")


def plain_counts_line(run: RunResult) -> str:
    """'N passed, N failed' on its own line, for CI log readers."""
    t = run.tally()
    return f"harness: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
