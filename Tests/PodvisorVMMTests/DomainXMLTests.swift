import Foundation
import PodvisorCore
import Testing

@testable import PodvisorVMM

/// The domain XML for every transport × accelerator, pinned by files in Golden/.
/// `PODVISOR_UPDATE_GOLDEN=1 swift test --filter DomainXMLTests` rewrites them in the source tree; read the diff.
@Suite struct DomainXMLTests {
    static let run = "/run/podvisor/vm/abc"

    static let channels: [DomainSpec.AgentChannel] = [
        .vsock,
        .hybridVsock(backendSocket: "\(run)/vsock/vhost.socket"),
        .virtioSerial(socket: "\(run)/agent.sock"),
    ]

    static func spec(_ channel: DomainSpec.AgentChannel, _ accelerator: Accelerator) -> DomainSpec {
        DomainSpec(
            name: "podvisor-abc", uuid: "1b4e28ba-2fa1-11d2-883f-0016d3cca427", accelerator: accelerator,
            memoryMiB: 256, vcpus: 1, emulator: "/usr/bin/qemu-system-x86_64",
            kernel: "/usr/local/share/podvisor/vmlinuz", root: .persistentMemory("/usr/local/share/podvisor/rootfs.erofs", bytes: 18 << 20),
            kernelCommandLine: DomainSpec.baseKernelCommandLine(accelerator), consoleLog: "\(run)/console.log",
            agentChannel: channel, qemuUser: .init(uid: 64055, gid: 64055))
    }

    static var updating: Bool { ProcessInfo.processInfo.environment["PODVISOR_UPDATE_GOLDEN"] == "1" }

    static let sourceGoldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden")

