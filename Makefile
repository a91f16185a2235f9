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
IMAGE_FLAGS = --kernel $(abspath $(IMAGE_DIR)/vmlinuz) --rootfs $(abspath $(IMAGE_DIR)/rootfs.erofs)

.PHONY: all deps build demo test check unit-test chaos bench clean release install uninstall deb install-test FORCE
all: build image

deps:
	PODVISOR_LIBEXEC=$(VSOCK_DIR) bash Configs/deps/install.sh

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
	PODVISOR_TEST_KERNEL=$(abspath $(IMAGE_DIR)/vmlinuz) PODVISOR_TEST_ROOTFS=$(abspath $(IMAGE_DIR)/rootfs.erofs) \
		PODVISOR_TEST_INITRD=$(abspath $(IMAGE_DIR)/initramfs.img) $(SWIFT) test
	$(MAKE) --no-print-directory install-test

unit-test: deps
	$(SWIFT) test --skip IntegrationTests

# kill -9 of podvisord at random points of many pods' lives, each followed by a census of what is left.
CHAOS_CYCLES ?= 25
chaos: build image
	PODVISOR_CHAOS_CYCLES=$(CHAOS_CYCLES) PODVISOR_TEST_KERNEL=$(abspath $(IMAGE_DIR)/vmlinuz) \
		PODVISOR_TEST_ROOTFS=$(abspath $(IMAGE_DIR)/rootfs.erofs) $(SWIFT) test --filter 'CRITests.Chaos'

# Format (.swift-format), the layering of Docs/architecture.md (every import allowed and declared), unit tests.
check: deps
	git ls-files -z '*.swift' | grep -zv '/Generated/' | xargs -0 $(SWIFT) format lint --strict --parallel
	.ci/check-imports
	@# Foundation's whole-file readers leak on empty files: PodvisorCore's readFile/readTextFile instead.
	@! git grep -nE 'contents\(atPath|Data\(contentsOf|String\(contentsOfFile' -- 'Sources/*.swift' \
		':!Sources/PodvisorCore/FileContents.swift' || { echo "use readFile/readTextFile (Sources/PodvisorCore/FileContents.swift)"; exit 1; }
	$(MAKE) --no-print-directory unit-test

# Boot-to-ready and CRI pod start against a bare boot, the minimal kernel against Debian's cloud kernel, CRI
# latency and memory with 20 pods, the pod network against a plain netns, idle pods until 150 or the host's
# limit, image pull against skopeo copy; each rewrites its section of Docs/performance.md. The release build
# is measured (the one `make install` puts on nodes): a debug build's figures say little.
BENCH = $(RELEASE)/podvisor
# The cloud kernel's image, for the kernel comparison only (built by this Makefile's own image rules).
CLOUD_IMAGE := $(BUILD)/image-cloud
bench: release image $(BASELINE) $(BUSYBOX_ROOTFS) $(DEMO_IMAGE)/index.json
	$(BENCH) bench boot --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --baseline-initrd $(abspath $(BASELINE)) \
		--container-rootfs $(abspath $(BUSYBOX_ROOTFS)) --runs 5 --report Docs/performance.md
	$(MAKE) --no-print-directory image IMAGE_DIR=$(CLOUD_IMAGE) PODVISOR_KERNEL=cloud
	$(BENCH) bench kernels --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --other-kernel $(abspath $(CLOUD_IMAGE)/vmlinuz) \
		--other-initrd $(abspath $(CLOUD_IMAGE)/initramfs.img) --baseline-initrd $(abspath $(BASELINE)) \
		--report Docs/performance.md
	$(BENCH) image import --state-dir $(DEMO_STATE) $(DEMO_IMAGE):latest demo
	$(BENCH) bench cri --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --baseline-initrd $(abspath $(BASELINE)) \
		--runs 5 --pods 20 --report Docs/performance.md
	$(BENCH) bench network --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --container-rootfs $(abspath $(BUSYBOX_ROOTFS)) \
		--runs 5 --report Docs/performance.md
	$(BENCH) bench density --state-dir $(DEMO_STATE) $(IMAGE_FLAGS) --target 150 --report Docs/performance.md
	Tests/TestSupport/Fixtures/bench-pull.sh $(BENCH) 5 Docs/performance.md $(IMAGE_FLAGS)

