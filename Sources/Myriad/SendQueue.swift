import WebSocketCodec

/// A frame encoded once and sent to many connections, shared by reference: a publish to a
/// topic, or a message handed to another worker. One allocation holds the count and the
/// frame's bytes (header and payload); every connection that queues it holds one retain, and
/// the last send to finish frees it, whichever worker it runs on.
package final class SharedFrame: ManagedBuffer<Int, UInt8>, @unchecked Sendable {
    /// A frame of `byteCount` bytes, filled by `body`.
    static func make(byteCount: Int, _ body: (UnsafeMutableRawPointer) -> Void) -> SharedFrame {
        let frame = unsafeDowncast(SharedFrame.create(minimumCapacity: byteCount) { _ in byteCount }, to: SharedFrame.self)
        frame.withUnsafeMutablePointerToElements { body(UnsafeMutableRawPointer($0)) }
        return frame
    }

    /// An unmasked server frame carrying `payload`.
    static func encode(opcode: Opcode, payload: UnsafeRawBufferPointer) -> SharedFrame {
        let size = FrameEncoder.frameSize(payloadLength: payload.count, masked: false)
        return make(byteCount: size) { destination in
            FrameEncoder.writeFrame(into: destination, opcode: opcode, payload: payload)
        }
    }

    var byteCount: Int { header }

    /// The frame's bytes; valid as long as a reference is held.
    var bytes: UnsafeRawBufferPointer {
        withUnsafeMutablePointerToElements { UnsafeRawBufferPointer(start: $0, count: header) }
    }
}

/// One piece of a connection's send queue: bytes the connection owns (a pooled buffer that
/// frames are appended to while it waits), or a reference to a `SharedFrame`.
///
/// 32 bytes, in the worker's `SendSegmentPool`, linked per connection through `next`.
package struct SendSegment {
    /// The bytes. For a shared frame, `base` and `count` describe the frame and the pooled
    /// fields are unused (the buffer is not the pool's).
    package var buffer = PooledBuffer()
    /// Set for a shared frame: the retain this segment holds.
    package var frame: Unmanaged<SharedFrame>? = nil
    /// Bytes of this segment the kernel has taken so far.
    package var sentBytes: UInt32 = 0
    /// The next segment of the same connection's queue, or `SendSegment.none`.
    package var next: UInt32 = SendSegment.none
    /// In the first segment of a queue only: the queue's last segment and its bytes not yet
    /// sent. Kept here rather than in the connection's slot, which then holds only `sendHead`
    /// (an idle connection has no queue, so these 8 bytes exist only while something waits).
    package var queueTail: UInt32 = SendSegment.none
    package var queuedBytes: UInt32 = 0

    package static let none = UInt32.max

    package init() {}

    package var isShared: Bool { frame != nil }
    package var unsentBytes: Int { Int(buffer.count) - Int(sentBytes) }
}

/// A worker's arena of `SendSegment`s: grows by doubling (indices stay valid, pointers do
/// not survive an allocation), reuses freed segments most recently freed first. Every
/// connection's queue is a singly linked list through it, so a connection with nothing to
/// send holds nothing but two `none` indices.
package final class SendSegmentPool {
    private(set) var segments: UnsafeMutablePointer<SendSegment>
    private(set) var capacity: Int
    private let initialCapacity: Int
    private var freeHead = SendSegment.none
    /// Segments in use (a gauge for the stats line and the tests).
    package private(set) var inUse = 0

    static let defaultCapacity = 256

    package init(initialCapacity: Int = SendSegmentPool.defaultCapacity) {
        self.initialCapacity = initialCapacity
        capacity = initialCapacity
        segments = Self.freshArena(capacity)
        linkAll()
    }

    private static func freshArena(_ capacity: Int) -> UnsafeMutablePointer<SendSegment> {
        let arena = UnsafeMutablePointer<SendSegment>.allocate(capacity: capacity)
        arena.initialize(repeating: SendSegment(), count: capacity)
        return arena
    }

    /// Every segment free, the lowest index first out.
    private func linkAll() {
        freeHead = SendSegment.none
        for index in (0..<capacity).reversed() { link(free: UInt32(index)) }
    }

    deinit {
        segments.deinitialize(count: capacity)
        segments.deallocate()
    }

    private func link(free index: UInt32) {
        segments[Int(index)] = SendSegment()
        segments[Int(index)].next = freeHead
        freeHead = index
    }

    @inline(__always)
    package subscript(index: UInt32) -> UnsafeMutablePointer<SendSegment> {
        assert(Int(index) < capacity)
        return segments + Int(index)
    }

    /// A fresh segment (all fields empty), growing the arena when none is free.
    package func allocate() -> UInt32 {
        if freeHead == SendSegment.none {
            let grown = UnsafeMutablePointer<SendSegment>.allocate(capacity: capacity * 2)
            grown.moveInitialize(from: segments, count: capacity)
            (grown + capacity).initialize(repeating: SendSegment(), count: capacity)
            segments.deallocate()
            segments = grown
            let old = capacity
            capacity *= 2
            for index in (old..<capacity).reversed() { link(free: UInt32(index)) }
        }
        let index = freeHead
        freeHead = segments[Int(index)].next
        segments[Int(index)] = SendSegment()
        inUse += 1
        return index
    }

    /// Bytes of the arena.
    var bytes: Int { capacity * MemoryLayout<SendSegment>.stride }
    /// A burst grew the arena, and no segment is in use now.
    var canShrink: Bool { inUse == 0 && capacity > initialCapacity }

    /// Goes back to the initial capacity when a burst grew the arena and no segment is in use
    /// now (so no index into it is held anywhere): the worker's once-a-second trim. Returns
    /// the bytes given back.
    func shrinkIfEmpty() -> Int {
        guard canShrink else { return 0 }
        let returned = bytes - initialCapacity * MemoryLayout<SendSegment>.stride
        segments.deinitialize(count: capacity)
        segments.deallocate()
        capacity = initialCapacity
        segments = Self.freshArena(capacity)
        linkAll()
        return returned
    }

    /// Returns a segment whose bytes were already released (`SendQueues.releaseSegment`).
    package func free(_ index: UInt32) {
        assert(segments[Int(index)].frame == nil && !segments[Int(index)].buffer.isAllocated, "segment freed holding bytes")
        inUse -= 1
        link(free: index)
    }
}
