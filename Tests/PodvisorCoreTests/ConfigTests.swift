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

    static let documentedPath = #filePath.replacingOccurrences(
        of: "Tests/PodvisorCoreTests/ConfigTests.swift", with: "Configs/podvisor.toml")

    /// Every key set to something other than its default.
    static let everyKey = """
        state_dir = "/srv/pv"
        log_level = "debug"
        log_format = "json"
        [vm]
        libvirt_uri = "qemu:///system"
        hypervisor = "kvm"
        transport = "hybrid-vsock"
        kernel = "/k/vmlinuz"
        rootfs = "/k/rootfs.erofs"
        initrd = "/k/initrd"
        emulator = "/opt/qemu"
        vsock_backend = "/opt/vhost-device-vsock"
        virtiofsd = "/opt/virtiofsd"
        memory_mib = 1_024
        vcpus = 4
        boot_timeout_s = 120
        kernel_params = "loglevel=7 foo=bar"
        tcg_cache_mib = 64
        overhead_mib = 64
        vmm_overhead_mib = 80
        pool_size = 2
        shutdown_timeout_s = 3
        [cri]
        socket = "/run/x.sock"
        runtime_handler = "vm"
        streaming_address = "0.0.0.0"
        streaming_port = 10010
        [cni]
        conf_dir = "/srv/cni"
        bin_dirs = ["/srv/cni/bin"]
        [metrics]
        address = "127.0.0.1:9404"
        [host_pods]
        endpoint = "unix:///run/containerd.sock"
        handlers = ["host", "runc"]
        [images]
        root = "/srv/images"
        hosts_dir = "/srv/certs.d"
        insecure_registries = ["r.local:5000"]
        """

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
        var expected = PodvisorConfig()
        expected.stateDirectory = "/srv/pv"
        expected.logLevel = .debug
        expected.logFormat = .json
        expected.libvirtURI = "qemu:///system"
        expected.hypervisor = .kvm
        expected.transport = .hybridVsock
        expected.kernelPath = "/k/vmlinuz"
        expected.rootfsPath = "/k/rootfs.erofs"
        expected.initrdPath = "/k/initrd"
        expected.emulatorPath = "/opt/qemu"
        expected.vsockBackendPath = "/opt/vhost-device-vsock"
        expected.virtiofsdPath = "/opt/virtiofsd"
        expected.memoryMiB = 1024
        expected.vcpus = 4
        expected.bootTimeoutSeconds = 120
        expected.kernelParameters = "loglevel=7 foo=bar"
        expected.overheadMiB = 64
        expected.vmmOverheadMiB = 80
        expected.poolSize = 2
        expected.shutdownTimeoutSeconds = 3
        expected.socketPath = "/run/x.sock"
        expected.runtimeHandler = "vm"
        expected.streamingAddress = "0.0.0.0"
        expected.streamingPort = 10010
        expected.cniConfDirectory = "/srv/cni"
        expected.cniBinDirectories = ["/srv/cni/bin"]
        expected.imageRoot = "/srv/images"
        expected.registryHostsDirectory = "/srv/certs.d"
        expected.insecureRegistries = ["r.local:5000"]
        expected.tcgCacheMiB = 64
        expected.metricsAddress = "127.0.0.1:9404"
        expected.hostPodsEndpoint = "unix:///run/containerd.sock"
        expected.hostPodsHandlers = ["host", "runc"]
        #expect(try PodvisorConfig(toml: Self.everyKey) == expected)
    }

    /// The documented file is the defaults, key for key.
    @Test func documentedConfigurationIsTheDefaults() throws {
        #expect(try PodvisorConfig.load(path: Self.documentedPath) == PodvisorConfig())
    }

    /// …and it lists every key there is.
    @Test func documentedConfigurationListsEveryKey() throws {
        func names(_ text: String) throws -> Set<String> {
            Set(try TOMLDocument(parsing: text).leaves(descendingInto: PodvisorConfig.tables).map(\.name))
        }
        let documented = try String(contentsOfFile: Self.documentedPath, encoding: .utf8)
        #expect(try names(documented) == names(Self.everyKey))
    }

    /// What an operator may write in TOML 1.0 beyond `key = "value"` under `[table]` headers.
    @Test func fullTOMLSyntax() throws {
        let config = try PodvisorConfig(
            toml: #"""
                # comment
                state_dir = 'C:\literal\path'  # a literal string keeps its backslashes
                vm = { memory_mib = 512, vcpus = 2, kernel = "/k/vmlinuz" }
                cri.socket = "/run/dotted.sock"
                "cri"."runtime_handler" = "quoted"
                [images]
                root = """
                /srv/\
                   images"""
                insecure_registries = [
                    "a.local:5000",  # one per line
                    'b.local',
                ]
                hosts_dir = '''
                /srv/certs.d'''
                [cni]
                bin_dirs = []
                conf_dir = "/etc/cni/\u006Eet.d"
                """#)
        var expected = PodvisorConfig()
        expected.stateDirectory = #"C:\literal\path"#
        expected.memoryMiB = 512
        expected.vcpus = 2
        expected.kernelPath = "/k/vmlinuz"
        expected.socketPath = "/run/dotted.sock"
        expected.runtimeHandler = "quoted"
        expected.imageRoot = "/srv/images"
        expected.insecureRegistries = ["a.local:5000", "b.local"]
        expected.registryHostsDirectory = "/srv/certs.d"
        expected.cniBinDirectories = []
        expected.cniConfDirectory = "/etc/cni/net.d"
        #expect(config == expected)
    }

    @Test func crlfLineEndings() throws {
        #expect(try PodvisorConfig(toml: "# c\r\n[vm]\r\nvcpus = 2\r\n").vcpus == 2)
        #expect(Self.failure("# c\r\n[vm]\r\nvcpu = 2\r\n") == "line 3: unknown configuration key vm.vcpu")
    }

    @Test func unknownKeysAreRefusedWithTheirLine() {
        #expect(Self.failure("[vm]\nmemory = 512") == "line 2: unknown configuration key vm.memory")
        // A vm key outside its table is a different key.
        #expect(Self.failure("\n\nvcpus = 2") == "line 3: unknown configuration key vcpus")
        // An unknown table is refused by its own name, even an empty one.
        #expect(Self.failure("state_dir = '/x'\n[network]\nstate_dir = '/x'") == "line 2: unknown configuration key network")
        #expect(Self.failure("[network]") == "line 1: unknown configuration key network")
        #expect(Self.failure("vm = { vcpus = 2, memroy_mib = 1 }") == "line 1: unknown configuration key vm.memroy_mib")
        #expect(Self.failure("[cri]\nsocket = '/s'\nvm.cpus = 1") == "line 3: unknown configuration key cri.vm")
        #expect(Self.failure("[vm]\n\"memory mib\" = 1") == "line 2: unknown configuration key vm.\"memory mib\"")
        // A known table written as something else.
        #expect(Self.failure("log_level = 'info'\nvm = 1") == "line 2: vm must be a table (not an integer)")
        #expect(Self.failure("[[vm]]\nvcpus = 1") == "line 1: vm must be a table (not an array)")
    }

    /// Lines are counted through multi-line strings, arrays and comments, and nothing inside a string is a key.
    @Test func linesAfterMultiLineValues() {
        let text = #"""
            [vm]
            kernel_params = """
            [cri]
            socket = 1 \"""
            """
            initrd = '''
            '''
            # memory = 1
            [cri]
            socket = "/s"
            runtime_handler = "h" # "
            [images]
            insecure_registries = [
                "x",
                # ]
            ]
            hosts_dir = 0
            """#
        #expect(Self.failure(text) == "line 17: images.hosts_dir must be a string (not an integer)")
    }

    @Test func wrongTypesNameTheKeyTheLineAndTheType() {
        #expect(Self.failure("state_dir = 1") == "line 1: state_dir must be a string (not an integer)")
        #expect(Self.failure("[vm]\n\nkernel = true") == "line 3: vm.kernel must be a string (not a boolean)")
        #expect(Self.failure("[vm]\nkernel_params = ['a']") == "line 2: vm.kernel_params must be a string (not an array)")
        #expect(Self.failure("vm.kernel = { path = '/k' }") == "line 1: vm.kernel must be a string (not a table)")
        #expect(Self.failure("[vm]\nvcpus = 2.0") == "line 2: vm.vcpus must be an integer in 1...256 (not a float)")
        #expect(
            Self.failure("[images]\ninsecure_registries = 'r'")
                == "line 2: images.insecure_registries must be an array of strings (not a string)")
        #expect(
            Self.failure("[cni]\nbin_dirs = ['/a', 1]") == "line 2: cni.bin_dirs must be an array of strings (not an array holding an integer)")
        #expect(Self.failure("[cni]\nbin_dirs = [{ a = 1 }]") == "line 2: cni.bin_dirs must be an array of strings (not an array holding a table)")
    }

    /// A date (or time) where a string belongs is valid TOML, and still the wrong type.
    @Test(arguments: [
        ("1979-05-27", "a date"), ("1979-05-27T07:32:00Z", "a date-time"), ("1979-05-27 07:32:00", "a date-time"),
        ("07:32:00", "a time"), ("inf", "a float"),
    ])
    func datesAndFloatsWhereAStringBelongs(value: String, kind: String) {
        #expect(Self.failure("[vm]\nkernel = \(value) # comment") == "line 2: vm.kernel must be a string (not \(kind))")
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
        #expect(Self.failure("[vm]\nhypervisor = \"xen\"") == "line 2: vm.hypervisor must be one of: auto, kvm, tcg (not \"xen\")")
        #expect(
            Self.failure("[vm]\ntransport = \"vsock2\"")
                == "line 2: vm.transport must be one of: auto, vsock, hybrid-vsock, virtio-serial (not \"vsock2\")")
        // The right word with the wrong type is refused too.
        #expect(Self.failure("[vm]\nhypervisor = [\"kvm\"]") == "line 2: vm.hypervisor must be one of: auto, kvm, tcg (not an array)")
        #expect(Self.failure("[vm]\ntransport = \"VSOCK\"").hasPrefix("line 2: vm.transport must be one of"))
        // "auto" only where the runtime can choose.
        #expect(Self.failure("log_level = 'auto'") == "line 1: log_level must be one of: debug, info, warning, error (not \"auto\")")
        #expect(Self.failure("log_format = 'yaml'") == "line 1: log_format must be one of: text, json (not \"yaml\")")
    }

    @Test(arguments: [
        ("vm", "memory_mib", 64, 1_048_576), ("vm", "vcpus", 1, 256), ("vm", "boot_timeout_s", 1, 3600),
        ("vm", "overhead_mib", 0, 65536), ("vm", "vmm_overhead_mib", 0, 65536), ("vm", "shutdown_timeout_s", 0, 3600),
        ("vm", "pool_size", 0, 1024),
        ("cri", "streaming_port", 0, 65535),
    ])
    func integerRanges(table: String, key: String, low: Int, high: Int) throws {
        #expect(try PodvisorConfig(toml: "[\(table)]\n\(key) = \(low)") != PodvisorConfig(toml: "[\(table)]\n\(key) = \(high)"))
        let expected = "line 2: \(table).\(key) must be an integer in \(low)...\(high)"
        #expect(Self.failure("[\(table)]\n\(key) = \(low - 1)") == "\(expected) (not \(low - 1))")
        #expect(Self.failure("[\(table)]\n\(key) = \(high + 1)") == "\(expected) (not \(high + 1))")
        #expect(Self.failure("[\(table)]\n\(key) = \"\(low)\"") == "\(expected) (not a string)")
    }

    @Test func syntaxErrorsCarryTheirLine() {
        #expect(Self.failure("[vm]\nvcpus = 2 3").hasPrefix("line 2: "))
        #expect(Self.failure("[vm]\nvcpus = 1\n\nvcpus = 2").hasPrefix("line 4: "))
        #expect(Self.failure("[vm]\nkernel = \"unterminated\n").hasPrefix("line 2: "))
        // A NUL would end the text TOMLKit sees: the rest would go unread.
        #expect(Self.failure("[vm]\nvcpus = 2\0\nvcpus = 3") == "line 2: a NUL character is not allowed in TOML")
    }

    @Test func mergingReplacesOnlyTheKeysItSets() throws {
        let base = try PodvisorConfig(toml: "state_dir = '/srv'\n[vm]\nmemory_mib = 512\nhypervisor = 'tcg'\nkernel = '/k'")
        let merged = try base.merging(toml: "vm = { vcpus = 3, kernel = '/other' }")
        var expected = base
        expected.vcpus = 3
        expected.kernelPath = "/other"
        #expect(merged == expected)
        // A bad override fails without touching the original.
        #expect(throws: PodvisorError.self) { try base.merging(toml: "[vm]\nvcpus = 0") }
        #expect(base.vcpus == 1)
    }

    /// Command-line overrides quote any string into a TOML string that reads back as itself.
    @Test(arguments: ["/plain", #"C:\x"#, "a\"b", "tab\tnew\nline\r\u{1}\u{7F}", "ünï ☃"])
    func quotedOverridesReadBackUnchanged(value: String) throws {
        #expect(try PodvisorConfig().merging(toml: "state_dir = \(PodvisorConfig.quote(value))").stateDirectory == value)
    }

    @Test func effectiveLibvirtURI() throws {
        #expect(PodvisorConfig().effectiveLibvirtURI == "qemu:///embed?root=/var/lib/podvisor/libvirt")
        #expect(try PodvisorConfig(toml: "state_dir = '/tmp/pv'").effectiveLibvirtURI == "qemu:///embed?root=/tmp/pv/libvirt")
        let system = try PodvisorConfig(toml: "state_dir = '/tmp/pv'\n[vm]\nlibvirt_uri = 'qemu:///system'")
        #expect(system.effectiveLibvirtURI == "qemu:///system")
    }
}
