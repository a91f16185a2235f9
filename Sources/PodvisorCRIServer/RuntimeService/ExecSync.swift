import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

extension RuntimeService {
    /// Runs a command in a running container with the container's identity and environment and returns
    /// its output and exit code. Past `timeout` seconds (0: none) the command is killed and the call fails
    /// with DeadlineExceeded.
    public func execSync(request: Runtime_V1_ExecSyncRequest, context: ServerContext) async throws -> Runtime_V1_ExecSyncResponse {
        try await handle {
            try Validate.timeoutSeconds(request.timeout, "timeout")
            guard let command = request.cmd.first, !command.isEmpty else {
                throw PodvisorError(.invalidArgument, "cmd must not be empty")
            }
            let (pod, ref) = try await server.startExec(in: request.containerID, command: request.cmd, tty: false, stdin: false)

            let run = Task { () throws -> Runtime_V1_ExecSyncResponse in
                async let stdout = pod.readAllOutput(ref)
                async let stderr = pod.readAllOutput(ref, stderr: true)
                let exit = try await pod.wait(ref)
                let (out, err) = try await (stdout, stderr)
                return .with {
                    $0.stdout = out
                    $0.stderr = err
                    $0.exitCode = exit.exitCode
                }
            }
            // Once the exec has ended and its output is read (or it was killed), the agent may forget it.
            defer { Task { try? await pod.release(ref) } }
            guard request.timeout > 0 else { return try await run.value }
            let killer = Task {
                try await Task.sleep(for: .seconds(request.timeout))
                try? await pod.signal(ref, SIGKILL)
            }
            let result = await run.result
            killer.cancel()
            // The killer finished its sleep: the command ran out of time (whatever it answered since).
            if case .success = await killer.result {
                throw PodvisorError(.timeout, "command \(request.cmd) timed out after \(request.timeout) s")
            }
            return try result.get()
        }
    }
}
