import Glibc
import Testing
@_spi(Benchmarks) @testable import Myriad

/// `ConnectionIO`: the I/O rules both roles' slots share (what is in flight, how a receive
/// that ended is classified, a cancel that found nothing, receives parked for buffers).
@Suite struct ConnectionIOTests {
    /// A receive armed, then ended each way: the flag and the count go, and the end is named.
    @Test func aReceiveThatEndedIsClassified() {
        let cases: [(Int32, ConnectionIO.ReceiveEnd)] = [
            (-ENOBUFS, .outOfBuffers(park: true)), (-ECANCELED, .cancelled), (0, .endOfFile),
            (-ECONNRESET, .failed(errno: ECONNRESET)), (-EPIPE, .failed(errno: EPIPE)),
        ]
        for (result, expected) in cases {
            var io = ConnectionIO()
            io.flags.insert(.receiveArmed)
            io.inFlight = 2  // the receive and, say, a send
            #expect(io.receiveEnded(result: result, wantsToRead: true) == expected)
            #expect(!io.flags.contains(.receiveArmed) && io.inFlight == 1)
            #expect(io.flags.contains(.starved) == (result == -ENOBUFS))
        }
        // Out of buffers while already parked, or not wanting to read: not parked again.
        var io = ConnectionIO()
        io.flags = [.receiveArmed, .starved]
        io.inFlight = 1
        #expect(io.receiveEnded(result: -ENOBUFS, wantsToRead: true) == .outOfBuffers(park: false))
        io.flags = [.receiveArmed]
        io.inFlight = 1
        #expect(io.receiveEnded(result: -ENOBUFS, wantsToRead: false) == .outOfBuffers(park: false))
        #expect(!io.flags.contains(.starved) && io.isSettled)
    }

    /// A multishot receive's completions with data keep it armed until the last one.
    @Test func onlyTheLastReceiveCompletionEndsIt() {
        var io = ConnectionIO()
        io.flags.insert(.receiveArmed)
        io.inFlight = 1
        io.received(more: true)
        #expect(io.flags.contains(.receiveArmed) && io.inFlight == 1)
        io.received(more: false)
        #expect(!io.flags.contains(.receiveArmed) && io.inFlight == 0 && io.isSettled)
        #expect(io.needsReceive(wantsToRead: true) && !io.needsReceive(wantsToRead: false))
    }

    /// A cancel that comes back -ENOENT while its target still counts as in flight: the
    /// kernel lost the target's completion, and it is accounted for once. A connect's cancel
    /// (its own tag) is never taken for a receive's, and a cancel that worked changes nothing
    /// but its own count.
    @Test func aCancelThatFoundNothingAccountsForALostCompletion() {
        var io = ConnectionIO()
        io.flags = [.receiveArmed, .sendInFlight, .closeSubmitted]
        io.inFlight = 5  // receive, send, two cancels, close
        #expect(io.operationDone(.cancel, result: -ENOENT) == .receive)
        #expect(!io.flags.contains(.receiveArmed) && io.inFlight == 3)
        #expect(io.operationDone(.cancelSend, result: -ENOENT) == .send)
        #expect(!io.flags.contains(.sendInFlight) && io.inFlight == 1)
        #expect(io.operationDone(.close, result: 0) == .none)
        #expect(io.inFlight == 0 && io.isSettled)

        var connecting = ConnectionIO()
        connecting.flags = [.receiveArmed]
        connecting.inFlight = 2  // the receive armed after the connect, and the connect's cancel
        #expect(connecting.operationDone(.cancelConnect, result: -ENOENT) == .none)
        #expect(connecting.flags.contains(.receiveArmed) && connecting.inFlight == 1)

        var cancelled = ConnectionIO()
        cancelled.flags = [.receiveArmed]
        cancelled.inFlight = 2
        #expect(cancelled.operationDone(.cancel, result: 0) == .none)
        #expect(cancelled.flags.contains(.receiveArmed) && cancelled.inFlight == 1)
    }

    /// Parked receives come back once each, with `.starved` cleared, and the list is empty
    /// after (a slot parked again later comes back at the next pass).
    @Test func starvedReceivesAreRearmedOnce() throws {
        let slab = try ConnectionSlab(capacity: 4)
        var starved = StarvedReceives()
        for _ in 0..<3 {
            let allocated = slab.allocate()
            let slot = try #require(allocated)
            slab[slot].pointee.state = .open
            slab[slot].pointee.io.flags.insert(.starved)
            starved.park(slot)
        }
        var seen: [UInt32] = []
        starved.rearm(in: slab.slots) { slot, connection in
            seen.append(slot)
            #expect(!connection.pointee.io.flags.contains(.starved))
        }
        #expect(seen == [0, 1, 2] && starved.isEmpty)
        slab[1].pointee.io.flags.insert(.starved)
        starved.park(1)
        seen = []
        starved.rearm(in: slab.slots) { slot, _ in seen.append(slot) }
        #expect(seen == [1] && starved.isEmpty)
        starved.rearm(in: slab.slots) { _, _ in Issue.record("nothing is parked") }
    }
}
