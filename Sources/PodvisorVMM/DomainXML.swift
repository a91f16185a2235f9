import PodvisorCore

/// Everything libvirt needs to know about one pod VM. `xml` renders the domain definition; the golden files
/// in Tests/PodvisorVMMTests/Golden pin its exact shape for every transport and accelerator.
public struct DomainSpec: Sendable, Equatable {
    /// Where the agent's channel ends on the host.
    public enum AgentChannel: Sendable, Equatable {
        /// Kernel vsock, guest CID chosen by libvirt.
        case vsock
        /// vhost-user-vsock device backed by vhost-device-vsock listening on `backendSocket`.
        case hybridVsock(backendSocket: String)
        /// virtio-serial port; libvirt binds `socket` and QEMU serves it.
        case virtioSerial(socket: String)

        public var transport: AgentTransportKind {
            switch self {
            case .vsock: .vsock
            case .hybridVsock: .hybridVsock
            case .virtioSerial: .virtioSerial
            }
        }
    }

    /// The pod's NIC: a tap podvisor made (libvirt opens it by name, in its own network namespace) carrying
    /// the MAC and MTU of the pod's CNI interface, so the guest answers for the pod's address.
    public struct NetworkInterface: Sendable, Equatable {
        public var tap: String
        public var mac: String
        public var mtu: Int

        public init(tap: String, mac: String, mtu: Int) {
            self.tap = tap
            self.mac = mac
            self.mtu = mtu
        }
    }

    public var name: String
    public var uuid: String
    public var accelerator: Accelerator
    public var memoryMiB: Int
    public var vcpus: Int
    public var emulator: String
    public var kernel: String
    public var root: GuestRoot
    /// The root's own parameters (GuestRoot.kernelParameters) are added to it.
    public var kernelCommandLine: String
    public var consoleLog: String
    public var agentChannel: AgentChannel
    /// virtiofsd's vhost-user socket; the guest mounts the export by the tag `share`.
    public var sharedDirectorySocket: String?
    public var networkInterface: NetworkInterface?
    /// TCG only: the translated-code cache QEMU may grow (its default, 1 GiB, ends up as ~85 MiB of an idle
    /// pod's host memory); nil leaves QEMU's default.
    public var tcgCacheMiB: Int?
    /// The VM's CPU weight against other VMs (libvirt's `<cputune><shares>`, the cgroup's cpu.shares or
    /// cpu.weight); nil: libvirt's default.
    public var cpuShares: Int?
    /// The user QEMU runs as, given to libvirt with `relabel='no'`: libvirt then leaves the files the domain
    /// names as they are. Otherwise it chowns the kernel, initrd and disks to QEMU's user while the VM runs (a
    /// read-only disk for good), and the kernel and root every pod VM boots become writable by every QEMU:
    /// a guest that escaped into its QEMU could change what other tenants' pods boot. QEMU only reads them
    /// (world-readable), and gets its console log and tap as descriptors. nil: libvirt's default labelling.
    public var qemuUser: QEMUUser?

    public struct QEMUUser: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32

