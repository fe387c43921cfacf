# SPDX-License-Identifier: GPL-2.0
#
# Builds the kernel series' own BPF selftests (prog_tests/$(TESTS).c and the
# progs/ objects they load) into $(O), run by ../Makefile as a sub-make:
#
#   $(O)/libbpf/libbpf.a, $(O)/include/bpf/   libbpf of $(KSRC) (its UAPI)
#   $(O)/<prog>.bpf.o, $(O)/<prog>.skel.h     every "<prog>.skel.h" the tests include
#   $(O)/tests.h                              SERIES_TEST(name, fn) per test function
#   $(O)/subtests.txt                         "<test>/<subtest>" per literal subtest name
#   $(O)/runner                               runner.c + the tests + libbpf.a
#
# Inputs: O, KSRC, TESTS, VMLINUX_H_DIR (holds vmlinux.h), CLANG, BPFTOOL, CC.
# Nothing is written under $(KSRC): libbpf builds with OUTPUT= in $(O).

SHIM := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
SELFTESTS := $(KSRC)/tools/testing/selftests/bpf

# Quiet output and the BPF object and skeleton recipes, shared with ../Makefile.
include $(SHIM)/../rules.mk

test_srcs := $(TESTS:%=$(SELFTESTS)/prog_tests/%.c)
# The skeletons the tests include name the progs/ objects to build.
skel_names := $(sort $(shell sed -n 's/^[[:space:]]*\#[[:space:]]*include[[:space:]]*"\([A-Za-z0-9_]*\)\.skel\.h".*/\1/p' $(test_srcs)))
bpf_objs := $(skel_names:%=$(O)/%.bpf.o)
skels := $(skel_names:%=$(O)/%.skel.h)
test_objs := $(TESTS:%=$(O)/%.test.o)

LIBBPF_SRC := $(KSRC)/tools/lib/bpf
LIBBPF_A := $(O)/libbpf/libbpf.a
LIBBPF_INC := $(O)/include

# As the selftests compile them, minus what clang 14 lacks (nothing so far).
BPF_CFLAGS := -g -O2 --target=bpf -mcpu=v3 -Wall -Werror -D__TARGET_ARCH_x86 \
	-mlittle-endian -Wno-compare-distinct-pointer-types \
	-I$(VMLINUX_H_DIR) -I$(LIBBPF_INC) -I$(SELFTESTS) -I$(KSRC)/tools/include/uapi
# This directory first, so <test_progs.h> is the shim.
TEST_CFLAGS := -g -O2 -Wall -Werror -D_GNU_SOURCE= -fno-omit-frame-pointer \
	-I$(SHIM) -I$(O) -I$(LIBBPF_INC) -I$(KSRC)/tools/include \
	-I$(KSRC)/tools/arch/x86/include -I$(KSRC)/tools/include/uapi
LDLIBS := -lelf -lz -lrt -lpthread

.PHONY: all FORCE
.DELETE_ON_ERROR:

all: $(O)/runner $(O)/subtests.txt

$(O)/libbpf:
	$(Q)mkdir -p $@

# libbpf's own make decides what is stale; the archive is rewritten only
# when an object changed, which is what relinks the runner.
$(LIBBPF_A): FORCE | $(O)/libbpf
	$(call msg,LIBBPF,$(LIBBPF_SRC))
	$(Q)$(MAKE) -s -C $(LIBBPF_SRC) OUTPUT=$(O)/libbpf/ BUILD_STATIC_ONLY=1 \
		DESTDIR=$(O) prefix= EXTRA_CFLAGS='-g -O2' $(LIBBPF_A) install_headers

$(bpf_objs): $(O)/%.bpf.o: $(SELFTESTS)/progs/%.c $(VMLINUX_H_DIR)/vmlinux.h $(LIBBPF_A)
	$(bpf_object)

$(skels): $(O)/%.skel.h: $(O)/%.bpf.o
	$(bpf_skeleton)

# SERIES_TEST(name, fn) for every "void test_x(void)" and
# "void serial_test_x(void)" definition, as test_progs finds them.
$(O)/tests.h: $(test_srcs) FORCE
	$(Q)sed -n 's/^void \(serial_\)\{0,1\}test_\([A-Za-z0-9_]*\)(void).*/SERIES_TEST(\2, \1test_\2)/p' \
		$(test_srcs) > $@.tmp
	$(Q)if [ ! -s $@.tmp ]; then echo "no test functions in $(test_srcs)" >&2; rm -f $@.tmp; exit 1; fi
	$(Q)cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

# Subtest names the tests start with a string literal; the guest tests are
# parametrised by them. Names built at run time show up in the runner's
# output only.
$(O)/subtests.txt: $(test_srcs) FORCE
	$(Q)for t in $(TESTS); do \
		sed -n 's/.*test__start_subtest("\([^"]*\)").*/\1/p' \
			$(SELFTESTS)/prog_tests/$$t.c | sed "s|^|$$t/|"; \
	done > $@.tmp
	$(Q)cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(test_objs): $(O)/%.test.o: $(SELFTESTS)/prog_tests/%.c $(skels) $(LIBBPF_A)
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CFLAGS) -MMD -MP -MF $@.d -MT $@ -c $< -o $@

$(O)/runner.o: $(SHIM)/runner.c $(SHIM)/test_progs.h $(O)/tests.h $(LIBBPF_A)
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CFLAGS) -c $< -o $@

$(O)/runner: $(O)/runner.o $(test_objs) $(LIBBPF_A)
	$(call msg,LD,$@)
	$(Q)$(CC) -g -o $@ $^ $(LDLIBS)

-include $(wildcard $(O)/*.d)
