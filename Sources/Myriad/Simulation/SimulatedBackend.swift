import Glibc

/// One completion waiting in the simulated completion queue.
enum SimulatedCompletion {
    case accepted(Int32)
    case acceptEnded(Int32, retryNow: Bool)
    case received(UserData, handle: Int32, [UInt8], more: Bool)
    case receiveEnded(UserData, Int32)
    case sent(UserData, Int32)
    /// A close or a cancel.
    case done(UserData, Int32)
    case peerAddress(UserData, Int32)
    case connected(UserData, Int32)
}

/// The far end of a simulated connection, scripted: a client (`SimulatedPeer`) when the
/// worker under test is the server, a server (`SimulatedServer`) when it is the client.
package protocol SimulatedRemote: AnyObject {
    /// Its receive window: a send from the worker waits while this many bytes are unread.
    var windowBytes: Int { get }
    /// The connection is established (accepted by the worker, or the worker's connect done).
    func attach(_ socket: SimulatedSocket)
    /// The worker closed its end (the remote reads EOF after what is left).
    func workerClosed()
    /// It never got through: the listener went (server role) or the connect failed.
    func refusedByListener()
    /// What a connect to it does (client role): most are accepted; some refused or left to hang.
    var connectOutcome: SimulatedConnectOutcome { get }
}

/// What a simulated connect comes to.
package enum SimulatedConnectOutcome: Sendable {
    case accepted
    /// ECONNREFUSED.
    case refused
    /// No answer (a SYN dropped): only the worker's deadline ends it.
    case hangs
}

/// One simulated TCP connection: the bytes in each direction and what the server has armed
/// on it. The peer's end is a `SimulatedPeer`.
package final class SimulatedSocket {
    package let handle: Int32
    package let remote: SimulatedRemote
    /// The server role's peer (a `SimulatedPeer` is the only remote of a server run).
    var peer: SimulatedPeer { remote as! SimulatedPeer }
    /// Written by the remote, not yet received by the worker.
    package var toWorker: [UInt8] = []
    /// The peer shut its side: EOF once `toWorker` is received.
    package var peerWriteClosed = false
    /// The peer reset the connection: receives and sends fail.
    package var peerReset = false
    /// Sent by the server, not yet read by the peer, bounded by `windowBytes` (the peer's
    /// receive window: a send waits while it is full).
    package var toPeer: [UInt8] = []
    let windowBytes: Int
    /// The server's close was processed (the peer reads EOF after `toPeer`).
    package var workerClosed = false
    /// The receive armed on it, and whether it is multishot.
    var receive: UserData?
    /// The send in flight.
    var send: (tag: UserData, bytes: [UInt8])?
    /// The connect in flight (client role).
    var connect: UserData?
    /// Virtual times (nanoseconds) of the accept's delivery and of the server's close.
    var acceptedAtNanoseconds: Int64 = -1
    /// Virtual time the worker last received bytes from it.
    package var lastReceivedAtNanoseconds: Int64 = -1
    package var workerClosedAtNanoseconds: Int64 = -1
    /// Client role: when the connect was submitted and when it completed.
    package var connectSubmittedAtNanoseconds: Int64 = -1
    package var connectedAtNanoseconds: Int64 = -1

    init(handle: Int32, remote: SimulatedRemote, windowBytes: Int) {
        self.handle = handle
        self.remote = remote
        self.windowBytes = windowBytes
    }

    /// No receive, send or server close is left to happen on this socket.
    var isFinished: Bool { workerClosed && receive == nil && send == nil && connect == nil }
}

