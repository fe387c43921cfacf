"""The log scan's rules: how a console line is read, and every kernel report
the scanner knows (one row of _OOPSES each: its header, how its title is made,
where it ends).  logscan.py has the scanner that applies them; its docstring
describes the rules in prose.  Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from . import protocol


class Kind(str, Enum):
    LOCKDEP = "LOCKDEP"
    KASAN = "KASAN"
    UBSAN = "UBSAN"
    HUNG_TASK = "HUNG_TASK"
    SOFT_LOCKUP = "SOFT_LOCKUP"
    RCU_STALL = "RCU_STALL"
    WARNING = "WARNING"
    BUG = "BUG"
    GPF = "GPF"
    PANIC = "PANIC"
    TIMEOUT = "TIMEOUT"


# --------------------------------------------------------------------------
# Console lines

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07]*\x07")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# [    1.234567] or [    1.234567][  T123] (CONFIG_PRINTK_CALLER), maybe after <N>.
_TIMESTAMP = re.compile(r"(?:<\d{1,2}>)?\[\s*\d+\.\d{6}\](?:\[\s*[CT]\d+\])? ?")
_MARKER = protocol.MARKER


@dataclass(frozen=True)
class _Line:
    num: int          # 1-based; 0 for a synthetic "[...]" line in an excerpt
    text: str         # prefix, \r and ANSI noise removed
    kernel: bool      # carried a printk timestamp


def _split_lines(text: str) -> list[_Line]:
    out = []
    for num, raw in enumerate(text.split("\n"), start=1):
        clean = _CONTROL.sub("", _ANSI.sub("", raw.replace("\r", "")))
        m = _TIMESTAMP.match(clean)
        if m is None:
            m = _TIMESTAMP.search(clean)   # kernel line glued behind userspace output
        if m is not None:
            out.append(_Line(num, clean[m.end():].rstrip(), True))
        else:
            out.append(_Line(num, clean.rstrip(), False))
    if out and out[-1].text == "" and text.endswith("\n"):
        out.pop()
    return out


# --------------------------------------------------------------------------
# Stack frames and function names

_FRAME = re.compile(r"^\s*(?:\[<[0-9a-f]+>\]\s+)?(?P<unreliable>\?\s+)?(?P<func>[A-Za-z_.$][\w.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+"
                    r"(?:\s+\[[^\]]+\])?(?:\s+\S+:\d+.*)?\s*$")
_RIP = re.compile(r"^RIP: [0-9a-f]{4}:(?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_CALL_TRACE = re.compile(r"^\s*Call Trace:")
_TASK_END = re.compile(r"^\s*</TASK>")
_LOCK_AT = re.compile(r", at: (?:\[<[0-9a-f]+>\] )?(?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_IP_SYM = re.compile(r"^\s*\[<[0-9a-f]+>\] (?P<func>[A-Za-z_.$][\w.$]*)\+0x")
_COMPILER_SUFFIX = re.compile(r"\.(?:cold|isra|constprop|part|lto_priv|llvm|localalias)\b.*$")


def _func(sym: str) -> str:
    return _COMPILER_SUFFIX.sub("", sym.split("+", 1)[0])


def _skip_set(*names: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{n})" for n in names))


# Frames that say nothing about which code is at fault: the reporting
# machinery itself, lockdep, lock/wait/scheduler primitives, allocators,
# irq entry and timer plumbing, sanitizer hooks. Full-match patterns.
_PLUMBING = _skip_set(
    r"dump_stack(_lvl)?", r"show_stack", r"dump_backtrace\w*", r"sched_show_task", r"__warn(_printk)?",
    r"warn_slowpath_fmt", r"report_bug", r"handle_bug", r"(asm_)?exc_\w+", r"do_error_trap",
    r"(do_)?invalid_op", r"fixup_bug", r"(__)?save_stack\w*", r"stack_trace_save\w*", r"unwind_\w+",
    r"__unwind_start", r"__x86_indirect_thunk_\w+", r"__x86_return_thunk",
    r"panic", r"\w+_panic", r"check_panic_on_warn", r"vprintk\w*", r"_?printk",
    r"_*might_\w+", r"should_fail\w*", r"warn_alloc",
    r"__schedule_bug", r"schedule_debug", r"lockdep_rcu_suspicious",
    r"(__)?refcount_\w+", r"__list_(add|del)\w*", r"debug_print_object", r"(__)?debug_object_\w+",
    r"(__)?debug_check_no_obj_freed", r"usercopy_(warn|abort)", r"(__)?check_(heap_)?object(_size)?",
    r"check_preemption_disabled", r"debug_smp_processor_id", r"__this_cpu_preempt_check", r"bad_page",
    r"print_report", r"print_address_description\w*", r"print_other_cpu_stall",
    # lockdep and lock debugging
    r"lock_acquire(d)?", r"lock_release", r"lock_contended", r"__lock_acquire", r"__lock_release",
    r"lock_sync", r"validate_chain", r"check_prevs?_add", r"check_noncircular", r"check_deadlock",
    r"check_irq_usage", r"print_\w+_bug", r"print_usage_bug", r"print_circular_bug",
    r"mark_lock\w*", r"mark_usage", r"mark_held_locks", r"register_lock_class",
    r"lockdep_\w+", r"look_up_lock_class", r"debug_check_no_locks_freed", r"debug_check_no_locks_held",
    r"spin_bug", r"spin_dump", r"do_raw_(spin|read|write)_\w*lock\w*", r"debug_lockdep_rcu_enabled",
    r"lock_is_held_type", r"trace_hardirqs_\w+", r"hlock_class", r"check_flags",
    r"_atomic_dec_and_\w*lock\w*", r"task_blocks_on_rt_mutex",
    r"__local_bh_enable_ip", r"__seqprop_assert", r"memdup_user\w*",
    # lock primitives
    r"_raw_(spin|read|write)_\w*lock\w*", r"__raw_(spin|read|write)_\w*lock\w*",
    r"\w*queued_(spin|read|write)_lock_slowpath", r"__pv_queued_spin_lock_slowpath",
    r"(__)?mutex_\w+", r"(__)?wake_up\w*", r"(__)?flush_work", r"(__)?(try_to_)?del_timer\w*",
    r"timer_delete\w*", r"(__)?cancel_(delayed_)?work\w*", r"__cancel_work_timer",
    r"process_one_work", r"worker_thread", r"kthread", r"ret_from_fork\w*",
    r"rwsem_down_\w+", r"__rwsem_\w+", r"(__)?down(_read|_write)?\w*", r"(__)?up(_read|_write)?",
    r"percpu_down_\w+", r"__percpu_down_\w+", r"percpu_rwsem_wait",
    r"(__)?rt_mutex_\w+", r"rt_(spin|read|write)_lock", r"(__)?ww_mutex_\w+",
    # scheduler, waiting, sleeping
    r"__schedule", r"schedule", r"schedule_\w+", r"context_switch", r"preempt_schedule\w*", r"io_schedule\w*",
    r"__cond_resched", r"__wait_for_common", r"(do_)?wait_for_common\w*", r"wait_for_completion\w*",
    r"__wait_rcu_gp", r"synchronize_rcu_normal", r"prepare_to_wait\w*", r"finish_wait",
    r"wait_woken", r"msleep(_interruptible)?", r"usleep_range_state", r"do_nanosleep",
    r"hrtimer_nanosleep", r"bit_wait\w*", r"out_of_line_wait_on_\w+", r"__wait_on_\w+",
    r"folio_wait_\w+", r"__folio_lock\w*", r"__wait_event\w*", r"wait_on_page_bit\w*",
    r"call_rwsem_\w+",
    # allocators
    r"kmalloc\w*", r"__kmalloc\w*", r"kmem_cache_alloc\w*", r"__kmem_cache_alloc\w*", r"kzalloc\w*",
    r"slab_pre_alloc_hook\w*", r"__alloc_pages\w*", r"alloc_pages\w*", r"__vmalloc\w*",
    r"vmalloc\w*", r"kvmalloc\w*", r"__kvmalloc\w*", r"kv?free", r"vfree", r"kfree_sensitive",
    r"(__)?kmem_cache_free\w*", r"(__)?slab_free\w*", r"do_slab_free", r"__free_pages\w*",
    # irq entry, timers, watchdogs, stall printing
    r"asm_sysvec_\w+", r"(__)?sysvec_\w+", r"asm_common_interrupt", r"common_interrupt",
    r"hrtimer_interrupt", r"__hrtimer_run_queues", r"__run_hrtimer", r"tick_\w+",
    r"update_process_times", r"rcu_sched_clock_irq", r"rcu_check_callbacks", r"rcu_pending",
    r"print_cpu_stall\w*", r"(smp_)?apic_timer_interrupt", r"___preempt_schedule\w*",
    r"check_cpu_stall", r"rcu_dump_cpu_stacks", r"dump_cpu_task", r"nmi_cpu_backtrace\w*",
    r"nmi_trigger_cpumask_backtrace", r"arch_trigger_cpumask_backtrace", r"watchdog_timer_fn",
    r"(__)?irq_exit_rcu", r"handle_softirqs", r"(__)?do_softirq", r"irqentry_\w+",
    # sanitizers, busy-wait helpers
    r"kasan_\w+", r"__kasan_\w+", r"__asan_\w+", r"__ubsan_\w+", r"ubsan_\w+", r"check_memory_region\w*",
    r"__sanitizer_cov_\w+", r"cpu_relax", r"delay_tsc", r"__const_udelay", r"__udelay", r"mdelay",
    r"mem(cpy|move|set|cmp|chr)\w*", r"__mem(cpy|move|set)\w*",
    r"str(n?len|cmp|ncmp|cpy|ncpy|scpy|lcpy|n?str)", r"read_word_at_a_time",
    r"string(_nocheck)?", r"hex_string", r"pointer", r"v?s?n?printf",
    # syscall entry: below the interesting frames
    r"entry_\w+", r"do_syscall_\w+", r"do_int80_syscall_32", r"do_fast_syscall_32", r"x64_sys_call",
    # user-copy helpers: the caller is the one in atomic context or holding the bad pointer
    r"_*copy_(to|from)_user\w*", r"_*(get|put)_user(_nocheck)?(_\d+)?", r"strncpy_from_user", r"check_zeroed_user",
)
# Wrappers that take a lock for their caller: a lockdep `at:` in one of
# these is resolved to the caller found in the report's stack.
_LOCK_WRAPPERS = _skip_set(r"lock_sock\w*", r"__lock_sock", r"console_lock", r"rtnl_lock\w*",
                           r"rtnl_net_lock", r"__netlink_dump_start")
# Lock acquisition sites that are workqueue plumbing: the lock is a
# workqueue lockdep map, the interesting caller is further down.
_WQ_PLUMBING = _skip_set(
    r"process_one_work", r"(__)?flush_work(queue)?", r"start_flush_work", r"drain_workqueue",
    r"destroy_workqueue", r"touch_w(q|ork)_lockdep_map", r"(__)?cancel_work(_sync)?",
    r"__cancel_work_timer",
)


def _pick(candidates: Iterable[str | None], skip: re.Pattern[str] = _PLUMBING) -> str | None:
    for cand in candidates:
        if cand and not skip.fullmatch(cand):
            return cand
    return None


class _Body:
    """Read-only views on a report's text, used to build its title."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = lines

    def rip_funcs(self) -> list[str]:
        return [_func(m["func"]) for t in self.lines if (m := _RIP.match(t))]

    def trace(self) -> list[str]:
        """Reliable frames of the first `Call Trace:` block (up to its </TASK>)."""
        frames: list[str] = []
        inside = False
        for text in self.lines:
            if not inside:
                inside = bool(_CALL_TRACE.match(text))
                continue
            if _TASK_END.match(text):
                break
            m = _FRAME.match(text)
            if m and not m["unreliable"]:
                frames.append(_func(m["func"]))
        return frames

    def all_frames(self) -> list[str]:
        """Reliable frames anywhere in the report (lockdep's dependency chain too)."""
        return [_func(m["func"]) for t in self.lines if (m := _FRAME.match(t)) and not m["unreliable"]]

    def after(self, label: str, pattern: re.Pattern[str]) -> str | None:
        """Function matched by `pattern` on the line following the first line containing `label`."""
        for i, text in enumerate(self.lines[:-1]):
            if label in text:
                m = pattern.search(self.lines[i + 1])
                return _func(m["func"]) if m else None
        return None

    def first(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        for text in self.lines:
            if m := pattern.search(text):
                return m
        return None


def _in(prefix: str, func: str | None) -> str:
    return f"{prefix} in {func}" if func else prefix


# --------------------------------------------------------------------------
# The oops table

class _End(Enum):
    TRACE = "---[ end trace"        # oops, WARN, kernel BUG
    TASK = "</TASK>"                # reports that end with one dump_stack()
    KASAN = "closing ===="
    PANIC = "---[ end Kernel panic"
    HUNG = "</TASK> + held locks"   # sched_show_task(), then maybe the lock dump
    HELD_LOCKS = "held-lock list"   # no stack at all


_Titler = Callable[[re.Match[str], _Body], tuple[Kind, str]]


@dataclass(frozen=True, kw_only=True)
class _Oops:
    name: str
    header: re.Pattern[str]
    title: _Titler
    end: _End
    kills_lockdep: bool = False     # its printing path calls debug_locks_off()
    takes_oops: bool = False        # the die() "Oops: ..." line that follows belongs to it
    ruled: bool = False             # printed right after a "=====" line (lockdep, KASAN)
    max_lines: int = 400            # give up on a terminator after this many lines


def _fixed(kind: Kind, title: str) -> _Titler:
    return lambda m, body: (kind, title)


def _site_or_caller(site: str | None, trace: list[str]) -> str | None:
    """`site`, or when it is plumbing, the first real frame below it in `trace`."""
    if site is None or _WQ_PLUMBING.fullmatch(site):
        return None
    if _LOCK_WRAPPERS.fullmatch(site) or _PLUMBING.fullmatch(site):
        return _pick(trace[trace.index(site) + 1:]) if site in trace else None
    return site


def _lockdep_at(prefix: str, label: str, also: str | None = None) -> _Titler:
    """Title from the `at:` of the lock line after `label` (then after `also`, then the stack)."""
    def title(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
        trace = body.trace()
        sites = [body.after(label, _LOCK_AT)] + ([body.after(also, _LOCK_AT)] if also else [])
        func = (_pick(_site_or_caller(site, trace) for site in sites) or _pick(trace)
                or _pick(body.all_frames()))
        return Kind.LOCKDEP, _in(prefix.format(**m.groupdict()), func)
    return title


def _from_stack(kind: Kind, prefix: str, rip_first: bool = False) -> _Titler:
    def title(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
        cands = (body.rip_funcs() if rip_first else []) + body.trace()
        return kind, _in(prefix.format(**m.groupdict()), _pick(cands))
    return title


def _ip_site(prefix: str, label: str) -> _Titler:
    """Title from the `[<addr>] func+0x..` line printed after `label`."""
    def title(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
        trace = body.trace()
        func = _site_or_caller(body.after(label, _IP_SYM), trace) or _pick(trace)
        return Kind.LOCKDEP, _in(prefix, func)
    return title


_FIRST_HELD_LOCK = re.compile(r"^\s*#0: .*" + _LOCK_AT.pattern)


def _user_return(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
    held = body.first(_FIRST_HELD_LOCK)
    return Kind.LOCKDEP, _in("lock held when returning to user space", _func(held["func"]) if held else None)


_KASAN_ACCESS = re.compile(r"^(?P<rw>Read|Write) (?:of size|at addr)")


def _kasan(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
    access = body.first(_KASAN_ACCESS)
    what = f"KASAN: {m['type']}" + (f" {access['rw']}" if access else "")
    here = _func(m["func"]) if m["func"] else None
    return Kind.KASAN, _in(what, _pick([here, *body.trace()]) or here)


def _warning(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
    sym = m["sym"]
    here = _func(sym) if "+0x" in sym else None
    if (m["file"] or "").startswith("kernel/locking/"):
        return Kind.LOCKDEP, _in("WARNING: locking bug", _pick([here, *body.rip_funcs(), *body.trace()]))
    return Kind.WARNING, _in("WARNING", _pick([here, *body.rip_funcs(), *body.trace()]) or here)


def _oops(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
    what = (m["what"] or "Oops").strip()
    func = _pick(body.rip_funcs() + body.trace())
    if "general protection fault" in what:
        return Kind.GPF, _in("general protection fault", func)
    return Kind.BUG, _in("Oops" if what == "Oops" else f"Oops: {what}", func)


_SYM_OFFSET = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+")
_LONG_HEX = re.compile(r"\b(?:0x)?[0-9a-f]{12,}\b")


def _hex_free(text: str) -> str:
    return _LONG_HEX.sub("ADDR", _SYM_OFFSET.sub("", text)).strip()


def _panic(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
    return Kind.PANIC, f"kernel panic: {_hex_free(m['msg'])}"


_BUG_WHAT_NOISE = re.compile(r"\S*[0-9a-f]{8,}\S*|\[[0-9a-f]+\]|\(\d+\)")
_BUG_WHAT_END = re.compile(r"[:!,\[]| in process | on CPU#| - |\s\S+:(?=\S)")


def _generic_bug(m: re.Match[str], body: _Body) -> tuple[Kind, str]:
    what = _BUG_WHAT_END.split(_BUG_WHAT_NOISE.sub("", m["what"]))[0]
    return Kind.BUG, _in("BUG: " + " ".join(what.split()), _pick(body.trace()))


_SYM = r"(?P<sym>\S+)"
_OOPSES: tuple[_Oops, ...] = (
    # ---- lockdep (kernel/locking/lockdep.c) and spinlock debugging
    _Oops(name="circular", header=re.compile(r"^WARNING: possible circular locking dependency detected"),
          title=_lockdep_at("possible deadlock", "is trying to acquire lock:", "but task is already holding lock:"),
          end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="recursive", header=re.compile(r"^WARNING: possible recursive locking detected"),
          title=_lockdep_at("possible recursive locking", "is trying to acquire lock:",
                            "but task is already holding lock:"),
          end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="irq-order", header=re.compile(r"^WARNING: (?P<a>\w+)-safe -> (?P<b>\w+)-unsafe lock order detected"),
          title=_lockdep_at("{a}-safe -> {b}-unsafe lock order", "is trying to acquire:",
                            "and this task is already holding:"),
          end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="irq-inversion", header=re.compile(r"^WARNING: possible irq lock inversion dependency detected"),
          title=_lockdep_at("possible irq lock inversion", "just changed the state of lock:"),
          end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="inconsistent", header=re.compile(r"^WARNING: inconsistent lock state"),
          title=_lockdep_at("inconsistent lock state", "] takes:"), end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="bad-unlock", header=re.compile(r"^WARNING: bad unlock balance detected!"),
          title=_ip_site("bad unlock balance", "is trying to release lock"), end=_End.TASK,
          kills_lockdep=True, ruled=True),
    _Oops(name="held-freed", header=re.compile(r"^WARNING: held lock freed!"),
          title=_from_stack(Kind.LOCKDEP, "held lock freed"), end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="user-return", header=re.compile(r"^WARNING: lock held when returning to user space!"),
          title=_user_return, end=_End.HELD_LOCKS, kills_lockdep=True, ruled=True),
    _Oops(name="rcu-usage", header=re.compile(r"^WARNING: suspicious RCU usage"),
          title=_from_stack(Kind.LOCKDEP, "suspicious RCU usage"), end=_End.TASK, ruled=True),
    _Oops(name="exit-locks", header=re.compile(r"^WARNING: \S+/\d+ still has locks held!"),
          title=_from_stack(Kind.LOCKDEP, "still has locks held"), end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="nested", header=re.compile(r"^WARNING: Nested lock was not taken"),
          title=_lockdep_at("nested lock was not taken", "is trying to lock:"), end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="contention", header=re.compile(r"^WARNING: bad contention detected!"),
          title=_ip_site("bad contention", "is trying to contend lock"), end=_End.TASK,
          kills_lockdep=True, ruled=True),
    _Oops(name="chain-key", header=re.compile(r"^WARNING: chain_key collision"),
          title=_from_stack(Kind.LOCKDEP, "chain_key collision"), end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="wait-context", header=re.compile(r"^\[ BUG: Invalid wait context \]"),
          title=_lockdep_at("invalid wait context", "is trying to lock:"), end=_End.TASK, kills_lockdep=True, ruled=True),
    _Oops(name="lockdep-max", header=re.compile(r"^BUG: (?P<what>MAX_\w+) too low!"),
          title=lambda m, body: (Kind.LOCKDEP, f"BUG: {m['what']} too low!"), end=_End.TASK,
          kills_lockdep=True),
    _Oops(name="non-static-key", header=re.compile(r"^INFO: trying to register non-static key\."),
          title=_from_stack(Kind.LOCKDEP, "trying to register non-static key"), end=_End.TASK,
          kills_lockdep=True),
    _Oops(name="spinlock", header=re.compile(r"^BUG: (?P<lock>spinlock|rwlock) (?P<what>.+?) on CPU#\d+"),
          title=_from_stack(Kind.LOCKDEP, "BUG: {lock} {what}"), end=_End.TASK, kills_lockdep=True, ruled=True),
    # ---- KASAN (mm/kasan/report.c); must come before the generic BUG rows
    _Oops(name="kasan", header=re.compile(r"^BUG: KASAN: (?P<type>[\w-]+)(?: in (?P<func>[A-Za-z_.$][\w.$]*))?"),
          title=_kasan, end=_End.KASAN, ruled=True),
    # ---- UBSAN (lib/ubsan.c ubsan_prologue/epilogue): "UBSAN: <check> in <file>:<line>:<col>"
    _Oops(name="ubsan", header=re.compile(r"^UBSAN: (?P<check>[\w-]+) in (?P<file>[^\s:]+)"),
          title=_from_stack(Kind.UBSAN, "UBSAN: {check}"), end=_End.TRACE),
    # ---- hangs and lockups
    _Oops(name="hung-task",
          header=re.compile(r"^INFO: task (?P<comm>.*):\d+ blocked (?:in I/O wait )?for more than \d+ seconds\."),
          title=_from_stack(Kind.HUNG_TASK, "INFO: task hung"), end=_End.HUNG),
    _Oops(name="wq-lockup", header=re.compile(r"^BUG: workqueue lockup - pool"),
          title=_fixed(Kind.HUNG_TASK, "BUG: workqueue lockup"), end=_End.TASK, max_lines=60),
    _Oops(name="soft-lockup", header=re.compile(r"^(?:(?:NMI )?watchdog: )?BUG: soft lockup - CPU#\d+ stuck for \d+s!"),
          title=_from_stack(Kind.SOFT_LOCKUP, "BUG: soft lockup", rip_first=True), end=_End.TASK),
    _Oops(name="hard-lockup", header=re.compile(r"^(?:watchdog: )?Watchdog detected hard LOCKUP on cpu \d+"),
          title=_from_stack(Kind.SOFT_LOCKUP, "watchdog: hard lockup", rip_first=True), end=_End.TASK),
    _Oops(name="rcu-stall",
          header=re.compile(r"^(?:rcu: )?INFO: rcu\w* (?:self-detected stall on CPU"
                            r"|detected (?:expedited )?stalls? on (?:CPUs/tasks|tasks))"),
          title=_from_stack(Kind.RCU_STALL, "INFO: rcu detected stall", rip_first=True), end=_End.TASK),
    # ---- WARN (kernel/panic.c __warn)
    _Oops(name="warning", header=re.compile(r"^WARNING: CPU: \d+ PID: -?\d+ at (?:(?P<file>\S+):\d+ )?" + _SYM),
          title=_warning, end=_End.TRACE),
    # the __warn() format of kernels after 6.12, so a kernel bump does not go blind
    _Oops(name="warning-new",
          header=re.compile(r"^WARNING: (?:\[.*?\] )?(?P<file>\S+):\d+ at (?P<sym>[^\s,]+), CPU#\d+: "),
          title=_warning, end=_End.TRACE),
    # ---- BUG() and faults (lib/bug.c, arch/x86/mm/fault.c, arch/x86/kernel/traps.c)
    _Oops(name="kernel-bug", header=re.compile(r"^kernel BUG at (?P<file>[^:\s]+):\d+!"),
          title=_from_stack(Kind.BUG, "kernel BUG", rip_first=True), end=_End.TRACE, takes_oops=True,
          kills_lockdep=True),
    _Oops(name="kernel-bug-noverbose", header=re.compile(r"^Kernel BUG at " + _SYM),
          title=_from_stack(Kind.BUG, "kernel BUG", rip_first=True), end=_End.TRACE, takes_oops=True,
          kills_lockdep=True),
    _Oops(name="null-deref", header=re.compile(r"^BUG: kernel NULL pointer dereference, address:"),
          title=_from_stack(Kind.BUG, "BUG: kernel NULL pointer dereference", rip_first=True),
          end=_End.TRACE, takes_oops=True, kills_lockdep=True),
    _Oops(name="page-fault", header=re.compile(r"^BUG: unable to handle page fault for address:"),
          title=_from_stack(Kind.BUG, "BUG: unable to handle page fault", rip_first=True),
          end=_End.TRACE, takes_oops=True, kills_lockdep=True),
    _Oops(name="stack-guard", header=re.compile(r"^BUG: (?:\S+ )?stack guard page was hit at"),
          title=_from_stack(Kind.BUG, "BUG: stack guard page was hit", rip_first=True),
          end=_End.TRACE, takes_oops=True, kills_lockdep=True),
    _Oops(name="double-fault", header=re.compile(r"^PANIC: double fault, error_code:"),
          title=_from_stack(Kind.BUG, "PANIC: double fault", rip_first=True),
          end=_End.TRACE, takes_oops=True, kills_lockdep=True),
    _Oops(name="atomic-sched", header=re.compile(r"^BUG: scheduling while atomic:"),
          title=_from_stack(Kind.BUG, "BUG: scheduling while atomic"), end=_End.TASK),
    _Oops(name="atomic-sleep", header=re.compile(r"^BUG: sleeping function called from invalid context at"),
          title=_from_stack(Kind.BUG, "BUG: sleeping function called from invalid context"), end=_End.TASK),
    _Oops(name="oops",
          header=re.compile(r"^Oops: (?:(?P<what>.*?): )?[0-9a-f]{4} \[#\d+\]"),
          title=_oops, end=_End.TRACE, kills_lockdep=True),
    _Oops(name="gpf-legacy",
          header=re.compile(r"^(?P<what>(?:segment-related )?general protection fault)(?:,? [^:]*)?: "
                            r"[0-9a-f]{4} \[#\d+\]"),
          title=_oops, end=_End.TRACE, kills_lockdep=True),
    _Oops(name="bug", header=re.compile(r"^BUG: (?P<what>.+)"), title=_generic_bug, end=_End.TASK, max_lines=80),
    # ---- panic (kernel/panic.c)
    _Oops(name="panic", header=re.compile(r"^Kernel panic - not syncing: (?P<msg>.*)"),
          title=_panic, end=_End.PANIC, kills_lockdep=True),
)
_BY_NAME = {o.name: o for o in _OOPSES}
_PANIC = _BY_NAME["panic"]
_OOPS_HEADERS = (_BY_NAME["oops"], _BY_NAME["gpf-legacy"])
def _match_header(text: str) -> tuple[_Oops, re.Match[str]] | None:
    text = text.lstrip()
    # the protocol's "a report starts here", which the guest's reproduce loop
    # stops at: a header this misses is missed by both, and the tests see it
    if not protocol.starts_report(text):
        return None
    for oops in _OOPSES:
        if m := oops.header.match(text):
            return oops, m
    return None


# Panic messages that only say "the report above made me panic".
_CONSEQUENCE = re.compile(
    r"^(?:(?:Oops: )?Fatal exception|\S+: panic_on_warn set|\S+: system warned too often|softlockup: hung tasks"
    r"|hung_task: blocked tasks|Hard LOCKUP|RCU Stall|kasan\.fault=panic|panic_on_taint set"
    r"|Attempted to kill init!|Aiee, killing interrupt handler)")
_PANIC_GAP = 60           # more kernel lines than this between a report and its panic are elided
_MAX_EXCERPT_LINES = 80
_CUT_HERE = re.compile(r"^-+\[ cut here \]-+$")
_RULER = re.compile(r"^=+$")
_END_TRACE = re.compile(r"^---\[ end trace (?:[0-9a-f]+ )?\]---")
_END_PANIC = re.compile(r"^---\[ end Kernel panic")
_HELD_LOCK = re.compile(r"^\s*#\d+: ")
_LOCKS_HELD_BY = re.compile(r"^\d+ locks? held by ")
_HUNG_TAIL = re.compile(r"^(?:$|Showing all locks held in the system:|Future hung task reports are suppressed"
                        r"|\d+ locks? held by |\s*#\d+: |=+$|INFO: lockdep is turned off)")
_LOCKDEP_OFF = re.compile(r"turning off the locking correctness validator|Disabling lock debugging due to kernel taint"
                          r"|INFO: lockdep is turned off|DEBUG_LOCKS_WARN_ON\(")
