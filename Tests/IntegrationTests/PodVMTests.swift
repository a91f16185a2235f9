import Foundation
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorVMM
import Testing
import TestSupport

@testable import PodvisorRuntime

/// Real VMs through real libvirt (TCG here, KVM where available). Serialized: two cores, and every boot
/// is deliberate — six per run.
@Suite(.serialized) struct PodVMTests {
    /// Boots, calls every agent method of the spine, and powers off through the agent. `root`: instead of the
    /// image pods boot from.
    func bootCallAndShutDown(_ transport: AgentTransportKind, expectGuestTransport: String, root: GuestRoot? = nil) async throws {
        let host = try TestHost.host()
        let configuration = try host.vmConfiguration(id: TestHost.uniqueID("t"), transport: transport, root: root)
        let booted = try #require(configuration.root)
        let pod = try await PodVM.boot(configuration, on: host.connection, timeout: .seconds(host.config.bootTimeoutSeconds))
        // Without an initramfs the kernel has no root but the image: booting at all shows it mounted.
        let qemu = try #require(HostTraces.qemuProcesses(domain: pod.vm.name).first)
        let arguments = try #require(processCommandLine(qemu))
        let fromInitramfs = if case .initramfs = booted { true } else { false }
        #expect(arguments.contains(booted.path) && arguments.contains("-initrd") == fromInitramfs, "\(arguments)")
        // The kernel and root that every pod VM boots are not handed to QEMU's user (libvirt's relabelling),
        // and one an older podvisor let libvirt hand over is taken back: no QEMU may change what another pod boots.
        let qemuUser = try #require(getpwnam("libvirt-qemu")).pointee.pw_uid
        for path in [configuration.kernel, booted.path] {
            var info = stat()
            #expect(stat(path, &info) == 0 && info.st_uid != qemuUser, "\(path) belongs to QEMU's user while a VM runs")
        }
        #expect(pod.version.agentVersion == AgentAPI.agentVersion)
        #expect(pod.version.transport == expectGuestTransport)
        // Either kernel make image can build (Images/build-image.sh, PODVISOR_KERNEL).
        #expect(pod.version.kernelVersion.hasSuffix("-podvisor") || pod.version.kernelVersion.hasSuffix("cloud-amd64"))
        #expect(pod.version.uptimeAtInitMs > 0 && pod.version.uptimeAtReadyMs >= pod.version.uptimeAtInitMs)
        #expect(pod.timings.ready > pod.timings.domainStart)
        let health = try await pod.agent.health()
        #expect(health.status == .serving)
        // From an fsdax root the agent's text is mapped where it lies, and not counted: ~400 KiB against ~6 MiB.
        #expect(health.agentRssBytes > 128 << 10 && health.agentRssBytes < 64 << 20)
        #expect(health.uptimeMs >= pod.version.uptimeAtReadyMs)
        // The root as the guest mounted it. An fsdax image is mapped: erofs keeps dax=always only where the
        // NVDIMM gave it DAX, and QEMU's mapping of the image holds the host's page cache, no copy of its own.
        switch booted {
        case .persistentMemory(let image, _):
            #expect(health.bootRoot.hasPrefix("/dev/root erofs ro,") && health.bootRoot.hasSuffix(",dax=always"), "\(health.bootRoot)")
            let mapping = HostTraces.mapped(qemu, image)
            #expect(mapping.resident > 0 && mapping.anonymous == 0, "\(mapping)")
        case .disk:
            #expect(health.bootRoot.hasPrefix("/dev/root erofs ro,") && !health.bootRoot.contains("dax"), "\(health.bootRoot)")
        case .initramfs:
            #expect(health.bootRoot.hasPrefix("rootfs rootfs "), "\(health.bootRoot)")
        }
        let cleanly = try await pod.shutdown()
        #expect(cleanly, "the guest did not power itself off")
        HostTraces.expectNothingLeft(domain: pod.vm.name, runDirectory: pod.vm.configuration.runDirectory, host: host)
    }

