import Glibc

/// A value behind a pthread mutex: the shared state of a client and its thread.
///
/// Not `Synchronization.Mutex`: on Linux its contended path (futex PI inside the
/// uninstrumented libswiftSynchronization) is invisible to ThreadSanitizer, which then
/// reports every contended access as a race and fails `make test-sanitize`. A pthread
/// mutex is intercepted by TSan and costs the same here (short critical sections).
final class NATSLocked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    @inline(__always)
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }
}
