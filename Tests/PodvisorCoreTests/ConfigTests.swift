import Foundation
import Testing

@testable import PodvisorCore

@Suite struct ConfigTests {
    static func failure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        do {
            let config = try PodvisorConfig(toml: text)
            Issue.record("accepted: \(config)", sourceLocation: sourceLocation)
            return ""
        } catch {
            #expect(error.code == .invalidArgument, sourceLocation: sourceLocation)
            return error.message
        }
    }

    @Test func defaults() throws {
        let config = PodvisorConfig()
        #expect(config.stateDirectory == "/var/lib/podvisor")
        #expect(config.libvirtURI == "")
        #expect(config.hypervisor == nil)
        #expect(config.transport == nil)
        #expect(config.memoryMiB == 256)
        #expect(config.vcpus == 1)
        #expect(config.bootTimeoutSeconds == 60)
        #expect(config.kernelParameters == "")
        // An empty or comment-only file changes nothing.
        #expect(try PodvisorConfig(toml: "") == config)
        #expect(try PodvisorConfig(toml: "# nothing\n[vm]\n") == config)
    }

    @Test func everyKeyIsParsed() throws {
        let config = try PodvisorConfig(
            toml: """
                state_dir = "/srv/pv"
                [vm]
                libvirt_uri = "qemu:///system"
                hypervisor = "kvm"
                transport = "hybrid-vsock"
                kernel = "/k/vmlinuz"
                initrd = "/k/initrd"
                emulator = "/opt/qemu"
                vsock_backend = "/opt/vhost-device-vsock"
                virtiofsd = "/opt/virtiofsd"
                memory_mib = 1_024
                vcpus = 4
                boot_timeout_s = 120
                kernel_params = "loglevel=7 foo=bar"
                overhead_mib = 64
                shutdown_timeout_s = 3
                [cri]
                socket = "/run/x.sock"
                runtime_handler = "vm"
                [images]
                root = "/srv/images"
                hosts_dir = "/srv/certs.d"
                insecure_registries = ["r.local:5000"]
                [cni]
                conf_dir = "/srv/net.d"
                bin_dirs = ["/srv/cni"]
                [metrics]
                address = "127.0.0.1:9404"
                """)
        var expected = PodvisorConfig()
        expected.stateDirectory = "/srv/pv"
        expected.libvirtURI = "qemu:///system"
        expected.hypervisor = .kvm
        expected.transport = .hybridVsock
        expected.kernelPath = "/k/vmlinuz"
        expected.initrdPath = "/k/initrd"
        expected.emulatorPath = "/opt/qemu"
        expected.vsockBackendPath = "/opt/vhost-device-vsock"
        expected.virtiofsdPath = "/opt/virtiofsd"
        expected.memoryMiB = 1024
        expected.vcpus = 4
        expected.bootTimeoutSeconds = 120
        expected.kernelParameters = "loglevel=7 foo=bar"
        expected.overheadMiB = 64
        expected.shutdownTimeoutSeconds = 3
        expected.socketPath = "/run/x.sock"
        expected.runtimeHandler = "vm"
        expected.imageRoot = "/srv/images"
        expected.registryHostsDirectory = "/srv/certs.d"
        expected.insecureRegistries = ["r.local:5000"]
        expected.cniConfDirectory = "/srv/net.d"
        expected.cniBinDirectories = ["/srv/cni"]
        expected.metricsAddress = "127.0.0.1:9404"
        #expect(config == expected)
        #expect(try PodvisorConfig(toml: "log_level = \"debug\"").logLevel == .debug)
        #expect(try PodvisorConfig(toml: "log_format = \"json\"").logFormat == .json)
    }

    /// The documented file is the defaults, key for key.
    @Test func documentedConfigurationIsTheDefaults() throws {
        let path = #filePath.replacingOccurrences(of: "Tests/PodvisorCoreTests/ConfigTests.swift", with: "Configs/podvisor.toml")
        #expect(try PodvisorConfig.load(path: path) == PodvisorConfig())
    }

    @Test(arguments: AgentTransportKind.allCases)
    func everyTransportName(kind: AgentTransportKind) throws {
        #expect(try PodvisorConfig(toml: "[vm]\ntransport = '\(kind.rawValue)'").transport == kind)
    }

    @Test func autoMeansNil() throws {
        var forced = PodvisorConfig()
        forced.hypervisor = .tcg
        forced.transport = .virtioSerial
        let auto = try forced.merging(toml: "[vm]\nhypervisor = \"auto\"\ntransport = \"auto\"")
        #expect(auto.hypervisor == nil)
        #expect(auto.transport == nil)
    }

    @Test func badChoiceListsTheAllowedValues() {
        #expect(Self.failure("[vm]\nhypervisor = \"xen\"") == "vm.hypervisor must be one of: auto, kvm, tcg")
        #expect(
            Self.failure("[vm]\ntransport = \"vsock2\"")
                == "vm.transport must be one of: auto, vsock, hybrid-vsock, virtio-serial")
        // The right word with the wrong type is refused too.
        #expect(Self.failure("[vm]\nhypervisor = [\"kvm\"]").hasPrefix("vm.hypervisor must be one of"))
        #expect(Self.failure("[vm]\ntransport = \"VSOCK\"").hasPrefix("vm.transport must be one of"))
    }

    @Test(arguments: [
        ("memory_mib", 64, 1_048_576), ("vcpus", 1, 256), ("boot_timeout_s", 1, 3600),
    ])
    func integerRanges(key: String, low: Int, high: Int) throws {
        #expect(try PodvisorConfig(toml: "[vm]\n\(key) = \(low)") != PodvisorConfig(toml: "[vm]\n\(key) = \(high)"))
        let message = "vm.\(key) must be an integer in \(low)...\(high)"
        #expect(Self.failure("[vm]\n\(key) = \(low - 1)") == message)
        #expect(Self.failure("[vm]\n\(key) = \(high + 1)") == message)
        #expect(Self.failure("[vm]\n\(key) = -1") == message)
        #expect(Self.failure("[vm]\n\(key) = \"\(low)\"") == message)
    }

    @Test func stringKeysRefuseOtherTypes() {
        #expect(Self.failure("state_dir = 1") == "state_dir must be a string")
        #expect(Self.failure("[vm]\nkernel = true") == "vm.kernel must be a string")
        #expect(Self.failure("[vm]\nkernel_params = ['a']") == "vm.kernel_params must be a string")
    }

    @Test func unknownKeysAreRefused() {
        #expect(Self.failure("[vm]\nmemory = 512") == "unknown configuration key vm.memory")
        // A vm key outside its table is a different key.
        #expect(Self.failure("vcpus = 2") == "unknown configuration key vcpus")
        #expect(Self.failure("[network]\nstate_dir = '/x'") == "unknown configuration key network.state_dir")
    }

    @Test func syntaxErrorsSurfaceFromTheParser() {
        #expect(Self.failure("[vm]\nvcpus = 2 3") == "TOML line 2: unexpected text after the value")
    }

    @Test func mergingReplacesOnlyTheKeysItSets() throws {
        let base = try PodvisorConfig(toml: "state_dir = '/srv'\n[vm]\nmemory_mib = 512\nhypervisor = 'tcg'\nkernel = '/k'")
        let merged = try base.merging(toml: "[vm]\nvcpus = 3\nkernel = '/other'")
        var expected = base
        expected.vcpus = 3
        expected.kernelPath = "/other"
        #expect(merged == expected)
        // A bad override fails without touching the original.
        #expect(throws: PodvisorError.self) { try base.merging(toml: "[vm]\nvcpus = 0") }
        #expect(base.vcpus == 1)
    }

    @Test func effectiveLibvirtURI() throws {
        #expect(PodvisorConfig().effectiveLibvirtURI == "qemu:///embed?root=/var/lib/podvisor/libvirt")
        #expect(try PodvisorConfig(toml: "state_dir = '/tmp/pv'").effectiveLibvirtURI == "qemu:///embed?root=/tmp/pv/libvirt")
        let system = try PodvisorConfig(toml: "state_dir = '/tmp/pv'\n[vm]\nlibvirt_uri = 'qemu:///system'")
        #expect(system.effectiveLibvirtURI == "qemu:///system")
    }
}