    @Test func hybridVsockBootCallAndCleanShutdown() async throws {
        try await bootCallAndShutDown(.hybridVsock, expectGuestTransport: "vsock")
    }

    @Test func virtioSerialFromTheInitramfsBootCallAndCleanShutdown() async throws {
        try await bootCallAndShutDown(.virtioSerial, expectGuestTransport: "virtio-serial", root: .initramfs(GuestImage.initrd))
    }

    /// A plain erofs image (built elsewhere, or for a kernel without DAX) boots from a read-only virtio disk:
    /// here the erofs image inside `make image`'s fsdax layout, 2 MiB in.
    @Test func virtioSerialFromAPlainErofsDiskBootCallAndCleanShutdown() async throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-plain-\(UUID().uuidString).erofs")
        defer { try? FileManager.default.removeItem(at: image) }
        let layout = try GuestRoot.image(GuestImage.rootfs)
        let source = try #require(FileHandle(forReadingAtPath: GuestImage.rootfs))
        defer { try? source.close() }
        if case .persistentMemory = layout { try source.seek(toOffset: 2 << 20) }
        try #require(FileManager.default.createFile(atPath: image.path, contents: try source.readToEnd(), attributes: [.posixPermissions: 0o644]))
        #expect(try GuestRoot.image(image.path) == .disk(image.path))
        try await bootCallAndShutDown(.virtioSerial, expectGuestTransport: "virtio-serial", root: .disk(image.path))
    }

    /// An fsdax image cut short (a copy that stopped part-way) stops the host at start, naming the file,
    /// before any state is touched; no pod boots from it.
    @Test func aTruncatedRootImageStopsTheHostAtStart() throws {
        let image = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-cut-\(UUID().uuidString).erofs")
        defer { try? FileManager.default.removeItem(at: image) }
        guard case .persistentMemory = try GuestRoot.image(GuestImage.rootfs) else {
            Issue.record("make image lays the root out for an NVDIMM; \(GuestImage.rootfs) is a plain image")
            return
        }
        let source = try #require(FileHandle(forReadingAtPath: GuestImage.rootfs))
        defer { try? source.close() }
        try #require(FileManager.default.createFile(atPath: image.path, contents: try source.read(upToCount: (3 << 20) + 512)))
        var config = try TestHost.host().config
        config.rootfsPath = image.path
        config.stateDirectory = "/nonexistent/podvisor-state"
        let error = #expect(throws: PodvisorError.self) { try VMHost(config: config) }
        #expect(error?.code == .failedPrecondition && error?.message.contains(image.path) == true, "\(String(describing: error))")
    }

    /// The root image read at start and replaced or removed afterwards (an upgrade, `make image`): taking
    /// over and removing VMs does not read it, so recovery and pod removal go on; only a boot needs it.
    @Test func aRootImageRemovedWhileTheHostRunsStopsOnlyBoots() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-gone-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let image = directory.appendingPathComponent("rootfs.erofs").path
        try FileManager.default.copyItem(atPath: GuestImage.rootfs, toPath: image)
        var config = try TestHost.host().config
        // libvirt's embedded driver opens one root per process: the shared host's.
        config.libvirtURI = config.effectiveLibvirtURI
        config.rootfsPath = image
        config.stateDirectory = directory.appendingPathComponent("state").path
        let host = try VMHost(config: config)
        try FileManager.default.removeItem(atPath: image)
        let id = TestHost.uniqueID("g")
        try host.destroyOrphan(id: id)
        let missing = await #expect(throws: PodvisorError.self) {
            try await host.reattach(id: id, transport: host.transport, size: VMSize(memoryMiB: config.memoryMiB, vcpus: config.vcpus))
        }
        #expect(missing?.code == .notFound, "\(String(describing: missing))")
        let boot = await #expect(throws: PodvisorError.self) { try await host.boot(id: id) }
        #expect(boot?.code == .failedPrecondition && boot?.message.contains(image) == true, "\(String(describing: boot))")
        HostTraces.expectNothingLeft(domain: VMHost.domainPrefix + id, runDirectory: "\(config.stateDirectory)/vm/\(id)", host: host)
    }

    @Test func twoVMsAtOnceThenDestroyLeavesNothing() async throws {
        let host = try TestHost.host()
        async let first = host.boot(id: TestHost.uniqueID("a"), transport: .hybridVsock)
        async let second = host.boot(id: TestHost.uniqueID("b"), transport: .hybridVsock)
        let pods = try await [first, second]
        #expect(pods[0].vm.name != pods[1].vm.name)
        for pod in pods {
            #expect(try await pod.agent.health().status == .serving)
            #expect(HostTraces.qemuProcesses(domain: pod.vm.name).count == 1)
            #expect(!HostState.processes(matching: pod.vm.configuration.runDirectory).isEmpty, "no vsock backend")
        }
        // Destroy while running: no guest cooperation.
        for pod in pods {
            try pod.destroy()
            HostTraces.expectNothingLeft(domain: pod.vm.name, runDirectory: pod.vm.configuration.runDirectory, host: host)
            await #expect(throws: PodvisorError.self) { try await pod.agent.health(timeout: .seconds(2)) }
        }
    }

    @Test func malformedFrameThenQEMUKilledFromOutside() async throws {
        let host = try TestHost.host()
        let pod = try await host.boot(id: TestHost.uniqueID("k"), transport: .hybridVsock)

        // A frame announcing 64 MiB: the agent must drop that connection and only that one.
        let fd = try pod.vm.endpoint.connect(port: AgentAPI.vsockPort)
        let rogue = FileDescriptorStream(fd: fd)
        try rogue.write([0x04, 0x00, 0x00, 0x00, 0, 0, 0, 1, 1, 0] + [UInt8](repeating: 0x41, count: 64))
        #expect(try rogue.read().isEmpty, "agent kept a connection that sent a malformed frame")
        rogue.close()
        #expect(try await pod.agent.health().status == .serving)

        let qemu = HostTraces.qemuProcesses(domain: pod.vm.name)
        try #require(qemu.count == 1)
        let clock = ContinuousClock()
        let killed = clock.now
        kill(qemu[0], SIGKILL)
        let state = await pod.vm.waitUntilStopped(timeout: .seconds(5))
        let noticed = killed.duration(to: clock.now)
        #expect(state == .stopped(.failed) || state == .stopped(.crashed) || state == .stopped(.shutdown), "state \(String(describing: state))")
        #expect(noticed < .seconds(1), "death noticed after \(noticed)")
        try pod.destroy()
        HostTraces.expectNothingLeft(domain: pod.vm.name, runDirectory: pod.vm.configuration.runDirectory, host: host)
    }
}

