import Foundation
import PodvisorRuntime
import PodvisorStreaming

/// What runs once a client connected to an Exec or Attach URL: the remote command protocol's streams
/// wired to the agent's process calls.
extension CRIServer {
    /// Runs `command` in the container like ExecSync, but streaming: its output as it comes, the client's
    /// input and window size to it. A client that leaves takes the command with it (SIGKILL).
    func serveExec(_ containerID: String, command: [String], _ streams: RemoteCommandStreams) async -> RemoteCommandResult {
        // The container may have exited, or its sandbox stopped, since the URL was handed out.
        let pod: any PodSandbox
        let ref: ProcessRef
        do {
            (pod, ref) = try await startExec(in: containerID, command: command, tty: streams.options.tty, stdin: streams.options.stdin)
        } catch { return .failure(error.message) }

        let output = Task { await Self.copyOutput(pod, ref, tty: streams.options.tty, to: streams) }
        let input = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await Self.copyInput(pod, ref, from: streams, closeAtEnd: true) }
                group.addTask {
                    await streams.waitForDisconnect()
                    try? await pod.signal(ref, SIGKILL)
                }
            }
        }
        defer { input.cancel() }
        let exit: ProcessExit
        do { exit = try await pod.wait(ref) } catch {
            output.cancel()
            return .failure("exec in container \(containerID): \(error.message)")
        }
        await awaitOutput(output)
        output.cancel()
        try? await pod.release(ref)
        return exit.exitCode == 0 ? .success : .exitCode(exit.exitCode)
    }

    /// Joins the container's main process: its output from now on (the log keeps all of it), the client's
    /// input to its stdin (closed after this session when the container asked for stdin_once).
    func serveAttach(
        _ containerID: String, output: AsyncStream<ContainerAttachments.Chunk>, _ streams: RemoteCommandStreams
    ) async -> RemoteCommandResult {
        let container: ContainerRecord
        let pod: any PodSandbox
        do { (container, pod) = try runningContainer(containerID, orCreated: true) } catch { return .failure(error.message) }
        let ref = ProcessRef(container: container.id)
        let input = Task {
            await Self.copyInput(pod, ref, from: streams, closeAtEnd: container.config.stdinOnce)
        }
        defer { input.cancel() }
        // Ends when the container exits or the client leaves.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await chunk in output {
                    let bytes = [UInt8](chunk.data)
                    if chunk.stream == .stdout { await streams.writeStdout(bytes) } else { await streams.writeStderr(bytes) }
                }
            }
            group.addTask { await streams.waitForDisconnect() }
            await group.next()
            group.cancelAll()
        }
        return .success
    }

    private static func copyOutput(
        _ pod: any PodSandbox, _ ref: ProcessRef, tty: Bool, to streams: RemoteCommandStreams
    ) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await pod.readOutput(ref, stderr: false) { await streams.writeStdout([UInt8]($0)) } }
            // With a terminal everything is on stdout.
            if !tty { group.addTask { try? await pod.readOutput(ref, stderr: true) { await streams.writeStderr([UInt8]($0)) } } }
        }
    }

    private static func copyInput(
        _ pod: any PodSandbox, _ ref: ProcessRef, from streams: RemoteCommandStreams, closeAtEnd: Bool
    ) async {
        await withTaskGroup(of: Void.self) { group in
            if streams.options.stdin {
                group.addTask {
                    for await bytes in streams.stdin { try? await pod.writeStdin(ref, Data(bytes)) }
                    // The client closed its input (not merely left: cancellation ends the loop too).
                    if closeAtEnd && !Task.isCancelled { try? await pod.closeStdin(ref) }
                }
            }
            if streams.options.tty {
                group.addTask {
                    for await size in streams.resizes {
                        try? await pod.resizeTerminal(ref, rows: UInt32(size.height), columns: UInt32(size.width))
                    }
                }
            }
        }
    }
}
