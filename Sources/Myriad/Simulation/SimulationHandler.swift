import WebSocketCodec

/// Records what the handler saw: each connection opened once, closed once.
final class SimulationLedger {
    var open: Set<ConnectionID> = []
    var opened = 0
    var closed = 0
    var failure: ((String) -> Void)?

    func opened(_ id: ConnectionID) {
        if !open.insert(id).inserted { failure?("onOpen twice for \(id)") }
        opened += 1
    }

    func closed(_ id: ConnectionID) {
        if open.remove(id) == nil { failure?("onClose for \(id), which is not open (a second onClose, or one without onOpen)") }
        closed += 1
    }
}

/// The application in the simulation: echoes every message, refuses `/refuse` with 403,
/// closes with 4000 when asked by a message "close-me", subscribes every connection to one
/// topic and publishes there (excluding the sender) what starts with "pub:".
struct SimulationHandler: WebSocketHandler {
    typealias ConnectionState = Void
    let ledger: SimulationLedger

    mutating func upgrade(_ request: UpgradeRequestHead, ticket: UpgradeTicket) -> UpgradeDecision<Void> {
        request.path == "/refuse" ? .refuse(.forbidden, body: "no") : .accept()
    }

    mutating func onOpen(_ connection: Connection) {
        ledger.opened(connection.id)
        _ = connection.subscribe(to: "room")
    }

    mutating func onMessage(_ connection: Connection, kind: MessageKind, payload: UnsafeRawBufferPointer) {
        if kind == .text && payload.elementsEqual("close-me".utf8) {
            connection.close(code: CloseCode(rawValue: 4000), reason: "asked")
            return
        }
        if kind == .text && payload.starts(with: "pub:".utf8) {
            _ = connection.context.publish(to: "room", text: payload, excluding: connection.id)
            return
        }
        _ = kind == .text ? connection.send(text: payload) : connection.send(binary: payload)
    }

    mutating func onClose(_ connection: Connection, event: CloseEvent) { ledger.closed(connection.id) }
}
