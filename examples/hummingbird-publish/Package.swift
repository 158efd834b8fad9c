// swift-tools-version:6.0
// An HTTP API beside Myriad in one process: Hummingbird serves `POST /publish/{topic}`, and
// every WebSocket client connected to Myriad at `/{topic}` gets the request's body.
import PackageDescription

let package = Package(
    name: "hummingbird-publish",
    platforms: [.macOS(.v14)],
    dependencies: [
        // `Myriad` is a symlink to the repository's root, so the dependency's identity is
        // "myriad" wherever the repository was cloned.
        .package(path: "Myriad"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "HummingbirdPublish",
            dependencies: [
                .product(name: "Myriad", package: "Myriad"),
                .product(name: "MyriadService", package: "Myriad"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