# --- on a node: make install, make deb --------------------------------------------------------------------
# podvisor, podvisord, the guest image and vhost-device-vsock go where the configuration's defaults
# (Sources/PodvisorCore/Config.swift) expect them below PREFIX=/usr/local; another PREFIX (the package's
# /usr) is written into the installed config and units (podvisord's, and podvisor-containerd's for host
# pods). /etc/podvisor/config.toml and containerd.toml are installed only where there are none, and so is
# the default pod network (/etc/cni/net.d, only without DESTDIR: a staged tree's
# network is the package's postinst's to place).
PREFIX ?= /usr/local
# The one version: what both binaries report (--version, the CRI's Version).
VERSION := $(shell sed -n 's/.*static let runtimeVersion = "\(.*\)"/\1/p' Sources/PodvisorCRIServer/CRIServer.swift)
RELEASE := .build/release
# Where `make deps` fetches vhost-device-vsock (Configs/deps/install.sh); install copies it from there.
VSOCK_DIR := /usr/local/libexec/podvisor
VSOCK_FETCHED := $(VSOCK_DIR)/vhost-device-vsock
ifeq ($(PREFIX),/usr)
# A package's files: Debian's unit directory (systemd's pkg-config file says where; /lib/systemd/system on
# Debian 12, where a build host without systemd installed gets that) and zsh's vendor directory.
UNIT_DIR := $(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),/lib/systemd/system)
ZSH_DIR := $(PREFIX)/share/zsh/vendor-completions
else
# An administrator's: the unit directory systemd searches below /etc's (so `systemctl edit` still overrides),
# zsh's site-functions.
UNIT_DIR := $(PREFIX)/lib/systemd/system
ZSH_DIR := $(PREFIX)/share/zsh/site-functions
endif
INSTALLED := $(PREFIX)/bin/podvisor $(PREFIX)/bin/podvisord $(PREFIX)/share/podvisor $(PREFIX)/share/doc/podvisor \
	$(PREFIX)/share/man/man1/podvisor.1.gz $(PREFIX)/share/man/man1/podvisord.1.gz $(UNIT_DIR)/podvisord.service \
	$(UNIT_DIR)/podvisor-containerd.service \
	$(PREFIX)/share/bash-completion/completions/podvisor $(ZSH_DIR)/_podvisor \
	$(PREFIX)/share/fish/vendor_completions.d/podvisor.fish
# The installed config and unit: the example's /usr/local paths moved to PREFIX.
AT_PREFIX = sed 's|/usr/local/|$(PREFIX)/|g'
# Man pages are generated from the commands' own help by swift-argument-parser's generate-manual, built from
# the checkout SwiftPM resolved: its plugin would rebuild every product its own way (relinking the release
# binaries without the static Swift runtime). Dated by the last commit, so a rebuild gives the same pages.
GENERATE_MANUAL := .build/generate-manual/release/generate-manual

# Static Swift runtime: a node needs no Swift toolchain.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product podvisor
	$(SWIFT) build -c release --static-swift-stdlib --product podvisord

$(GENERATE_MANUAL): | release
	$(SWIFT) build -c release --package-path .build/checkouts/swift-argument-parser \
		--scratch-path .build/generate-manual --product generate-manual

