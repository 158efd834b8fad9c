import Glibc
import WebSocketCodec

/// What a connection needs only while its upgrade is being decided, kept beside the slab
/// rather than in every slot: the peer's address (filled by the kernel, asynchronously with
/// io_uring) and, while the application decides later, the `Sec-WebSocket-Accept` value.
struct HandshakeEntry {
    /// Written by the kernel (io_uring's SO_PEERNAME command, or getpeername for epoll).
    var peer = sockaddr_in()
    var peerKnown = false
    /// For a pending upgrade: the accept value the 101 will carry, and the permessage-deflate
    /// agreement reached on the request's offers (nil: none).
    var acceptValue: (UInt64, UInt64, UInt64, UInt32) = (0, 0, 0, 0)
    var deflate: PerMessageDeflateAgreement? = nil
    /// In a free entry, the next free one.
    var nextFree: UInt32 = HandshakeEntry.none
    /// CLOCK_MONOTONIC when the entry was made, which is in the accept completion (the
    /// worker asks for the peer's address at once): the start of the handshake histogram.
    var acceptedNanoseconds: Int64 = 0

    static let none = UInt32.max
}

/// A worker's handshake side table: an arena reserved with `MAP_NORESERVE` for as many
/// entries as the slab has slots, used most recently freed first, so what is resident follows
/// the peak number of concurrent handshakes, not the connections held. Entries never move
/// (the kernel writes peer addresses into them).
final class HandshakeTable {
    let capacity: UInt32
    private let entries: UnsafeMutablePointer<HandshakeEntry>
    private let mappedBytes: Int
    private var highWater: UInt32 = 0
    private var freeHead = HandshakeEntry.none
    private(set) var inUse = 0

    init(capacity: UInt32) throws(SystemError) {
        self.capacity = capacity
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        mappedBytes = (Int(capacity) * MemoryLayout<HandshakeEntry>.stride + page - 1) / page * page
        guard let memory = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), memory != MAP_FAILED else {
            throw SystemError("mmap(handshake table of \(capacity))", errno: errno)
        }
        entries = memory.bindMemory(to: HandshakeEntry.self, capacity: Int(capacity))
    }

    deinit { munmap(UnsafeMutableRawPointer(entries), mappedBytes) }

    @inline(__always)
    subscript(index: UInt32) -> UnsafeMutablePointer<HandshakeEntry> {
        precondition(index < highWater)
        return entries + Int(index)
    }

    /// A fresh entry (there is always one: the table has a slot's worth per connection).
    func allocate() -> UInt32 {
        let index: UInt32
        if freeHead != HandshakeEntry.none {
            index = freeHead
            freeHead = entries[Int(index)].nextFree
        } else {
            precondition(highWater < capacity, "more handshakes than connections")
            index = highWater
            highWater += 1
        }
        (entries + Int(index)).initialize(to: HandshakeEntry(acceptedNanoseconds: monotonicNanoseconds()))
        inUse += 1
        return index
    }

    func free(_ index: UInt32) {
        entries[Int(index)].nextFree = freeHead
        freeHead = index
        inUse -= 1
    }
}
