// swift-tools-version:6.1
import PackageDescription

// Host modules link libvirt dynamically; the guest agent (`podvisor-agent` over `PodvisorAgentCore`) is built
// fully static and therefore depends on nothing but Glibc, the agent protocol and the C targets (libcap and
// libseccomp statically).
let package = Package(
    name: "podvisor",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "podvisor", targets: ["podvisor"]),
        .executable(name: "podvisor-agent", targets: ["podvisor-agent"]),
        .executable(name: "podvisord", targets: ["podvisord"]),
    ],
    dependencies: [
        // traits: [] keeps full Foundation out of the static guest agent.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // C APIs used from Swift.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .target(name: "CLinuxSupport"),
        // Guest: the clone → pivot_root → exec path of container processes; libcap and libseccomp (static in the agent).
        .target(name: "CContainerSpawn", dependencies: ["CLinuxSupport"]),
        .systemLibrary(name: "CCap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CArchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Shared by host and guest: ttrpc framing and the podvisor.agent.v1 messages.
        .target(
            name: "PodvisorAgentProtocol",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), "CLinuxSupport"],
            exclude: ["Proto"]
        ),
        // Host: error type, configuration (TOML through TOMLKit).
        .target(
            name: "PodvisorCore",
            dependencies: [.product(name: "Logging", package: "swift-log"), .product(name: "TOMLKit", package: "TOMLKit")]),
        // Host: libvirt, domain XML, hypervisor choice, agent transports.
        .target(name: "PodvisorVMM", dependencies: ["CLibvirt", "CLinuxSupport", "PodvisorCore"]),
        // Host: ttrpc client of the in-guest agent.
        .target(
            name: "PodvisorAgentClient",
            dependencies: ["PodvisorAgentProtocol", "PodvisorCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // Host: a pod's host side behind the PodSandbox/SandboxRuntime protocols the CRI server uses: pod VMs
        // (boot, dial, ready, teardown), the pod's files, containers' rootfs and volumes.
        .target(
            name: "PodvisorRuntime",
            dependencies: [
                "PodvisorVMM", "PodvisorAgentClient", "PodvisorAgentProtocol", "PodvisorNetwork", "PodvisorCore", "CLinuxSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Host: pod networking through CNI plugins, network namespaces, the VM's tap mirrored onto eth0.
        .target(
            name: "PodvisorNetwork",
            dependencies: [
                "PodvisorCore", "CLinuxSupport", .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),

        // Host: OCI registry client, content store, layer unpacking, image metadata.
        .target(
            name: "PodvisorImages",
            dependencies: [
                "CArchive", "PodvisorCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),

        // Kubernetes CRI v1 (runtime.v1): generated messages and grpc-swift-2 service code (generate.sh).
        .target(
            name: "PodvisorCRI",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["generate.sh"]
        ),
        // Host: the streaming server and client of CRI Exec/Attach (Kubernetes' remote command protocol over
        // SPDY/3.1 or WebSocket).
        .target(
            name: "PodvisorStreaming",
            dependencies: [
                "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        // Host: the CRI RuntimeService and ImageService over pod VMs and the image store.
        .target(
            name: "PodvisorCRIServer",
            dependencies: [
                "PodvisorCRI", "PodvisorRuntime", "PodvisorImages", "PodvisorStreaming", "PodvisorCore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The CRI daemon kubelet talks to.
        .executableTarget(
            name: "podvisord",
            dependencies: [
                "PodvisorCRIServer", "PodvisorCore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Guest: the agent's service (containers, seccomp, cgroups, network, port connections), testable on the host.
        .target(name: "PodvisorAgentCore", dependencies: ["PodvisorAgentProtocol", "CLinuxSupport", "CContainerSpawn", "CCap", "CSeccomp"]),
        // Guest PID 1: boot filesystems, modules, console, signals, reaping, power-off; serves PodvisorAgentCore.
        .executableTarget(name: "podvisor-agent", dependencies: ["PodvisorAgentCore", "PodvisorAgentProtocol", "CLinuxSupport"]),
        // Command line: standalone (the runtime in-process over an in-process gRPC transport) or a client of
        // podvisord's socket; either way it speaks the CRI.
        .executableTarget(
            name: "podvisor",
            dependencies: [
                "PodvisorRuntime", "PodvisorImages", "PodvisorCRI", "PodvisorCRIServer", "PodvisorStreaming", "PodvisorCore",
                "PodvisorNetwork",
                "PodvisorAgentProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "PodvisorAgentProtocolTests", dependencies: ["PodvisorAgentProtocol"]),
        .testTarget(name: "PodvisorCoreTests", dependencies: ["PodvisorCore"]),
        .testTarget(name: "PodvisorRuntimeTests", dependencies: ["PodvisorRuntime", "PodvisorAgentProtocol", "PodvisorCore", "CLinuxSupport"]),
        .testTarget(name: "PodvisorVMMTests", dependencies: ["PodvisorVMM", "PodvisorCore"], resources: [.copy("Golden")]),
        .testTarget(name: "PodvisorAgentClientTests", dependencies: ["PodvisorAgentClient", "PodvisorAgentProtocol", "PodvisorCore"]),
        .testTarget(
            name: "PodvisorAgentCoreTests",
            dependencies: ["PodvisorAgentCore", "PodvisorAgentClient", "PodvisorAgentProtocol", "PodvisorCore", "CLinuxSupport"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["PodvisorRuntime", "PodvisorVMM", "PodvisorAgentClient", "PodvisorAgentProtocol", "PodvisorCore", "TestSupport"]),
        .testTarget(
            name: "PodvisorStreamingTests",
            dependencies: [
                "PodvisorStreaming", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]),
        .testTarget(
            name: "PodvisorImagesTests",
            dependencies: [
                "PodvisorImages", "PodvisorCore", "CArchive", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(name: "PodvisorNetworkTests", dependencies: ["PodvisorNetwork", "PodvisorCore"]),
        // Test helpers shared by the integration suites: a real docker-registry with the fixture images, a private
        // containerd (its CRI answers through the generated clients).
        .target(
            name: "TestSupport",
            dependencies: [
                "PodvisorCore", "PodvisorVMM", "PodvisorStreaming", "PodvisorCRI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ],
            path: "Tests/TestSupport", exclude: ["Fixtures"]),
        .testTarget(name: "ImageIntegrationTests", dependencies: ["PodvisorImages", "PodvisorCore", "TestSupport"]),
        .testTarget(
            name: "CRIIntegrationTests",
            dependencies: [
                "PodvisorCRI", "PodvisorStreaming", "TestSupport", "PodvisorVMM",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ]
        ),
        .testTarget(name: "CLIIntegrationTests", dependencies: ["TestSupport", "PodvisorVMM"]),
        // The CRI handlers against a fake sandbox runtime (no VM): `make unit-test`.
        .testTarget(
            name: "PodvisorCRIServerTests",
            dependencies: [
                "PodvisorCRIServer", "PodvisorCRI", "PodvisorImages", "PodvisorRuntime", "PodvisorCore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
