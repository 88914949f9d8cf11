# gotcmu. `make test` is what CI runs (.ci/run); `make help` lists the targets.
#
# Variables (override on the command line):
#   CEPH_TAG   go-ceph build tag for the installed librbd (test/ceph-tag.sh picks it)
#   PREFIX, DESTDIR, BINDIR        for `make install`
#   VERSION    stamped into bin/gotcmu and the .deb (default: systemd/deb/version.sh, git describe
#              as a Debian version)
#   VM_MODE    gotcmu (default), tcmu-runner or fileio: what serves the LUNs in test-vm and demo;
#              the last two run the same harness without gotcmu (Debian's tcmu-runner as the
#              handler, or LIO's in-kernel fileio backstore)
#   FUZZTIME   per fuzz target: 5s inside test-unit, FUZZTIME_LONG (3m) for `make fuzz`
#   RACE       -race (default) or empty, for the Go unit tests

SHELL := /bin/bash
# A fresh CI machine has Go in /usr/local/go/bin, not always on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
CEPH_TAG ?= $(shell test/ceph-tag.sh)
VERSION ?= $(shell systemd/deb/version.sh)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DESTDIR ?=
BUILD := build
TOOLS := $(BUILD)/tools
# Pinned: a newer staticcheck brings new checks, which must not fail an unchanged tree. The
# binary's name carries the version, so changing it here installs the new one.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
VM_LOCK ?= /tmp/gotcmu-vm.lock
VM_MODE ?= gotcmu
FUZZTIME ?= 5s
FUZZTIME_LONG ?= 3m
RACE ?= -race
# Every package but the Ceph backend's, whose tests need a cluster (test-ceph runs them).
UNIT_PKGS = $(shell $(GO) list -tags '$(CEPH_TAG)' ./... | grep -v '/rbd\(/\|$$\)')

.PHONY: all build test deps deb test-deb test-unit test-vm test-faults test-systemd test-ceph test-ha test-partition test-gateway scale-gateway demo bench scale soak fuzz check install \
	install-extra check-extra clean distclean help

all: build

help:
	@echo "make build      bin/gotcmu (go-ceph tag: $(CEPH_TAG))"
	@echo "make test       deps, check, test-unit, test-deb, test-ceph, test-vm, test-faults, test-systemd: what CI runs"
	@echo "make deps       install missing Debian packages (test/deps.sh), check Go"
	@echo "make test-unit  go test $(RACE) on every package but rbd, then every fuzz target for $(FUZZTIME);"
	@echo "                a skip test/expected-skips.txt does not list fails it (as in test-ceph)"
	@echo "make test-ceph  the rbd backend's tests against a micro Ceph cluster on this machine"
	@echo "make test-vm    boot the real kernel under qemu: walking skeleton + iscsi-test-cu comparison"
	@echo "                (VM_MODE=tcmu-runner or fileio: the same harness without gotcmu)"
	@echo "make test-faults  faults under a verifying write load in the VM, and capabilities (issue 8)"
	@echo "make test-systemd  the .deb installed in a guest booted with systemd: the unit as on a gateway (issue 14)"
	@echo "make test-ha    two gateways and dm-multipath in two guests: failover, failback (10 min),"
	@echo "                then test-partition"
	@echo "make test-partition  gateway A cut off from Ceph and reconnected under a verifying load (15 min)"
	@echo "make test-gateway  ceph-iscsi (gwcli, rbd-target-api) on two gateways; HANDLER=tcmu-runner for the reference"
	@echo "make soak       4 LUNs under fio verify for an hour (SOAK_S) in the VM, an OSD SIGKILLed; memory, fds, threads flat"
	@echo "make demo       Ceph, gotcmu, targetcli, an iSCSI initiator and ext4 in the VM, step by step"
	@echo "make bench      the performance table (issue 7)"
	@echo "make scale      1 to 64 user:rbd LUNs per daemon in the VM, gotcmu and tcmu-runner (issue 16)"
	@echo "make fuzz       every fuzz target for $(FUZZTIME_LONG)"
	@echo "make check      gofmt, go vet, staticcheck, shellcheck"
	@echo "make install    bin/gotcmu and the system files into \$$DESTDIR\$$PREFIX"
	@echo "make deb        gotcmu_\$$VERSION_amd64.deb from a staged make install (systemd/deb/)"
	@echo "make test-deb   make deb, then lintian, apt with ceph-iscsi, file list, dpkg -i/--purge in an overlay"

