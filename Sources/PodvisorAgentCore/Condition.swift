#if canImport(Glibc)
import Glibc
#endif

/// A mutex-protected value with a condition variable: threads wait for the value to change.
/// (The agent has no Foundation and no Dispatch.)
final class Condition<Value>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var value: Value

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    /// Changes the value and wakes every waiter.
    func update<T, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(&mutex)
        defer {
            pthread_cond_broadcast(&condition)
            pthread_mutex_unlock(&mutex)
        }
        return try body(&value)
    }

    /// Blocks until `body` returns non-nil for the current value.
    func wait<T>(until body: (inout Value) -> T?) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while true {
            if let result = body(&value) { return result }
            pthread_cond_wait(&condition, &mutex)
        }
    }
}