/// An `IOBackend` with no kernel behind it: a scripted model of what io_uring and epoll may
/// do, driven by a `SimulationRandom` and a virtual clock (`Simulation.swift` runs it).
///
/// The model keeps the promises the worker relies on and nothing more: every tagged
/// operation ends with exactly one final completion; completions are delivered in the order
/// the "kernel" produced them (a CQ is FIFO, overflowed entries included), but operations
/// finish whenever the model likes, so completions of different operations come in any
/// order; a cancel finds its target only if the target's final completion was not produced
/// yet. Within those promises it does what the kernel may: bytes in arbitrary pieces, short
/// sends, sends that wait for the peer's window, -ENOBUFS, multishot receives that end at
/// any moment, EOF and resets in the middle of a frame, accept failures, a CQ delivered a
/// few entries at a time (what an overflow looks like from user space), and a clock that
/// jumps to the worker's next deadline when nothing else happens.
package final class SimulatedBackend: IOBackend {
    package static var name: String { "simulated" }

    package let multishotReceive: Bool
    var random: SimulationRandom
    package let receiveBufferBytes: Int
    private let scratch: UnsafeMutableRawBufferPointer

    /// The virtual clock.
    package private(set) var nowNanoseconds: Int64 = 1_000_000_000
    package var clockNanoseconds: Int64 { nowNanoseconds }

    /// Every socket of the run, in the order they were made. Server role: a socket's handle
    /// is its index, never reused, so a stale one is caught. Client role: the worker picks the
    /// handle (its slot's) and reuses it once the socket there is closed.
    package private(set) var sockets: [SimulatedSocket] = []
    /// The socket at each handle in use (client role), as an index into `sockets`.
    private var clientHandles: [Int32: Int] = [:]
    /// Client role: makes the scripted server each new socket connects to.
    package var makeRemote: ((inout SimulationRandom) -> SimulatedRemote)?
    /// Peers that connected and wait in the listen queue.
    private var listenQueue: [SimulatedPeer] = []
    private var acceptArmed = false
    private var completions: [SimulatedCompletion] = []
    private var completionHead = 0
    /// What the worker queued since the last poll (the SQ), applied when it polls.
    private var submissions: [(operation: Submission, handle: Int32)] = []

    /// Final completions still owed to each slot (produced or not), and the generation they
    /// carry: the worker's `inFlight` must always equal this.
    package private(set) var owed: [Int]
    package private(set) var owedGeneration: [UInt32]

    /// Called at every poll, before anything moves: checks invariants, lets peers act,
    /// connects new peers. Set by the simulation.
    package var onPoll: (() -> Void)?
    /// Called when the wait is over (the clock moved), before completions are delivered.
    package var onWake: (() -> Void)?
    /// A defect to have on purpose (`Simulation.Fault`).
    package var fault: Simulation.Fault?

    package private(set) var waitCount = 0
    package var syscallCount: Int { 0 }
    package private(set) var overflowCount = 0
    package var kernelErrorCount: Int { 0 }
    package var lastKernelError: String? { nil }
    package var droppedCompletionCount: Int { 0 }
    package var spilledSubmissionCount: Int { 0 }
    package var ringCount: Int { 0 }
    package var holdsMemoryToTrim: Bool { false }
    package func trimMemory(pageBytes: Int) -> Int { 0 }

    /// What the model counted, for the report.
    package private(set) var shortSends = 0
    package private(set) var noBufferEnds = 0
    package private(set) var acceptFailures = 0
    package private(set) var cancelsThatMissed = 0
    package private(set) var completionsDelivered = 0
    /// Client role: sockets that failed to open, connects refused, connects cancelled.
    package private(set) var socketFailures = 0
    package private(set) var connectsRefused = 0
    package private(set) var connectsCancelled = 0

    private enum Submission {
        case receive(UserData)
        case send(UserData, [UInt8])
        case cancel(target: UserData, tag: UserData)
        case close(UserData)
        case closeUnowned
        case connect(UserData)
    }

    package init(random: SimulationRandom, multishotReceive: Bool, receiveBufferBytes: Int, slots: Int) {
        self.random = random
        self.multishotReceive = multishotReceive
        self.receiveBufferBytes = receiveBufferBytes
        scratch = .allocate(byteCount: receiveBufferBytes, alignment: 16)
        owed = Array(repeating: 0, count: slots)
        owedGeneration = Array(repeating: 0, count: slots)
    }

    deinit { scratch.deallocate() }

    // MARK: - What the peers do

    /// A peer connects: it waits in the listen queue until the worker accepts it.
    func connect(_ peer: SimulatedPeer) { listenQueue.append(peer) }

    func socket(_ handle: Int32) -> SimulatedSocket {
        if makeRemote != nil {
            guard let index = clientHandles[handle] else { preconditionFailure("simulation: operation on unknown handle \(handle)") }
            return sockets[index]
        }
        precondition(handle >= 0 && Int(handle) < sockets.count, "simulation: operation on unknown handle \(handle)")
        return sockets[Int(handle)]
    }

    // MARK: - IOBackend

    package func armAccept() -> Bool {
        // epoll_ctl may refuse the listener; the worker must retry a tick later.
        if random.oneIn(50) { acceptFailures += 1; return false }
        acceptArmed = true
        return true
    }

    package func stopAccepting() {
        acceptArmed = false
        // Connections still in the listen queue are refused when the listener goes.
        for peer in listenQueue { peer.refusedByListener() }
        listenQueue.removeAll()
    }

    package func armReceive(handle: Int32, tag: UserData) {
        owe(tag)
        submissions.append((.receive(tag), handle))
    }

    package func send(handle: Int32, bytes: UnsafeRawBufferPointer, tag: UserData) {
        precondition(bytes.count > 0, "simulation: a send of no bytes")
        owe(tag)
        submissions.append((.send(tag, Array(bytes)), handle))
    }

    package func cancel(_ target: UserData, handle: Int32, tag: UserData) {
        owe(tag)
        submissions.append((.cancel(target: target, tag: tag), handle))
    }

    package func close(handle: Int32, tag: UserData) {
        owe(tag)
        submissions.append((.close(tag), handle))
    }

    package func closeUnowned(handle: Int32) {
        submissions.append((.closeUnowned, handle))
    }

    package func requestPeerAddress(handle: Int32, into address: UnsafeMutablePointer<sockaddr_in>, tag: UserData) -> PeerAddressRequest {
        switch random.below(4) {
        case 0:
            return .unavailable
        case 1:
            // The kernel writes it later (io_uring's SO_PEERNAME command).
            owe(tag)
            address.pointee = Self.peerAddress(handle)
            completions.append(.peerAddress(tag, random.oneIn(5) ? -ENOTCONN : Int32(MemoryLayout<sockaddr_in>.size)))
            return .requested
        default:
            address.pointee = Self.peerAddress(handle)
            return .known
        }
    }

    /// The client role's socket: the handle must be free (its last socket closed); a few
    /// fail to open, as socket() and bind() may (EMFILE, ENOBUFS, EADDRNOTAVAIL).
    package func openClientSocket(handle: Int32, source: UInt32) -> Int32 {
        guard let makeRemote else { preconditionFailure("simulation: a server run opened a client socket") }
        if let index = clientHandles[handle] {
            precondition(sockets[index].workerClosed, "simulation: socket opened at handle \(handle), which holds an open one")
        }
        if random.oneIn(40) {
            socketFailures += 1
            let errors = [EMFILE, ENOBUFS, EADDRNOTAVAIL]
            return -Int32(errors[random.below(errors.count)])
        }
        let remote = makeRemote(&random)
        clientHandles[handle] = sockets.count
        sockets.append(SimulatedSocket(handle: handle, remote: remote, windowBytes: remote.windowBytes))
        return 0
    }

    package func connect(handle: Int32, to address: UnsafePointer<sockaddr_in>, tag: UserData) {
        owe(tag)
        submissions.append((.connect(tag), handle))
    }

    package func submit() { applySubmissions() }

    package func poll<Sink: CompletionSink>(timeoutNanoseconds: Int64?, sink: Sink) {
        waitCount += 1
        onPoll?()
        applySubmissions()
        progress()
        if completionHead == completions.count {
            // Nothing to deliver: time passes, up to the worker's next deadline (never past
            // it, so a deadline is seen in the tick it falls in).
            var step = Int64(random.inRange(1...200)) * 1_000_000
            if let timeoutNanoseconds { step = fault == .oversleep ? timeoutNanoseconds + 30_000_000 : min(step, timeoutNanoseconds) }
            if step > 0 && random.chance(30) {
                // Work finishes partway through the wait and ends it: the worker wakes with
                // completions long after it last read the clock (its deadlines must not be
                // set from that reading).
                nowNanoseconds += Int64(random.inRange(1...Int(step)))
                progress()
            } else {
                nowNanoseconds += step
            }
        } else {
            let step = Int64(random.below(3)) * 1_000_000
            nowNanoseconds += min(step, timeoutNanoseconds ?? step)
        }
        onWake?()
        deliver(to: sink)
    }

    // MARK: - The model

    private func owe(_ tag: UserData) {
        let slot = Int(tag.slot)
        if owed[slot] > 0 {
            precondition(owedGeneration[slot] == tag.generation,
                         "simulation: slot \(slot) submitted an operation for generation \(tag.generation) with \(owed[slot]) still owed to generation \(owedGeneration[slot])")
        }
        owedGeneration[slot] = tag.generation
        owed[slot] += 1
    }

    private func paid(_ tag: UserData) {
        let slot = Int(tag.slot)
        precondition(owed[slot] > 0 && owedGeneration[slot] == tag.generation, "simulation: a completion nobody owed")
        owed[slot] -= 1
    }

    static func peerAddress(_ handle: Int32) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(40_000 + Int(handle) % 20_000).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    /// The kernel takes the SQ in order.
    private func applySubmissions() {
        var index = 0
        while index < submissions.count {
            let (operation, handle) = submissions[index]
            index += 1
            let socket = socket(handle)
            switch operation {
            case .receive(let tag):
                precondition(!socket.workerClosed, "simulation: receive armed on a closed socket")
                precondition(socket.receive == nil, "simulation: two receives armed on one socket")
                socket.receive = tag
            case .send(let tag, let bytes):
                precondition(!socket.workerClosed, "simulation: send on a closed socket")
                precondition(socket.send == nil, "simulation: two sends in flight on one socket")
                socket.send = (tag, bytes)
            case .cancel(let target, let tag):
                precondition(!socket.workerClosed, "simulation: cancel on a closed socket")
                cancel(target, on: socket, tag: tag)
            case .close(let tag):
                closeByServer(socket)
                completions.append(.done(tag, 0))
            case .closeUnowned:
                closeByServer(socket)
            case .connect(let tag):
                precondition(!socket.workerClosed && socket.connect == nil && socket.connectSubmittedAtNanoseconds < 0,
                             "simulation: connect on a closed or connected socket")
                socket.connect = tag
                socket.connectSubmittedAtNanoseconds = nowNanoseconds
            }
        }
        submissions.removeAll(keepingCapacity: true)
    }

    private func cancel(_ target: UserData, on socket: SimulatedSocket, tag: UserData) {
        var found: SimulatedCompletion?
        if let receive = socket.receive, receive == target {
            socket.receive = nil
            found = .receiveEnded(target, -ECANCELED)
        } else if let send = socket.send, send.tag == target {
            socket.send = nil
            found = .sent(target, -ECANCELED)
        } else if let connect = socket.connect, connect == target {
            socket.connect = nil
            connectsCancelled += 1
            found = .connected(target, -ECANCELED)
        }
        guard let found else {
            // Its final completion was produced already (and comes first: the CQ is FIFO).
            cancelsThatMissed += 1
            completions.append(.done(tag, -ENOENT))
            return
        }
        // The cancel's own completion and its target's may come in either order.
        if random.chance(50) {
            completions.append(found)
            completions.append(.done(tag, 0))
        } else {
            completions.append(.done(tag, 0))
            completions.append(found)
        }
    }

    private func closeByServer(_ socket: SimulatedSocket) {
        precondition(!socket.workerClosed, "simulation: socket \(socket.handle) closed twice")
        // The worker cancels before it closes; anything still armed ends with the close.
        if let receive = socket.receive { completions.append(.receiveEnded(receive, -ECANCELED)); socket.receive = nil }
        if let send = socket.send { completions.append(.sent(send.tag, -ECANCELED)); socket.send = nil }
        if let connect = socket.connect { completions.append(.connected(connect, -ECANCELED)); socket.connect = nil }
        socket.workerClosed = true
        socket.workerClosedAtNanoseconds = nowNanoseconds
        socket.remote.workerClosed()
    }

    /// Operations finish: some of them, in random order.
    private func progress() {
        if acceptArmed && !listenQueue.isEmpty && random.chance(70) { acceptOne() }
        guard !sockets.isEmpty else { return }
        // Visit the sockets from a random start, and skip some: their operations finish later.
        let start = random.below(sockets.count)
        for offset in 0..<sockets.count {
            let socket = sockets[(start + offset) % sockets.count]
            guard !socket.workerClosed, random.chance(80) else { continue }
            if socket.connect != nil {
                progressConnect(socket)
                continue
            }
            progressReceive(socket)
            progressSend(socket)
        }
    }

    private func acceptOne() {
        switch random.below(40) {
        case 0:
            // The accept fails and stops (EMFILE, ENFILE, ENOMEM); the worker re-arms later.
            acceptFailures += 1
            acceptArmed = false
            let errors = [EMFILE, ENFILE, ENOMEM]
            completions.append(.acceptEnded(-Int32(errors[random.below(errors.count)]), retryNow: false))
        case 1:
            // The connection was reset before the accept completed: it is consumed, and
            // retrying cannot spin.
            acceptFailures += 1
            acceptArmed = false
            let peer = listenQueue.removeFirst()
            peer.refusedByListener()
            completions.append(.acceptEnded(-ECONNABORTED, retryNow: true))
        default:
            let peer = listenQueue.removeFirst()
            let handle = Int32(sockets.count)
            let socket = SimulatedSocket(handle: handle, remote: peer, windowBytes: peer.windowBytes)
            sockets.append(socket)
            peer.attach(socket)
            completions.append(.accepted(handle))
            if !multishotReceive && random.chance(30) { acceptArmed = false; completions.append(.acceptEnded(0, retryNow: true)) }
        }
    }

    /// A connect ends as its remote says, after a while; a hanging one only by a cancel.
    private func progressConnect(_ socket: SimulatedSocket) {
        guard let tag = socket.connect, random.chance(40) else { return }
        switch socket.remote.connectOutcome {
        case .accepted:
            socket.connect = nil
            socket.connectedAtNanoseconds = nowNanoseconds
            socket.remote.attach(socket)
            completions.append(.connected(tag, 0))
        case .refused:
            socket.connect = nil
            connectsRefused += 1
            socket.remote.refusedByListener()
            completions.append(.connected(tag, -ECONNREFUSED))
        case .hangs:
            break
        }
    }

    private func progressReceive(_ socket: SimulatedSocket) {
        guard let tag = socket.receive else { return }
        if socket.peerReset {
            socket.receive = nil
            completions.append(.receiveEnded(tag, -ECONNRESET))
            return
        }
        if socket.toWorker.isEmpty {
            if socket.peerWriteClosed {
                socket.receive = nil
                completions.append(.receiveEnded(tag, 0))
            }
            return
        }
        if random.oneIn(25) {
            // The provided buffers ran out.
            noBufferEnds += 1
            socket.receive = nil
            completions.append(.receiveEnded(tag, -ENOBUFS))
            return
        }
        // One or several completions, each up to a buffer.
        var pieces = random.inRange(1...3)
        while pieces > 0 && !socket.toWorker.isEmpty {
            pieces -= 1
            let limit = min(socket.toWorker.count, receiveBufferBytes)
            let count = random.chance(50) ? limit : random.inRange(1...limit)
            let bytes = Array(socket.toWorker[..<count])
            socket.toWorker.removeFirst(count)
            // A multishot receive may end after any piece (a CQ overflow ends it too).
            let more = multishotReceive && !random.oneIn(12)
            completions.append(.received(tag, handle: socket.handle, bytes, more: more))
            if !more {
                socket.receive = nil
                return
            }
        }
    }

    private func progressSend(_ socket: SimulatedSocket) {
        guard let (tag, bytes) = socket.send else { return }
        if socket.peerReset {
            socket.send = nil
            completions.append(.sent(tag, random.chance(50) ? -EPIPE : -ECONNRESET))
            return
        }
        let room = socket.windowBytes - socket.toPeer.count
        guard room > 0 else { return }  // the peer's window is full: the send waits
        var count = min(room, bytes.count)
        if count > 1 && random.chance(20) {
            count = random.inRange(1...count)
        }
        if count < bytes.count { shortSends += 1 }
        socket.toPeer.append(contentsOf: bytes[..<count])
        socket.send = nil
        completions.append(.sent(tag, Int32(count)))
    }

    /// Hands the worker part of the CQ (the rest waits, as an overflowed CQ's entries do).
    private func deliver<Sink: CompletionSink>(to sink: Sink) {
        let waiting = completions.count - completionHead
        guard waiting > 0 else { return }
        var count = waiting
        if waiting > 1 && random.chance(25) {
            overflowCount += 1
            count = random.inRange(1...waiting)
        }
        for _ in 0..<count {
            let completion = completions[completionHead]
            completionHead += 1
            completionsDelivered += 1
            switch completion {
            case .accepted(let handle):
                sockets[Int(handle)].acceptedAtNanoseconds = nowNanoseconds
                sink.accepted(handle: handle)
            case .acceptEnded(let result, let retryNow):
                sink.acceptEnded(result: result, retryNow: retryNow)
            case .received(let tag, let handle, let bytes, let more):
                if !more { paid(tag) }
                socket(handle).lastReceivedAtNanoseconds = nowNanoseconds
                bytes.withUnsafeBytes { scratch.copyMemory(from: $0) }
                sink.received(tag, bytes: UnsafeMutableRawBufferPointer(rebasing: scratch[..<bytes.count]), more: more)
            case .receiveEnded(let tag, let result):
                paid(tag)
                sink.receiveEnded(tag, result: result)
            case .sent(let tag, let result):
                paid(tag)
                if fault == .loseCompletion && random.oneIn(10) { continue }
                sink.sent(tag, result: result)
            case .done(let tag, let result):
                paid(tag)
                sink.operationDone(tag, result: result)
            case .peerAddress(let tag, let result):
                paid(tag)
                sink.peerAddressDone(tag, result: result)
            case .connected(let tag, let result):
                paid(tag)
                sink.connected(tag, result: result)
            }
        }
        if completionHead == completions.count {
            completions.removeAll(keepingCapacity: true)
            completionHead = 0
        }
    }

    /// Completions produced and not yet delivered.
    package var undeliveredCompletions: Int { completions.count - completionHead }
}

