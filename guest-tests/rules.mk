# SPDX-License-Identifier: GPL-2.0
#
# Included by Makefile and series/build.mk: quiet output and the two BPF
# build steps both do the same way. The including file sets CLANG, BPFTOOL
# and BPF_CFLAGS (with its include directories), and V=1 for full commands.

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' $(1) $(2)
endif

# Recipe of "<name>.bpf.o: <source>": clang's object carries DWARF for every
# kernel type it touches (about 600 KiB for task_struct); the BPF static
# linker keeps BTF and drops DWARF, which keeps the skeleton that embeds the
# object small.
define bpf_object
	$(call msg,CLANG-BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -MF $@.d -MT $@ -c $< -o $@.unlinked
	$(Q)$(BPFTOOL) gen object $@ $@.unlinked
	$(Q)rm -f $@.unlinked
endef

# Recipe of "<name>.skel.h: <name>.bpf.o"; written whole or not at all.
define bpf_skeleton
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $* > $@.tmp
	$(Q)mv $@.tmp $@
endef
