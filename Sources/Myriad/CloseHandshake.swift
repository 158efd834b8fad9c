import WebSocketCodec

/// The close handshake of RFC 6455 section 7 as one end of a connection sees it, for either
/// role: which close frames have gone each way. The server's slot and the load generator's
/// client slot each keep it in two bits of their flags (`ConnectionSlot.closeHandshake`,
/// `ClientConnection.closeHandshake`) and change it only through the transitions below, so
/// the rules are written once for both roles:
///
/// | sent | received | a close frame arrives            | we want to close           | a ping arrives |
/// |------|----------|----------------------------------|----------------------------|----------------|
/// | no   | no       | answer it (same code), now both  | send ours, now sent        | answer it      |
/// | yes  | no       | our handshake is complete        | nothing (one close frame)  | not answered   |
/// | yes  | yes      | a second close frame: ignored    | nothing                    | not answered   |
///
/// (received without sent never lasts: a close frame is answered as it is read.) After its
/// close frame an endpoint sends nothing more (section 5.5.1), so pings go unanswered.
package struct CloseHandshake: Equatable, Sendable {
    /// Our close frame is queued (ours, or our answer to the peer's).
    package private(set) var sent: Bool
    /// The peer's close frame was read.
    package private(set) var received: Bool

    package init(sent: Bool = false, received: Bool = false) {
        assert(sent || !received, "a close frame received is answered at once")
        self.sent = sent
        self.received = received
    }

    /// What the peer's close frame means for the connection.
    package enum Step: Equatable, Sendable {
        /// The peer answered our close frame: the handshake is complete. The server closes
        /// TCP next (section 7.1.1); a client waits for that.
        case completed
        /// The peer started the handshake: queue our close frame now, echoing `code` (nil
        /// for an empty close frame: the peer sent no code, 1005), and send no data after it.
        case answer(code: CloseCode?)
        /// A close frame after the handshake ended: nothing to do.
        case ignored
    }

    /// The peer's close frame with `code` (1005 when it carried none) was read.
    package mutating func receive(code: CloseCode) -> Step {
        if received { return .ignored }
        received = true
        if sent { return .completed }
        sent = true  // the caller queues the answer at once
        return .answer(code: code == .noStatusReceived ? nil : code)
    }

    /// We want to close: true when our close frame should be queued now (once per connection).
    package mutating func start() -> Bool {
        if sent { return false }
        sent = true
        return true
    }

    /// A ping is answered only while our close frame is not yet queued.
    package var answersPings: Bool { !sent }

    /// The code an endpoint reports for the connection's end: the close code exchanged when a
    /// close frame went either way, else 1006 (closed without one, section 7.1.5).
    package func reportedCode(exchanged: CloseCode) -> CloseCode {
        sent || received ? exchanged : .abnormalClosure
    }
}
