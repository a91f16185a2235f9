import PodvisorCore
import Testing

@testable import PodvisorVMM

@Suite struct HypervisorChoiceTests {
    @Test(arguments: [false, true], [false, true])
    func automatic(kvmOpens: Bool, extensions: Bool) throws {
        let host = HostVirtualization(kvmDeviceOpens: kvmOpens, cpuHasVirtualizationExtensions: extensions)
        let (accelerator, warning) = try host.choose(nil)
        if kvmOpens && extensions {
            #expect(accelerator == .kvm)
            #expect(warning == nil)
        } else {
            #expect(accelerator == .tcg)
            let warning = try #require(warning)
            #expect(warning.contains("TCG"))
            // The reason names what is missing; /dev/kvm first, since without it the flags do not matter.
            #expect(warning.contains(kvmOpens ? "neither vmx nor svm" : "/dev/kvm cannot be opened"))
        }
    }

    @Test(arguments: [false, true], [false, true])
    func forcedKVM(kvmOpens: Bool, extensions: Bool) throws {
        let host = HostVirtualization(kvmDeviceOpens: kvmOpens, cpuHasVirtualizationExtensions: extensions)
        if kvmOpens && extensions {
            let (accelerator, warning) = try host.choose(.kvm)
            #expect(accelerator == .kvm)
            #expect(warning == nil)
        } else {
            let error = #expect(throws: PodvisorError.self) { try host.choose(.kvm) }
            #expect(error?.code == .unsupported)
            #expect(error?.message.contains(kvmOpens ? "vmx" : "/dev/kvm") == true)
        }
    }

    @Test(arguments: [false, true], [false, true])
    func forcedTCG(kvmOpens: Bool, extensions: Bool) throws {
        let host = HostVirtualization(kvmDeviceOpens: kvmOpens, cpuHasVirtualizationExtensions: extensions)
        let (accelerator, warning) = try host.choose(.tcg)
        #expect(accelerator == .tcg)
        #expect(warning == nil)
    }
}

@Suite struct TransportChoiceTests {
    static let hosts = [false, true].flatMap { vsock in
        [false, true].map { HostTransports(vhostVsockDevice: vsock, vsockBackendExecutable: $0) }
    }

    @Test(arguments: hosts)
    func automaticPrefersVsockThenHybridThenSerial(host: HostTransports) throws {
        let expected: AgentTransportKind =
            host.vhostVsockDevice ? .vsock : host.vsockBackendExecutable ? .hybridVsock : .virtioSerial
        #expect(try host.choose(nil) == expected)
    }

    @Test(arguments: hosts, AgentTransportKind.allCases)
    func forced(host: HostTransports, kind: AgentTransportKind) throws {
        let available =
            switch kind {
            case .vsock: host.vhostVsockDevice
            case .hybridVsock: host.vsockBackendExecutable
            case .virtioSerial: true
            }
        #expect(host.isAvailable(kind) == available)
        if available {
            #expect(try host.choose(kind) == kind)
        } else {
            let error = #expect(throws: PodvisorError.self) { try host.choose(kind) }
            #expect(error?.code == .unsupported)
            #expect(error?.message.hasPrefix("transport = \(kind.rawValue)") == true)
        }
    }
}
