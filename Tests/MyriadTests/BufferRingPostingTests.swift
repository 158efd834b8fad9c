import Glibc
import Testing
@testable import Myriad

/// The engine's on-demand posting of receive buffers: few posted, most recently used first,
/// more after the ring runs dry.
@Suite struct BufferRingPostingTests {
    @Test func postsOnDemandAndReusesWarmBuffersFirst() throws {
        let ring = try Ring(entries: 8, completionEntries: 16, flags: 0)
        let buffers = try BufferRing(ring: ring, groupID: 3, count: 16, sizeBytes: 256, initiallyPosted: 4)
        defer { buffers.unregister(ring: ring) }
        #expect(buffers.postedCount == 4)
        #expect(buffers.postTarget == 4)
        // The kernel takes two; the worker gives them back; top-up restores the target.
        buffers.consumed()
        buffers.consumed()
        #expect(buffers.postedCount == 2)
        buffers.release(1)
        buffers.release(0)
        buffers.topUp()
        #expect(buffers.postedCount == 4)
        // The ring ran dry: the target doubles, and never passes the count.
        buffers.grow()
        buffers.topUp()
        #expect(buffers.postTarget == 8 && buffers.postedCount == 8)
        for _ in 0..<5 { buffers.grow() }
        buffers.topUp()
        #expect(buffers.postTarget == 16 && buffers.postedCount == 16)
    }

    @Test func postingEverythingUpFrontIsTheLoadGeneratorsMode() throws {
        let ring = try Ring(entries: 8, completionEntries: 16, flags: 0)
        let buffers = try BufferRing(ring: ring, groupID: 4, count: 32, sizeBytes: 256)
        defer { buffers.unregister(ring: ring) }
        #expect(buffers.postedCount == 32)
    }

    /// Issue 15: after a burst the posting target comes down (halved per quiet spell, never
    /// below the initial target) and the pages of buffers deep in the free stack go back to the
    /// kernel: they read as zeros afterwards, the warm ones keep their bytes.
    @Test(arguments: [1, 4])
    func aBurstsBuffersAreGivenBack(buffersPerPage: Int) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let size = page / buffersPerPage
        let ring = try Ring(entries: 8, completionEntries: 16, flags: 0)
        let buffers = try BufferRing(ring: ring, groupID: 5, count: 64, sizeBytes: UInt32(size), initiallyPosted: 4)
        defer { buffers.unregister(ring: ring) }
        for _ in 0..<4 { buffers.grow() }
        buffers.topUp()
        #expect(buffers.postTarget == 64 && buffers.postedCount == 64)
        // The kernel fills all 64 (in posting order: 0 first) and the worker is done with each.
        for bufferID in UInt16(0)..<64 {
            buffers.consumed()
            buffers.address(of: bufferID).storeBytes(of: 0xAB, as: UInt8.self)
            buffers.release(bufferID)
        }
        #expect(buffers.writtenBytes == 64 * size)
        // The ring ran dry in the last second: nothing shrinks yet.
        #expect(buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2) == (0, true))
        #expect(buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2) == (0, true))
        // Two quiet seconds: the target halves and the 32 coldest buffers (0-31) go back.
        #expect(buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2) == (32 * size, true))
        #expect(buffers.postTarget == 32 && buffers.writtenBytes == 32 * size)
        #expect(buffers.address(of: 0).load(as: UInt8.self) == 0)
        #expect(buffers.address(of: 31).load(as: UInt8.self) == 0)
        #expect(buffers.address(of: 32).load(as: UInt8.self) == 0xAB)
        // A burst in between resets the count; then down to the floor (4), 60 buffers back.
        buffers.grow()  // (the target doubles back to 64, as a real burst would)
        for _ in 0..<20 { _ = buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2) }
        #expect(buffers.postTarget == 4)
        #expect(buffers.writtenBytes == 4 * size)
        #expect(buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2) == (0, false))
        #expect(buffers.address(of: 63).load(as: UInt8.self) == 0xAB)
    }

    /// On a ring that defers task work, once the target is back at its floor and quiet, the
    /// buffers still posted in the ring give their pages back too (an idle worker would
    /// otherwise keep a burst's worth in the ring until traffic takes them).
    @Test func postedBuffersAreGivenBackOnceSettled() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let ring = try Ring(entries: 8, completionEntries: 16, flags: 0)
        let buffers = try BufferRing(ring: ring, groupID: 6, count: 64, sizeBytes: UInt32(page), initiallyPosted: 4)
        defer { buffers.unregister(ring: ring) }
        for _ in 0..<4 { buffers.grow() }
        buffers.topUp()
        for bufferID in UInt16(0)..<64 {
            buffers.consumed()
            buffers.address(of: bufferID).storeBytes(of: 0xCD, as: UInt8.self)
            buffers.release(bufferID)
        }
        buffers.topUp()  // every buffer back in the ring, written
        #expect(buffers.postedCount == 64 && buffers.writtenBytes == 64 * page)
        // Without postedToo nothing in the ring is touched, however long it stays quiet.
        for _ in 0..<12 { _ = buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2) }
        #expect(buffers.postTarget == 4 && buffers.writtenBytes == 64 * page)
        // With it, once settled at the floor, the ring's buffers go back too.
        let trimmed = buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2, postedToo: true)
        #expect(trimmed.returnedBytes == 64 * page && !trimmed.more)
        #expect(buffers.writtenBytes == 0)
        #expect(buffers.address(of: 17).load(as: UInt8.self) == 0)
    }

    /// Once settled, the free stack's most recently used buffers go back too: a burst's last
    /// buffers would otherwise stay resident for good while light traffic cycles through the
    /// posted ones only (13.5 MiB at a million connections, issue 15).
    @Test func aSettledRingKeepsNoWrittenFreeBuffer() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let ring = try Ring(entries: 8, completionEntries: 16, flags: 0)
        let buffers = try BufferRing(ring: ring, groupID: 7, count: 64, sizeBytes: UInt32(page), initiallyPosted: 4)
        defer { buffers.unregister(ring: ring) }
        for _ in 0..<4 { buffers.grow() }
        buffers.topUp()
        // A burst takes every buffer; they come back written and wait on the free stack.
        for bufferID in UInt16(0)..<64 {
            buffers.consumed()
            buffers.address(of: bufferID).storeBytes(of: 0xEF, as: UInt8.self)
            buffers.release(bufferID)
        }
        #expect(buffers.postedCount == 0 && buffers.writtenBytes == 64 * page)
        // Quiet: the target comes down to its floor (4) and the deep 60 go back; the 4 most
        // recently used, which `topUp` would post next, stay.
        for _ in 0..<12 { _ = buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2) }
        #expect(buffers.postTarget == 4 && buffers.writtenBytes == 4 * page)
        #expect(buffers.holdsMemoryToTrim(postedToo: true) && !buffers.holdsMemoryToTrim(postedToo: false))
        // Settled: those 4 go back too, and nothing is left to trim.
        let trimmed = buffers.trim(pageBytes: page, quietSecondsBeforeShrink: 2, postedToo: true)
        #expect(trimmed.returnedBytes == 4 * page && !trimmed.more)
        #expect(buffers.writtenBytes == 0 && !buffers.holdsMemoryToTrim(postedToo: true))
        #expect(buffers.address(of: 63).load(as: UInt8.self) == 0)
    }
}
