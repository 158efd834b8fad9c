import Synchronization
import WebSocketCodec
import WebSocketCompression

/// How the server offers permessage-deflate (MYRIAD_COMPRESSION).
public enum CompressionMode: String, Sendable, CaseIterable {
    /// Refuse it (the extension is not answered): Node ws's and uWebSockets' default.
    case off
    /// No context takeover either way: one deflate and one inflate stream per worker, reset
    /// after each message, so no zlib state per connection, and a broadcast compresses once.
    case shared
    /// Context takeover with windows of at most 11 bits and memLevel 4, for as many
    /// connections as MYRIAD_COMPRESSION_DEDICATED_BUDGET allows; past it, shared.
    case dedicated
}

/// A connection's own zlib streams (dedicated mode, the directions that keep context).
final class DedicatedStreams {
    var deflater: MessageDeflater?
    var inflater: MessageInflater?

    init(deflater: consuming MessageDeflater?, inflater: consuming MessageInflater?) {
        self.deflater = deflater
        self.inflater = inflater
    }
}

/// The bytes a connection's send queue or message buffer lends the compression layer: a
/// `CompressionOutput` over a pooled buffer, so compressed and inflated bytes count against
/// the worker's MYRIAD_BUFFER_BUDGET like every other buffer peers cause.
struct PooledOutput: ~Copyable, CompressionOutput {
    let pool: BufferPool
    var buffer: PooledBuffer
    let budget: PoolBudget

    init(pool: BufferPool, buffer: PooledBuffer = PooledBuffer(), budget: PoolBudget) {
        self.pool = pool
        self.buffer = buffer
        self.budget = budget
    }

    mutating func freeSpace(minimumBytes: Int) -> UnsafeMutableRawBufferPointer? {
        guard let start = pool.reserve(minimumBytes, in: &buffer, budget: budget) else { return nil }
        return UnsafeMutableRawBufferPointer(start: start, count: buffer.capacity - Int(buffer.count))
    }

    mutating func didWrite(_ count: Int) { buffer.count += UInt32(count) }

    mutating func discardLast(_ count: Int) { buffer.count -= UInt32(count) }

    /// Hands the buffer over (the output is empty afterwards).
    mutating func take() -> PooledBuffer {
        let taken = buffer
        buffer = PooledBuffer()
        return taken
    }
}

/// A worker's permessage-deflate: negotiation policy, its shared streams, the connections'
/// dedicated streams within their budget, and a scratch buffer for compressed payloads.
/// zlib runs only here, on the worker that owns the connections.
final class WorkerCompression {
    let mode: CompressionMode
    /// Messages smaller than this are sent uncompressed.
    let thresholdBytes: Int
    /// Bytes zlib may hold for dedicated connections of this worker.
    let dedicatedBudgetBytes: Int
    var shared: SharedCompressionStreams
    /// Compressed payloads are written here first (their size is known only after).
    var scratch = GrowableBuffer(capacity: 4096)
    /// What zlib allocates for dedicated streams (its allocator hooks count it).
    let dedicatedMeter = ZlibMemoryMeter()
    /// What zlib holds for the shared streams (given back when they sit unused: `trimIfIdle`).
    let sharedMeter = ZlibMemoryMeter()
    private var dedicated: [UInt32: DedicatedStreams] = [:]
    let maxMessageSizeBytes: Int
    /// MYRIAD_COMPRESSION_PER_RECIPIENT (benchmarks): a publish is compressed for every
    /// recipient, nothing kept between them.
    let perRecipient: Bool
    /// A dedicated pair at windows of 11 bits and memLevel 4, as measured (31,544 B plus the
    /// two z_stream structs, bench/README.md): what one more connection would take.
    static let dedicatedPairBytes = 32 * 1024

    init?(mode: CompressionMode, thresholdBytes: Int, dedicatedBudgetBytes: Int, maxMessageSizeBytes: Int,
          perRecipient: Bool = false) {
        precondition(mode != .off)
        guard let shared = SharedCompressionStreams(maxMessageSizeBytes: maxMessageSizeBytes, meter: sharedMeter)
        else { return nil }
        self.mode = mode
        self.thresholdBytes = thresholdBytes
        self.dedicatedBudgetBytes = dedicatedBudgetBytes
        self.maxMessageSizeBytes = maxMessageSizeBytes
        self.perRecipient = perRecipient
        self.shared = shared
    }

    /// The worker's once-a-second memory trim: after two quiet seconds the shared streams give
    /// zlib's memory back (about 300 KB a worker once it has compressed), so a worker whose
    /// connections stopped exchanging compressed messages holds none of it. Returns the bytes.
    func trimIfIdle() -> Int {
        let before = sharedMeter.liveBytes
        guard shared.releaseIfIdle() else { return 0 }
        return max(0, before - sharedMeter.liveBytes)
    }

    /// Connections holding dedicated streams now.
    var dedicatedCount: Int { dedicated.count }

