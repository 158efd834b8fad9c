import CLibURing
import Glibc

/// Random bytes from getrandom(2), fetched 4 KiB at a time: handshake nonces (16 bytes per
/// connection) and frame mask keys (4 bytes per frame) without a system call each.
struct RandomPool: ~Copyable {
    private let buffer: UnsafeMutableRawPointer
    private let size = 4096
    private var used: Int

    init() {
        buffer = .allocate(byteCount: 4096, alignment: 16)
        used = 4096
    }

    deinit { buffer.deallocate() }

    private mutating func refill() {
        var filled = 0
        while filled < size {
            let result = myriad_getrandom(buffer + filled, UInt(size - filled))
            if result > 0 {
                filled += result
            } else if myriad_errno() != EINTR {
                // getrandom cannot fail once the pool is initialised; keep going, not crash.
                fatalError("getrandom failed: \(errnoName(myriad_errno()))")
            }
        }
        used = 0
    }

    mutating func next64() -> UInt64 {
        if used + 8 > size { refill() }
        let value = buffer.loadUnaligned(fromByteOffset: used, as: UInt64.self)
        used += 8
        return value
    }

    mutating func next32() -> UInt32 {
        if used + 4 > size { refill() }
        let value = buffer.loadUnaligned(fromByteOffset: used, as: UInt32.self)
        used += 4
        return value
    }
}
