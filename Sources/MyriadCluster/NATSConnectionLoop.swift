import Glibc
import Logging

/// The client's thread: connects, runs the handshake, moves bytes both ways, keeps the
/// connection alive with PINGs, and reconnects with backoff until asked to stop.
///
/// Everything here belongs to this one thread; it meets callers only through
/// `NATSClientCore` (the shared state under its mutex, and the wake-up eventfd).
final class NATSConnectionLoop {
    private let core: NATSClientCore
    private let configuration: NATSClientConfiguration
    private let logger: Logger
    private let onMessage: NATSClient.MessageHandler

    private var parser: NATSProtocolParser
    private let readBuffer: UnsafeMutableRawBufferPointer
    private var backoff: NATSReconnectBackoff
    private var random = SystemRandomNumberGenerator()
    /// Which resolved address the next attempt uses (names with several addresses rotate).
    private var addressRotation = 0
    /// Whether the current outage was already logged at warning level.
    private var outageLogged = false

    private enum Phase {
        case tcpConnecting
        case awaitingInfo
        /// CONNECT and PING sent: the PONG says the credentials were accepted.
        case awaitingPong
        case ready
    }

    private enum Failure {
        case socket(String)
        case closedByServer
        case handshake(String)
        case protocolViolation(String)
        case serverError(String)
        case pingTimeout
    }

    // One connection's state.
    private var fd: Int32 = -1
    private var phase = Phase.tcpConnecting
    private var failure: Failure?
    /// Bytes this thread writes: taken batches plus its own CONNECT/PING/PONG lines.
    private var batch: [UInt8] = []
    private var batchOffset = 0
    private var batchMessages = 0
    private var batchPayloadBytes = 0
    private var handshakeDeadlineMs: Int64 = 0
    private var nextPingAtMs: Int64 = 0
    /// Our PINGs not yet answered (the server answers in order).
    private var pingsOutstanding = 0
    /// A server INFO seen by the parser's handler, applied once the parser paused.
    private var infoToApply: NATSServerInfo?
    private var serverInfo: NATSServerInfo?
    /// Set when `stop()` was asked while connected: flush, PING, wait for PONG, close.
    private var drainDeadlineMs: Int64?
    private var drainPingSent = false

    init(core: NATSClientCore, logger: Logger, onMessage: @escaping NATSClient.MessageHandler) {
        self.core = core
        self.configuration = core.configuration
        self.logger = logger
        self.onMessage = onMessage
        self.parser = NATSProtocolParser(
            maxLineBytes: configuration.maxServerLineBytes, maxBufferedPayloadBytes: configuration.maxPayloadBytes)
        self.readBuffer = .allocate(byteCount: configuration.readBufferBytes, alignment: 16)
        self.backoff = NATSReconnectBackoff(
            initialDelayMs: configuration.reconnectInitialDelayMs, maxDelayMs: configuration.reconnectMaxDelayMs)
    }

    deinit { readBuffer.deallocate() }

    func run() {
        Self.nameThisThread("myriad-nats")
        var delayMs = 0
        while !stopRequested() {
            if delayMs > 0 && !sleepUnlessStopped(milliseconds: delayMs) { break }
            guard runConnection() else { break }
            delayMs = backoff.nextDelayMs(using: &random)
        }
        core.state.withLock { $0.stopped() }
        logger.debug("NATS client stopped", metadata: ["url": "\(configuration.redactedURL)"])
    }

