import Myriad

/// The bytes a client thread's data messages carry after their header, written once at start
/// and copied into each message: one variant of a repeated byte (`--payload filler`), or
/// `jsonVariants` different JSON arrays of feed records (`--payload json`), sent in turn so
/// that a compressor sees what a feed looks like: the same keys in every record, changing
/// numbers. Deterministic for a thread index, so runs compare.
struct PayloadBodies: ~Copyable {
    let bytes: UnsafeMutableRawBufferPointer
    /// Bytes of one variant.
    let length: Int
    let count: Int
    private var next = 0

    static let jsonVariants = 16

    init(_ payload: LoadPayload, length: Int, filler: UInt8, seed: UInt64) {
        precondition(length >= 0)
        self.length = length
        count = payload == .json ? Self.jsonVariants : 1
        bytes = .allocate(byteCount: max(1, count * length), alignment: 8)
        switch payload {
        case .filler:
            bytes.initializeMemory(as: UInt8.self, repeating: filler)
        case .json:
            var random = SimulationRandom(seed: seed)
            for variant in 0..<count {
                let body = UnsafeMutableRawBufferPointer(rebasing: bytes[(variant * length)..<((variant + 1) * length)])
                Self.writeFeed(into: body, random: &random)
            }
        }
    }

    deinit { bytes.deallocate() }

    /// The next variant (round robin).
    mutating func take() -> UnsafeRawBufferPointer {
        let variant = next
        next = next + 1 == count ? 0 : next + 1
        return UnsafeRawBufferPointer(rebasing: bytes[(variant * length)..<((variant + 1) * length)])
    }

    /// A JSON array of records such as
    /// `{"seq":48213,"sym":"MYRD","bid":101.25,"ask":101.27,"qty":300,"venue":"XNAS","side":"buy"}`
    /// filling `body`, padded with spaces before the closing bracket so that it stays valid
    /// JSON at any length of 2 bytes or more (shorter bodies are spaces).
    static func writeFeed(into body: UnsafeMutableRawBufferPointer, random: inout SimulationRandom) {
        let symbols = ["MYRD", "ACME", "GLBX", "NVTS", "QNTM", "ZYLO", "HEXA", "ORBT"]
        let venues = ["XNAS", "XNYS", "BATS", "ARCX"]
        body.initializeMemory(as: UInt8.self, repeating: 0x20)
        guard body.count >= 2 else { return }
        var text = "["
        while true {
            let price = 5_000 + Int(random.next() % 20_000)
            let spread = 1 + Int(random.next() % 9)
            let record = "{\"seq\":\(random.next() % 1_000_000),\"sym\":\"\(symbols[Int(random.next() % 8)])\","
                + "\"bid\":\(price / 100).\(twoDigits(price % 100)),\"ask\":\((price + spread) / 100).\(twoDigits((price + spread) % 100)),"
                + "\"qty\":\(100 * (1 + random.next() % 50)),\"venue\":\"\(venues[Int(random.next() % 4)])\","
                + "\"side\":\"\(random.next() % 2 == 0 ? "buy" : "sell")\"}"
            let separator = text.utf8.count > 1 ? "," : ""
            guard text.utf8.count + separator.utf8.count + record.utf8.count + 1 <= body.count else { break }
            text += separator + record
        }
        let head = Array(text.utf8)
        body.copyBytes(from: head)
        body[body.count - 1] = UInt8(ascii: "]")
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
