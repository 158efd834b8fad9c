/// What the client takes from the server's INFO: the limits it must respect and the reasons
/// it may refuse to go on (TLS required, too old a protocol for `echo: false`).
struct NATSServerInfo: Equatable {
    var serverID: String
    var version: String
    /// The largest payload the server accepts in a PUB (its `max_payload`), in bytes.
    var maxPayloadBytes: Int
    /// 1 or more: the server knows `echo: false` (and sends async INFO). 0 cannot honour
    /// no-echo, so a node would get its own publishes back: the client refuses such a server.
    var proto: Int
    var authRequired: Bool
    var tlsRequired: Bool

    enum InfoError: Error, Equatable, CustomStringConvertible {
        case json(NATSJSONError)
        case notAnObject
        case missingOrInvalid(field: String)

        var description: String {
            switch self {
            case .json(let error): "INFO is not JSON: \(error)"
            case .notAnObject: "INFO is not a JSON object"
            case .missingOrInvalid(let field): "INFO has no valid \"\(field)\""
            }
        }
    }

    /// Parses the JSON after `INFO `. `max_payload` must be present and positive: without it
    /// the client could not bound what it sends or receives.
    static func parse(_ json: UnsafeRawBufferPointer) throws(InfoError) -> NATSServerInfo {
        let value: NATSJSONValue
        do {
            value = try NATSJSONParser.parse(json)
        } catch {
            throw .json(error)
        }
        guard case .object = value else { throw .notAnObject }
        guard let maxPayload = value["max_payload"]?.integer, maxPayload > 0, maxPayload <= Int64(Int32.max) else {
            throw .missingOrInvalid(field: "max_payload")
        }
        let proto = value["proto"]?.integer ?? 0
        guard proto >= 0, proto <= 1_000 else { throw .missingOrInvalid(field: "proto") }
        return NATSServerInfo(
            serverID: value["server_id"]?.string ?? "",
            version: value["version"]?.string ?? "",
            maxPayloadBytes: Int(maxPayload),
            proto: Int(proto),
            authRequired: value["auth_required"]?.bool ?? false,
            tlsRequired: value["tls_required"]?.bool ?? false
        )
    }
}