build:
	$(GO) build -tags '$(CEPH_TAG)' -ldflags '-X main.version=$(VERSION)' -o bin/gotcmu ./cmd/gotcmu

# Runs every part even when one fails, then fails if any did; prints how long each took.
test:
	@$(MAKE) --no-print-directory deps
	@failed=""; for t in check test-unit test-deb test-ceph test-vm test-faults test-systemd; do \
		start=$$(date +%s); \
		echo "==== make $$t"; \
		if $(MAKE) --no-print-directory $$t; then r=ok; else r=FAILED; failed="$$failed $$t"; fi; \
		echo "==== make $$t: $$r in $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all passed"

deps:
	@test/deps.sh

# go test -json through test/cmd/skipcheck, which fails on any skipped test or subtest that
# test/expected-skips.txt does not list; the whole -v output goes to build/test-unit.log.
test-unit:
	$(GO) build -o $(TOOLS)/skipcheck ./test/cmd/skipcheck
	set -o pipefail; $(GO) test $(RACE) -tags '$(CEPH_TAG)' -count=1 -json $(UNIT_PKGS) | \
		$(TOOLS)/skipcheck -allow test/expected-skips.txt -log $(BUILD)/test-unit.log
	TAGS='$(CEPH_TAG)' test/fuzz.sh $(FUZZTIME)

test-ceph:
	TAGS='$(CEPH_TAG)' test/test-ceph.sh

test-vm: $(if $(filter gotcmu,$(VM_MODE)),build)
	flock $(VM_LOCK) test/vm/test-vm.sh -m $(VM_MODE)

# Issue 8 point 1 (and the in-VM half of point 4): test/vm/guest-faults.sh in a boot of its own.
test-faults: build
	OUT=$(BUILD)/test-faults flock $(VM_LOCK) test/vm/test-vm.sh -m gotcmu faults

# Issue 14 point 2: the package, built into a directory of its own (bin/ keeps `make deb`'s one),
# installed by dpkg into a guest that boots with systemd as PID 1 (test/vm/test-systemd.sh).
test-systemd:
	rm -rf $(BUILD)/systemd-deb
	$(MAKE) --no-print-directory deb DEB_DIR=$(BUILD)/systemd-deb
	flock $(VM_LOCK) test/vm/test-systemd.sh $(BUILD)/systemd-deb/gotcmu_*.deb

# Issue 6 point 4: two guests, two gateways, dm-multipath failover and failback; then issue 15
# point 1's partition in the same layout (test-partition), also when the first failed; not part
# of `make test` (about 25 minutes; test/ha/test-ha.sh, test/ha/test-partition.sh).
test-ha: deps build
	flock $(VM_LOCK) test/ha/test-ha.sh; rc=$$?; flock $(VM_LOCK) test/ha/test-partition.sh && exit $$rc

# Issue 15 point 1: gateway A cut off from the cluster and reconnected while dm-multipath moves to
# B (test/ha/guest-partition.sh, test/cmd/partition; about 15 minutes).
test-partition: deps build
	flock $(VM_LOCK) test/ha/test-partition.sh

# Issue 14 points 3-5: ceph-iscsi's gwcli and rbd-target-api on two gateways (two guests with
# systemd as PID 1, as test-ha's layout), HANDLER=gotcmu (default: its package, built here) or
# HANDLER=tcmu-runner; not part of `make test` (about an hour with the SCSI family); the table
# goes to test/results/gateway-$(HANDLER).md.
HANDLER ?= gotcmu
test-gateway: deps
ifeq ($(HANDLER),gotcmu)
	rm -rf $(BUILD)/gateway-deb
	$(MAKE) --no-print-directory deb DEB_DIR=$(BUILD)/gateway-deb
	GOTCMU_DEB=$$(ls $(BUILD)/gateway-deb/gotcmu_*.deb) HANDLER=$(HANDLER) RESULTS=test/results flock $(VM_LOCK) test/gateway/test-gateway.sh
