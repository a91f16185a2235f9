import Foundation

// What the runtime asks of the pod network for one sandbox, and how it reaches the plugins.
//
//   CNIAttachment(containerID:netnsPath:podNamespace:podName:podUID:interfaceName:portMappings:bandwidth:dns:)
//   attachment.cniArgs -> String                               CNI_ARGS, as containerd sets it for kubelet's pods
//   attachment.runtimeConfig(for: CNIPlugin) -> JSONValue?     only the capabilities the plugin declares

/// One sandbox's attachment to the pod network.
public struct CNIAttachment: Codable, Sendable, Equatable {
    /// The sandbox id: CNI_CONTAINERID, and the key of the attachment cache.
    public var containerID: String
    /// The pinned network namespace (`/run/netns/<name>`).
    public var netnsPath: String
    public var interfaceName: String
    public var podNamespace: String
    public var podName: String
    public var podUID: String
    public var portMappings: [PortMapping]
    public var bandwidth: Bandwidth?
    public var dns: DNS?

    public init(
        containerID: String, netnsPath: String, podNamespace: String, podName: String, podUID: String,
        interfaceName: String = "eth0", portMappings: [PortMapping] = [], bandwidth: Bandwidth? = nil, dns: DNS? = nil
    ) {
        self.containerID = containerID
        self.netnsPath = netnsPath
        self.interfaceName = interfaceName
        self.podNamespace = podNamespace
        self.podName = podName
        self.podUID = podUID
        self.portMappings = portMappings
        self.bandwidth = bandwidth
        self.dns = dns
    }

    /// A CRI port mapping, as the portmap plugin reads it (`runtimeConfig.portMappings`).
    public struct PortMapping: Codable, Sendable, Equatable {
        public enum Proto: String, Codable, Sendable { case tcp, udp, sctp }
        public var hostPort: Int
        public var containerPort: Int
        public var `protocol`: Proto
        /// Empty: every host address (the key is then left out, as containerd does).
        public var hostIP: String

        public init(hostPort: Int, containerPort: Int, protocol: Proto = .tcp, hostIP: String = "") {
            self.hostPort = hostPort
            self.containerPort = containerPort
            self.protocol = `protocol`
            self.hostIP = hostIP
        }
    }

    /// Traffic shaping for the bandwidth plugin: rates in bits per second, bursts in bits.
    public struct Bandwidth: Codable, Sendable, Equatable {
        public var ingressRate: UInt64
        public var ingressBurst: UInt64
        public var egressRate: UInt64
        public var egressBurst: UInt64

        public init(ingressRate: UInt64, ingressBurst: UInt64, egressRate: UInt64, egressBurst: UInt64) {
            self.ingressRate = ingressRate
            self.ingressBurst = ingressBurst
            self.egressRate = egressRate
            self.egressBurst = egressBurst
        }
    }

    /// The pod's DNS settings (CRI DNSConfig), for plugins declaring the `dns` capability.
    public struct DNS: Codable, Sendable, Equatable {
        public var servers: [String]
        public var searches: [String]
        public var options: [String]

        public init(servers: [String] = [], searches: [String] = [], options: [String] = []) {
            self.servers = servers
            self.searches = searches
            self.options = options
        }
    }

    /// CNI_ARGS: `IgnoreUnknown=1` first, so plugins that know none of the K8S_ keys accept them.
    public var cniArgs: String {
        [
            "IgnoreUnknown=1", "K8S_POD_NAMESPACE=\(podNamespace)", "K8S_POD_NAME=\(podName)",
            "K8S_POD_INFRA_CONTAINER_ID=\(containerID)", "K8S_POD_UID=\(podUID)",
        ].joined(separator: ";")
    }

    /// The `runtimeConfig` object for `plugin`: the capabilities it declares that this attachment has values
    /// for, nothing else (libcni's rule: a plugin never sees a capability it did not ask for); nil when none.
    public func runtimeConfig(for plugin: CNIPlugin) -> JSONValue? {
        var config: [String: JSONValue] = [:]
        if plugin.capabilities.contains("portMappings"), !portMappings.isEmpty {
            config["portMappings"] = .array(
                portMappings.map { mapping in
                    var object: [String: JSONValue] = [
                        "hostPort": .int(Int64(mapping.hostPort)), "containerPort": .int(Int64(mapping.containerPort)),
                        "protocol": .string(mapping.protocol.rawValue),
                    ]
                    if !mapping.hostIP.isEmpty { object["hostIP"] = .string(mapping.hostIP) }
                    return .object(object)
                })
        }
        if plugin.capabilities.contains("bandwidth"), let bandwidth {
            config["bandwidth"] = .object([
                "ingressRate": .int(Int64(clamping: bandwidth.ingressRate)),
                "ingressBurst": .int(Int64(clamping: bandwidth.ingressBurst)),
                "egressRate": .int(Int64(clamping: bandwidth.egressRate)),
                "egressBurst": .int(Int64(clamping: bandwidth.egressBurst)),
            ])
        }
        if plugin.capabilities.contains("dns"), let dns {
            config["dns"] = .object([
                "servers": .array(dns.servers.map(JSONValue.string)),
                "searches": .array(dns.searches.map(JSONValue.string)),
                "options": .array(dns.options.map(JSONValue.string)),
            ])
        }
        return config.isEmpty ? nil : .object(config)
    }
}
