import CZlib
import Glibc

/// Counts the heap memory zlib allocates for the streams it is given to (`zalloc`/`zfree`),
/// so the cost of a stream is measured, not estimated: a dedicated connection's deflate and
/// inflate pair is what the memory budget pays for.
///
/// zlib allocates when a stream is initialised (the deflate window, hash chains and pending
/// buffer; the inflate state) and once more lazily (the inflate window, on the first output),
/// never per message, so counting costs nothing on the hot path. One meter per worker thread:
/// it is not synchronised.
public final class ZlibMemoryMeter {
    /// Bytes zlib holds now (its requests, not malloc's rounding).
    public private(set) var liveBytes = 0
    /// Most bytes held at once.
    public private(set) var peakBytes = 0
    /// Allocations made and freed so far.
    public private(set) var allocations = 0
    public private(set) var frees = 0

    public init() {}

    /// Each block carries its size in a 16-byte header (keeping malloc's 16-byte alignment)
    /// so `zfree` can subtract it.
    static let headerBytes = 16

    fileprivate func allocated(_ bytes: Int) {
        liveBytes += bytes
        allocations += 1
        if liveBytes > peakBytes { peakBytes = liveBytes }
    }

    fileprivate func freed(_ bytes: Int) {
        liveBytes -= bytes
        frees += 1
        assert(liveBytes >= 0)
    }

    /// Points `stream`'s allocator at `meter` (or leaves zlib's default malloc/free for nil).
    static func install(_ meter: ZlibMemoryMeter?, on stream: UnsafeMutablePointer<z_stream>) {
        guard let meter else { return }
        stream.pointee.opaque = Unmanaged.passUnretained(meter).toOpaque()
        stream.pointee.zalloc = { opaque, items, size in
            let meter = Unmanaged<ZlibMemoryMeter>.fromOpaque(opaque!).takeUnretainedValue()
            let (bytes, overflow) = Int(items).multipliedReportingOverflow(by: Int(size))
            guard !overflow, let block = malloc(bytes + ZlibMemoryMeter.headerBytes) else { return nil }
            block.storeBytes(of: bytes, as: Int.self)
            meter.allocated(bytes)
            return block + ZlibMemoryMeter.headerBytes
        }
        stream.pointee.zfree = { opaque, address in
            guard let address else { return }
            let meter = Unmanaged<ZlibMemoryMeter>.fromOpaque(opaque!).takeUnretainedValue()
            let block = address - ZlibMemoryMeter.headerBytes
            meter.freed(block.load(as: Int.self))
            free(block)
        }
    }
}
