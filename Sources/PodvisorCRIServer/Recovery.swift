import Foundation
import PodvisorCore
import PodvisorImages
import PodvisorRuntime

/// After a restart (or `kill -9`) of podvisord: pod VMs, their helpers and the containers in them kept
/// running; the records say what they are. Ready sandboxes get their VM back and their running
/// containers are followed again; a sandbox whose VM is gone becomes NOTREADY with its containers
/// EXITED; a pod VM without a ready sandbox record is destroyed.
extension CRIServer {
    func recover() async {
        for container in containers.all {
            if let id = try? Digest(parsing: container.imageID) { try? await images.startUsing(id) }
        }
        for sandbox in sandboxes.all where sandbox.state == .ready {
            guard let transport = AgentTransportKind(rawValue: sandbox.transport) else {
                sandboxLost(sandbox.id, reason: "unknown transport \(sandbox.transport) in its record")
                continue
            }
            do {
                let pod = try await host.reattach(id: sandbox.vmID, transport: transport, size: sandbox.vmSize)
                pods.withLock { $0[sandbox.id] = pod }
                watch(sandboxID: sandbox.id, pod: pod)
                for container in containers.all where container.sandboxID == sandbox.id && container.state == .running {
                    follow(container, on: pod)
                }
                do { try await openHostPorts(sandbox.id, sandbox.config) } catch { log.error("sandbox \(sandbox.id): \(error)") }
                log.info("sandbox \(sandbox.id): VM taken over after restart")
            } catch {
                log.warning("sandbox \(sandbox.id): VM not recovered: \(error)")
                sandboxLost(sandbox.id, reason: "pod VM was gone when podvisord restarted")
                try? host.destroyOrphan(id: sandbox.vmID)
            }
        }
        let ready = Set(sandboxes.all.filter { $0.state == .ready }.map(\.vmID))
        for vmID in (try? host.podVMIDs()) ?? [] where !ready.contains(vmID) {
            log.info("destroying pod VM \(vmID): no ready sandbox owns it")
            do { try host.destroyOrphan(id: vmID) } catch { log.error("pod VM \(vmID): \(error)") }
        }
    }
}
