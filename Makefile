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

# `make bench` runs on its own kernel (no KASAN/lockdep, -O2), built on first
# use and cached like the test kernel, with the module built for it apart
# (build/bench-mod). KDIR= runs it on that tree instead.
BENCH_KDIR_FILE := build/kdir-bench
ifdef KDIR
bench_kdir = $(KDIR)
else
bench_kdir = $$(cat $(BENCH_KDIR_FILE))
endif

.PHONY: all module setup bench-setup bench-module host-test vm-test test test-long test-faults demo bench vm clean

all: module

setup:
	@mkdir -p build
	@bash scripts/setup.sh > $(KDIR_FILE).tmp && mv $(KDIR_FILE).tmp $(KDIR_FILE)

bench-setup:
	@mkdir -p build
	@bash scripts/setup.sh bench > $(BENCH_KDIR_FILE).tmp && mv $(BENCH_KDIR_FILE).tmp $(BENCH_KDIR_FILE)

module: $(if $(KDIR),,setup)
	$(MAKE) -C $(kdir) M=$(TOP) LLVM=$(LLVM) modules

host-test: setup
	bash scripts/host-test.sh

vm-test: module
	bash qemu/run-vm.sh test "$(kdir)" $(SCENARIOS)

test: module
	bash scripts/test.sh "$(kdir)"

# `make test` with the scenarios marked SLOW run on their modules too (the
# slowest C reference runs): every scenario on both modules.
test-long: module
	VM_TIMEOUT=$${VM_TIMEOUT:-6000} bash scripts/test.sh "$(kdir)" DMRS_FULL=1

# The fault sweeps whole, on both modules (`make test` runs a seeded sample
# of each): the hostile-metadata fuzzer at DMRS_FUZZ_CASES (default 200000,
# about 6 min on 2 cores), then one VM boot with every metadata I/O fault
# point, every failslab rate, every crash-replay point and the whole
# hostile corpus. Scenario output:
# SWEEP lines per point, SWEEP-SUMMARY per sweep.
FAULT_SCENARIOS := 64-metadata-io-sweep 65-data-device-errors 66-allocation-failures 67-crash-replay 68-hostile-metadata
test-faults: module
	DMRS_FUZZ_CASES=$${DMRS_FUZZ_CASES:-200000} cargo test --release --test hostile_fuzz -- --nocapture
	DMRS_SWEEP=all HOSTILE_ALL=1 REPLAY_ALL=1 DMRS_SCENARIO_TIMEOUT=14400 VM_TIMEOUT=43200 bash qemu/run-vm.sh test "$(kdir)" \
		$(foreach s,$(FAULT_SCENARIOS),c:$(s) rust:$(s))
	@cp build/vm-test.log build/test-faults.log
	@grep -h '^SWEEP-SUMMARY\|^RESULT' build/test-faults.log || true

demo: module
	bash qemu/run-vm.sh demo "$(kdir)"

bench-module: $(if $(KDIR),,bench-setup)
	bash scripts/bench-module.sh "$(bench_kdir)" build/bench-mod

# BENCH_ARGS="BENCH_RUNTIME=10 BENCH_ROUNDS=2 BENCH_WORKLOADS=randread4k"
bench: bench-module
	DMRS_KO=$(TOP)/build/bench-mod/dm_thin_rs.ko bash qemu/run-vm.sh bench "$(bench_kdir)" $(BENCH_ARGS)

vm: module
	bash qemu/run-vm.sh shell "$(kdir)"

clean:
	-[ -f $(KDIR_FILE) ] && $(MAKE) -C $(kdir) M=$(TOP) LLVM=$(LLVM) clean
	rm -rf build target
