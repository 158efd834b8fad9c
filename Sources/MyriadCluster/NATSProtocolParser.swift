/// One operation from the server. Buffers are borrowed from the parser or from the bytes it
/// was given: valid during the handler call only.
enum NATSServerOperation {
    /// The JSON after `INFO `.
    case info(json: UnsafeRawBufferPointer)
    case message(subject: UnsafeRawBufferPointer, sid: UInt64, replyTo: UnsafeRawBufferPointer?, payload: UnsafeRawBufferPointer)
    /// A MSG within the server's `max_payload` but over the client's own buffering limit:
    /// its payload was read and discarded without being held.
    case skippedMessage(sid: UInt64, payloadBytes: Int)
    case ping
    case pong
    case ok
    /// The text after `-ERR ` (usually in single quotes).
    case err(message: UnsafeRawBufferPointer)
}

/// Why the server's byte stream cannot be trusted any more: the connection must be dropped.
enum NATSProtocolError: Error, Equatable, CustomStringConvertible {
    case lineTooLong(limitBytes: Int)
    case lineNotEndedByCRLF
    case unknownOperation(snippet: String)
    case malformed(operation: String, reason: String)
    case payloadTooLarge(bytes: Int, limitBytes: Int)
    case payloadNotEndedByCRLF
    /// HMSG although CONNECT said `headers: false`.
    case headersNotNegotiated

    var description: String {
        switch self {
        case .lineTooLong(let limit): "a server line is longer than \(limit) bytes"
        case .lineNotEndedByCRLF: "a server line ends in LF without CR"
        case .unknownOperation(let snippet): "unknown server operation \"\(snippet)\""
        case .malformed(let operation, let reason): "malformed \(operation): \(reason)"
        case .payloadTooLarge(let bytes, let limit): "MSG of \(bytes) bytes exceeds the server's max_payload of \(limit) bytes"
        case .payloadNotEndedByCRLF: "a MSG payload is not followed by CRLF"
        case .headersNotNegotiated: "HMSG received although headers were not negotiated"
        }
    }
}

/// The server-to-client half of the NATS protocol as a push parser: bytes in any split,
/// operations out in order.
///
/// Strict and bounded: a control line longer than `maxLineBytes` (without its CRLF) or ended
/// by a bare LF, an unknown operation, a malformed argument, or a MSG larger than the server's
/// own `max_payload` is an error and the connection must go. Memory held is at most
/// `maxLineBytes + 1` for a partial line and `maxBufferedPayloadBytes` for a partial payload;
/// a MSG whose whole payload and CRLF are already in the input is handed out without a copy.
struct NATSProtocolParser {
    /// The longest control line accepted, CRLF excluded.
    let maxLineBytes: Int
    /// The server's `max_payload`: it must never send more, so more is a protocol violation.
    /// Zero until INFO says (a MSG before INFO is then an error too).
    var serverMaxPayloadBytes: Int = 0
    /// The most payload this parser holds in memory; bigger messages (within the server's
    /// limit) are read through and reported as `skippedMessage`.
    let maxBufferedPayloadBytes: Int

    private enum State {
        case line
        /// Inside a MSG payload: `filled` of `size + 2` bytes (payload and CRLF) seen so far.
        case payload(size: Int, filled: Int, skipping: Bool)
    }

    private var state: State = .line
    private var lineBuffer: [UInt8] = []
    private var pendingSubject: [UInt8] = []
    private var pendingReply: [UInt8] = []
    private var pendingHasReply = false
    private var pendingSid: UInt64 = 0
    private var payloadBuffer: [UInt8] = []

    init(maxLineBytes: Int, maxBufferedPayloadBytes: Int) {
        precondition(maxLineBytes >= 64, "too small for any server line")
        precondition(maxBufferedPayloadBytes >= 0)
        self.maxLineBytes = maxLineBytes
        self.maxBufferedPayloadBytes = maxBufferedPayloadBytes
    }

    /// Forgets any partial line or payload (for a new connection). Keeps buffer capacity.
    mutating func reset() {
        state = .line
        lineBuffer.removeAll(keepingCapacity: true)
        payloadBuffer.removeAll(keepingCapacity: true)
        serverMaxPayloadBytes = 0
    }

    /// Bytes of memory the parser's buffers hold (capacity), for the bounded-memory tests.
    var retainedBytes: Int { lineBuffer.capacity + payloadBuffer.capacity + pendingSubject.capacity + pendingReply.capacity }