    @Test(arguments: channels, Accelerator.allCases)
    func matchesGoldenFile(channel: DomainSpec.AgentChannel, accelerator: Accelerator) throws {
        let name = "\(channel.transport.rawValue)-\(accelerator.rawValue).xml"
        let xml = Self.spec(channel, accelerator).xml
        if Self.updating {
            try xml.write(to: Self.sourceGoldenDirectory.appendingPathComponent(name), atomically: true, encoding: .utf8)
            return
        }
        let golden = try #require(
            Bundle.module.url(forResource: "Golden", withExtension: nil)?.appendingPathComponent(name),
            "no Golden directory in the test bundle")
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(xml == expected, "\(name) differs; PODVISOR_UPDATE_GOLDEN=1 regenerates it")
    }

    /// The facts of probes.md, checked on the rendering itself so that a regenerated golden file cannot drift.
    @Test(arguments: channels, Accelerator.allCases)
    func carriesWhatProbesFound(channel: DomainSpec.AgentChannel, accelerator: Accelerator) {
        let xml = Self.spec(channel, accelerator).xml
        let hybrid = channel.transport == .hybridVsock
        #expect(xml.hasPrefix("<domain type='\(accelerator == .kvm ? "kvm" : "qemu")'"))
        // The root's NVDIMM is given to QEMU directly, whatever the transport.
        #expect(xml.contains("xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"))
        #expect(xml.contains("<qemu:commandline>"))
        #expect(xml.contains("vhost-user-vsock-pci") == hybrid)
        #expect(xml.contains("<source type='memfd'/>") && xml.contains("<access mode='shared'/>"))
        #expect(xml.contains("<acpi/>"))
        #expect(xml.contains("<type arch='x86_64' machine='pc'>hvm</type>"))
        for event in ["on_poweroff", "on_reboot", "on_crash"] {
            #expect(xml.contains("<\(event)>destroy</\(event)>"))
        }
        #expect(xml.contains("<memballoon model='virtio' freePageReporting='on'/>"))
        #expect(xml.contains("<rng model='virtio'>") && xml.contains("<backend model='random'>/dev/urandom</backend>"))
        #expect(xml.contains("<serial type='file'>"))
        #expect(xml.contains("<source path='\(Self.run)/console.log'/>"))
        #expect(xml.contains("<vsock model='virtio'>") == (channel == .vsock))
        #expect(xml.contains("<channel type='unix'>") == (channel.transport == .virtioSerial))
    }

    @Test func tcgGetsABoundedTranslationCache() {
        var spec = Self.spec(.vsock, .tcg)
        #expect(!spec.xml.contains("<tcg>"))
        spec.tcgCacheMiB = 32
        #expect(spec.xml.contains("<tcg>\n      <tb-cache unit='MiB'>32</tb-cache>\n    </tcg>"))
        spec.accelerator = .kvm
        #expect(!spec.xml.contains("<tcg>"), "KVM translates nothing")
    }

    @Test func cpuSharesGoToCputune() {
        var spec = Self.spec(.vsock, .tcg)
        #expect(!spec.xml.contains("<cputune>"), "libvirt's default weight")
        spec.cpuShares = 2
        #expect(spec.xml.contains("<cputune>\n    <shares>2</shares>\n  </cputune>"))
    }

    /// QEMU's user is named with relabel='no': libvirt leaves the shared kernel and root as they are.
    @Test func libvirtRelabelsNothing() {
        var spec = Self.spec(.vsock, .tcg)
        #expect(spec.xml.contains("<seclabel type='static' model='dac' relabel='no'>\n    <label>+64055:+64055</label>\n  </seclabel>\n</domain>"))
        spec.qemuUser = nil
        #expect(!spec.xml.contains("<seclabel"))
    }

    /// An fsdax root is a read-only, unarmed NVDIMM mapped from the image: no prealloc (libvirt's nvdimm would
    /// copy the image into every VM), in the one memory slot of a one-node guest.
    @Test func anFsdaxRootIsAReadOnlyNVDIMM() {
        var spec = Self.spec(.vsock, .tcg)
        spec.vcpus = 2
        let xml = spec.xml
        #expect(xml.contains("<maxMemory slots='1' unit='KiB'>\(256 * 1024 + 18 * 1024)</maxMemory>\n  <memory unit='MiB'>256</memory>"))
        #expect(xml.contains("<cpu>\n    <numa>\n      <cell id='0' cpus='0-1' memory='256' unit='MiB'/>\n    </numa>\n  </cpu>"))
        let arguments = spec.qemuArguments
        #expect(
            arguments == [
                "-machine", "nvdimm=on",
                "-object", "memory-backend-file,id=pvroot,mem-path=/usr/local/share/podvisor/rootfs.erofs,size=\(18 << 20),share=off,readonly=on",
                "-device", "nvdimm,id=pvroot0,memdev=pvroot,unarmed=on",
            ])
        let base = DomainSpec.baseKernelCommandLine(spec.accelerator)
        #expect(xml.contains("<cmdline>\(base) root=/dev/pmem0 rootfstype=erofs rootflags=dax=always ro init=/init</cmdline>"))
        #expect(!xml.contains("<disk"))
        // QEMU's option syntax doubles a comma inside a value.
        spec.root = .persistentMemory("/images/a,b.erofs", bytes: 4 << 20)
        #expect(spec.qemuArguments.contains("memory-backend-file,id=pvroot,mem-path=/images/a,,b.erofs,size=\(4 << 20),share=off,readonly=on"))
        // Under KVM the NUMA cell sits in the host-passthrough CPU.
        spec.accelerator = .kvm
        #expect(spec.xml.contains("<cpu mode='host-passthrough'>\n    <numa>"))
    }

    /// A plain erofs image is a read-only virtio disk the kernel mounts itself; an initramfs needs neither.
    @Test func rootIsASharedReadOnlyDiskOrAnInitramfs() {
        var spec = Self.spec(.vsock, .tcg)
        spec.root = .disk("/usr/local/share/podvisor/rootfs.erofs")
        #expect(!spec.xml.contains("<maxMemory") && !spec.xml.contains("<numa>") && !spec.xml.contains("nvdimm"))
        #expect(
            spec.xml.contains(
                """
                    <disk type='file' device='disk'>
                      <driver name='qemu' type='raw'/>
                      <source file='/usr/local/share/podvisor/rootfs.erofs'/>
                      <target dev='vda' bus='virtio'/>
                      <readonly/>
                    </disk>
                """))
        let base = DomainSpec.baseKernelCommandLine(spec.accelerator)
        #expect(spec.xml.contains("<cmdline>\(base) root=/dev/vda rootfstype=erofs ro init=/init</cmdline>"))
        #expect(!spec.xml.contains("<initrd>"))
        spec.root = .initramfs("/usr/local/share/podvisor/initramfs.img")
        #expect(spec.xml.contains("<initrd>/usr/local/share/podvisor/initramfs.img</initrd>"))
        #expect(spec.xml.contains("<cmdline>\(base)</cmdline>"))
        #expect(!spec.xml.contains("<disk"))
    }

    @Test func sharedDirectoryIsAVirtiofsFilesystem() {
        let plain = Self.spec(.vsock, .tcg)
        #expect(!plain.xml.contains("<filesystem"))
        var spec = plain
        spec.sharedDirectorySocket = "\(Self.run)/vfs.sock"
        #expect(
            spec.xml.contains(
                """
                    <filesystem type='mount' accessmode='passthrough'>
                      <driver type='virtiofs' queue='1024'/>
                      <source socket='/run/podvisor/vm/abc/vfs.sock'/>
                      <target dir='share'/>
                    </filesystem>
                """))
    }

    @Test func aPodNICIsAnUnmanagedTapWithTheCNIInterfacesMACAndMTUAndNoOptionROM() {
        var spec = Self.spec(.vsock, .tcg)
        #expect(!spec.xml.contains("<interface"))
        spec.networkInterface = DomainSpec.NetworkInterface(tap: "pvt0123456789ab", mac: "0a:58:0a:4d:00:05", mtu: 1450)
        #expect(
            spec.xml.contains(
                """
                    <interface type='ethernet'>
                      <mac address='0a:58:0a:4d:00:05'/>
                      <target dev='pvt0123456789ab' managed='no'/>
                      <model type='virtio'/>
                      <mtu size='1450'/>
                      <rom enabled='no'/>
                    </interface>
                """))
    }

    @Test func specialCharactersAreEscaped() {
        var spec = Self.spec(.virtioSerial(socket: "/run/a'b\"c<d>&e/agent.sock"), .tcg)
        spec.kernel = "/k&<x>"
        spec.root = .initramfs("/i'<y>")
        spec.kernelCommandLine = "a=\"1\" b='2'"
        let xml = spec.xml
        #expect(xml.contains("<source mode='bind' path='/run/a&apos;b&quot;c&lt;d&gt;&amp;e/agent.sock'/>"))
        #expect(xml.contains("<kernel>/k&amp;&lt;x&gt;</kernel>"))
        #expect(xml.contains("<initrd>/i&apos;&lt;y&gt;</initrd>"))
        #expect(xml.contains("<cmdline>a=&quot;1&quot; b=&apos;2&apos;</cmdline>"))
        // The hybrid backend socket lands inside a qemu:arg attribute.
        let hybrid = Self.spec(.hybridVsock(backendSocket: "/run/x'y/vhost.socket"), .tcg).xml
        #expect(hybrid.contains("<qemu:arg value='socket,id=vsockchr0,path=/run/x&apos;y/vhost.socket'/>"))
    }

    @Test func baseKernelCommandLine() {
        let base = DomainSpec.baseKernelCommandLine(.kvm)
        let words = base.split(separator: " ")
        #expect(words.contains("SWIFT_ROOT=/"))
        #expect(words.contains("panic=-1"))
        #expect(words.contains("console=ttyS0"))
        #expect(words.contains("no_timer_check"))
        #expect(words.contains("acpi=noirq"))
        // TCG-only workarounds: KVM has a TSC-deadline timer, and patching out `lock` prefixes is cheap there.
        let tcgWords = DomainSpec.baseKernelCommandLine(.tcg).split(separator: " ")
        for tcgOnly in ["noapictimer", "noreplace-smp"] {
            #expect(!words.contains(Substring(tcgOnly)))
            #expect(tcgWords.contains(Substring(tcgOnly)))
        }
        #expect(!base.hasSuffix(" "))
        #expect(DomainSpec.baseKernelCommandLine(.kvm, extra: "loglevel=7 foo=bar") == base + " loglevel=7 foo=bar")
    }
}

extension DomainSpec.AgentChannel: CustomTestStringConvertible {
    public var testDescription: String { transport.rawValue }
}
