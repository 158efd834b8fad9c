import CLibURing
import Glibc
import Myriad

/// Random bytes from getrandom(2), fetched 4 KiB at a time: handshake nonces (16 bytes per
/// connection) and frame mask keys (4 bytes per frame) without a system call each. Seeded
/// (the simulation), the bytes come from the simulation's `SimulationRandom` instead, so a
/// run replays exactly.
struct RandomPool: ~Copyable {
    private let buffer: UnsafeMutableRawPointer
    private let size = 4096
    private var used: Int
    /// The simulation's generator when seeded; nil for getrandom.
    private var seeded: SimulationRandom?

    init(seed: UInt64? = nil) {
        buffer = .allocate(byteCount: 4096, alignment: 16)
        used = 4096
        seeded = seed.map { SimulationRandom(seed: $0) }
    }

    deinit { buffer.deallocate() }

    private mutating func refill() {
        if var generator = seeded {
            for offset in stride(from: 0, to: size, by: 8) {
                buffer.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
            }
            seeded = generator
            used = 0
            return
        }
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
