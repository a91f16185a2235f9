import CLibvirt
import Foundation
import PodvisorCore
import Synchronization

/// libvirt's default event loop, run on a thread of its own. The embedded QEMU driver and domain events
/// both need it, and it must be registered before the first connection opens.
enum LibvirtEventLoop {
    private static let started: Bool = {
        virSetErrorFunc(nil, silenceLibvirtErrors)
        guard virEventRegisterDefaultImpl() == 0 else { return false }
        let thread = Thread {
            while true { _ = virEventRunDefaultImpl() }
        }
        thread.name = "libvirt-events"
        thread.start()
        return true
    }()

    static func ensureRunning() throws(PodvisorError) {
        guard started else { throw PodvisorError(.internalError, "cannot register libvirt's event loop: \(lastLibvirtError())") }
    }
}

/// libvirt prints every error to stderr unless an error function is set; we report them ourselves.
private nonisolated func silenceLibvirtErrors(_: UnsafeMutableRawPointer?, _: virErrorPtr?) {}

func lastLibvirtError() -> String {
    virGetLastErrorMessage().map { String(cString: $0) } ?? "unknown libvirt error"
}

/// What libvirt reports about a domain's life.
public enum DomainLifecycleEvent: Sendable, Equatable {
    case started
    /// The domain is gone: powered off, destroyed, QEMU died, or the guest crashed.
    case stopped(StopReason)
    case crashed
    case other(event: Int32, detail: Int32)

    public enum StopReason: String, Sendable, Equatable {
        case shutdown, destroyed, crashed, failed, other
    }

    init(event: Int32, detail: Int32) {
        switch UInt32(event) {
        case VIR_DOMAIN_EVENT_STARTED.rawValue: self = .started
        case VIR_DOMAIN_EVENT_CRASHED.rawValue: self = .crashed
        case VIR_DOMAIN_EVENT_STOPPED.rawValue:
            switch UInt32(detail) {
            case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN.rawValue: self = .stopped(.shutdown)
            case VIR_DOMAIN_EVENT_STOPPED_DESTROYED.rawValue: self = .stopped(.destroyed)
            case VIR_DOMAIN_EVENT_STOPPED_CRASHED.rawValue: self = .stopped(.crashed)
            case VIR_DOMAIN_EVENT_STOPPED_FAILED.rawValue: self = .stopped(.failed)
            default: self = .stopped(.other)
            }
        default: self = .other(event: event, detail: detail)
        }
    }
}

/// Routes lifecycle events from libvirt's event thread to per-domain observers.
final class LifecycleDispatcher: Sendable {
    private let observers = Mutex<[String: @Sendable (DomainLifecycleEvent) -> Void]>([:])

    func observe(domain name: String, _ observer: @escaping @Sendable (DomainLifecycleEvent) -> Void) {
        observers.withLock { $0[name] = observer }
    }

    func forget(domain name: String) {
        _ = observers.withLock { $0.removeValue(forKey: name) }
    }

    func deliver(domain name: String, _ event: DomainLifecycleEvent) {
        observers.withLock { $0[name] }?(event)
    }
}

private nonisolated func lifecycleCallback(
    _: virConnectPtr?, _ domain: virDomainPtr?, _ event: Int32, _ detail: Int32, _ opaque: UnsafeMutableRawPointer?
) -> Int32 {
    guard let opaque, let domain, let name = virDomainGetName(domain) else { return 0 }
    let dispatcher = Unmanaged<LifecycleDispatcher>.fromOpaque(opaque).takeUnretainedValue()
    dispatcher.deliver(domain: String(cString: name), DomainLifecycleEvent(event: event, detail: detail))
    return 0
}

/// A connection to libvirt (libvirt documents its handles as thread-safe).
public final class LibvirtConnection: @unchecked Sendable {
    let handle: virConnectPtr
    let uri: String
    private let dispatcher = LifecycleDispatcher()
    private var callbackID: Int32 = -1

    public init(uri: String) throws(PodvisorError) {
        try LibvirtEventLoop.ensureRunning()
        guard let handle = virConnectOpen(uri) else {
            throw PodvisorError(.unavailable, "cannot open libvirt connection \(uri): \(lastLibvirtError())")
        }
        self.handle = handle
        self.uri = uri
        let callback = unsafeBitCast(
            lifecycleCallback as @convention(c) (virConnectPtr?, virDomainPtr?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32,
            to: virConnectDomainEventGenericCallback.self)
        callbackID = virConnectDomainEventRegisterAny(
            handle, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue), callback,
            Unmanaged.passUnretained(dispatcher).toOpaque(), nil)
        guard callbackID >= 0 else {
            let message = lastLibvirtError()
            virConnectClose(handle)
            throw PodvisorError(.internalError, "cannot subscribe to libvirt domain events: \(message)")
        }
    }

