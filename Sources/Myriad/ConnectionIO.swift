import Glibc

/// Which of a connection's operations are in the kernel's hands.
package struct ConnectionIOFlags: OptionSet, Sendable {
    package var rawValue: UInt8

    @inlinable
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A receive is armed (multishot or single-shot) and will complete.
    package static let receiveArmed = ConnectionIOFlags(rawValue: 1 << 0)
    /// A send is in flight (one at a time, so bytes leave in order).
    package static let sendInFlight = ConnectionIOFlags(rawValue: 1 << 1)
    /// The receive ended with -ENOBUFS and the connection waits in a `StarvedReceives` list
    /// to be re-armed once buffers are back.
    package static let starved = ConnectionIOFlags(rawValue: 1 << 2)
    /// The socket's close was submitted.
    package static let closeSubmitted = ConnectionIOFlags(rawValue: 1 << 3)
}

/// The I/O half of a connection's life: which operations are in flight, and the rules that
/// keep a slot alive until the last of their completions. Two bytes, the same in the server's
/// `ConnectionSlot` and the load generator's `ClientConnection`, and the same code for both
/// roles (this file): a receive armed, a send submitted, a receive that ended without data
/// (classified here, acted on by the role), a cancel that found nothing, a socket closed with
/// its receive and send cancelled first, a receive parked for lack of buffers.
///
/// Invariant (checked by the simulation at every step): `inFlight` equals the final
/// completions the kernel still owes the connection; a slot is released only when it is 0
/// and the connection is not parked (`isSettled`).
package struct ConnectionIO: Sendable {
    package var flags: ConnectionIOFlags = []
    /// Operations submitted for the connection whose final completion has not arrived (at
    /// most six: connect or peer address, receive, send, two cancels, close).
    package var inFlight: UInt8 = 0

    @inlinable
    package init() {}

    /// Nothing in flight and not parked: the slot may go once its owner is done with it.
    @inlinable
    package var isSettled: Bool { inFlight == 0 && !flags.contains(.starved) }

    /// Whether a connection that `wantsToRead` needs a receive armed.
    @inlinable
    package func needsReceive(wantsToRead: Bool) -> Bool { wantsToRead && !flags.contains(.receiveArmed) }

    /// A receive completion with data; the receive goes on when `more` (multishot), else it
    /// ended and the owner re-arms or closes.
    @inlinable
    package mutating func received(more: Bool) {
        guard !more else { return }
        assert(flags.contains(.receiveArmed) && inFlight > 0)
        flags.remove(.receiveArmed)
        inFlight -= 1
    }

    /// What ended a receive that brought no data.
    package enum ReceiveEnd: Equatable {
        /// -ENOBUFS: the buffer ring ran dry, which is backpressure, not an error. `park`: the
        /// connection was just marked `.starved`; its slot goes into the owner's
        /// `StarvedReceives` (it is already there, or does not want to read, otherwise).
        case outOfBuffers(park: Bool)
        /// -ECANCELED: our own cancel (a close is under way).
        case cancelled
        /// 0: the peer closed its side.
        case endOfFile
        /// -errno: a socket error (ECONNRESET, EPIPE, ETIMEDOUT, ...).
        case failed(errno: Int32)
    }

    /// The receive ended without data (`result` 0 or -errno).
    @inlinable
    package mutating func receiveEnded(result: Int32, wantsToRead: Bool) -> ReceiveEnd {
        assert(flags.contains(.receiveArmed) && inFlight > 0)
        flags.remove(.receiveArmed)
        inFlight -= 1
        switch -result {
        case ENOBUFS:
            guard wantsToRead && !flags.contains(.starved) else { return .outOfBuffers(park: false) }
            flags.insert(.starved)
            return .outOfBuffers(park: true)
        case ECANCELED:
            return .cancelled
        case 0:
            return .endOfFile
        default:
            return .failed(errno: -result)
        }
    }

    /// A send completed (bytes sent or -errno).
    @inlinable
    package mutating func sendCompleted() {
        assert(flags.contains(.sendInFlight) && inFlight > 0)
        flags.remove(.sendInFlight)
        inFlight -= 1
    }

    /// Which operation's completion the kernel lost, found by a cancel that came back -ENOENT.
    package enum LostCompletion { case none, receive, send }

    /// A cancel, a close or another one-shot operation completed. A cancel that found nothing
    /// (-ENOENT) means its target had ended; completions arrive in order, so the target's last
    /// one was handled already, unless the kernel lost it (-EBADR, under memory pressure).
    /// Then it is accounted for here, or the slot would wait for it forever.
    @inlinable
    package mutating func operationDone(_ operation: Operation?, result: Int32) -> LostCompletion {
        assert(inFlight > 0)
        inFlight -= 1
        guard result == -ENOENT else { return .none }
        if operation == .cancel && flags.contains(.receiveArmed) {
            flags.remove(.receiveArmed)
            inFlight -= 1
            return .receive
        }
        if operation == .cancelSend && flags.contains(.sendInFlight) {
            flags.remove(.sendInFlight)
            inFlight -= 1
            return .send
        }
        return .none
    }
}