install: release image $(GENERATE_MANUAL)
	install -D -m 0755 -t $(DESTDIR)$(PREFIX)/bin $(RELEASE)/podvisor $(RELEASE)/podvisord
	# Without DWARF (200 MB → 130 MB each); the symbol table stays, so crash backtraces still name functions.
	strip --strip-debug $(DESTDIR)$(PREFIX)/bin/podvisor $(DESTDIR)$(PREFIX)/bin/podvisord
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/podvisor $(IMAGE_OUTPUTS) Configs/cni/10-podvisor.conflist \
		Configs/deps/node-setup.sh
	[ $(VSOCK_FETCHED) -ef $(DESTDIR)$(PREFIX)/libexec/podvisor/vhost-device-vsock ] || \
		install -D -m 0755 -t $(DESTDIR)$(PREFIX)/libexec/podvisor $(VSOCK_FETCHED)
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/doc/podvisor README.md Docs/*.md
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/doc/podvisor/kubelet Configs/kubelet/*
	rm -rf $(BUILD)/man && mkdir -p $(BUILD)/man
	for p in podvisor podvisord; do \
		$(GENERATE_MANUAL) $(RELEASE)/$$p --date $$(git log -1 --format=%cs) -o $(BUILD)/man; \
		gzip -9n $(BUILD)/man/$$p.1; done
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/man/man1 $(BUILD)/man/*.1.gz
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(ZSH_DIR) \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(RELEASE)/podvisor --generate-completion-script bash >$(DESTDIR)$(PREFIX)/share/bash-completion/completions/podvisor
	$(RELEASE)/podvisor --generate-completion-script zsh >$(DESTDIR)$(ZSH_DIR)/_podvisor
	$(RELEASE)/podvisor --generate-completion-script fish >$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/podvisor.fish
	install -d $(DESTDIR)$(UNIT_DIR) $(DESTDIR)/etc/podvisor
	$(AT_PREFIX) Configs/systemd/podvisord.service >$(DESTDIR)$(UNIT_DIR)/podvisord.service
	$(AT_PREFIX) Configs/systemd/podvisor-containerd.service >$(DESTDIR)$(UNIT_DIR)/podvisor-containerd.service
	[ -e $(DESTDIR)/etc/podvisor/config.toml ] || $(AT_PREFIX) Configs/podvisor.toml >$(DESTDIR)/etc/podvisor/config.toml
	[ -e $(DESTDIR)/etc/podvisor/containerd.toml ] || install -m 0644 Configs/containerd/config.toml $(DESTDIR)/etc/podvisor/containerd.toml
ifeq ($(DESTDIR),)
	bash -c 'log() { echo "install: $$*"; }; . Configs/deps/node-setup.sh; \
		install_cni /etc/cni/net.d Configs/cni/10-podvisor.conflist'
	[ ! -d /run/systemd/system ] || systemctl daemon-reload
endif

# The config goes only while unchanged. What make deps also provides stays: its vhost-device-vsock, the
# default pod network (pods may be on it).
uninstall:
	rm -rf $(addprefix $(DESTDIR),$(INSTALLED))
	[ $(VSOCK_FETCHED) -ef $(DESTDIR)$(PREFIX)/libexec/podvisor/vhost-device-vsock ] || \
		rm -rf $(DESTDIR)$(PREFIX)/libexec/podvisor
	! cmp -s <($(AT_PREFIX) Configs/podvisor.toml) $(DESTDIR)/etc/podvisor/config.toml || \
		rm -f $(DESTDIR)/etc/podvisor/config.toml
	! cmp -s Configs/containerd/config.toml $(DESTDIR)/etc/podvisor/containerd.toml || \
		rm -f $(DESTDIR)/etc/podvisor/containerd.toml
	[ ! -d $(DESTDIR)/etc/podvisor ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)/etc/podvisor
ifeq ($(DESTDIR),)
	[ ! -d /run/systemd/system ] || systemctl daemon-reload
endif

# build/podvisor_<version>_<arch>.deb: `make install` staged below /usr, packaged by Configs/deb/build-deb.sh.
DEB_STAGE := $(BUILD)/deb/debian/podvisor
DEB := $(BUILD)/podvisor_$(VERSION)_$(shell dpkg --print-architecture).deb
deb:
	rm -rf $(DEB_STAGE)
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(abspath $(DEB_STAGE))
	Configs/deb/build-deb.sh $(DEB_STAGE) $(VERSION) $(DEB)

# The package unpacked into a scratch root runs the demo image in a pod VM (Tests/Install/install-test.sh).
install-test: deb $(DEMO_IMAGE)/index.json
	Tests/Install/install-test.sh $(DEB) $(DEMO_IMAGE)

clean:
	rm -rf .build .build-guest $(BUILD)
