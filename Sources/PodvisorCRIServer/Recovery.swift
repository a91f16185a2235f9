import Foundation
import PodvisorCore
import PodvisorImages
import PodvisorRuntime

/// After a restart (or `kill -9`) of podvisord: pod VMs, their helpers and the containers in them kept
/// running; the records say what they are. Ready sandboxes are taken back and their running containers
/// followed again; a sandbox whose VM is gone becomes NOTREADY with its containers EXITED; whatever the
/// runtime still has of a sandbox or container no record owns (a crash half-way through creating or
/// removing it) is removed.
extension CRIServer {
    func recover() async {
        for container in containers.all {
            if let id = try? Digest(parsing: container.imageID) { try? await images.startUsing(id) }
        }
        for sandbox in sandboxes.all where sandbox.state == .ready {
            // Its stop had begun: it is finished below (the runtime removes what is left), never reported READY.
            guard sandbox.stopping != true else {
                sandboxLost(sandbox.id, reason: "stopped (podvisord restarted during StopPodSandbox)")
                CRIMetrics.recovered(.lost)
                continue
            }
            do {
                let pod = try await runtime.reattachSandbox(id: sandbox.id)
                pods.withLock { $0[sandbox.id] = pod }
                watch(sandboxID: sandbox.id, pod: pod)
                for container in containers.all where container.sandboxID == sandbox.id && container.state == .running {
                    follow(container, on: pod)
                }
                do { try await openHostPorts(sandbox.id, sandbox.config, on: pod) } catch { log.error("sandbox \(sandbox.id): \(error)") }
                log.info("sandbox \(sandbox.id): VM taken over after restart")
                CRIMetrics.recovered(.reattached)
            } catch {
                log.warning("sandbox \(sandbox.id): VM not recovered: \(error)")
                sandboxLost(sandbox.id, reason: "pod VM was gone when podvisord restarted")
                CRIMetrics.recovered(.lost)
            }
        }
        let live = Set(pods.withLock { Array($0.keys) })
        for id in runtime.sandboxIDs() where !live.contains(id) {
            log.info("removing what is left of sandbox \(id): no ready sandbox owns it")
            do {
                try await runtime.removeSandbox(id: id)
                CRIMetrics.recovered(.removed)
            } catch { log.error("sandbox \(id): \(error)") }
        }
        let recorded = Set(containers.all.map(\.id))
        for id in runtime.containerIDs() where !recorded.contains(id) {
            log.info("removing what is left of container \(id): no record owns it")
            do { try runtime.removeContainer(id: id) } catch { log.error("container \(id): \(error)") }
        }
    }
}
