/// Where a `MessageDeflater` writes compressed bytes and a `MessageInflater` writes inflated
/// ones: memory the caller owns, so the engine's buffer pool (or a worker's scratch buffer)
/// supplies it and nothing is allocated per message inside the compression layer.
///
/// The written bytes are contiguous (a compressed payload is framed as one piece and an
/// inflated message is delivered as one), so an implementation is a growable buffer: free
/// space is always right after the bytes written so far, and growing may move them.
public protocol CompressionOutput: ~Copyable {
    /// Free space right after the bytes written so far, at least `minimumBytes` long, or nil
    /// when the buffer cannot grow that far (a memory budget, an allocation failure).
    ///
    /// Callers ask for what they can use: the deflater for zlib's bound on the output, the
    /// inflater for no more than the message's remaining allowance. An implementation should
    /// not grow much beyond what is asked, so the inflater's bound on a message's size is
    /// also a bound on the memory it causes to be allocated.
    mutating func freeSpace(minimumBytes: Int) -> UnsafeMutableRawBufferPointer?
    /// Records that the first `count` bytes of the space `freeSpace` returned were written.
    mutating func didWrite(_ count: Int)
    /// Forgets the last `count` bytes written (the deflater removes the 4-byte tail of a
    /// sync flush this way). `count` is at most the bytes written.
    mutating func discardLast(_ count: Int)
}
