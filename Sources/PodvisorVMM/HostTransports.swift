#if canImport(Glibc)
import Glibc
#endif
import PodvisorCore

/// What the host offers for agent transports.
public struct HostTransports: Sendable, Equatable {
    public var vhostVsockDevice: Bool
    public var vsockBackendExecutable: Bool

    public init(vhostVsockDevice: Bool, vsockBackendExecutable: Bool) {
        self.vhostVsockDevice = vhostVsockDevice
        self.vsockBackendExecutable = vsockBackendExecutable
    }

    public static func probe(vsockBackendPath: String) -> HostTransports {
        let fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC)
        if fd >= 0 { close(fd) }
        return HostTransports(vhostVsockDevice: fd >= 0, vsockBackendExecutable: access(vsockBackendPath, X_OK) == 0)
    }

    public func isAvailable(_ kind: AgentTransportKind) -> Bool {
        switch kind {
        case .vsock: vhostVsockDevice
        case .hybridVsock: vsockBackendExecutable
        case .virtioSerial: true
        }
    }

    /// The configured transport, or the first available in order of preference.
    /// `wanted` nil means automatic.
    public func choose(_ wanted: AgentTransportKind?) throws(PodvisorError) -> AgentTransportKind {
        guard let kind = wanted else { return AgentTransportKind.allCases.first(where: isAvailable)! }
        guard isAvailable(kind) else {
            let why = kind == .vsock ? "/dev/vhost-vsock cannot be opened" : "the vhost-device-vsock backend is not executable"
            throw PodvisorError(.unsupported, "transport = \(kind.rawValue), but \(why)")
        }
        return kind
    }
}
