#if canImport(Glibc)
import Glibc
#endif

/// Starts a detached POSIX thread. The guest agent has neither Foundation's Thread nor an async runtime
/// it wants to pay for, and blocking reads on a device need a thread of their own anyway.
public func startDetachedThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    // Small stacks: an agent thread per request must not cost 8 MiB of address space each.
    pthread_attr_setstacksize(&attributes, 512 * 1024)
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, &attributes,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, context)
    pthread_attr_destroy(&attributes)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(context).release()
        fatalError("pthread_create failed: \(rc)")
    }
}