extension PodVMTests {
    /// A guest kernel panic (panic=-1 → reboot → on_reboot=destroy) ends the domain; the host must see it.
    @Test func guestPanicIsSeenAsDeath() async throws {
        let host = try TestHost.host()
        let pod = try await host.boot(id: TestHost.uniqueID("p"), transport: .hybridVsock)
        defer { try? pod.destroy() }
        let rootfs = try BusyboxRootfs.make(at: "/tmp/podvisor-test/busybox-rootfs")
        let relative = try pod.mountRootfs(containerID: "panic", from: rootfs)
        try await pod.agent.createContainer(
            .with {
                $0.containerID = "panic"
                $0.rootfs = relative
                $0.process.args = ["sh", "-c", "echo c > /proc/sysrq-trigger"]
            })
        let clock = ContinuousClock()
        let started = clock.now
        // The answer may never come: the guest dies while answering.
        try? await pod.agent.startContainer("panic")
        let state = await pod.vm.waitUntilStopped(timeout: .seconds(30))
        #expect(state != nil && state != .running, "VM still running after a guest panic")
        #expect(started.duration(to: clock.now) < .seconds(10))
        try pod.destroy()
        HostTraces.expectNothingLeft(domain: pod.vm.name, runDirectory: pod.vm.configuration.runDirectory, host: host)
    }
}
