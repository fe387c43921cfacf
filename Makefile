# uring-iter-harness: build Linux 6.12 with the io_uring BPF iterator series,
# boot it under virtme-ng, run the guest tests, scan the kernel log, report.
#
#   make run      the main job: setup, build, boot, every guest scenario, report
#   make test     the whole suite: host unit tests, guest tests, detector self-test
#   make check    host unit tests only (seconds, no VM)
#   make negative the negative control: the series with kernel-patches/negative/
#                 (trylock -> mutex_lock) must make lockdep report, one boot each
#   make wrap     the restore tests on the series with kernel-patches/wrap/ (rings
#                 whose counters start near 2^32)
#   make shell    interactive shell in the guest on the built kernel
#   make reproduce TEST=<guest test id> [COUNT=<rounds>] [VARIANT=negative|wrap]
#                 boot once, run the test in rounds until the first kernel
#                 finding (COUNT=0 or unset: until found, MINUTES=30 at most)
#   make tree     the kernel tree with the series applied, for editing
#   make export   write the tree's commits back into kernel-patches/
#
# Variables: KERNEL_SRC=<git tree> builds your tree as it is; ACCEL=kvm|tcg
# skips the KVM probe (run, test, reproduce and shell alike);
# ONLY="test_kernel.py::test_io_uring_nop_round_trip" narrows the guest suite
# (checked before anything is built); TEST_TIMEOUT=<s> is a guest test's
# budget when it declares none (default 30, times 4 under TCG); FORCE=1 lets
# the harness drop unexported commits on the series branch; DRY_RUN=1 prints
# the plan of every stage and runs nothing.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
HARNESS := $(VPY) -m harness
KERNEL_ARGS := $(if $(ACCEL),--accel $(ACCEL)) $(if $(FORCE),--force) \
               $(if $(KERNEL_SRC),--kernel-src $(KERNEL_SRC)) \
               $(if $(TEST_TIMEOUT),--test-timeout $(TEST_TIMEOUT)) $(if $(DRY_RUN),--dry-run)
RUN_ARGS := $(KERNEL_ARGS) $(if $(ONLY),--only $(ONLY))

.PHONY: guest retest guest-stop kept-test
.PHONY: all setup venv run test check vm-test detectors negative wrap reproduce build shell tree export clean-results series-check checkpatch

all: run

# The Python dependencies of pyproject.toml (runtime and dev), for pip.
PY_DEPS = $(shell $(PYTHON) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(" ".join(p["dependencies"] + p["optional-dependencies"]["dev"]))')

# Debian packages first (apt-get: root or passwordless sudo; stdlib-only
# code on the system python), then the venv.
setup:
	@$(PYTHON) -m harness setup
	@$(MAKE) --no-print-directory venv

# The venv alone: no root, no apt (make check needs only this).
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create $(VENV): on Debian install python3-venv (make setup does, as root)"; exit 2; }
	$(VPY) -m pip install -q --disable-pip-version-check $(PY_DEPS)
	@touch $@

run: setup
	$(HARNESS) run --suites main $(RUN_ARGS)

# Host unit tests (the harness's, uringcr's planning code), the guest plugin's
# and checkers' self-tests, and mypy:
# no root, no apt, no VM, no kernel build.
check: venv
	$(VPY) -m pytest -q harness/tests
	$(MAKE) -s -C uringcr unit
	cd guest-tests && ../$(VPY) -m pytest -q -p no:cacheprovider selftests
	$(VPY) -m mypy harness
	cd guest-tests && ../$(VPY) -m mypy --config-file= --python-version 3.11 --ignore-missing-imports \
	    --disallow-untyped-defs --explicit-package-bases .

vm-test: setup
	$(HARNESS) run --suites all $(RUN_ARGS)

# setup first: on a fresh Debian 12 the venv needs python3-venv from apt
test: setup check vm-test kept-test

# The edit loop end to end: a kept guest, one retest in it, its end; the
# guest is stopped whatever the retest gave.
kept-test: setup
	@$(HARNESS) guest $(if $(ACCEL),--accel $(ACCEL)) || exit $$?; \
	$(HARNESS) retest --only test_kernel.py; rc=$$?; \
	$(HARNESS) guest-stop || rc=2; exit $$rc

detectors: setup
	$(HARNESS) run --suites detectors $(RUN_ARGS)

negative: setup
	$(HARNESS) run --suites negative $(RUN_ARGS)

wrap: setup
	$(HARNESS) run --suites wrap $(RUN_ARGS)

reproduce: setup
	@test -n "$(TEST)" || { echo "usage: make reproduce TEST='test_lock_ordering.py::test_abba_cross_ring_reads[plain]' [COUNT=n] [VARIANT=negative|wrap] [MINUTES=m]"; exit 2; }
	$(HARNESS) reproduce $(foreach t,$(TEST),'$(t)') --count $(or $(COUNT),0) --max-minutes $(or $(MINUTES),30) \
	    $(if $(VARIANT),--variant $(VARIANT)) $(KERNEL_ARGS)

build: setup
	$(HARNESS) run --build-only $(RUN_ARGS)

shell: setup
	$(HARNESS) shell $(if $(ACCEL),--accel $(ACCEL)) $(if $(DRY_RUN),--dry-run)

# The edit loop: boot once, run tests in the running guest over SSH, stop.
guest: setup
	$(HARNESS) guest $(if $(ACCEL),--accel $(ACCEL))

retest: venv
	$(HARNESS) retest $(if $(ONLY),--only $(ONLY)) $(if $(TEST_TIMEOUT),--test-timeout $(TEST_TIMEOUT))

guest-stop: venv
	$(HARNESS) guest-stop

tree: setup
	$(HARNESS) tree $(if $(FORCE),--force)

export: setup
	$(HARNESS) export

clean-results:
	rm -rf results

# Every patch checkpatch --strict clean and signed off; every prefix builds.
series-check: setup
	$(HARNESS) series-check

checkpatch: setup
	$(HARNESS) series-check --no-build
