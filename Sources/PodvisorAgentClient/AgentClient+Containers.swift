import Foundation
import PodvisorAgentProtocol
import PodvisorCore

/// Typed calls of the agent's container API (podvisor.agent.v1).
extension AgentClient {
    public typealias ProcessSpec = Podvisor_Agent_V1_ProcessSpec

    public static func process(_ containerID: String, exec execID: String = "") -> Podvisor_Agent_V1_ProcessRef {
        .with {
            $0.containerID = containerID
            $0.execID = execID
        }
    }

    /// Starts the pod's sandbox (shared PID, IPC and UTS namespaces, hostname, sysctls; the pod's user
    /// namespace when `userNamespace` is set); once per VM.
    public func createSandbox(
        hostname: String, sysctls: [String: String] = [:], userNamespace: UserNamespaceMapping? = nil
    ) async throws(PodvisorError) {
        let request = Podvisor_Agent_V1_CreateSandboxRequest.with {
            $0.hostname = hostname
            $0.sysctls = sysctls
            if let userNamespace {
                $0.userNamespace = .with {
                    $0.uids = Self.idMapping(userNamespace.uids)
                    $0.gids = Self.idMapping(userNamespace.gids)
                }
            }
        }
        _ = try await call(.createSandbox, request)
    }

    private static func idMapping(_ mapping: IDMapping) -> Podvisor_Agent_V1_IDMapping {
        .with {
            $0.containerID = mapping.containerID
            $0.hostID = mapping.hostID
            $0.length = mapping.length
        }
    }

    /// Sets the container up and holds its process before exec; answers its guest pid and its identity.
    @discardableResult
    public func createContainer(
        _ request: Podvisor_Agent_V1_CreateContainerRequest
    ) async throws(PodvisorError)
        -> Podvisor_Agent_V1_CreateContainerResponse
    {
        try await call(.createContainer, request)
    }

    public func startContainer(_ id: String) async throws(PodvisorError) {
        _ = try await call(.startContainer, Podvisor_Agent_V1_StartContainerRequest.with { $0.containerID = id })
    }

    public func exec(_ containerID: String, execID: String, _ process: ProcessSpec) async throws(PodvisorError) {
        let request = Podvisor_Agent_V1_ExecProcessRequest.with {
            $0.containerID = containerID
            $0.execID = execID
            $0.process = process
        }
        _ = try await call(.execProcess, request)
    }

    public func signal(_ process: Podvisor_Agent_V1_ProcessRef, _ signal: Int32) async throws(PodvisorError) {
        let request = Podvisor_Agent_V1_SignalProcessRequest.with {
            $0.process = process
            $0.signal = signal
        }
        _ = try await call(.signalProcess, request)
    }

    /// Waits for the process to exit (no timeout by default: containers run as long as they like).
    public func wait(
        _ process: Podvisor_Agent_V1_ProcessRef, timeout: Duration = .seconds(365 * 24 * 3600)
    )
        async throws(PodvisorError) -> Podvisor_Agent_V1_WaitProcessResponse
    {
        try await call(.waitProcess, Podvisor_Agent_V1_WaitProcessRequest.with { $0.process = process }, timeout: timeout)
    }

    /// One chunk of output from stream position `offset` (which acknowledges everything before it; nil: the
    /// oldest output not acknowledged yet); empty with `eof` at the end of the stream.
    public func readOutput(
        _ process: Podvisor_Agent_V1_ProcessRef, stderr: Bool = false, from offset: UInt64? = nil, maxBytes: UInt32 = 65536
    ) async throws(PodvisorError) -> Podvisor_Agent_V1_ReadOutputResponse {
        let request = Podvisor_Agent_V1_ReadOutputRequest.with {
            $0.process = process
            $0.stream = stderr ? .stderr : .stdout
            $0.maxBytes = maxBytes
            if let offset { $0.offset = offset }
        }
        return try await call(.readOutput, request, timeout: .seconds(365 * 24 * 3600))
    }

    /// Reads one stream to its end, handing each chunk to `consume` before acknowledging it.
    public func readOutput(
        _ process: Podvisor_Agent_V1_ProcessRef, stderr: Bool = false, _ consume: (Data) async -> Void
    ) async throws(PodvisorError) {
        var next: UInt64?
        while true {
            let chunk = try await readOutput(process, stderr: stderr, from: next)
            if chunk.eof { return }
            await consume(chunk.data)
            next = chunk.offset + UInt64(chunk.data.count)
        }
    }

    /// Everything the process writes to one stream, until it closes.
    public func readAllOutput(_ process: Podvisor_Agent_V1_ProcessRef, stderr: Bool = false) async throws(PodvisorError) -> Data {
        var all = Data()
        try await readOutput(process, stderr: stderr) { all.append($0) }
        return all
    }

    public func writeStdin(_ process: Podvisor_Agent_V1_ProcessRef, _ data: Data) async throws(PodvisorError) {
        let request = Podvisor_Agent_V1_WriteStdinRequest.with {
            $0.process = process
            $0.data = data
        }
        _ = try await call(.writeStdin, request)
    }

    public func closeStdin(_ process: Podvisor_Agent_V1_ProcessRef) async throws(PodvisorError) {
        _ = try await call(.closeStdin, process)
    }

    /// Lets the agent forget an exec that has exited and whose output was read.
    public func releaseProcess(_ process: Podvisor_Agent_V1_ProcessRef) async throws(PodvisorError) {
        _ = try await call(.releaseProcess, process)
    }

    /// Stops a process as kubelet expects: `signal` (SIGTERM unless the container says otherwise), then
    /// SIGKILL when it outlives `grace`. Returns its exit.
    public func stop(
        _ process: Podvisor_Agent_V1_ProcessRef, grace: Duration, signal first: Int32 = SIGTERM
    ) async throws(PodvisorError)
        -> Podvisor_Agent_V1_WaitProcessResponse
    {
        try await signal(process, first)
        do {
            return try await wait(process, timeout: grace)
        } catch  where error.code == .timeout {
            try await signal(process, SIGKILL)
            return try await wait(process)
        }
    }

    public func resizeTTY(_ process: Podvisor_Agent_V1_ProcessRef, rows: UInt32, columns: UInt32) async throws(PodvisorError) {
        let request = Podvisor_Agent_V1_ResizeTTYRequest.with {
            $0.process = process
            $0.rows = rows
            $0.columns = columns
        }
        _ = try await call(.resizeTTY, request)
    }

    public func containerStats(_ id: String) async throws(PodvisorError) -> Podvisor_Agent_V1_ContainerStatsResponse {
        try await call(.containerStats, Podvisor_Agent_V1_ContainerStatsRequest.with { $0.containerID = id })
    }

    public func updateResources(_ id: String, _ resources: Podvisor_Agent_V1_Resources) async throws(PodvisorError) {
        let request = Podvisor_Agent_V1_UpdateResourcesRequest.with {
            $0.containerID = id
            $0.resources = resources
        }
        _ = try await call(.updateResources, request)
    }

    public func removeContainer(_ id: String) async throws(PodvisorError) {
        _ = try await call(.removeContainer, Podvisor_Agent_V1_RemoveContainerRequest.with { $0.containerID = id })
    }
}
