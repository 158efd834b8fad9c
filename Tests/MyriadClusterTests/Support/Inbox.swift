import Foundation
import Logging
import MyriadCluster

/// Collects what a client's `onMessage` delivers (copied: the payload is borrowed). NSLock,
/// not Synchronization.Mutex, whose contended path ThreadSanitizer cannot see on Linux.
final class Inbox: @unchecked Sendable {
    struct Message: Equatable {
        let subject: String
        let payload: [UInt8]
    }

    private let lock = NSLock()
    private var messages: [Message] = []

    var handler: NATSClient.MessageHandler {
        { [self] subject, payload in
            let message = Message(subject: subject, payload: Array(payload))
            lock.withLock { messages.append(message) }
        }
    }

    var all: [Message] { lock.withLock { messages } }
    var count: Int { lock.withLock { messages.count } }
    func payloads(on subject: String) -> [[UInt8]] { all.filter { $0.subject == subject }.map(\.payload) }
}

/// Logs at warning and above only, so expected reconnects do not flood the test output.
let quietLogger: Logger = {
    var logger = Logger(label: "nats-test") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = .error
    return logger
}()

/// A client for `url` named `name` (its name in /connz), its inbox, and fast test timings.
func makeClient(
    url: String, name: String, configure: (inout NATSClientConfiguration) -> Void = { _ in }
) throws -> (NATSClient, Inbox) {
    var configuration = try NATSClientConfiguration(url: url)
    configuration.name = name
    configuration.reconnectInitialDelayMs = 50
    configuration.reconnectMaxDelayMs = 400
    configure(&configuration)
    let inbox = Inbox()
    let client = try NATSClient(configuration: configuration, logger: quietLogger, onMessage: inbox.handler)
    return (client, inbox)
}
