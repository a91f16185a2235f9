# podvisor — the two commands a fresh Debian 12 machine needs (run as root):
#   make demo   installs dependencies, builds, builds the guest image and a demo image, runs a container
#               in its own pod VM with `podvisor run` and reports the pod start time
#   make test   the same set-up, then every unit and real-VM integration test
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

SWIFT ?= swift
BUILD := build
AGENT := $(BUILD)/podvisor-agent
BASELINE := $(BUILD)/image/baseline-initramfs.img
BUSYBOX_ROOTFS := $(BUILD)/busybox-rootfs
DEMO_IMAGE := $(BUILD)/demo-image
PODVISOR := .build/debug/podvisor
# Where make demo keeps its VMs and its embedded libvirt root.
DEMO_STATE ?= /var/lib/podvisor
IMAGE_FLAGS = --kernel $(abspath $(IMAGE_DIR)/vmlinuz) --initrd $(abspath $(IMAGE_DIR)/initramfs.img)

.PHONY: all deps build demo test check unit-test chaos bench clean FORCE
all: build image

deps:
	bash Configs/deps/install.sh

build: deps
	$(SWIFT) build --product podvisor
	$(SWIFT) build --product podvisord

# The guest agent: fully static, stripped, separate scratch path so host and guest builds never
# invalidate each other. swift build decides whether anything changed; the copy keeps the image rule's
# timestamp stable when nothing did.
$(AGENT): FORCE | deps
	$(SWIFT) build -c release --scratch-path .build-guest --product podvisor-agent \
		--static-swift-stdlib -Xswiftc -static-executable
	mkdir -p $(BUILD)
	strip -o $(AGENT).tmp .build-guest/release/podvisor-agent
	if cmp -s $(AGENT).tmp $(AGENT); then rm $(AGENT).tmp; else mv $(AGENT).tmp $(AGENT); fi
FORCE:

include Images/Makefile.inc

$(BASELINE): Images/build-baseline.sh Images/build-busybox-rootfs.sh | deps
	Images/build-baseline.sh $@

$(BUSYBOX_ROOTFS): Images/build-busybox-rootfs.sh | deps
	Images/build-busybox-rootfs.sh $@

$(DEMO_IMAGE)/index.json: Images/build-demo-image.sh $(BUSYBOX_ROOTFS) | deps
	Images/build-demo-image.sh $(BUSYBOX_ROOTFS) $(DEMO_IMAGE)

# The demo image is imported into the store (no registry or internet), then run once in a pod VM.
demo: build image $(DEMO_IMAGE)/index.json
	$(PODVISOR) image import --state-dir $(DEMO_STATE) $(DEMO_IMAGE):latest demo
	$(PODVISOR) run --rm --timing --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) demo -- \
		sh -c 'echo "hello from $$(hostname), a container in its own VM"; echo "guest kernel $$(uname -r), $$(nproc) vCPU"; free -m | head -2'

# Integration tests find the image through these variables and boot real VMs through libvirt. The quick
# checks come first: a formatting or layering mistake fails in seconds, not after the VM suites.
test: build image check
	PODVISOR_TEST_KERNEL=$(abspath $(IMAGE_DIR)/vmlinuz) PODVISOR_TEST_INITRD=$(abspath $(IMAGE_DIR)/initramfs.img) \
		$(SWIFT) test

unit-test: deps
	$(SWIFT) test --skip IntegrationTests

# kill -9 of podvisord at random points of many pods' lives, each followed by a census of what is left.
CHAOS_CYCLES ?= 25
chaos: build image
	PODVISOR_CHAOS_CYCLES=$(CHAOS_CYCLES) PODVISOR_TEST_KERNEL=$(abspath $(IMAGE_DIR)/vmlinuz) \
		PODVISOR_TEST_INITRD=$(abspath $(IMAGE_DIR)/initramfs.img) $(SWIFT) test --filter 'CRITests.Chaos'

# Format (.swift-format), the layering of Docs/architecture.md (every import allowed and declared), unit tests.
check: deps
	git ls-files -z '*.swift' | grep -zv '/Generated/' | xargs -0 $(SWIFT) format lint --strict --parallel
	.ci/check-imports
	$(MAKE) --no-print-directory unit-test

# Boot-to-ready and CRI pod start against a bare boot, CRI latency and memory with 20 pods, the pod network
# against a plain netns, idle pods until 150 or the host's limit, image pull against skopeo copy; each
# rewrites its section of Docs/performance.md.
bench: build image $(BASELINE) $(BUSYBOX_ROOTFS) $(DEMO_IMAGE)/index.json
	$(PODVISOR) bench boot --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --baseline-initrd $(abspath $(BASELINE)) \
		--container-rootfs $(abspath $(BUSYBOX_ROOTFS)) --runs 5 --report Docs/performance.md
	$(PODVISOR) image import --state-dir $(DEMO_STATE) $(DEMO_IMAGE):latest demo
	$(PODVISOR) bench cri --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --baseline-initrd $(abspath $(BASELINE)) \
		--runs 5 --pods 20 --report Docs/performance.md
	$(PODVISOR) bench network --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --container-rootfs $(abspath $(BUSYBOX_ROOTFS)) \
		--runs 5 --report Docs/performance.md
	$(PODVISOR) bench density --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --target 150 --report Docs/performance.md
	Tests/TestSupport/Fixtures/bench-pull.sh $(PODVISOR) 5 Docs/performance.md

clean:
	rm -rf .build .build-guest $(BUILD)