    /// Names the thread for `top -H` and debuggers. Glibc's Swift module lacks
    /// pthread_setname_np; /proc/thread-self/comm does the same.
    private static func nameThisThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = name.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, min(15, $0.count - 1)) }
        close(fd)
    }

    private func stopRequested() -> Bool { core.state.withLock { $0.stopRequested } }

    /// Sleeps `milliseconds` unless `stop()` comes first; false if it did.
    private func sleepUnlessStopped(milliseconds: Int) -> Bool {
        let deadline = monotonicMilliseconds() + Int64(milliseconds)
        var wake = pollfd(fd: core.wake.fd, events: Int16(POLLIN), revents: 0)
        while true {
            if stopRequested() { return false }
            let left = deadline - monotonicMilliseconds()
            if left <= 0 { return true }
            if poll(&wake, 1, Int32(left)) > 0 { core.wake.drain() }
        }
    }

    // MARK: - One connection

    /// Runs one connection from connect to close. Returns false when the client is stopping.
    private func runConnection() -> Bool {
        core.state.withLock { $0.setState(.connecting) }
        phase = .tcpConnecting
        failure = nil
        parser.reset()
        batch.removeAll(keepingCapacity: true)
        batchOffset = 0
        batchMessages = 0
        batchPayloadBytes = 0
        pingsOutstanding = 0
        infoToApply = nil
        serverInfo = nil
        drainDeadlineMs = nil
        drainPingSent = false
        handshakeDeadlineMs = monotonicMilliseconds() + Int64(configuration.connectTimeoutMs)

        switch NATSSocket.resolve(host: configuration.host, port: configuration.port) {
        case .failure(let error):
            return ended(.socket(error.description))
        case .success(let addresses):
            let address = addresses[addressRotation % addresses.count]
            addressRotation &+= 1
            switch NATSSocket.startConnect(address) {
            case .failure(let error):
                return ended(.socket(error.description))
            case .success(let started):
                fd = started.fd
                phase = started.inProgress ? .tcpConnecting : .awaitingInfo
            }
        }
        defer {
            close(fd)
            fd = -1
        }

        var fds = [pollfd(fd: fd, events: 0, revents: 0), pollfd(fd: core.wake.fd, events: Int16(POLLIN), revents: 0)]
        while true {
            let now = monotonicMilliseconds()
            if stopRequested() {
                guard phase == .ready else { return false }
                if drainDeadlineMs == nil { drainDeadlineMs = now + Int64(configuration.stopFlushTimeoutMs) }
            }
            if phase == .ready && batchOffset == batch.count {
                let taken = core.state.withLock { $0.takeOutbound(into: &batch) }
                batchMessages = taken.messages
                batchPayloadBytes = taken.payloadBytes
            }
            if let drainDeadline = drainDeadlineMs {
                if batchOffset == batch.count {
                    if !drainPingSent {
                        // Everything is written; the PONG to this PING says the server read it.
                        NATSProtocolWriter.appendPing(to: &batch)
                        pingsOutstanding += 1
                        drainPingSent = true
                    } else if pingsOutstanding == 0 {
                        return false
                    }
                }
                if now >= drainDeadline { return false }
            }
            // A batch written whole means: take again before sleeping. A publisher that
            // appended since the last take saw `wakeRequested` already set and sent no signal
            // of its own (the one sent may already be drained), so a sleeping poll would leave
            // its bytes waiting for a timer; when draining, the final PING is due. Poll still
            // runs, without waiting, so reads are never starved by a steady stream of publishes.
            var takeAgainAtOnce = false
            if batchOffset < batch.count {
                writeSome()
                takeAgainAtOnce = failure == nil && phase == .ready && batchOffset == batch.count
            }
            if failure == nil { checkTimers(now: now) }
            if let failure { return ended(failure) }

            fds[0].events = phase == .tcpConnecting ? Int16(POLLOUT) : Int16(POLLIN) | (batchOffset < batch.count ? Int16(POLLOUT) : 0)
            fds[0].revents = 0
            fds[1].revents = 0
            let ready = poll(&fds, 2, takeAgainAtOnce ? 0 : pollTimeoutMs(now: now))
            if ready < 0 && errno != EINTR { return ended(.socket(NATSSocketError.errno("poll").description)) }
            if fds[1].revents != 0 { core.wake.drain() }
            guard fds[0].revents != 0 else { continue }
            if phase == .tcpConnecting {
                if let error = NATSSocket.connectResult(fd) { return ended(.socket(error.description)) }
                phase = .awaitingInfo
                continue
            }
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readOnce() }
            if let failure { return ended(failure) }
        }
    }

    /// How long poll may sleep: until the handshake deadline, the next PING, or the drain
    /// deadline, whichever is first.
    private func pollTimeoutMs(now: Int64) -> Int32 {
        var until = phase == .ready ? nextPingAtMs : handshakeDeadlineMs
        if let drain = drainDeadlineMs { until = min(until, drain) }
        return Int32(clamping: max(0, until - now))
    }

    private func checkTimers(now: Int64) {
        if phase != .ready {
            if now >= handshakeDeadlineMs {
                failure = .handshake("no completed handshake within \(configuration.connectTimeoutMs) ms")
            }
            return
        }
        guard now >= nextPingAtMs else { return }
        if pingsOutstanding >= configuration.maxPingsOutstanding {
            failure = .pingTimeout
            return
        }
        NATSProtocolWriter.appendPing(to: &batch)
        pingsOutstanding += 1
        nextPingAtMs = now + Int64(configuration.pingIntervalMs)
    }

    /// Records how the connection ended; returns true (go on reconnecting).
    private func ended(_ failure: Failure) -> Bool {
        let wasEstablished = phase == .ready
        let reason = describe(failure)
        core.state.withLock { state in
            switch failure {
            case .protocolViolation: state.stats.protocolErrors += 1
            case .pingTimeout: state.stats.pingTimeouts += 1
            default: break
            }
            state.connectionLost(wasEstablished: wasEstablished, reason: reason, nextState: .waitingToReconnect)
        }
        batch.removeAll(keepingCapacity: true)
        batchOffset = 0
        batchMessages = 0
        batchPayloadBytes = 0
        let metadata: Logger.Metadata = ["url": "\(configuration.redactedURL)", "reason": "\(reason)"]
        if wasEstablished {
            logger.warning("NATS connection lost; reconnecting", metadata: metadata)
            outageLogged = true
        } else if !outageLogged {
            logger.warning("NATS connection failed; retrying with backoff", metadata: metadata)
            outageLogged = true
        } else {
            logger.debug("NATS connection attempt failed", metadata: metadata)
        }
        return true
    }

    private func describe(_ failure: Failure) -> String {
        switch failure {
        case .socket(let reason): reason
        case .closedByServer: "the server closed the connection"
        case .handshake(let reason): "handshake: \(reason)"
        case .protocolViolation(let reason): "protocol violation by the server: \(reason)"
        case .serverError(let message): "server error: \(message)"
        case .pingTimeout: "no PONG to \(configuration.maxPingsOutstanding) PINGs (every \(configuration.pingIntervalMs) ms)"
        }
    }

    // MARK: - Writing

    private func writeSome() {
        while batchOffset < batch.count {
            let result = batch.withUnsafeBytes { bytes in
                NATSSocket.send(fd, UnsafeRawBufferPointer(rebasing: bytes[batchOffset...]))
            }
            switch result {
            case .bytes(let count): batchOffset += count
            case .wouldBlock: return
            case .closed: failure = .closedByServer; return
            case .failed(let error): failure = .socket(error.description); return
            }
        }
        if phase == .ready {
            let messages = batchMessages
            let payloadBytes = batchPayloadBytes
            core.state.withLock { $0.batchWritten(messages: messages, payloadBytes: payloadBytes) }
        }
        batch.removeAll(keepingCapacity: true)
        batchOffset = 0
        batchMessages = 0
        batchPayloadBytes = 0
    }

    // MARK: - Reading

    private func readOnce() {
        switch NATSSocket.receive(fd, into: readBuffer) {
        case .bytes(let count):
            process(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]))
        case .wouldBlock:
            return
        case .closed:
            failure = .closedByServer
        case .failed(let error):
            failure = .socket(error.description)
        }
    }

    private func process(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count && failure == nil {
            do {
                offset += try parser.consume(UnsafeRawBufferPointer(rebasing: bytes[offset...])) { self.handle($0) }
            } catch {
                failure = .protocolViolation(error.description)
                return
            }
            if let info = infoToApply {
                infoToApply = nil
                apply(info)
            }
        }
    }

    /// A new INFO's limits take effect before the next byte is parsed.
    private func apply(_ info: NATSServerInfo) {
        serverInfo = info
        parser.serverMaxPayloadBytes = info.maxPayloadBytes
        if phase == .ready {
            core.state.withLock { $0.serverInfoChanged(maxPayloadBytes: info.maxPayloadBytes) }
        }
    }

    /// One server operation; false pauses the parser (INFO to apply, or the connection ends).
    private func handle(_ operation: NATSServerOperation) -> Bool {
        switch (phase, operation) {
        case (.tcpConnecting, _):
            preconditionFailure("no bytes are read before the TCP connect completes")

        case (.awaitingInfo, .info(let json)):
            let info: NATSServerInfo
            do {
                info = try NATSServerInfo.parse(json)
            } catch {
                failure = .protocolViolation(error.description)
                return false
            }
            if info.tlsRequired {
                failure = .handshake("the server requires TLS, which this client does not speak")
                return false
            }
            if info.proto < 1 {
                failure = .handshake("the server's protocol \(info.proto) cannot honour echo:false (no-echo needs 1)")
                return false
            }
            infoToApply = info
            NATSProtocolWriter.appendConnect(
                .init(
                    name: configuration.name, user: configuration.user, password: configuration.password,
                    token: configuration.token, clientVersion: NATSClient.version),
                to: &batch)
            NATSProtocolWriter.appendPing(to: &batch)
            pingsOutstanding = 1
            phase = .awaitingPong
            return false
        case (.awaitingInfo, _):
            failure = .protocolViolation("the first operation is not INFO")
            return false

        case (_, .info(let json)):
            do {
                infoToApply = try NATSServerInfo.parse(json)
            } catch {
                failure = .protocolViolation(error.description)
            }
            return false

        case (_, .ping):
            NATSProtocolWriter.appendPong(to: &batch)
            core.state.withLock { $0.stats.serverPingsAnswered += 1 }
            return true

        case (.awaitingPong, .pong):
            pingsOutstanding = 0
            phase = .ready
            nextPingAtMs = monotonicMilliseconds() + Int64(configuration.pingIntervalMs)
            backoff.reset()
            outageLogged = false
            let maxPayload = serverInfo?.maxPayloadBytes ?? 0
            assert(maxPayload > 0, "INFO came before the PONG")
            let connects = core.state.withLock { state in
                state.connectionEstablished(serverMaxPayloadBytes: maxPayload)
                return state.stats.connects
            }
            logger.info(
                "NATS connected",
                metadata: [
                    "url": "\(configuration.redactedURL)", "server": "\(serverInfo?.serverID ?? "")",
                    "version": "\(serverInfo?.version ?? "")", "max_payload": "\(maxPayload)", "connects": "\(connects)",
                ])
            return true
        case (.ready, .pong):
            pingsOutstanding = max(0, pingsOutstanding - 1)
            return true

        case (_, .ok):
            return true

        case (.awaitingPong, .err(let message)):
            // Before the PONG every -ERR is fatal: typically 'Authorization Violation'.
            let text = Self.errorText(message)
            core.state.withLock { $0.stats.serverErrors += 1 }
            failure = .serverError(text)
            return false
        case (.ready, .err(let message)):
            let text = Self.errorText(message)
            let fatal = !Self.isNonFatalServerError(text)
            core.state.withLock { state in
                state.stats.serverErrors += 1
                if !fatal { state.stats.lastError = "server error: \(text)" }
            }
            if fatal {
                failure = .serverError(text)
                return false
            }
            logger.warning("NATS server error", metadata: ["error": "\(text)"])
            return true

        case (.ready, .message(let subject, let sid, _, let payload)):
            let deliver = core.state.withLock { $0.accountReceived(sid: sid, payloadBytes: payload.count) }
            if deliver { onMessage(String(decoding: subject, as: UTF8.self), payload) }
            return true
        case (.ready, .skippedMessage):
            core.state.withLock { $0.stats.receivedOverLimitSkipped += 1 }
            return true

        case (.awaitingPong, .message), (.awaitingPong, .skippedMessage):
            failure = .protocolViolation("MSG before the handshake completed")
            return false
        }
    }

    /// `'Authorization Violation'` -> `Authorization Violation`, printable and bounded.
    static func errorText(_ message: UnsafeRawBufferPointer) -> String {
        var bytes = message[...]
        if bytes.count >= 2, bytes.first == UInt8(ascii: "'"), bytes.last == UInt8(ascii: "'") {
            bytes = bytes.dropFirst().dropLast()
        }
        return NATSProtocolParser.snippet(UnsafeRawBufferPointer(rebasing: bytes), limit: 200)
    }

    /// The server keeps the connection open after these (the NATS protocol documentation:
    /// a denied subscribe or publish, a rejected subject); every other -ERR is followed by
    /// the server closing it, so the client closes first.
    static func isNonFatalServerError(_ text: String) -> Bool {
        let lowered = text.lowercased()
        return lowered.hasPrefix("permissions violation") || lowered.hasPrefix("invalid subject")
    }
}

extension NATSClient {
    /// Sent in CONNECT's `version`.
    public static let version = "0.1.0"
}
