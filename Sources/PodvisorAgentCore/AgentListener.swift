#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorAgentProtocol

/// Where the host can reach the agent: vsock when the VM has a virtio vsock device (kernel or hybrid vsock
/// look the same from inside), otherwise the virtio-serial port named `podvisor.agent`.
public enum AgentListener {
    public enum Endpoint: Equatable, Sendable {
        case vsock
        case serial(device: String)

        public var transportName: String {
            switch self {
            case .vsock: "vsock"
            case .serial: "virtio-serial"
            }
        }
    }

    /// Probes until an endpoint appears: virtio devices bind asynchronously after their module loads.
    public static func discover(timeoutMs: Int = 5000) -> Endpoint? {
        let deadline = pv_monotonic_ns() + UInt64(timeoutMs) * 1_000_000
        repeat {
            if hasVsockDevice() { return .vsock }
            if let device = serialPort(named: AgentAPI.serialPortName) { return .serial(device: device) }
            usleep(10_000)
        } while pv_monotonic_ns() < deadline
        return nil
    }

    static func hasVsockDevice() -> Bool {
        GuestFiles.listDirectory("/sys/bus/virtio/drivers/vmw_vsock_virtio_transport").contains { $0.hasPrefix("virtio") }
    }

    static func serialPort(named wanted: String) -> String? {
        for port in GuestFiles.listDirectory("/sys/class/virtio-ports") {
            let name = GuestFiles.read("/sys/class/virtio-ports/\(port)/name")?.trimmingSuffix("\n")
            if name == wanted && GuestFiles.exists("/dev/\(port)") { return "/dev/\(port)" }
        }
        return nil
    }

    /// Serves forever on the endpoint. Every connection is independent: a malformed one is closed alone.
    public static func serve(_ endpoint: Endpoint, server: TTRPCServer) -> Never {
        switch endpoint {
        case .vsock:
            let listener = pv_vsock_listen(AgentAPI.vsockPort, 16)
            guard listener >= 0 else { fatalError("vsock listen on port \(AgentAPI.vsockPort): errno \(errno)") }
            while true {
                // Only the host talks to the agent: vsock ports are not namespaced, so a container that can
                // open a vsock socket (Unconfined) could otherwise dial the agent from inside the guest.
                var refused: UInt32 = 0
                let fd = pv_vsock_accept_host(listener, &refused)
                guard fd >= 0 else {
                    if errno == EACCES { log("refused a vsock connection from CID \(refused): only the host may call the agent") }
                    continue
                }
                startDetachedThread {
                    // Shut down, not closed: the descriptor goes with the last request thread using it.
                    let stream = FileDescriptorStream(fd: fd, closesOnDeinit: true)
                    if case .malformed(let why) = server.serve(TTRPCConnection(stream: stream)) {
                        log("closing connection: \(why)")
                    }
                    stream.shutdown()
                }
            }
        case .serial(let device):
            // A serial port is one long-lived stream: when the host side goes away (or sends garbage) the
            // port is reopened, which also discards any partial frame.
            while true {
                let fd = open(device, O_RDWR | O_CLOEXEC | O_NOCTTY)
                guard fd >= 0 else { fatalError("open \(device): errno \(errno)") }
                waitForHost(fd)
                let stream = FileDescriptorStream(fd: fd)
                if case .malformed(let why) = server.serve(TTRPCConnection(stream: stream)) {
                    log("resetting \(device): \(why)")
                }
                stream.close()
            }
        }
    }

    /// A virtio-serial port reports POLLHUP while no host is connected; reading then returns 0 at once.
    private static func waitForHost(_ fd: Int32) {
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 1000)
            if pfd.revents & Int16(POLLIN) != 0 { return }
            if pfd.revents & Int16(POLLHUP) != 0 { usleep(5_000) }
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
