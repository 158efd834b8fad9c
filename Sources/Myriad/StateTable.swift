import Glibc

/// The handler's per-connection states of one worker, indexed by slab slot, beside the slab
/// rather than in it: an application that declares no state (`Void`) pays nothing per
/// connection, and one that does pays `MemoryLayout<State>.stride`.
///
/// Reserved up front with `MAP_NORESERVE` (pages become resident as slots are used, as the
/// slab's do). A slot's entry is initialised when its upgrade is accepted and deinitialised
/// exactly once, after `onClose` (the connection's `.stateInitialized` flag says which).
final class StateTable<State> {
    let base: UnsafeMutablePointer<State>
    private let mappedBytes: Int

    init(capacity: UInt32) throws(SystemError) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = max(1, Int(capacity) * MemoryLayout<State>.stride)
        mappedBytes = (bytes + page - 1) / page * page
        guard let memory = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), memory != MAP_FAILED else {
            throw SystemError("mmap(state table of \(capacity) connections)", errno: errno)
        }
        base = memory.bindMemory(to: State.self, capacity: Int(capacity))
    }

    deinit { munmap(UnsafeMutableRawPointer(base), mappedBytes) }

    @inline(__always)
    func initialize(_ slot: UInt32, to state: consuming State) {
        (base + Int(slot)).initialize(to: state)
    }

    @inline(__always)
    func deinitialize(_ slot: UInt32) {
        (base + Int(slot)).deinitialize(count: 1)
    }
}