extension SimulatedBackend {
    /// The model's first check for either role, between two iterations of a worker's loop:
    /// every used slot's `operationsInFlight` equals the final completions the model still
    /// owes it, none is owed to a free or never-used slot or to an older generation (a slot is
    /// never released with work outstanding), and the slab's count matches its slots. A
    /// description of the first break, or nil.
    package func brokenBalance<Slot: SlabSlot>(_ slab: borrowing Slab<Slot>, describe: (UInt32) -> String) -> String? {
        for slot in slab.highWater..<slab.capacity where owed[Int(slot)] != 0 {
            return "slot \(slot) was never used, yet \(owed[Int(slot)]) completion(s) are owed to it"
        }
        var occupied: UInt32 = 0
        for slot in 0..<slab.highWater {
            let entry = slab.slots + Int(slot)
            let owedToSlot = owed[Int(slot)]
            if entry.pointee.isFree {
                if owedToSlot != 0 { return "slot \(slot) is free with \(owedToSlot) completion(s) still owed to it" }
                continue
            }
            occupied += 1
            if entry.pointee.operationsInFlight != owedToSlot {
                return "slot \(slot) (\(describe(slot))) counts \(entry.pointee.operationsInFlight) operation(s) in flight; the kernel owes it \(owedToSlot)"
            }
            if owedToSlot > 0 && owedGeneration[Int(slot)] != UInt32(truncatingIfNeeded: entry.pointee.generation) {
                return "slot \(slot) was reused while completions of its previous connection were owed"
            }
        }
        if occupied != slab.occupied { return "the slab counts \(slab.occupied) occupied slots; \(occupied) are" }
        return nil
    }
}
