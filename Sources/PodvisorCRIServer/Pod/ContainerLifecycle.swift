import Foundation
import PodvisorCRI
import PodvisorRuntime

/// What happens to a container after StartContainer, on tasks of its own: its output goes to its CRI log,
/// its exit into its record.
extension CRIServer {
    /// Follows a running container (after StartContainer, or after a restart of podvisord: output the
    /// guest buffered meanwhile is read then).
    func follow(_ record: ContainerRecord, on pod: any PodSandbox) {
        let log: ContainerLog?
        do { log = record.logPath.isEmpty ? nil : try ContainerLog(path: record.logPath) } catch {
            self.log.error("container \(record.id): \(error)")
            log = nil
        }
        if let log { logs.withLock { $0[record.id] = log } }
        let id = record.id
        let process = ProcessRef(container: id)
        Task.detached { [self] in
            // Read even without a log: a container whose pipe fills up would block.
            let pumps = Task {
                await withTaskGroup(of: Void.self) { group in
                    for stream in [ContainerLog.Stream.stdout, .stderr] {
                        group.addTask { await self.pump(pod, process, stream, into: log) }
                    }
                }
            }
            let exit: ProcessExit
            do { exit = try await pod.wait(process) } catch {
                // The agent is gone: the VM died (the sandbox's watcher records it) or the container was removed.
                pumps.cancel()
                return
            }
            await awaitOutput(pumps)
            let reason = exit.oomKilled ? "OOMKilled" : exit.exitCode == 0 ? "Completed" : "Error"
            // The host's clock, not the guest's: CRI times are compared with the host-made ones.
            containerExited(id, code: exit.exitCode, at: Clock.nowNanoseconds(), reason: reason)
        }
    }

    private func pump(
        _ pod: any PodSandbox, _ process: ProcessRef, _ stream: ContainerLog.Stream, into log: ContainerLog?
    ) async {
        // Each chunk is acknowledged (by asking for the next) only once it is in the log.
        try? await pod.readOutput(process, stderr: stream == .stderr) { data in
            log?.write(data, stream: stream)
            attachments.publish(process.containerID, stream, data)
        }
        log?.finish(stream)
    }

    /// Records an exit (the first report wins), closes the log and tells event subscribers.
    func containerExited(_ id: String, code: Int32, at finishedAt: Int64, reason: String, message: String = "") {
        let before = containers.get(id)?.state
        let record = try? containers.update(id) { $0.exited(code: code, at: finishedAt, reason: reason, message: message) }
        logs.withLock { $0.removeValue(forKey: id) }?.close()
        attachments.finish(id)
        if let record, before != .exited {
            log.debug("container \(id) exited \(code) (\(reason))")
            publish(.containerStoppedEvent, container: record)
        }
    }

    /// Watches a ready sandbox's VM: if it stops without StopPodSandbox asking, the sandbox becomes NOTREADY
    /// and its containers EXITED, and the VM's host-side traces are removed.
    func watch(sandboxID: String, pod: any PodSandbox) {
        Task.detached { [self] in
            let stop = await pod.waitUntilStopped()
            // StopPodSandbox takes the pod out of `pods` before it stops the VM: that stop was asked for.
            let unexpected = pods.withLock { pods -> Bool in
                guard pods[sandboxID] === pod else { return false }
                pods[sandboxID] = nil
                return true
            }
            guard unexpected else { return }
            log.warning("sandbox \(sandboxID): \(stop.reason)")
            // Under the sandbox's lock: a Stop or Remove that follows finds the VM's traces gone.
            try? await locks.withLock(sandboxID) {
                sandboxLost(sandboxID, reason: stop.reason, oomKilled: stop.oomKilled)
                do { try await pod.destroy() } catch { log.error("sandbox \(sandboxID): \(error)") }
            }
        }
    }

    /// The sandbox's VM is gone: NOTREADY, and every container that had not exited did now.
    func sandboxLost(_ sandboxID: String, reason: String, oomKilled: Bool = false) {
        hostPorts.close(sandboxID)
        _ = try? sandboxes.update(sandboxID) {
            $0.state = .notReady
            $0.notReadyReason = reason
            $0.stopping = nil
        }
        let now = Clock.nowNanoseconds()
        for container in containers.all where container.sandboxID == sandboxID && container.state != .exited {
            containerExited(container.id, code: 255, at: now, reason: oomKilled ? "OOMKilled" : "Error", message: reason)
        }
    }
}

/// Output written just before a process's exit may still be in flight: waits for the task copying it, but
/// not long, since a background process that keeps the pipe open must not hold the exit back.
func awaitOutput(_ copying: Task<Void, Never>, atMost limit: Duration = .seconds(2)) async {
    await withTaskGroup(of: Void.self) { group in
        group.addTask { await copying.value }
        group.addTask { try? await Task.sleep(for: limit) }
        await group.next()
        group.cancelAll()
    }
}
