import Glibc
import WebSocketCodec

/// What a connection needs only while it is busy, kept beside the slab rather than in every
/// slot: during the upgrade (the request parser, the bytes of a request that came in pieces,
/// the peer's address, for a pending upgrade its accept value and compression agreement), and
/// in the middle of a message (the frame decoder's full state, a fragmented message being
/// reassembled, a control frame split across receives). An idle open connection has none: its
/// slot keeps the decoder's resting state (between frames, no message open) in one flag.
struct ConnectionSide {
    /// Written by the kernel (io_uring's SO_PEERNAME command, or getpeername for epoll).
    var peer = sockaddr_in()
    var peerKnown = false
    /// The decoder below is the connection's live one (it is in the middle of a frame or a
    /// fragmented message); otherwise the connection's decoder is at rest.
    var decoderActive = false
    var handshake = HandshakeParser()
    var decoder = FrameDecoder()
    /// A partial upgrade request, or a data message being reassembled.
    var inbound = PooledBuffer()
    /// A ping or close payload split across receives (at most 125 bytes).
    var control = PooledBuffer()
    /// For a pending upgrade: the accept value the 101 will carry, and the permessage-deflate
    /// agreement reached on the request's offers (nil: none).
    var acceptValue: (UInt64, UInt64, UInt64, UInt32) = (0, 0, 0, 0)
    var deflate: PerMessageDeflateAgreement? = nil
    /// CLOCK_MONOTONIC at the accept (set there, with the peer address request): the start of
    /// the handshake histogram.
    var acceptedNanoseconds: Int64 = 0
    /// In a free entry, the next free one.
    var nextFree: UInt32 = ConnectionSide.none

    static let none = UInt32.max

    /// Nothing in it is in use: no bytes held, the decoder at rest.
    var isIdle: Bool { !decoderActive && !inbound.isAllocated && !control.isAllocated }
}

/// A worker's side table: an arena reserved with `MAP_NORESERVE` for as many entries as the
/// slab has slots, used most recently freed first, so what is resident follows the peak number
/// of busy connections (handshakes, messages in pieces), not the connections held. Entries never
/// move (the kernel writes peer addresses into them).
final class ConnectionSideTable {
    let capacity: UInt32
    private let entries: UnsafeMutablePointer<ConnectionSide>
    private let mappedBytes: Int
    private var highWater: UInt32 = 0
    private var freeHead = ConnectionSide.none
    private(set) var inUse = 0
    /// Whether the table was empty at the last `trimIfIdle`.
    private var wasEmpty = false

    /// Bytes of entries used since the table last gave its pages back.
    var touchedBytes: Int { Int(highWater) * MemoryLayout<ConnectionSide>.stride }

    init(capacity: UInt32) throws(SystemError) {
        // Entries are initialised over whatever a freed entry left (or zero pages after a
        // trim) and never deinitialised: nothing in one may need it.
        precondition(_isPOD(ConnectionSide.self), "ConnectionSide must be plain data")
        self.capacity = capacity
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        mappedBytes = (Int(capacity) * MemoryLayout<ConnectionSide>.stride + page - 1) / page * page
        guard let memory = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), memory != MAP_FAILED else {
            throw SystemError("mmap(side table of \(capacity))", errno: errno)
        }
        entries = memory.bindMemory(to: ConnectionSide.self, capacity: Int(capacity))
    }

    deinit { munmap(UnsafeMutableRawPointer(entries), mappedBytes) }

    @inline(__always)
    subscript(index: UInt32) -> UnsafeMutablePointer<ConnectionSide> {
        precondition(index < highWater)
        return entries + Int(index)
    }

    /// A fresh entry (there is always one: the table has one per slab slot).
    func allocate() -> UInt32 {
        let index: UInt32
        if freeHead != ConnectionSide.none {
            index = freeHead
            freeHead = entries[Int(index)].nextFree
        } else {
            precondition(highWater < capacity, "more busy connections than connections")
            index = highWater
            highWater += 1
        }
        (entries + Int(index)).initialize(to: ConnectionSide())
        inUse += 1
        return index
    }

    /// When no entry has been in use at two calls in a row (a second apart: the worker's
    /// trim), gives every touched page back (`MADV_DONTNEED`) and starts again from the first
    /// entry, so the table's resident memory follows the last burst of handshakes down. No
    /// entry is in use, so none holds a buffer or awaits a peer address. Returns the bytes.
    func trimIfIdle(pageBytes: Int) -> Int {
        let empty = inUse == 0
        defer { wasEmpty = empty }
        guard empty, wasEmpty, highWater > 0 else { return 0 }
        let bytes = (Int(highWater) * MemoryLayout<ConnectionSide>.stride + pageBytes - 1) / pageBytes * pageBytes
        madvise(UnsafeMutableRawPointer(entries), min(bytes, mappedBytes), MADV_DONTNEED)
        highWater = 0
        freeHead = ConnectionSide.none
        return bytes
    }

    /// Returns an entry whose buffers were released.
    func free(_ index: UInt32) {
        assert(!entries[Int(index)].inbound.isAllocated && !entries[Int(index)].control.isAllocated,
               "side entry freed holding pooled buffers")
        entries[Int(index)].nextFree = freeHead
        freeHead = index
        inUse -= 1
    }
}
