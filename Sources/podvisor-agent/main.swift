#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorAgentCore
import PodvisorAgentProtocol

// podvisor-agent: PID 1 of every pod VM. Order matters: /proc before any thread, signals blocked before the
// first thread so every thread inherits the mask and only the main thread's sigwait sees them.
let initAtMs = pv_boottime_ms()
GuestSetup.mountProc()
// Read before the switch: the boot root is then out of PID 1's view (Health reports it).
let bootMounts = GuestFiles.read("/proc/self/mounts") ?? ""
let modules = GuestSetup.loadModules()
GuestSetup.switchToTmpfsRoot()
GuestSetup.mountBaseFilesystems()
GuestSetup.attachConsole()
GuestSetup.reportSmallFreeBlocks()
GuestNetwork.loopbackUp()
Cgroups.prepare()
if !modules.failed.isEmpty { log("modules failed: \(modules.failed.joined(separator: ", "))") }
if pv_block_init_signals() != 0 { log("cannot block init signals: errno \(errno)") }

let sharedDirectory = GuestSetup.mountSharedDirectory()
let containers = Containers(sharedDirectory: sharedDirectory ?? "/run/podvisor/share")

guard let endpoint = AgentListener.discover() else {
    PowerOff.now(reason: "no vsock device and no virtio-serial port named \(AgentAPI.serialPortName)")
}
let readyAtMs = pv_boottime_ms()
let server = AgentService.server(
    transport: endpoint.transportName, initAtMs: initAtMs, readyAtMs: readyAtMs, sharedDirectory: sharedDirectory ?? "", bootMounts: bootMounts,
    containers: containers, powerOff: { PowerOff.now(reason: "Shutdown requested by host") })
startDetachedThread { AgentListener.serve(endpoint, server: server) }
log("ready on \(endpoint.transportName) after \(readyAtMs) ms (init at \(initAtMs) ms), \(modules.loaded) modules")
Cgroups.prepareSpare()

// PID 1 duties: reap every orphan; TERM/INT/PWR power the VM off.
while true {
    switch pv_wait_init_signal() {
    case SIGCHLD:
        var status: Int32 = 0
        while case let pid = waitpid(-1, &status, WNOHANG), pid > 0 {
            containers.reaped(pid: pid, status: status)
        }
    case let sig:
        PowerOff.now(reason: "signal \(sig)")
    }
}