else
	HANDLER=$(HANDLER) RESULTS=test/results flock $(VM_LOCK) test/gateway/test-gateway.sh
endif

# Issue 16: SCALE_DISKS (default 64) disks through ceph-iscsi on the two gateways of
# test-gateway, HANDLER as there; writes test/results/gateway-scale-$(HANDLER).md. Not part of
# `make test`.
SCALE_DISKS ?= 64
scale-gateway: deps
ifeq ($(HANDLER),gotcmu)
	rm -rf $(BUILD)/gateway-deb
	$(MAKE) --no-print-directory deb DEB_DIR=$(BUILD)/gateway-deb
	GOTCMU_DEB=$$(ls $(BUILD)/gateway-deb/gotcmu_*.deb) HANDLER=$(HANDLER) SCALE_DISKS=$(SCALE_DISKS) OUT=$(BUILD)/scale-gateway-$(HANDLER) RESULTS=test/results flock $(VM_LOCK) test/gateway/test-gateway.sh
else
	HANDLER=$(HANDLER) SCALE_DISKS=$(SCALE_DISKS) OUT=$(BUILD)/scale-gateway-$(HANDLER) RESULTS=test/results flock $(VM_LOCK) test/gateway/test-gateway.sh
endif

# Issue 15 point 4: not part of `make test` (an hour of load; SOAK_S=seconds to change it);
# writes test/results/soak.md.
soak: deps build
	RESULTS=test/results flock $(VM_LOCK) test/soak/soak.sh

demo: deps $(if $(filter gotcmu,$(VM_MODE)),build)
	MODE=$(VM_MODE) flock $(VM_LOCK) test/vm/demo.sh

# The performance table of issue 7 (test/bench/bench.sh): gotcmu's rbd path against fio's librbd
# engine on a micro Ceph here, then one guest boot of fio over tcm_loop; writes
# test/results/bench.md and bench.png. Takes 15-20 minutes.
bench: deps build
	flock $(VM_LOCK) test/bench/bench.sh

# Issue 16: N = 1, 16, 64 user:rbd LUNs for gotcmu and tcmu-runner in one guest boot: memory,
# threads, start-up, adoption, drain and aggregate IOPS (test/scale/scale.sh); writes
# test/results/scale.md and scale.png. About 20 minutes; not part of `make test`.
scale: deps build
	flock $(VM_LOCK) test/scale/scale.sh

fuzz:
	TAGS='$(CEPH_TAG)' test/fuzz.sh $(FUZZTIME_LONG)

check: $(STATICCHECK)
	@files=$$(gofmt -l $$(find . -name '*.go' -not -path './$(BUILD)/*' -not -path '*/testdata/*')); \
	if [ -n "$$files" ]; then echo "gofmt: these files need gofmt -w:"; echo "$$files"; exit 1; fi
	$(GO) vet -tags '$(CEPH_TAG)' ./...
	$(STATICCHECK) -tags '$(CEPH_TAG)' ./...
	@# The guest suites' checks (test/guest) build only with the tag guest.
	$(GO) vet -tags guest ./test/guest
	$(STATICCHECK) -tags guest ./test/guest
	shellcheck -S warning -x -P SCRIPTDIR .ci/run $$(find . -name '*.sh' -not -path './$(BUILD)/*')
	@$(MAKE) --no-print-directory check-extra

$(STATICCHECK):
	GOBIN=$(CURDIR)/$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

install: build
	install -D -m 0755 bin/gotcmu $(DESTDIR)$(BINDIR)/gotcmu
	@$(MAKE) --no-print-directory install-extra

# Hooks: other parts of the tree add steps with double-colon rules in a makefile fragment of
# their own, e.g. systemd/install.mk with "install-extra:: ..." (units, D-Bus policy, default
# configuration) or "check-extra:: ..." (systemd-analyze verify). Every *.mk in systemd/ is read.
install-extra::
	@:
check-extra::
	@:
-include $(wildcard systemd/*.mk)

clean:
	rm -rf bin $(BUILD)/bin $(BUILD)/test-vm $(BUILD)/test-faults $(BUILD)/soak $(BUILD)/demo $(BUILD)/ceph

# Also drops the cached VM guest and the tools.
distclean: clean
	rm -rf $(BUILD)