    deinit {
        if callbackID >= 0 { virConnectDomainEventDeregisterAny(handle, callbackID) }
        virConnectClose(handle)
    }

    /// Starts a transient domain (it leaves no definition behind once it stops); `paused`: QEMU runs, its
    /// vCPUs do not until `resume`.
    public func createDomain(xml: String, paused: Bool = false) throws(PodvisorError) -> LibvirtDomain {
        // libvirt loads the domain's cgroup device program (BPF) on this thread, and the kernel's verifier gives
        // up with EAGAIN when a signal is pending for the thread: "failed to load cgroup BPF prog: Resource
        // temporarily unavailable" (one start of a full test run). The signals this process handles (SIGCHLD for
        // every helper and CNI plugin that exits, ProcessExitWatch's) go to its other threads meanwhile; libvirt
        // unblocks every signal in the processes it forks.
        var handled = sigset_t()
        sigemptyset(&handled)
        for signal in [SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGWINCH] { sigaddset(&handled, signal) }
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &handled, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        guard let domain = virDomainCreateXML(handle, xml, paused ? UInt32(VIR_DOMAIN_START_PAUSED.rawValue) : 0) else {
            throw PodvisorError(.internalError, "libvirt refused to start the domain: \(lastLibvirtError())")
        }
        return LibvirtDomain(domain, connection: self)
    }

    public func lookupDomain(name: String) -> LibvirtDomain? {
        virDomainLookupByName(handle, name).map { LibvirtDomain($0, connection: self) }
    }

    /// Every running domain (transient domains exist only while running).
    public func domains() throws(PodvisorError) -> [LibvirtDomain] {
        var list: UnsafeMutablePointer<virDomainPtr?>?
        let count = virConnectListAllDomains(handle, &list, 0)
        guard count >= 0, let list else { throw PodvisorError(.unavailable, "cannot list domains: \(lastLibvirtError())") }
        defer { free(list) }
        return (0..<Int(count)).compactMap { list[$0].map { LibvirtDomain($0, connection: self) } }
    }

    /// Calls `observer` on libvirt's event thread for each lifecycle event of the named domain.
    public func observeLifecycle(domain name: String, _ observer: @escaping @Sendable (DomainLifecycleEvent) -> Void) {
        dispatcher.observe(domain: name, observer)
    }

    public func stopObservingLifecycle(domain name: String) {
        dispatcher.forget(domain: name)
    }
}

/// One libvirt domain handle.
public final class LibvirtDomain: @unchecked Sendable {
    let handle: virDomainPtr
    public let connection: LibvirtConnection

    init(_ handle: virDomainPtr, connection: LibvirtConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit { virDomainFree(handle) }

    public var name: String { virDomainGetName(handle).map { String(cString: $0) } ?? "" }

    public var isActive: Bool { virDomainIsActive(handle) == 1 }

    /// The live XML, including what libvirt filled in (e.g. the automatically chosen vsock CID).
    public func liveXML() throws(PodvisorError) -> String {
        guard let raw = virDomainGetXMLDesc(handle, 0) else {
            throw PodvisorError(.unavailable, "cannot read domain \(name): \(lastLibvirtError())")
        }
        defer { free(raw) }
        return String(cString: raw)
    }

    public func resume() throws(PodvisorError) {
        guard virDomainResume(handle) == 0 else {
            throw PodvisorError(.internalError, "cannot resume domain \(name): \(lastLibvirtError())")
        }
    }

    /// The running domain's CPU weight (its cgroup's cpu.shares, or cpu.weight under cgroup v2).
    public func setCPUShares(_ shares: Int) throws(PodvisorError) {
        var parameters: virTypedParameterPtr?
        var count: Int32 = 0, capacity: Int32 = 0
        defer { virTypedParamsFree(parameters, count) }
        guard virTypedParamsAddULLong(&parameters, &count, &capacity, VIR_DOMAIN_SCHEDULER_CPU_SHARES, UInt64(shares)) == 0,
            virDomainSetSchedulerParametersFlags(handle, parameters, count, UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)) == 0
        else {
            throw PodvisorError(.internalError, "cannot set the CPU shares of domain \(name): \(lastLibvirtError())")
        }
    }

    /// Hard power-off. Destroying a domain that is already gone is not an error.
    public func destroy() throws(PodvisorError) {
        guard virDomainDestroy(handle) == 0 else {
            if !isActive { return }
            throw PodvisorError(.internalError, "cannot destroy domain \(name): \(lastLibvirtError())")
        }
    }
}