/// A slot with the shared I/O state: both roles' connection structs.
package protocol IOSlot: SlabSlot {
    var io: ConnectionIO { get set }
}

extension IOSlot {
    @inlinable
    package var operationsInFlight: Int { Int(io.inFlight) }
}

// MARK: - Submitting, the same for both roles

extension IOBackend {
    /// Arms a receive on the connection (`flags.receiveArmed`, counted in flight).
    @inlinable @inline(__always)
    package func armReceive<Slot: IOSlot>(_ connection: UnsafeMutablePointer<Slot>, handle: Int32, slot: UInt32) {
        assert(!connection.pointee.io.flags.contains(.receiveArmed))
        connection.pointee.io.flags.insert(.receiveArmed)
        connection.pointee.io.inFlight += 1
        armReceive(handle: handle, tag: UserData(.receive, slot: slot, generation: connection.pointee.generation))
    }

    /// Sends `bytes`, which must stay valid until the completion (one send at a time).
    @inlinable @inline(__always)
    package func send<Slot: IOSlot>(_ connection: UnsafeMutablePointer<Slot>, handle: Int32, slot: UInt32, bytes: UnsafeRawBufferPointer) {
        assert(!connection.pointee.io.flags.contains(.sendInFlight))
        connection.pointee.io.flags.insert(.sendInFlight)
        connection.pointee.io.inFlight += 1
        send(handle: handle, bytes: bytes, tag: UserData(.send, slot: slot, generation: connection.pointee.generation))
    }

    /// Closes the socket: cancels the armed receive (which would otherwise keep it open) and
    /// the send in flight, then closes the handle. One to three completions follow; the slot
    /// goes back once they are all in (`ConnectionIO.isSettled`).
    @inlinable
    package func closeSocket<Slot: IOSlot>(_ connection: UnsafeMutablePointer<Slot>, handle: Int32, slot: UInt32) {
        precondition(!connection.pointee.io.flags.contains(.closeSubmitted), "socket closed twice")
        connection.pointee.io.flags.insert(.closeSubmitted)
        let generation = connection.pointee.generation
        if connection.pointee.io.flags.contains(.receiveArmed) {
            connection.pointee.io.inFlight += 1
            cancel(UserData(.receive, slot: slot, generation: generation), handle: handle,
                   tag: UserData(.cancel, slot: slot, generation: generation))
        }
        if connection.pointee.io.flags.contains(.sendInFlight) {
            connection.pointee.io.inFlight += 1
            cancel(UserData(.send, slot: slot, generation: generation), handle: handle,
                   tag: UserData(.cancelSend, slot: slot, generation: generation))
        }
        connection.pointee.io.inFlight += 1
        close(handle: handle, tag: UserData(.close, slot: slot, generation: generation))
    }
}

/// Connections whose receive ended with -ENOBUFS (`flags.starved`), re-armed at the end of the
/// completion batch, once the backend has put buffers back. A list on the owner rather than a
/// link in every slot: the path is rare, and the arrays keep their capacity.
package struct StarvedReceives {
    @usableFromInline var parked: [UInt32] = []
    @usableFromInline var beingRearmed: [UInt32] = []

    package init() {}

    @inlinable
    package var isEmpty: Bool { parked.isEmpty }

    /// After `ConnectionIO.receiveEnded` answered `.outOfBuffers(park: true)`.
    @inlinable
    package mutating func park(_ slot: UInt32) { parked.append(slot) }

    /// Clears `.starved` on every parked connection and hands it to `body`, which re-arms its
    /// receive when it still wants one (`ConnectionIO.needsReceive`) or releases the slot if
    /// it is done. Slots parked again meanwhile wait for the next call.
    @inlinable
    package mutating func rearm<Slot: IOSlot>(in slots: UnsafeMutablePointer<Slot>, _ body: (UInt32, UnsafeMutablePointer<Slot>) -> Void) {
        guard !parked.isEmpty else { return }
        swap(&parked, &beingRearmed)
        for slot in beingRearmed {
            let connection = slots + Int(slot)
            assert(connection.pointee.io.flags.contains(.starved))
            connection.pointee.io.flags.remove(.starved)
            body(slot, connection)
        }
        beingRearmed.removeAll(keepingCapacity: true)
    }
}
