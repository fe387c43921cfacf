# uring-iter-harness: build Linux 6.12 with the io_uring BPF iterator series,
# boot it under virtme-ng, run the guest tests, scan the kernel log, report.
#
#   make run      the main job: setup, build, boot, every guest scenario, report
#   make test     the whole suite: host unit tests, guest tests, detector self-test
#   make check    host unit tests only (seconds, no VM)
#   make negative the negative control: the series with kernel-patches/negative/
#                 (trylock -> mutex_lock) must make lockdep report, one boot each
#   make shell    interactive shell in the guest on the built kernel
#   make reproduce TEST=<guest test id> [COUNT=<rounds>] [VARIANT=negative]
#                 boot once, run the test in rounds until the first kernel
#                 finding (COUNT=0 or unset: until found, MINUTES=30 at most)
#   make tree     the kernel tree with the series applied, for editing
#   make export   write the tree's commits back into kernel-patches/
#
# Variables: KERNEL_SRC=<git tree> builds your tree as it is; ACCEL=kvm|tcg
# skips the KVM probe; ONLY="test_x.py::test_y" narrows the guest suite;
# FORCE=1 lets the harness drop unexported commits on the series branch.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
HARNESS := $(VPY) -m harness
RUN_ARGS := $(if $(ACCEL),--accel $(ACCEL)) $(if $(FORCE),--force) \
            $(if $(KERNEL_SRC),--kernel-src $(KERNEL_SRC)) $(if $(ONLY),--only $(ONLY))

.PHONY: all setup run test check vm-test detectors negative reproduce build shell tree export clean-results series-check checkpatch

all: run

# Debian packages first (stdlib-only code, system python), then the venv.
setup: $(VENV)/.installed
	@$(PYTHON) -m harness setup

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -m harness setup
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

run: setup
	$(HARNESS) run --suites main $(RUN_ARGS)

check: setup
	$(VPY) -m pytest -q harness/tests
	cd guest-tests && ../$(VPY) -m pytest -q -p no:cacheprovider selftests
	$(VPY) -m mypy harness

vm-test: setup
	$(HARNESS) run --suites all $(RUN_ARGS)

test: check vm-test

detectors: setup
	$(HARNESS) run --suites detectors $(RUN_ARGS)

negative: setup
	$(HARNESS) run --suites negative $(RUN_ARGS)

reproduce: setup
	@test -n "$(TEST)" || { echo "usage: make reproduce TEST='test_lock_ordering.py::test_abba_cross_ring_reads[plain]' [COUNT=n] [VARIANT=negative] [MINUTES=m]"; exit 2; }
	$(HARNESS) reproduce $(foreach t,$(TEST),'$(t)') --count $(or $(COUNT),0) --max-minutes $(or $(MINUTES),30) \
	    $(if $(VARIANT),--variant $(VARIANT)) $(if $(ACCEL),--accel $(ACCEL)) $(if $(FORCE),--force) \
	    $(if $(KERNEL_SRC),--kernel-src $(KERNEL_SRC))

build: setup
	$(HARNESS) run --build-only $(RUN_ARGS)

shell: setup
	$(HARNESS) shell

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
