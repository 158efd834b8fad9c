// swift-tools-version:6.0
// libFuzzer targets for the codec's parsers, the inflate path and both roles' whole worker (through
// the deterministic simulations): `make fuzz` (or scripts/fuzz.sh)
// builds them with -sanitize=fuzzer,address and runs them; CI replays the committed corpus and
// fuzzes 30 s each.
import PackageDescription

import struct Foundation.URL

/// SwiftPM names a path dependency after its directory (the clone's name).
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().lastPathComponent

let fuzzerSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "MyriadFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(
            name: "FuzzHandshake",
            dependencies: [.product(name: "WebSocketCodec", package: rootPackage)],
            swiftSettings: fuzzerSettings
        ),
        .executableTarget(
            name: "FuzzFrames",
            dependencies: [.product(name: "WebSocketCodec", package: rootPackage)],
            swiftSettings: fuzzerSettings
        ),
        .executableTarget(
            name: "FuzzInflate",
            dependencies: [
                .product(name: "WebSocketCodec", package: rootPackage),
                .product(name: "WebSocketCompression", package: rootPackage),
            ],
            swiftSettings: fuzzerSettings
        ),
        .executableTarget(
            name: "FuzzWorker",
            dependencies: [.product(name: "Myriad", package: rootPackage)],
            swiftSettings: fuzzerSettings
        ),
        .executableTarget(
            name: "FuzzClient",
            dependencies: [.product(name: "MyriadLoad", package: rootPackage)],
            swiftSettings: fuzzerSettings
        ),
    ]
)
