import CLibURing
import Glibc

/// A provided buffer ring (kernel 5.19+): receive memory shared by every connection of a
/// worker. The kernel picks a buffer when data arrives, so an idle connection holds none.
///
/// liburing 2.3 has no `io_uring_setup_buf_ring`, so the ring of buffer descriptors and the
/// buffers are mapped here and registered with `io_uring_register_buf_ring`. Both mappings
/// are `MAP_NORESERVE`: pages become resident when the kernel first writes them.
///
/// Two ways to give buffers back. `recycle` posts a buffer to the kernel at once (the load
/// generator's way). The engine posts on demand instead (`release`, `consumed`, `topUp`):
/// only `postTarget` buffers sit in the ring, taken from a LIFO stack of free buffers, so the
/// same few warm buffers serve an idle or lightly loaded worker and RSS follows the peak burst,
/// not `count` (the ring is FIFO: posting everything would cycle through, and fault in, every
/// buffer). When a burst empties the ring (`-ENOBUFS`), `grow` doubles the target up to `count`.
///
/// Invariant: a buffer is in the ring (the kernel may pick it), on the free stack, or held by
/// exactly one completion being processed, and is given back before the next completion is
/// handled, so a worker never holds more than one.
package struct BufferRing: ~Copyable {
    package let groupID: UInt16
    package let count: UInt32
    package let sizeBytes: UInt32
    package let descriptors: UnsafeMutablePointer<io_uring_buf_ring>
    package let memory: UnsafeMutableRawPointer
    package let mask: Int32
    /// Free buffers not posted to the kernel (top = most recently used).
    private let freeStack: UnsafeMutablePointer<UInt16>
    /// Posting state, by pointer so the ring can be a `let`: free stack depth, buffers in the
    /// ring, buffers wanted in the ring.
    private let posting: UnsafeMutablePointer<(free: Int32, posted: Int32, target: Int32)>
    /// Buffers written since their pages were last given back (one bit each), and scratch bits
    /// for `trim` (buffers deep in the free stack).
    private let touched: UnsafeMutablePointer<UInt64>
    private let deep: UnsafeMutablePointer<UInt64>
    /// `trim`'s state: buffers marked in `touched`, the posting target's floor (the initial
    /// target), seconds since the ring last ran dry, whether it ran dry since the last trim.
    private let trimming: UnsafeMutablePointer<(touchedCount: Int32, floor: Int32, quietSeconds: Int32, ranDry: Bool)>

    /// Buffers currently posted to the kernel.
    package var postedCount: Int { Int(posting.pointee.posted) }
    /// How many buffers the engine keeps posted (grows on -ENOBUFS).
    package var postTarget: Int { Int(posting.pointee.target) }

    /// Registers `count` buffers of `sizeBytes`. With `initiallyPosted` nil every buffer is
    /// posted now (and given back with `recycle`); otherwise that many are, and the rest wait on
    /// the free stack for `topUp`.
    package init(
        ring: borrowing Ring, groupID: UInt16, count: UInt32, sizeBytes: UInt32, initiallyPosted: UInt32? = nil
    ) throws(SystemError) {
        precondition(count > 0 && count <= 32768 && count & (count - 1) == 0, "buffer count must be a power of two <= 32768")
        precondition(sizeBytes > 0)
        let descriptorBytes = Int(count) * MemoryLayout<io_uring_buf>.stride
        let memoryBytes = Int(count) * Int(sizeBytes)
        guard let descriptors = mmap(nil, descriptorBytes, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), descriptors != MAP_FAILED else {
            throw SystemError("mmap(buffer ring descriptors)", errno: errno)
        }
        guard let memory = mmap(nil, memoryBytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), memory != MAP_FAILED else {
            let saved = errno
            munmap(descriptors, descriptorBytes)
            throw SystemError("mmap(receive buffers)", errno: saved)
        }
        var registration = io_uring_buf_reg()
        registration.ring_addr = UInt64(UInt(bitPattern: descriptors))
        registration.ring_entries = count
        registration.bgid = groupID
        let result = io_uring_register_buf_ring(ring.pointer, &registration, 0)
        guard result == 0 else {
            munmap(descriptors, descriptorBytes)
            munmap(memory, memoryBytes)
            throw SystemError("io_uring_register_buf_ring", errno: -result)
        }
        self.groupID = groupID
        self.count = count
        self.sizeBytes = sizeBytes
        self.descriptors = descriptors.assumingMemoryBound(to: io_uring_buf_ring.self)
        self.memory = memory
        self.mask = io_uring_buf_ring_mask(count)
        freeStack = .allocate(capacity: Int(count))
        posting = .allocate(capacity: 1)
        let words = (Int(count) + 63) / 64
        touched = .allocate(capacity: words)
        touched.initialize(repeating: 0, count: words)
        deep = .allocate(capacity: words)
        deep.initialize(repeating: 0, count: words)
        trimming = .allocate(capacity: 1)
        trimming.initialize(to: (0, Int32(min(max(initiallyPosted ?? count, 1), count)), 0, false))
        io_uring_buf_ring_init(self.descriptors)
        if let initiallyPosted {
            // Buffer 0 on top: the first buffers used are the first in memory.
            for index in 0..<Int(count) { freeStack[index] = UInt16(Int(count) - 1 - index) }
            posting.initialize(to: (Int32(count), 0, Int32(min(max(initiallyPosted, 1), count))))
            topUp()
        } else {
            for bufferID in 0..<count {
                io_uring_buf_ring_add(self.descriptors, address(of: UInt16(bufferID)), sizeBytes,
                                      UInt16(bufferID), mask, Int32(bufferID))
            }
            io_uring_buf_ring_advance(self.descriptors, Int32(count))
            posting.initialize(to: (0, Int32(count), Int32(count)))
        }
    }

    deinit {
        freeStack.deallocate()
        posting.deallocate()
        touched.deallocate()
        deep.deallocate()
        trimming.deallocate()
        munmap(UnsafeMutableRawPointer(descriptors), Int(count) * MemoryLayout<io_uring_buf>.stride)
        munmap(memory, Int(count) * Int(sizeBytes))
    }

    @inline(__always)
    package func address(of bufferID: UInt16) -> UnsafeMutableRawPointer {
        assert(UInt32(bufferID) < count)
        return memory + Int(bufferID) * Int(sizeBytes)
    }

    /// The bytes a receive completion delivered into buffer `bufferID`.
    @inline(__always)
    package func bytes(of bufferID: UInt16, count byteCount: Int32) -> UnsafeMutableRawBufferPointer {
        precondition(byteCount >= 0 && UInt32(byteCount) <= sizeBytes, "receive larger than its buffer")
        return UnsafeMutableRawBufferPointer(start: address(of: bufferID), count: Int(byteCount))
    }

    /// Gives buffer `bufferID` back to the kernel.
    @inline(__always)
    package func recycle(_ bufferID: UInt16) {
        io_uring_buf_ring_add(descriptors, address(of: bufferID), sizeBytes, bufferID, mask, 0)
        io_uring_buf_ring_advance(descriptors, 1)
    }

    /// The kernel took a posted buffer (a receive completion carried IORING_CQE_F_BUFFER).
    @inline(__always)
    package func consumed() {
        assert(posting.pointee.posted > 0)
        posting.pointee.posted -= 1
    }

    /// Puts a buffer the worker is done with on the free stack (posted again by `topUp`).
    @inline(__always)
    package func release(_ bufferID: UInt16) {
        assert(posting.pointee.free < Int32(count))
        freeStack[Int(posting.pointee.free)] = bufferID
        posting.pointee.free += 1
        let word = Int(bufferID) >> 6, bit = UInt64(1) << UInt64(bufferID & 63)
        if touched[word] & bit == 0 {
            touched[word] |= bit
            trimming.pointee.touchedCount += 1
        }
    }

    /// Posts free buffers, most recently used first, until `postTarget` are in the ring.
    package func topUp() {
        var added: Int32 = 0
        while posting.pointee.posted + added < posting.pointee.target && posting.pointee.free > 0 {
            posting.pointee.free -= 1
            let bufferID = freeStack[Int(posting.pointee.free)]
            io_uring_buf_ring_add(descriptors, address(of: bufferID), sizeBytes, bufferID, mask, added)
            added += 1
        }
        if added > 0 {
            io_uring_buf_ring_advance(descriptors, added)
            posting.pointee.posted += added
        }
    }

    /// The ring ran dry under a burst: keep twice as many buffers posted (up to `count`).
    package func grow() {
        posting.pointee.target = min(Int32(count), posting.pointee.target * 2)
        trimming.pointee.ranDry = true
    }

    // MARK: - Giving memory back

    /// Receive memory a burst wrote, at most: buffers written since their pages were last
    /// given back.
    package var writtenBytes: Int { Int(trimming.pointee.touchedCount) * Int(sizeBytes) }

    /// Whether later `trim`s will give something back without traffic: the posting target is
    /// above its floor, or (`postedToo`) a buffer was written since its pages went back.
    package func holdsMemoryToTrim(postedToo: Bool) -> Bool {
        posting.pointee.target > trimming.pointee.floor || (postedToo && trimming.pointee.touchedCount > 0)
    }

    /// Called once a second by the worker, outside completion handling (no buffer is held).
    /// The posting target follows the load down slowly: halved after `quietSecondsBeforeShrink`
    /// seconds without the ring running dry, never below its initial value, so a busy worker
    /// keeps its buffers and a finished burst stops cycling through them. Then the pages of
    /// buffers that sit deep in the free stack (below the `target` most recently used, which
    /// `topUp` posts next) go back to the kernel (`MADV_DONTNEED`): the kernel has none of them
    /// and the next write into one faults in a zero page.
    ///
    /// Buffers posted in the ring stay there until traffic takes them, so an idle worker would
    /// keep a burst's worth. With `postedToo` and once the target is back at its floor and
    /// quiet, every written buffer's pages go back: the posted ones (the kernel's next write
    /// into one faults in a zero page) and the free stack's most recently used too, which a
    /// quiet ring does not need (light traffic cycles through the posted buffers only: each is
    /// posted again as soon as it is released). Keeping those `target` free buffers left a
    /// burst's last 64 buffers of every ring resident for good: 13.5 MiB at a million
    /// connections over 54 rings (issue 15). The caller vouches that the kernel is not writing and has not
    /// written any of them unseen: the ring defers task work (the kernel fills a provided
    /// buffer only inside this thread's own `io_uring_enter`), its CQ and overflow list are
    /// empty (no filled buffer awaits its completion) and no SQE waits to be submitted.
    ///
    /// Pages are given back only where a page holds whole buffers or a buffer whole pages
    /// (sizes that are multiples or divisors of the page); other sizes keep their pages.
    /// Returns the bytes given back, and whether a later call will lower the target further.
    package func trim(pageBytes: Int, quietSecondsBeforeShrink: Int32 = 2, postedToo: Bool = false)
        -> (returnedBytes: Int, more: Bool)
    {
        assert(posting.pointee.free + posting.pointee.posted == Int32(count), "trim while a buffer is held")
        if trimming.pointee.ranDry {
            trimming.pointee.ranDry = false
            trimming.pointee.quietSeconds = 0
        } else {
            trimming.pointee.quietSeconds += 1
            if trimming.pointee.quietSeconds >= quietSecondsBeforeShrink && posting.pointee.target > trimming.pointee.floor {
                posting.pointee.target = max(trimming.pointee.floor, posting.pointee.target / 2)
                trimming.pointee.quietSeconds = 0
            }
        }
        let more = posting.pointee.target > trimming.pointee.floor
        let settled = postedToo && !more && trimming.pointee.quietSeconds >= quietSecondsBeforeShrink
        let depth = Int(posting.pointee.free) - Int(posting.pointee.target)
        let size = Int(sizeBytes)
        guard depth > 0 || settled, trimming.pointee.touchedCount > 0,
              size % pageBytes == 0 || pageBytes % size == 0 else { return (0, more) }
        let words = (Int(count) + 63) / 64
        if settled {
            deep.update(repeating: ~0, count: words)
        } else {
            deep.update(repeating: 0, count: words)
            for index in 0..<depth {
                let bufferID = Int(freeStack[index])
                deep[bufferID >> 6] |= UInt64(1) << UInt64(bufferID & 63)
            }
        }
        // A unit is one buffer of whole pages, or one page of whole buffers.
        let perUnit = size >= pageBytes ? 1 : pageBytes / size
        let unitBytes = perUnit * size
        guard perUnit <= Int(count) else { return (0, more) }
        func isSet(_ bits: UnsafeMutablePointer<UInt64>, _ index: Int) -> Bool { bits[index >> 6] & (UInt64(1) << UInt64(index & 63)) != 0 }
        var returned = 0
        var runStart = -1
        func flush(_ end: Int) {
            guard runStart >= 0 else { return }
            madvise(memory + runStart * unitBytes, (end - runStart) * unitBytes, MADV_DONTNEED)
            returned += (end - runStart) * unitBytes
            runStart = -1
        }
        for unit in 0..<(Int(count) / perUnit) {
            let first = unit * perUnit
            var allDeep = true, anyTouched = false
            for bufferID in first..<(first + perUnit) {
                if !isSet(deep, bufferID) { allDeep = false; break }
                if isSet(touched, bufferID) { anyTouched = true }
            }
            if allDeep && anyTouched {
                if runStart < 0 { runStart = unit }
                for bufferID in first..<(first + perUnit) where isSet(touched, bufferID) {
                    touched[bufferID >> 6] &= ~(UInt64(1) << UInt64(bufferID & 63))
                    trimming.pointee.touchedCount -= 1
                }
            } else {
                flush(unit)
            }
        }
        flush(Int(count) / perUnit)
        return (returned, more)
    }

    package func unregister(ring: borrowing Ring) {
        _ = io_uring_unregister_buf_ring(ring.pointer, Int32(groupID))
    }
}