        public init(uid: UInt32, gid: UInt32) {
            self.uid = uid
            self.gid = gid
        }
    }

    public init(
        name: String, uuid: String, accelerator: Accelerator, memoryMiB: Int, vcpus: Int, emulator: String,
        kernel: String, root: GuestRoot, kernelCommandLine: String, consoleLog: String, agentChannel: AgentChannel,
        sharedDirectorySocket: String? = nil, networkInterface: NetworkInterface? = nil, tcgCacheMiB: Int? = nil,
        cpuShares: Int? = nil, qemuUser: QEMUUser? = nil
    ) {
        self.name = name
        self.uuid = uuid
        self.accelerator = accelerator
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.emulator = emulator
        self.kernel = kernel
        self.root = root
        self.kernelCommandLine = kernelCommandLine
        self.consoleLog = consoleLog
        self.agentChannel = agentChannel
        self.sharedDirectorySocket = sharedDirectorySocket
        self.networkInterface = networkInterface
        self.tcgCacheMiB = tcgCacheMiB
        self.cpuShares = cpuShares
        self.qemuUser = qemuUser
    }

    /// The guest kernel parameters every pod VM needs. SWIFT_ROOT=/ reaches the static agent as an environment
    /// variable (the Swift runtime aborts before main without it); panic=-1 turns a guest panic into a reboot,
    /// which on_reboot=destroy turns into a stopped domain the host sees at once; no_timer_check skips the
    /// kernel's test of the IO-APIC timer, which a guest starved of host CPU fails ("MP-BIOS bug: 8254 timer
    /// not connected"), rerouting the timer so that it never ticks again: the guest hangs at 0.03 s (seen
    /// under the full test suite's load; Kata's guests boot with it too). acpi=noirq routes PCI interrupts by
    /// the BIOS's $PIR table instead of ACPI: with ACPI every virtio device's enable ran the `pc` machine's _PRT
    /// method (a loop in AML) through the kernel's interpreter, ~250 ms per device under TCG, 1.4 s of a boot;
    /// virtio queues use MSI-X either way, and ACPI still powers the VM off. It keeps ACPI's PCI root bridge
    /// windows, which pci=noacpi dropped: the kernel then placed 64-bit BARs at 4 GiB, on the root's NVDIMM.
    /// Under TCG, noapictimer: the CPU model has no TSC-deadline timer, so the kernel would spend 100 ms
    /// calibrating the local APIC timer against the PIT; the HPET ticks instead (KVM's host CPU has
    /// TSC-deadline and skips the calibration).
    /// Also under TCG, noreplace-smp: a one-vCPU kernel rewrites every `lock` prefix in its text at boot, and
    /// under TCG those writes took ~190 ms; a single vCPU under TCG pays nothing for the prefixes, while under
    /// KVM the rewrite is quick and the prefixes would cost every atomic operation.
    public static func baseKernelCommandLine(_ accelerator: Accelerator, extra: String = "") -> String {
        (["console=ttyS0", "quiet", "panic=-1", "no_timer_check", "acpi=noirq"]
            + (accelerator == .tcg ? ["noapictimer", "noreplace-smp"] : [])
            + ["SWIFT_ROOT=/"] + (extra.isEmpty ? [] : [extra])).joined(separator: " ")
    }

    public var xml: String {
        var x = XMLWriter()
        let qemuArguments = self.qemuArguments
        let qemuNamespace = qemuArguments.isEmpty ? [] : [("xmlns:qemu", "http://libvirt.org/schemas/domain/qemu/1.0")]
        x.open("domain", [("type", accelerator.domainType)] + qemuNamespace)
        x.element("name", text: name)
        x.element("uuid", text: uuid)
        // Room for the root's NVDIMM beside the RAM: QEMU places memory devices above it, in one slot.
        if case .persistentMemory(_, let bytes) = root {
            x.element("maxMemory", [("slots", "1"), ("unit", "KiB")], text: String(memoryMiB * 1024 + bytes / 1024))
        }
        x.element("memory", [("unit", "MiB")], text: String(memoryMiB))
        x.element("vcpu", text: String(vcpus))
        if let cpuShares {
            x.open("cputune")
            x.element("shares", text: String(cpuShares))
            x.close("cputune")
        }
        // Shared memfd memory: vhost-user devices (vsock backend, virtiofsd) map guest RAM.
        x.open("memoryBacking")
        x.element("source", [("type", "memfd")])
        x.element("access", [("mode", "shared")])
        x.close("memoryBacking")
        // Without ACPI the guest's poweroff only halts the CPU and the domain never stops.
        x.open("features")
        x.element("acpi")
        if accelerator == .tcg, let tcgCacheMiB {
            x.open("tcg")
            x.element("tb-cache", [("unit", "MiB")], text: String(tcgCacheMiB))
            x.close("tcg")
        }
        x.close("features")
        let cpuMode = accelerator == .kvm ? [("mode", "host-passthrough")] : []
        if case .persistentMemory = root {
            // libvirt allows memory devices only in a NUMA guest: one node holds all RAM and vCPUs.
            x.open("cpu", cpuMode)
            x.open("numa")
            x.element("cell", [("id", "0"), ("cpus", "0-\(vcpus - 1)"), ("memory", String(memoryMiB)), ("unit", "MiB")])
            x.close("numa")
            x.close("cpu")
        } else if !cpuMode.isEmpty {
            x.element("cpu", cpuMode)
        }
        x.open("os")
        x.element("type", [("arch", "x86_64"), ("machine", "pc")], text: "hvm")
        x.element("kernel", text: kernel)
        if case .initramfs(let initrd) = root { x.element("initrd", text: initrd) }
        x.element("cmdline", text: ([kernelCommandLine] + root.kernelParameters).joined(separator: " "))
        x.close("os")
        x.element("on_poweroff", text: "destroy")
        x.element("on_reboot", text: "destroy")
        x.element("on_crash", text: "destroy")
        x.open("devices")
        x.element("emulator", text: emulator)
        // libvirt adds a USB controller to every 'pc' domain unless told not to: a PCI device the BIOS and the
        // kernel would probe at every boot, for nothing.
        x.element("controller", [("type", "usb"), ("model", "none")])
        x.open("serial", [("type", "file")])
        x.element("source", [("path", consoleLog)])
        x.element("target", [("port", "0")])
        x.close("serial")
        switch agentChannel {
        case .vsock:
            x.open("vsock", [("model", "virtio")])
            x.element("cid", [("auto", "yes")])
            x.close("vsock")
        case .virtioSerial(let socket):
            x.open("channel", [("type", "unix")])
            x.element("source", [("mode", "bind"), ("path", socket)])
            x.element("target", [("type", "virtio"), ("name", "podvisor.agent")])
            x.close("channel")
        case .hybridVsock:
            break
        }
        if case .disk(let image) = root {
            x.open("disk", [("type", "file"), ("device", "disk")])
            x.element("driver", [("name", "qemu"), ("type", "raw")])
            x.element("source", [("file", image)])
            x.element("target", [("dev", "vda"), ("bus", "virtio")])
            x.element("readonly")
            x.close("disk")
        }
        if let nic = networkInterface {
            // managed='no': the tap exists already; libvirt opens it and hands QEMU the descriptor.
            x.open("interface", [("type", "ethernet")])
            x.element("mac", [("address", nic.mac)])
            x.element("target", [("dev", nic.tap), ("managed", "no")])
            x.element("model", [("type", "virtio")])
            x.element("mtu", [("size", String(nic.mtu))])
            // No iPXE option ROM: the VM boots its kernel directly, never from the network.
            x.element("rom", [("enabled", "no")])
            x.close("interface")
        }
        if let sharedDirectorySocket {
            // An externally started virtiofsd: libvirt's own spawn cannot pass announce_submounts.
            x.open("filesystem", [("type", "mount"), ("accessmode", "passthrough")])
            x.element("driver", [("type", "virtiofs"), ("queue", "1024")])
            x.element("source", [("socket", sharedDirectorySocket)])
            x.element("target", [("dir", "share")])
            x.close("filesystem")
        }
        // Free page reporting: what the guest frees (an initramfs once unpacked, exited containers) goes back
        // to the host instead of staying in QEMU's memory for the pod's life.
        x.element("memballoon", [("model", "virtio"), ("freePageReporting", "on")])
        // Entropy from the host's /dev/urandom (virtio-rng, built into the guest kernel): without it the guest's
        // CRNG seeds itself from timer jitter, over a second under TCG, and the agent's first getrandom (the
        // Swift runtime's hashing seed, before main) waits for it.
        x.open("rng", [("model", "virtio")])
        x.element("backend", [("model", "random")], text: "/dev/urandom")
        x.close("rng")
        x.close("devices")
        if !qemuArguments.isEmpty {
            x.open("qemu:commandline")
            for arg in qemuArguments { x.element("qemu:arg", [("value", arg)]) }
            x.close("qemu:commandline")
        }
        if let qemuUser {
            x.open("seclabel", [("type", "static"), ("model", "dac"), ("relabel", "no")])
            x.element("label", text: "+\(qemuUser.uid):+\(qemuUser.gid)")
            x.close("seclabel")
        }
        x.close("domain")
        return x.output
    }
}

