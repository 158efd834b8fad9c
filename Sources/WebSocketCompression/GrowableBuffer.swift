import Glibc

/// A malloc'd byte buffer that keeps its capacity between uses: a worker's scratch for
/// compressed payloads or inflated messages, and the simplest `CompressionOutput`.
///
/// Growth is exactly what `freeSpace` asks for (the compression layer asks geometrically
/// growing amounts itself), and never beyond `maxCapacity`: with the inflater's limit as
/// `maxCapacity`, a decompression bomb cannot make the buffer grow past the limit.
public struct GrowableBuffer: ~Copyable, CompressionOutput {
    public private(set) var base: UnsafeMutableRawPointer?
    /// Bytes written, from `base`.
    public private(set) var count = 0
    /// Bytes allocated.
    public private(set) var capacity = 0
    /// Largest capacity this buffer will grow to, in bytes.
    public let maxCapacity: Int

    public init(capacity: Int = 0, maxCapacity: Int = .max) {
        precondition(capacity >= 0 && capacity <= maxCapacity)
        self.maxCapacity = maxCapacity
        if capacity > 0 {
            base = malloc(capacity)
            precondition(base != nil, "malloc(\(capacity)) failed")
            self.capacity = capacity
        }
    }

    deinit { free(base) }

    /// The bytes written.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Empties the buffer, keeping its memory.
    public mutating func removeAll() { count = 0 }

    /// Appends `bytes`, growing as needed; false when that would pass `maxCapacity`.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count > 0 else { return true }
        guard let space = freeSpace(minimumBytes: bytes.count) else { return false }
        space.copyMemory(from: bytes)
        didWrite(bytes.count)
        return true
    }

    public mutating func freeSpace(minimumBytes: Int) -> UnsafeMutableRawBufferPointer? {
        precondition(minimumBytes >= 0)
        if capacity - count < minimumBytes {
            guard minimumBytes <= maxCapacity - count else { return nil }
            let newCapacity = count + minimumBytes
            guard let grown = realloc(base, newCapacity) else { return nil }
            base = grown
            capacity = newCapacity
        }
        return UnsafeMutableRawBufferPointer(start: base.map { $0 + count }, count: capacity - count)
    }

    public mutating func didWrite(_ written: Int) {
        precondition(written >= 0 && written <= capacity - count, "wrote past the free space")
        count += written
    }

    public mutating func discardLast(_ discarded: Int) {
        precondition(discarded >= 0 && discarded <= count)
        count -= discarded
    }
}