    /// The agreement for a request's offers: dedicated while the budget has room for one more
    /// pair, shared otherwise; nil when the client offers nothing acceptable.
    func negotiate(_ offers: ExtensionList) -> PerMessageDeflateAgreement? {
        let roomForDedicated = mode == .dedicated
            && dedicatedMeter.liveBytes + Self.dedicatedPairBytes <= dedicatedBudgetBytes
        return PerMessageDeflateNegotiator.negotiate(offers, policy: roomForDedicated ? .dedicated() : .shared)
    }

    /// Makes the connection's own streams for the directions that keep context; false when
    /// zlib could not allocate them (the connection then cannot keep its agreement).
    func open(slot: UInt32, parameters: DeflateParameters) -> Bool {
        guard parameters.needsConnectionDeflater || parameters.needsConnectionInflater else { return true }
        var deflater: MessageDeflater?
        if parameters.needsConnectionDeflater {
            guard let made = MessageDeflater(connection: parameters, meter: dedicatedMeter) else { return false }
            deflater = consume made
        }
        var inflater: MessageInflater?
        if parameters.needsConnectionInflater {
            guard let made = MessageInflater(connection: parameters, maxMessageSizeBytes: maxMessageSizeBytes,
                                             meter: dedicatedMeter) else { return false }
            inflater = consume made
        }
        dedicated[slot] = DedicatedStreams(deflater: deflater, inflater: inflater)
        return true
    }

    /// Drops the connection's own streams (at close).
    func close(slot: UInt32) {
        dedicated[slot] = nil
    }

    func streams(slot: UInt32) -> DedicatedStreams? { dedicated[slot] }

    /// Compresses a whole message for the connection in `slot` into `scratch`; false when
    /// zlib or memory failed (then send it uncompressed).
    func compress(_ payload: UnsafeRawBufferPointer, slot: UInt32, windowBits: UInt8, ownStreams: Bool) -> Bool {
        scratch.removeAll()
        if ownStreams, let streams = dedicated[slot], streams.deflater != nil {
            return streams.deflater!.compress(payload, isMessageEnd: true, into: &scratch)
        }
        return shared.compress(payload, windowBits: windowBits, into: &scratch)
    }

    /// A message for a connection with its own deflater went out compressed by the shared
    /// one (a publish): its deflater forgets its window, so it never refers back to bytes the
    /// client holds in another order than it thinks.
    func forgetWindow(slot: UInt32) {
        if let streams = dedicated[slot], streams.deflater != nil { streams.deflater!.reset() }
    }
}

/// A publish as it travels to subscribers: the plain frame, encoded once, and the compressed
/// frame built by the first worker that has a subscriber agreed on permessage-deflate, then
/// shared by every other one (a publish compresses once, whichever workers its subscribers
/// are on; only a window size other than the usual 15 bits is compressed per worker).
final class Publication: @unchecked Sendable {
    let plain: SharedFrame
    let opcode: Opcode
    let payloadCount: Int
    /// The 15-bit compressed frame, kept once made. `keptState` guards it: 0 none, 1 being
    /// stored by one worker, 2 stored (read after an acquiring load of 2 only).
    nonisolated(unsafe) private var kept: SharedFrame?
    private let keptState = Atomic<Int>(0)
    /// The compressed variant could not be made (zlib or memory): send plain to everyone.
    private let compressionFailed = Atomic<Bool>(false)

    init(opcode: Opcode, payload: UnsafeRawBufferPointer) {
        plain = SharedFrame.encode(opcode: opcode, payload: payload)
        self.opcode = opcode
        payloadCount = payload.count
    }

    var byteCount: Int { plain.byteCount }

    /// The payload inside the plain frame.
    var payload: UnsafeRawBufferPointer {
        let header = FrameEncoder.headerSize(payloadLength: payloadCount, masked: false)
        return UnsafeRawBufferPointer(rebasing: plain.bytes[header...])
    }

    /// The frame compressed for a window of `windowBits`, made with `compression`'s shared
    /// deflater; the 15-bit one (what nearly every client agrees to) is made once for all
    /// workers and kept. nil when compressing failed: then everyone gets the plain frame.
    func compressedFrame(windowBits: UInt8, using compression: WorkerCompression) -> SharedFrame? {
        let keeps = windowBits == 15 && !compression.perRecipient
        if keeps && keptState.load(ordering: .acquiring) == 2 { return kept }
        if compressionFailed.load(ordering: .relaxed) { return nil }
        compression.scratch.removeAll()
        guard compression.shared.compress(payload, windowBits: windowBits, into: &compression.scratch) else {
            compressionFailed.store(true, ordering: .relaxed)
            return nil
        }
        let bytes = compression.scratch.bytes
        let opcode = self.opcode
        let frame = SharedFrame.make(byteCount: FrameEncoder.frameSize(payloadLength: bytes.count, masked: false)) {
            FrameEncoder.writeFrame(into: $0, opcode: opcode, compressed: true, payload: bytes)
        }
        // Keep it for the other workers, unless another worker is storing its own right now
        // (then both are valid; this worker just uses its own).
        if keeps && keptState.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
            kept = frame
            keptState.store(2, ordering: .releasing)
        }
        return frame
    }
}