extension DomainSpec {
    /// What libvirt 9.0 cannot say in its XML, given to QEMU as extra arguments.
    var qemuArguments: [String] {
        var arguments: [String] = []
        if case .hybridVsock(let backendSocket) = agentChannel {
            // vhost-user-vsock has no XML. No reconnect= on the chardev: QEMU 7.2 then fails with "Failed to set
            // msg fds". An explicit PCI slot: libvirt does not know this device and would hand its slot to the
            // next one it places (virtio-fs).
            arguments += [
                "-chardev", "socket,id=vsockchr0,path=\(backendSocket)",
                "-device", "vhost-user-vsock-pci,chardev=vsockchr0,bus=pci.0,addr=0x1f",
            ]
        }
        if case .persistentMemory(let image, let bytes) = root {
            // libvirt's nvdimm opens its file read-write and preallocates it, which would copy the image into
            // every VM; `readonly=on` maps the root-owned image read-only and private, so every VM's guest
            // reads the same pages of the host's page cache, and no QEMU can change them. Unarmed: the guest
            // sees a read-only NVDIMM. A read-only region is also one that vhost-user backends are not given.
            arguments += [
                "-machine", "nvdimm=on",
                "-object", "memory-backend-file,id=pvroot,mem-path=\(image.replacing(",", with: ",,")),size=\(bytes),share=off,readonly=on",
                "-device", "nvdimm,id=pvroot0,memdev=pvroot,unarmed=on",
            ]
        }
        return arguments
    }
}

/// Indented XML with escaping of text and attribute values.
struct XMLWriter {
    private(set) var output = ""
    private var depth = 0

    mutating func open(_ tag: String, _ attributes: [(String, String)] = []) {
        line("<\(tag)\(Self.render(attributes))>")
        depth += 1
    }

    mutating func close(_ tag: String) {
        depth -= 1
        line("</\(tag)>")
    }

    mutating func element(_ tag: String, _ attributes: [(String, String)] = [], text: String? = nil) {
        if let text {
            line("<\(tag)\(Self.render(attributes))>\(Self.escape(text))</\(tag)>")
        } else {
            line("<\(tag)\(Self.render(attributes))/>")
        }
    }

    private mutating func line(_ s: String) {
        output += String(repeating: "  ", count: depth) + s + "\n"
    }

    private static func render(_ attributes: [(String, String)]) -> String {
        attributes.map { " \($0.0)='\(escape($0.1))'" }.joined()
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "'": out += "&apos;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
