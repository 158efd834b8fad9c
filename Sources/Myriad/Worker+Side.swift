import WebSocketCodec

/// A connection's side entry (`ConnectionSideTable`): made when the connection first needs more
/// than its slot (at the accept, for the upgrade; later, for a frame or message that comes in
/// pieces) and given back as soon as it is idle again, so an idle open connection is its slot.
///
/// The decoder is the subtle part. An idle connection's decoder is at rest, which a fresh
/// `FrameDecoder` with `acceptsCompressedMessages` = the slot's `.deflate` flag reproduces
/// exactly (`FrameDecoder.isAtRest`). So `frameBytes` decodes into the worker's one scratch
/// decoder unless the entry holds a live one, and afterwards moves a decoder that stopped
/// mid-frame or mid-message into the entry, or lets the entry go once its decoder is at rest.
extension Worker {
    /// The connection's side entry, made on first use.
    @inline(__always)
    func side(_ connection: UnsafeMutablePointer<ConnectionSlot>) -> UnsafeMutablePointer<ConnectionSide> {
        if connection.pointee.side == ConnectionSide.none { connection.pointee.side = sides.allocate() }
        return sides[connection.pointee.side]
    }

    /// The connection's side entry, if it has one.
    @inline(__always)
    func existingSide(_ connection: UnsafeMutablePointer<ConnectionSlot>) -> UnsafeMutablePointer<ConnectionSide>? {
        connection.pointee.side == ConnectionSide.none ? nil : sides[connection.pointee.side]
    }

    /// Gives the entry back when an open connection no longer needs it: the upgrade is over,
    /// no bytes are held, the decoder is at rest, and the kernel is not writing the peer's
    /// address into it.
    func releaseSideIfIdle(_ connection: UnsafeMutablePointer<ConnectionSlot>) {
        let index = connection.pointee.side
        guard index != ConnectionSide.none, connection.pointee.state != .handshaking,
              !connection.pointee.flags.contains(.peerAddressPending), sides[index].pointee.isIdle
        else { return }
        sides.free(index)
        connection.pointee.side = ConnectionSide.none
    }

    /// Nothing more will be read: drop what the entry holds, and the entry itself unless the
    /// kernel may still write the peer's address into it (`peerAddressDone` then drops it).
    func dropSide(_ connection: UnsafeMutablePointer<ConnectionSlot>) {
        let index = connection.pointee.side
        guard index != ConnectionSide.none else { return }
        let entry = sides[index]
        core.pool.release(&entry.pointee.inbound)
        core.pool.release(&entry.pointee.control)
        entry.pointee.decoderActive = false
        guard !connection.pointee.flags.contains(.peerAddressPending) else { return }
        sides.free(index)
        connection.pointee.side = ConnectionSide.none
    }

    /// The decoder `frameBytes` runs for the connection: the entry's live one, or the scratch
    /// decoder set to the resting state the slot implies.
    @inline(__always)
    func decoder(for connection: UnsafeMutablePointer<ConnectionSlot>) -> UnsafeMutablePointer<FrameDecoder> {
        if let entry = existingSide(connection), entry.pointee.decoderActive {
            return (UnsafeMutableRawPointer(entry) + Self.sideDecoderOffset).assumingMemoryBound(to: FrameDecoder.self)
        }
        // frameBytes never runs inside another frameBytes (handlers cannot reach the receive
        // path: what they post is applied by the loop), so one scratch decoder serves all.
        assert(!scratchDecoderBusy, "frameBytes re-entered")
        scratchDecoderBusy = true
        scratchDecoder.pointee = FrameDecoder()
        scratchDecoder.pointee.acceptsCompressedMessages = connection.pointee.flags.contains(.deflate)
        return scratchDecoder
    }

    /// After `frameBytes` on a connection still reading frames: keep a decoder that stopped
    /// mid-frame or mid-message in the entry; let the entry go when all is at rest.
    static var sideDecoderOffset: Int { MemoryLayout<ConnectionSide>.offset(of: \ConnectionSide.decoder)! }

    @inline(__always)
    func settleDecoder(_ connection: UnsafeMutablePointer<ConnectionSlot>, _ decoder: UnsafeMutablePointer<FrameDecoder>) {
        if decoder == scratchDecoder {
            // At rest: an entry made during this receive (a fragmented message that ended in
            // it, a dedicated inflater's output) goes now.
            guard !decoder.pointee.isAtRest else {
                if connection.pointee.side != ConnectionSide.none { releaseSideIfIdle(connection) }
                return
            }
            let entry = side(connection)
            entry.pointee.decoder = decoder.pointee
            entry.pointee.decoderActive = true
        } else if decoder.pointee.isAtRest {
            sides[connection.pointee.side].pointee.decoderActive = false
            releaseSideIfIdle(connection)
        }
    }
}
