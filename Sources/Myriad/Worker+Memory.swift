import CLibURing
import Glibc

/// Per-worker memory follows the live load (issue 15). Once a second the worker gives back
/// what the second before did not use: pool buffers that sat free the whole interval (to
/// malloc, then malloc's free pages to the kernel), receive buffers deep in a buffer ring's
/// free stack after its posting target has come down (and, once settled, every written one, posted or not),
/// the side table's pages once no connection has needed an entry for a second, the send
/// segment arena's growth once no segment is in use, and the shared permessage-deflate streams'
/// zlib memory after two seconds without a compressed message. Each step has its own hysteresis (a low-water
/// mark, two quiet seconds per halving of a ring's target, two empty checks), so a busy worker keeps what it uses. What stays
/// is reported as gauges: pool_free_bytes, receive_buffer_bytes, side_table_bytes.
extension Worker {
    /// Trims when a second has passed since the last trim.
    @inline(__always)
    func trimMemoryIfDue() {
        guard core.nowTick >= nextTrimTick else { return }
        nextTrimTick = core.nowTick + trimIntervalTicks
        trimMemory()
    }

    func trimMemory() {
        let page = MemoryTrim.pageBytes
        let pooled = core.pool.trim()
        // zlib's shared streams are 64 KiB pieces, under malloc's mmap threshold: freed, they
        // stay in the arena like the pool's buffers.
        let zlib = core.compression?.trimIfIdle() ?? 0
        // free() keeps small chunks in malloc's bins: after a burst's worth, hand malloc's free
        // pages back too (it walks the arenas, so only then).
        if pooled + zlib >= MemoryTrim.mallocTrimThresholdBytes { malloc_trim(0) }
        let receive = backend.trimMemory(pageBytes: page)
        let side = sides.trimIfIdle(pageBytes: page)
        let segments = core.segments.shrinkIfEmpty()
        core.counters.add(.memoryReturnedBytes, pooled + receive + side + segments + zlib)
        core.counters.set(.poolFreeBytes, core.pool.freeBytes)
        core.counters.set(.receiveBufferBytes, backend.receiveBufferBytes)
        core.counters.set(.sideTableBytes, sides.touchedBytes)
    }

    /// Whether a trim would give something back without traffic: the loop then wakes for the
    /// next one (an idle worker otherwise sleeps until its next timer, which may be never).
    var holdsMemoryToTrim: Bool {
        core.pool.holdsMoreThanItKeeps || (sides.touchedBytes > 0 && sides.inUse == 0) || backend.holdsMemoryToTrim
            || core.segments.canShrink || (core.compression?.shared.holdsStreams ?? false)
    }
}

/// The trim's constants.
enum MemoryTrim {
    static let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
    /// Pool bytes freed in one trim past which malloc_trim runs.
    static let mallocTrimThresholdBytes = 256 << 10
}
