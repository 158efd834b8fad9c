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
}
