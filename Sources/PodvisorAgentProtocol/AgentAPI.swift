/// Names that host and guest must agree on.
public enum AgentAPI {
    public static let service = "podvisor.agent.v1.Agent"
    /// vsock port the agent listens on (kernel and hybrid vsock).
    public static let vsockPort: UInt32 = 1024
    /// virtio-serial port name used when the VM has no vsock device.
    public static let serialPortName = "podvisor.agent"
    public static let agentVersion = "0.1.0"
}
