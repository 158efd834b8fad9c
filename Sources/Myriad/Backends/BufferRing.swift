import CLibURing
import Glibc

/// A provided buffer ring (kernel 5.19+): receive memory shared by every connection of a
/// worker. The kernel picks a buffer when data arrives, so an idle connection holds none.
///
/// liburing 2.3 has no `io_uring_setup_buf_ring`, so the ring of buffer descriptors and the
/// buffers are mapped here and registered with `io_uring_register_buf_ring`. Both mappings
/// are `MAP_NORESERVE`: pages become resident when the kernel first writes them.
///
/// Invariant: a buffer is either in the ring (the kernel may pick it) or held by exactly
/// one completion being processed, and is put back with `recycle` before the next
/// completion is handled, so a worker never holds more than one.
package struct BufferRing: ~Copyable {
    package let groupID: UInt16
    package let count: UInt32
    package let sizeBytes: UInt32
    package let descriptors: UnsafeMutablePointer<io_uring_buf_ring>
    package let memory: UnsafeMutableRawPointer
    package let mask: Int32

    package init(ring: borrowing Ring, groupID: UInt16, count: UInt32, sizeBytes: UInt32) throws(SystemError) {
        precondition(count > 0 && count <= 32768 && count & (count - 1) == 0, "buffer count must be a power of two <= 32768")
        precondition(sizeBytes > 0)
        let descriptorBytes = Int(count) * MemoryLayout<io_uring_buf>.stride
        let memoryBytes = Int(count) * Int(sizeBytes)
        guard let descriptors = mmap(nil, descriptorBytes, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), descriptors != MAP_FAILED else {
            throw SystemError("mmap(buffer ring descriptors)", errno: errno)
        }
        guard let memory = mmap(nil, memoryBytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), memory != MAP_FAILED else {
            let saved = errno
            munmap(descriptors, descriptorBytes)
            throw SystemError("mmap(receive buffers)", errno: saved)
        }
        var registration = io_uring_buf_reg()
        registration.ring_addr = UInt64(UInt(bitPattern: descriptors))
        registration.ring_entries = count
        registration.bgid = groupID
        let result = io_uring_register_buf_ring(ring.pointer, &registration, 0)
        guard result == 0 else {
            munmap(descriptors, descriptorBytes)
            munmap(memory, memoryBytes)
            throw SystemError("io_uring_register_buf_ring", errno: -result)
        }
        self.groupID = groupID
        self.count = count
        self.sizeBytes = sizeBytes
        self.descriptors = descriptors.assumingMemoryBound(to: io_uring_buf_ring.self)
        self.memory = memory
        self.mask = io_uring_buf_ring_mask(count)
        io_uring_buf_ring_init(self.descriptors)
        for bufferID in 0..<count {
            io_uring_buf_ring_add(self.descriptors, address(of: UInt16(bufferID)), sizeBytes,
                                  UInt16(bufferID), mask, Int32(bufferID))
        }
        io_uring_buf_ring_advance(self.descriptors, Int32(count))
    }

    deinit {
        munmap(UnsafeMutableRawPointer(descriptors), Int(count) * MemoryLayout<io_uring_buf>.stride)
        munmap(memory, Int(count) * Int(sizeBytes))
    }

    @inline(__always)
    package func address(of bufferID: UInt16) -> UnsafeMutableRawPointer {
        assert(UInt32(bufferID) < count)
        return memory + Int(bufferID) * Int(sizeBytes)
    }

    /// The bytes a receive completion delivered into buffer `bufferID`.
    @inline(__always)
    package func bytes(of bufferID: UInt16, count byteCount: Int32) -> UnsafeMutableRawBufferPointer {
        precondition(byteCount >= 0 && UInt32(byteCount) <= sizeBytes, "receive larger than its buffer")
        return UnsafeMutableRawBufferPointer(start: address(of: bufferID), count: Int(byteCount))
    }

    /// Gives buffer `bufferID` back to the kernel.
    @inline(__always)
    package func recycle(_ bufferID: UInt16) {
        io_uring_buf_ring_add(descriptors, address(of: bufferID), sizeBytes, bufferID, mask, 0)
        io_uring_buf_ring_advance(descriptors, 1)
    }

    package func unregister(ring: borrowing Ring) {
        _ = io_uring_unregister_buf_ring(ring.pointer, Int32(groupID))
    }
}
