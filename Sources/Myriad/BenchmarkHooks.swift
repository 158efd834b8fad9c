import CLibURing

/// Entry points for `bench/`'s microbenchmarks into internal parts of the engine, so they
/// measure the engine's own code paths (not copies). Not API: `@_spi(Benchmarks)`.
@_spi(Benchmarks)
public final class SlabBenchmark {
    private let slab: ConnectionSlab
    private let slots: UnsafeMutablePointer<UInt32>

    public init(capacity: Int) throws {
        slab = try ConnectionSlab(capacity: UInt32(capacity))
        slots = .allocate(capacity: capacity)
    }

    deinit { slots.deallocate() }

    /// Allocates `count` connections, then releases them all; returns a checksum.
    public func allocateAndRelease(_ count: Int) -> Int {
        var checksum = 0
        var allocated = 0
        while allocated < count, let slot = slab.allocate() {
            let connection = slab[slot]
            connection.pointee.handle = Int32(truncatingIfNeeded: slot)
            connection.pointee.state = .open
            checksum &+= Int(connection.pointee.generation)
            slots[allocated] = slot
            allocated += 1
        }
        for index in 0..<allocated {
            let slot = slots[index]
            slab[slot].pointee.state = .closed
            slab.release(slot)
        }
        return checksum
    }
}

/// The same per-connection fields as a `final class` per connection: what the slab replaces.
@_spi(Benchmarks)
public final class ConnectionObject {
    public var generation: UInt64 = 0
    public var handle: Int32 = -1
    public var state: UInt8 = 0
    public var inFlight: UInt16 = 0
    public var lastInboundTick: UInt32 = 0
    public var timerNext: ConnectionObject?
    public var timerPrevious: ConnectionObject?
    public var deadline: UInt64 = 0
    public var decoderState = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    public var buffers = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    public init(handle: Int32) { self.handle = handle }
}

/// A provided buffer ring on a real ring, to time `recycle` (what every receive completion costs).
@_spi(Benchmarks)
public final class BufferRingBenchmark {
    private let ring: Ring
    private let buffers: BufferRing

    public init(count: UInt32 = 1024, sizeBytes: UInt32 = 4096) throws {
        ring = try Ring(entries: 8, completionEntries: 16, flags: 0)
        buffers = try BufferRing(ring: ring, groupID: 0, count: count, sizeBytes: sizeBytes)
    }

    /// Gives `count` buffers back to the kernel, as the worker does after each receive.
    public func recycle(_ count: Int) {
        let mask = Int(buffers.count) - 1
        for index in 0..<count { buffers.recycle(UInt16(truncatingIfNeeded: index & mask)) }
    }
}
