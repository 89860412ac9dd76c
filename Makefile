# dm-thin-rs: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
TOP := $(CURDIR)
LLVM ?= -19
export PATH := $(HOME)/.cargo/bin:$(PATH)

# KDIR= builds the module against another Rust-enabled 7.x tree; by default
# the cached test kernel, set up on first use.
KDIR_FILE := build/kdir
ifdef KDIR
kdir = $(KDIR)
else
kdir = $$(cat $(KDIR_FILE))
endif

.PHONY: all module setup host-test vm-test test demo bench vm clean

all: module

setup:
	@mkdir -p build
	@bash scripts/setup.sh > $(KDIR_FILE).tmp && mv $(KDIR_FILE).tmp $(KDIR_FILE)

module: $(if $(KDIR),,setup)
	$(MAKE) -C $(kdir) M=$(TOP) LLVM=$(LLVM) modules

host-test: setup
	bash scripts/host-test.sh

vm-test: module
	bash qemu/run-vm.sh test "$(kdir)" $(SCENARIOS)

test: module
	bash scripts/test.sh "$(kdir)"

demo: module
	bash qemu/run-vm.sh demo "$(kdir)"

bench: module
	bash qemu/run-vm.sh bench "$(kdir)"

vm: module
	bash qemu/run-vm.sh shell "$(kdir)"

clean:
	-[ -f $(KDIR_FILE) ] && $(MAKE) -C $(kdir) M=$(TOP) LLVM=$(LLVM) clean
	rm -rf build target
