# berth: `make demo` sets everything up and runs a container; `make test` runs every test.
# Both work on a fresh Debian 12 machine as root.

SHELL := /bin/bash
MUSL := x86_64-unknown-linux-musl
# Release builds are static musl binaries: process start is ~0.7 ms faster than glibc's
# dynamic startup here (see README, Performance). Falls back to the host target.
RELEASE_BIN = $(shell if rustup target list --installed 2>/dev/null | grep -qx $(MUSL); then echo target/$(MUSL)/release/berth; else echo target/release/berth; fi)
RELEASE_FLAGS = $(shell if rustup target list --installed 2>/dev/null | grep -qx $(MUSL); then echo --target $(MUSL); fi)
ROOTFS := rootfs-fixtures/build/busybox
IMAGES := rootfs-fixtures/build/images
DEBIAN_PACKAGES := busybox-static libseccomp-dev pkg-config runc crun hyperfine jq qemu-system-x86 cpio procps iproute2 util-linux time binutils podman conmon catatonit containerd \
	docker-registry umoci skopeo apache2-utils zstd attr openssl musl-tools containernetworking-plugins iptables \
	protobuf-compiler libprotobuf-dev golang-go golang-google-grpc-dev golang-github-docker-spdystream-dev \
	netavark aardvark-dns gcc libc6-dev nftables e2fsprogs
# (installed without their recommendations: each package berth's tests use is named here)

.PHONY: all setup build fixtures demo test lint unit-and-integration test-clients test-fuzz fuzz test-release test-upgrade test-cgroupv2 hot-symbols bench clean

all: build

## setup: install the Debian packages and the Rust target berth needs (idempotent)
setup:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL) || rustup target add $(MUSL) || \
		echo "setup: musl target unavailable; release builds use the host target"

## build: the release binary (libseccomp linked statically from its own directory, so that no
## other glibc archive can slip into the musl link; the OCI verbs' functions placed together by
## tools/link-ordered.sh)
SECCOMP_STATIC := target/libseccomp-static
build: setup
	@mkdir -p $(SECCOMP_STATIC) && cp -u /usr/lib/$$(gcc -dumpmachine)/libseccomp.a $(SECCOMP_STATIC)/
	@# cargo does not track the linker's input list: relink when it is newer than the binary
	@[ ! -e $(RELEASE_BIN) ] || [ $(RELEASE_BIN) -nt tools/hot-symbols.txt ] || touch src/main.rs
	LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$(abspath $(SECCOMP_STATIC)) CC_x86_64_unknown_linux_musl=musl-gcc \
		CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=$(abspath tools/link-ordered.sh) \
		cargo build --release $(RELEASE_FLAGS)
	@echo "built $(RELEASE_BIN)"

fixtures: setup
	@[ -x $(ROOTFS)/bin/busybox ] || rootfs-fixtures/build-rootfs.sh $(ROOTFS)
	@[ -d $(IMAGES)/registry ] || rootfs-fixtures/build-images.sh $(ROOTFS) $(IMAGES)

## demo: run a busybox container (a bundle) that prints its hostname, PID 1 and cgroup memory
## limit, then a pod of two containers from an image, on berth's default CNI network
demo: build fixtures
	rootfs-fixtures/demo.sh $(RELEASE_BIN)

## test: lint, unit and root integration tests, real clients (podman, containerd), then the
## cgroup v2 tests in a qemu VM
test: setup lint unit-and-integration test-release test-upgrade test-clients test-fuzz test-cgroupv2

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

unit-and-integration: fixtures
	@# the tests' common parent directory goes too once they are done (each test removes its own)
	cargo test; rc=$$?; rmdir /run/berth-test 2>/dev/null; exit $$rc

## test-release: the release build runs a container; its peak RSS stays within 3 MiB; a pod
## monitor running ten probes a second stays within 2 MiB
test-release: build fixtures
	tests/release.sh $(RELEASE_BIN)
	tests/probes-memory.sh $(RELEASE_BIN)

## test-upgrade: a pod made by the berth before the pod layer's rebuild (built from this
## checkout's history) is inspected, stopped and removed by this one
UPGRADE_FROM := a0a023ad29a62997e24e758714def6279a19d90f
test-upgrade: fixtures
	tests/upgrade.sh $(UPGRADE_FROM)

## test-clients: podman and containerd drive berth as their runtime
test-clients: fixtures
	cargo build
	tests/clients/podman.sh target/debug/berth
	tests/clients/containerd.sh target/debug/berth

## fuzz: the layer extractor under libFuzzer for FUZZ_SECONDS (cargo-fuzz on the stable
## toolchain through RUSTC_BOOTSTRAP); test-fuzz is a short run of it
FUZZ_SECONDS ?= 300
fuzz: fixtures
	fuzz/run.sh $(FUZZ_SECONDS)

test-fuzz:
	$(MAKE) fuzz FUZZ_SECONDS=30

## test-cgroupv2: the integration tests again, on a pure cgroup v2 kernel in qemu
test-cgroupv2: fixtures
	tests/cgroupv2/run.sh

## hot-symbols: re-measure which functions the OCI verbs run (tools/hot-symbols.txt)
hot-symbols: setup fixtures
	tools/profile-hot-symbols.sh

## bench: berth vs runc vs crun, side by side (release build)
bench: build fixtures
	tests/bench/bench.sh $(RELEASE_BIN)
	tests/bench/images.sh $(RELEASE_BIN)
	tests/bench/pods.sh $(RELEASE_BIN)
	tests/bench/cri.sh $(RELEASE_BIN)
	tests/bench/volumes.sh $(RELEASE_BIN)
	tests/bench/services.sh $(RELEASE_BIN)
	tests/bench/probes.sh $(RELEASE_BIN)
	MEASURE_ALL=1 tests/probes-memory.sh $(RELEASE_BIN)

clean:
	cargo clean
	rm -rf rootfs-fixtures/build
