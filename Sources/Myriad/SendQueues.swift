/// A slot with a send queue: both roles' connection structs.
package protocol SendQueueSlot: IOSlot {
    /// The first segment of the connection's queue (the one in flight while
    /// `io.flags` has `.sendInFlight`), or `SendSegment.none`.
    var sendHead: UInt32 { get set }
}

/// The send queues of one thread's connections: segments from `segments`, bytes from `pool`.
/// One implementation for the server's connections (`WorkerCore+SendQueue`, which adds frames,
/// budgets and the slow-consumer rule) and the load generator's (`ClientWorker`, which adds
/// masked frames and its queue bound).
///
/// Owned bytes are appended to the last segment while it waits, so frames queued together leave
/// as one buffer; only the first segment is ever in flight, and the kernel reads it where it
/// lies. The queue's tail and its unsent byte count live in the first segment, so a connection
/// with nothing queued holds only `sendHead` = none.
package struct SendQueues {
    package let segments: SendSegmentPool
    package let pool: BufferPool

    package init(segments: SendSegmentPool, pool: BufferPool) {
        self.segments = segments
        self.pool = pool
    }

    /// The last segment of the connection's queue, or `SendSegment.none`.
    @inlinable @inline(__always)
    package func tail<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>) -> UInt32 {
        let head = connection.pointee.sendHead
        return head == SendSegment.none ? SendSegment.none : segments[head].pointee.queueTail
    }

    /// Bytes queued on the connection and not yet sent.
    @inlinable @inline(__always)
    package func queuedBytes<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>) -> UInt32 {
        let head = connection.pointee.sendHead
        return head == SendSegment.none ? 0 : segments[head].pointee.queuedBytes
    }

    /// The unsent bytes of the first segment: what the next send takes.
    @inlinable @inline(__always)
    package func headBytes<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>) -> UnsafeRawBufferPointer {
        let segment = segments[connection.pointee.sendHead].pointee
        return UnsafeRawBufferPointer(start: segment.buffer.base! + Int(segment.sentBytes), count: segment.unsentBytes)
    }

    /// Room for `byteCount` bytes at the end of the connection's queue: in its last segment
    /// when that holds owned bytes and is not in flight, else in a new segment. Write the
    /// bytes there, then `commit`. nil as `BufferPool.reserve` fails (`pool.lastFailure`).
    @inlinable @inline(__always)
    package func reserve<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>, _ byteCount: Int, budget: PoolBudget)
        -> UnsafeMutableRawPointer?
    {
        let tail = tail(connection)
        if tail != SendSegment.none {
            let segment = segments[tail]
            let tailInFlight = tail == connection.pointee.sendHead && connection.pointee.io.flags.contains(.sendInFlight)
            if !segment.pointee.isShared && !tailInFlight {
                return pool.reserve(byteCount, in: &segment.pointee.buffer, budget: budget)
            }
        }
        guard let buffer = pool.acquire(minimumBytes: byteCount, budget: budget) else { return nil }
        let index = segments.allocate()
        segments[index].pointee.buffer = buffer
        append(index, to: connection)
        return buffer.base!
    }

    /// Counts `byteCount` bytes written where `reserve` said.
    @inlinable @inline(__always)
    package func commit<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>, _ byteCount: Int) {
        let head = segments[connection.pointee.sendHead]
        segments[head.pointee.queueTail].pointee.buffer.count += UInt32(byteCount)
        head.pointee.queuedBytes += UInt32(byteCount)
    }

    /// Links segment `index` (filled, or about to be) at the end of the connection's queue.
    @inlinable @inline(__always)
    package func append<Slot: SendQueueSlot>(_ index: UInt32, to connection: UnsafeMutablePointer<Slot>) {
        let head = connection.pointee.sendHead
        if head == SendSegment.none {
            connection.pointee.sendHead = index
            segments[index].pointee.queueTail = index
            segments[index].pointee.queuedBytes = 0
        } else {
            let first = segments[head]
            segments[first.pointee.queueTail].pointee.next = index
            first.pointee.queueTail = index
        }
    }

    /// `byteCount` bytes of the first segment were sent. True when it still holds unsent bytes
    /// (a short send: send the rest next).
    @inlinable @inline(__always)
    package func sent<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>, byteCount: Int) -> Bool {
        let head = segments[connection.pointee.sendHead]
        head.pointee.sentBytes += UInt32(byteCount)
        head.pointee.queuedBytes -= UInt32(byteCount)
        return head.pointee.unsentBytes > 0
    }

    /// Releases a segment's bytes (its pool buffer, or its reference to a shared frame) and
    /// the segment itself.
    @inlinable
    package func releaseSegment(_ index: UInt32) {
        let segment = segments[index]
        if let frame = segment.pointee.frame {
            segment.pointee.frame = nil
            segment.pointee.buffer = PooledBuffer()
            frame.release()
        } else {
            pool.release(&segment.pointee.buffer)
        }
        segments.free(index)
    }

    /// Drops what the connection has queued. With `keepingHead`, the first segment stays
    /// (a send in flight reads it; it goes when that send completes).
    @inlinable
    package func releaseQueue<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>, keepingHead: Bool) {
        var index = connection.pointee.sendHead
        if keepingHead && index != SendSegment.none {
            let head = segments[index]
            let next = head.pointee.next
            head.pointee.next = SendSegment.none
            head.pointee.queueTail = index
            head.pointee.queuedBytes = UInt32(head.pointee.unsentBytes)
            index = next
        } else {
            connection.pointee.sendHead = SendSegment.none
        }
        while index != SendSegment.none {
            let next = segments[index].pointee.next
            releaseSegment(index)
            index = next
        }
    }

    /// Removes the first segment, fully sent (or abandoned).
    @inlinable
    package func popHead<Slot: SendQueueSlot>(_ connection: UnsafeMutablePointer<Slot>) {
        let head = connection.pointee.sendHead
        assert(head != SendSegment.none)
        let first = segments[head]
        let next = first.pointee.next
        if next != SendSegment.none {
            // The queue's tail and count move to its new first segment.
            segments[next].pointee.queueTail = first.pointee.queueTail
            segments[next].pointee.queuedBytes = first.pointee.queuedBytes - UInt32(first.pointee.unsentBytes)
        }
        releaseSegment(head)
        connection.pointee.sendHead = next
    }
}
