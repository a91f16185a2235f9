/// How QEMU executes the guest: hardware virtualisation or TCG emulation.
public enum Accelerator: String, Sendable, Equatable, CaseIterable {
    case kvm
    case tcg

    /// libvirt's `<domain type=…>`.
    public var domainType: String { self == .kvm ? "kvm" : "qemu" }
}

/// How the host reaches the agent inside a VM, in order of preference. All three carry the same ttrpc stream.
public enum AgentTransportKind: String, Sendable, Equatable, CaseIterable, Codable {
    /// AF_VSOCK through the host kernel's vhost-vsock.
    case vsock
    /// A vhost-device-vsock process per VM; the host speaks to it over a unix socket.
    case hybridVsock = "hybrid-vsock"
    /// A virtio-serial port, exposed by QEMU as a unix socket.
    case virtioSerial = "virtio-serial"
}
