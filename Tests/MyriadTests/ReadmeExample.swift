// The README's library example, verbatim between the markers (ReadmeTests checks that the
// README holds exactly this text, and exercises it).
// README:begin
import Logging
import Myriad
import Synchronization

/// Who is connected, by user name, so that anything (an HTTP route, a database listener) can
/// push to one user: the handler registers connections, any thread looks them up.
final class UserDirectory: Sendable {
    private let connections = Mutex<[String: ConnectionID]>([:])
    func register(_ user: String, _ id: ConnectionID) { connections.withLock { $0[user] = id } }
    func unregister(_ user: String, _ id: ConnectionID) {
        connections.withLock { if $0[user] == id { $0[user] = nil } }
    }
    func connection(of user: String) -> ConnectionID? { connections.withLock { $0[user] } }
}

/// Chat rooms across every worker: `/rooms/NAME?user=ME` joins room NAME, and every text
/// message goes to the whole room, on whichever worker each member lives.
struct Chat: WebSocketHandler {
    struct Member: Sendable {
        var room: String
        var user: String
        var messagesSent = 0
    }
    typealias ConnectionState = Member

    let allowedOrigins: Set<String>
    let directory: UserDirectory

    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<Member> {
        // Cross-site WebSocket hijacking: only pages of our own sites may open a socket.
        guard let origin = request.origin, allowedOrigins.contains(origin) else {
            return .refuse(.forbidden, body: "origin not allowed")
        }
        guard request.path.hasPrefix("/rooms/"), let user = request.queryParameter("user"), !user.isEmpty else {
            return .refuse(.badRequest, body: "use /rooms/NAME?user=YOU")
        }
        let member = Member(room: String(request.path.dropFirst("/rooms/".count)), user: user)
        return .accept(member, subprotocol: request.offersSubprotocol("chat.v1") ? "chat.v1" : nil)
    }

    mutating func onOpen(_ connection: Connection) {
        connection.subscribe(to: connection.state.room)
        directory.register(connection.state.user, connection.id)
    }

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        guard kind == .text else { return connection.close(code: .unsupportedData, reason: "text only") }
        connection.state.messagesSent += 1
        // Encoded once, shared by every member on every worker, the sender included.
        connection.context.publish(to: connection.state.room, text: payload)
    }

    mutating func onClose(_ connection: Connection, event: CloseEvent) {
        directory.unregister(connection.state.user, connection.id)
    }
}

/// Starts the chat. Keep the engine: its `handle` reaches any connection from any thread.
func startChat(config: Config, directory: UserDirectory) throws -> Engine<Chat> {
    let engine = Engine(config: config, logger: Logger(label: "chat")) { _ in
        Chat(allowedOrigins: ["https://chat.example"], directory: directory)
    }
    try engine.start()
    return engine
}

/// A notification for one user, from any thread or async code.
func notify(_ user: String, _ text: String, engine: Engine<Chat>, directory: UserDirectory) -> Bool {
    guard let id = directory.connection(of: user) else { return false }
    return engine.handle.send(to: id, text: text) == .enqueued
}
// README:end