    /// Parses `input`, calling `handle` for each complete operation in order, and returns how
    /// many bytes it used: all of them, unless `handle` returned false, which pauses right
    /// after that operation (to apply a new INFO's limits, or to drop the connection). The
    /// caller resumes with the rest of the input.
    mutating func consume(
        _ input: UnsafeRawBufferPointer, _ handle: (NATSServerOperation) -> Bool
    ) throws(NATSProtocolError) -> Int {
        var index = 0
        while index < input.count {
            switch state {
            case .line:
                let searchFrom = index
                var newline = -1
                var scan = searchFrom
                // Look no further than the line limit allows: a hostile endless line costs
                // at most maxLineBytes + 2 bytes of scanning before it is refused.
                let scanLimit = min(input.count, searchFrom + (maxLineBytes + 2 - lineBuffer.count))
                while scan < scanLimit {
                    if input[scan] == 0x0A {
                        newline = scan
                        break
                    }
                    scan += 1
                }
                if newline < 0 {
                    let tail = input.count - searchFrom
                    guard lineBuffer.count + tail <= maxLineBytes + 1 else { throw .lineTooLong(limitBytes: maxLineBytes) }
                    lineBuffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[searchFrom..<input.count]))
                    return input.count
                }
                index = newline + 1
                if lineBuffer.isEmpty {
                    let line = UnsafeRawBufferPointer(rebasing: input[searchFrom..<newline])
                    let (keepGoing, consumed) = try processLine(line, rest: UnsafeRawBufferPointer(rebasing: input[index...]), handle)
                    index += consumed
                    guard keepGoing else { return index }
                } else {
                    guard lineBuffer.count + (newline - searchFrom) <= maxLineBytes + 1 else {
                        throw .lineTooLong(limitBytes: maxLineBytes)
                    }
                    lineBuffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[searchFrom..<newline]))
                    // Moved out so the line can be borrowed while `self` changes state.
                    var line: [UInt8] = []
                    swap(&line, &lineBuffer)
                    let outcome = line.withUnsafeBytes { bytes in
                        Result { () throws(NATSProtocolError) in
                            try processLine(bytes, rest: UnsafeRawBufferPointer(rebasing: input[index...]), handle)
                        }
                    }
                    line.removeAll(keepingCapacity: true)
                    swap(&line, &lineBuffer)
                    let result = try outcome.get()
                    index += result.1
                    guard result.0 else { return index }
                }

            case .payload(let size, let filled, let skipping):
                let take = min(size + 2 - filled, input.count - index)
                // The last two of the size + 2 bytes must be CR LF.
                var position = max(filled, size)
                while position < filled + take {
                    let expected: UInt8 = position == size ? 0x0D : 0x0A
                    guard input[index + position - filled] == expected else { throw .payloadNotEndedByCRLF }
                    position += 1
                }
                if !skipping {
                    let payloadPart = max(0, min(take, size - filled))
                    if payloadPart > 0 {
                        payloadBuffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[index..<(index + payloadPart)]))
                    }
                }
                index += take
                let nowFilled = filled + take
                if nowFilled < size + 2 {
                    state = .payload(size: size, filled: nowFilled, skipping: skipping)
                    continue
                }
                state = .line
                let keepGoing: Bool
                if skipping {
                    keepGoing = handle(.skippedMessage(sid: pendingSid, payloadBytes: size))
                } else {
                    assert(payloadBuffer.count == size, "a buffered payload is exactly its announced size")
                    keepGoing = deliverPending(handle)
                    payloadBuffer.removeAll(keepingCapacity: true)
                }
                guard keepGoing else { return index }
            }
        }
        return index
    }

    private func deliverPending(_ handle: (NATSServerOperation) -> Bool) -> Bool {
        pendingSubject.withUnsafeBytes { subject in
            pendingReply.withUnsafeBytes { reply in
                payloadBuffer.withUnsafeBytes { payload in
                    handle(.message(subject: subject, sid: pendingSid, replyTo: pendingHasReply ? reply : nil, payload: payload))
                }
            }
        }
    }

    // MARK: - Control lines

    /// Handles one control line (`line` includes its CR, not the LF). For MSG it may consume
    /// the payload from `rest`; returns whether to keep going and how much of `rest` it took.
    private mutating func processLine(
        _ lineWithCR: UnsafeRawBufferPointer, rest: UnsafeRawBufferPointer, _ handle: (NATSServerOperation) -> Bool
    ) throws(NATSProtocolError) -> (Bool, Int) {
        guard let last = lineWithCR.last, last == 0x0D else { throw .lineNotEndedByCRLF }
        let line = UnsafeRawBufferPointer(rebasing: lineWithCR.dropLast())
        guard line.count <= maxLineBytes else { throw .lineTooLong(limitBytes: maxLineBytes) }

        var opEnd = 0
        while opEnd < line.count, !Self.isSpace(line[opEnd]) { opEnd += 1 }
        let op = UnsafeRawBufferPointer(rebasing: line[0..<opEnd])
        var argsStart = opEnd
        while argsStart < line.count, Self.isSpace(line[argsStart]) { argsStart += 1 }
        let args = UnsafeRawBufferPointer(rebasing: line[argsStart...])

        if Self.matches(op, "MSG") { return try processMessage(args, rest: rest, handle) }
        if Self.matches(op, "PING") {
            guard args.isEmpty else { throw .malformed(operation: "PING", reason: "unexpected arguments") }
            return (handle(.ping), 0)
        }
        if Self.matches(op, "PONG") {
            guard args.isEmpty else { throw .malformed(operation: "PONG", reason: "unexpected arguments") }
            return (handle(.pong), 0)
        }
        if Self.matches(op, "+OK") {
            guard args.isEmpty else { throw .malformed(operation: "+OK", reason: "unexpected arguments") }
            return (handle(.ok), 0)
        }
        if Self.matches(op, "-ERR") { return (handle(.err(message: args)), 0) }
        if Self.matches(op, "INFO") {
            guard !args.isEmpty else { throw .malformed(operation: "INFO", reason: "no JSON") }
            return (handle(.info(json: args)), 0)
        }
        if Self.matches(op, "HMSG") { throw .headersNotNegotiated }
        throw .unknownOperation(snippet: Self.snippet(line))
    }

    /// `MSG <subject> <sid> [reply-to] <#bytes>`
    private mutating func processMessage(
        _ args: UnsafeRawBufferPointer, rest: UnsafeRawBufferPointer, _ handle: (NATSServerOperation) -> Bool
    ) throws(NATSProtocolError) -> (Bool, Int) {
        var fields: [Range<Int>] = []
        fields.reserveCapacity(4)
        var position = 0
        while position < args.count {
            let start = position
            while position < args.count, !Self.isSpace(args[position]) { position += 1 }
            guard fields.count < 4 else { throw .malformed(operation: "MSG", reason: "too many arguments") }
            fields.append(start..<position)
            while position < args.count, Self.isSpace(args[position]) { position += 1 }
        }
        guard fields.count == 3 || fields.count == 4 else {
            throw .malformed(operation: "MSG", reason: "expected 3 or 4 arguments, got \(fields.count)")
        }
        let subject = UnsafeRawBufferPointer(rebasing: args[fields[0]])
        guard let sid = Self.parseDecimal(UnsafeRawBufferPointer(rebasing: args[fields[1]]), maxDigits: 20) else {
            throw .malformed(operation: "MSG", reason: "invalid sid")
        }
        let reply: UnsafeRawBufferPointer? = fields.count == 4 ? UnsafeRawBufferPointer(rebasing: args[fields[2]]) : nil
        guard let size64 = Self.parseDecimal(UnsafeRawBufferPointer(rebasing: args[fields[fields.count - 1]]), maxDigits: 10) else {
            throw .malformed(operation: "MSG", reason: "invalid size")
        }
        let size = Int(size64)
        guard size <= serverMaxPayloadBytes else {
            throw .payloadTooLarge(bytes: size, limitBytes: serverMaxPayloadBytes)
        }
        let skipping = size > maxBufferedPayloadBytes
        // Fast path: the payload and its CRLF are all here; hand them out in place.
        if !skipping, rest.count >= size + 2 {
            guard rest[size] == 0x0D, rest[size + 1] == 0x0A else { throw .payloadNotEndedByCRLF }
            let payload = UnsafeRawBufferPointer(rebasing: rest[0..<size])
            return (handle(.message(subject: subject, sid: sid, replyTo: reply, payload: payload)), size + 2)
        }
        pendingSid = sid
        pendingSubject.removeAll(keepingCapacity: true)
        pendingSubject.append(contentsOf: subject)
        pendingReply.removeAll(keepingCapacity: true)
        pendingHasReply = reply != nil
        if let reply { pendingReply.append(contentsOf: reply) }
        payloadBuffer.removeAll(keepingCapacity: true)
        if !skipping { payloadBuffer.reserveCapacity(size) }
        state = .payload(size: size, filled: 0, skipping: skipping)
        return (true, 0)  // the main loop reads the payload from `rest`
    }

    // MARK: - Helpers

    @inline(__always)
    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// Case-insensitive comparison of an operation name (the protocol's ops are).
    private static func matches(_ op: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        guard op.count == name.utf8CodeUnitCount else { return false }
        for index in 0..<op.count {
            var byte = op[index]
            if byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") { byte -= 0x20 }
            if byte != name.utf8Start[index] { return false }
        }
        return true
    }

    /// 1...maxDigits ASCII digits, no sign, no overflow of UInt64.
    static func parseDecimal(_ bytes: UnsafeRawBufferPointer, maxDigits: Int) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= maxDigits else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    /// The start of a line, printable, for an error message.
    static func snippet(_ line: UnsafeRawBufferPointer, limit: Int = 32) -> String {
        let head = line.prefix(limit).map { $0 >= 0x20 && $0 < 0x7F ? Character(Unicode.Scalar($0)) : "?" }
        return String(head) + (line.count > limit ? "..." : "")
    }
}
