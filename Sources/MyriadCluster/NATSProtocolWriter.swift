/// The client-to-server half of the NATS protocol: appends complete operations to a byte
/// buffer. Callers validate subjects first (NATSSubject); this only formats.
enum NATSProtocolWriter {
    /// What CONNECT says. `echo: false` is the protocol's no-echo: the server never sends a
    /// connection its own publishes, so a node's local subscribers get each message once.
    struct ConnectOptions: Equatable {
        var name: String
        var user: String?
        var password: String?
        var token: String?
        var clientVersion: String
    }

    static func appendConnect(_ options: ConnectOptions, to out: inout [UInt8]) {
        var json: [UInt8] = []
        json.append(contentsOf: #"{"verbose":false,"pedantic":false,"tls_required":false,"echo":false,"headers":false,"no_responders":false,"protocol":1,"lang":"swift","version":"#.utf8)
        appendJSONString(options.clientVersion, to: &json)
        json.append(contentsOf: #","name":"#.utf8)
        appendJSONString(options.name, to: &json)
        if let user = options.user {
            json.append(contentsOf: #","user":"#.utf8)
            appendJSONString(user, to: &json)
        }
        if let password = options.password {
            json.append(contentsOf: #","pass":"#.utf8)
            appendJSONString(password, to: &json)
        }
        if let token = options.token {
            json.append(contentsOf: #","auth_token":"#.utf8)
            appendJSONString(token, to: &json)
        }
        json.append(UInt8(ascii: "}"))
        out.append(contentsOf: "CONNECT ".utf8)
        out.append(contentsOf: json)
        out.append(contentsOf: crlf)
    }

    /// `PUB <subject> <#bytes>\r\n<payload>\r\n`
    static func appendPublish(subject: some Collection<UInt8>, payload: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        appendPublish(subject: subject, head: UnsafeRawBufferPointer(start: nil, count: 0), payload: payload, to: &out)
    }

    /// `PUB <subject> <#bytes>\r\n<head><payload>\r\n`: one message whose payload is `head`
    /// followed by `payload`, joined here instead of in a copy of the caller's.
    static func appendPublish(
        subject: some Collection<UInt8>, head: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, to out: inout [UInt8]
    ) {
        out.append(contentsOf: "PUB ".utf8)
        out.append(contentsOf: subject)
        out.append(UInt8(ascii: " "))
        appendDecimal(UInt64(head.count + payload.count), to: &out)
        out.append(contentsOf: crlf)
        out.append(contentsOf: head)
        out.append(contentsOf: payload)
        out.append(contentsOf: crlf)
    }

    /// The bytes `appendPublish` writes, to check a cap before writing.
    static func publishFrameBytes(subjectBytes: Int, payloadBytes: Int) -> Int {
        4 + subjectBytes + 1 + decimalDigits(UInt64(payloadBytes)) + 2 + payloadBytes + 2
    }

    /// `SUB <subject> <sid>\r\n`
    static func appendSubscribe(subject: some Collection<UInt8>, sid: UInt64, to out: inout [UInt8]) {
        out.append(contentsOf: "SUB ".utf8)
        out.append(contentsOf: subject)
        out.append(UInt8(ascii: " "))
        appendDecimal(sid, to: &out)
        out.append(contentsOf: crlf)
    }

    /// `UNSUB <sid>\r\n`
    static func appendUnsubscribe(sid: UInt64, to out: inout [UInt8]) {
        out.append(contentsOf: "UNSUB ".utf8)
        appendDecimal(sid, to: &out)
        out.append(contentsOf: crlf)
    }

    static func appendPing(to out: inout [UInt8]) { out.append(contentsOf: "PING\r\n".utf8) }
    static func appendPong(to out: inout [UInt8]) { out.append(contentsOf: "PONG\r\n".utf8) }

    /// Removes from `buffer` (a run of this writer's PUB frames) every publish whose payload
    /// exceeds `limitBytes`: a server that turned out to accept less than was assumed when
    /// they were buffered would otherwise answer -ERR and close. Returns the frames removed
    /// and their payload bytes. The buffer must hold only whole PUB frames.
    static func removePublishes(
        in buffer: inout [UInt8], payloadLargerThan limitBytes: Int
    ) -> (messages: Int, payloadBytes: Int) {
        var kept: [UInt8] = []
        kept.reserveCapacity(buffer.count)
        var removed = 0
        var removedBytes = 0
        var index = 0
        while index < buffer.count {
            // "PUB " subject " " size "\r\n" payload "\r\n"
            var lineEnd = index
            while buffer[lineEnd] != 0x0D { lineEnd += 1 }
            var sizeStart = lineEnd
            while buffer[sizeStart - 1] != UInt8(ascii: " ") { sizeStart -= 1 }
            var size = 0
            for byte in buffer[sizeStart..<lineEnd] { size = size * 10 + Int(byte - UInt8(ascii: "0")) }
            let frameEnd = lineEnd + 2 + size + 2
            precondition(frameEnd <= buffer.count, "a pending buffer holds whole PUB frames")
            if size > limitBytes {
                removed += 1
                removedBytes += size
            } else {
                kept.append(contentsOf: buffer[index..<frameEnd])
            }
            index = frameEnd
        }
        buffer = kept
        return (removed, removedBytes)
    }

    // MARK: - Numbers

    private static let crlf: [UInt8] = [0x0D, 0x0A]

    static func decimalDigits(_ value: UInt64) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        return digits
    }

    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        let digits = decimalDigits(value)
        let start = out.count
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        var rest = value
        var position = start + digits - 1
        while true {
            out[position] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            if rest == 0 { break }
            position -= 1
        }
    }
}
