import PodvisorCore

/// An image reference normalised the way Docker and containerd do it: `busybox` is
/// `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:…` keeps its registry and digest.
/// Grammar: distribution/reference (`[domain/]path[:tag][@digest]`).
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    public static let dockerHub = "docker.io"
    /// Docker Hub's name is not the host that serves its API.
    public static let dockerHubAPIHost = "registry-1.docker.io"

    /// The registry as written in names (`docker.io`, `localhost:5000`, `[::1]:5000`).
    public let registry: String
    /// The repository path inside the registry (`library/busybox`).
    public let repository: String
    /// nil only when the reference names a digest and no tag.
    public let tag: String?
    public let digest: Digest?

    public init(parsing text: String) throws(PodvisorError) {
        func invalid(_ why: String) -> PodvisorError {
            PodvisorError(.invalidArgument, "invalid image reference \"\(text)\": \(why)")
        }
        guard !text.isEmpty else { throw invalid("empty") }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            do { digest = try Digest(parsing: String(rest[rest.index(after: at)...])) } catch { throw invalid(error.message) }
            rest = rest[..<at]
        } else {
            digest = nil
        }
        // A colon after the last slash starts the tag; one before it belongs to the registry's port.
        let lastSlash = rest.lastIndex(of: "/") ?? rest.startIndex
        if let colon = rest[lastSlash...].lastIndex(of: ":") {
            let tag = rest[rest.index(after: colon)...]
            guard Self.isValidTag(tag) else { throw invalid("invalid tag \"\(tag)\"") }
            self.tag = String(tag)
            rest = rest[..<colon]
        } else {
            tag = digest == nil ? "latest" : nil
        }

        var components = rest.split(separator: "/", omittingEmptySubsequences: false)
        var registry = Self.dockerHub
        if components.count > 1, Self.looksLikeRegistry(components[0]) {
            guard Self.isValidRegistry(components[0]) else { throw invalid("invalid registry \"\(components[0])\"") }
            let first = components.removeFirst()
            registry = first == "index.docker.io" ? Self.dockerHub : String(first)
        }
        for component in components where !Self.isValidPathComponent(component) {
            if component.contains(where: \.isUppercase) { throw invalid("repository names must be lowercase") }
            throw invalid("invalid repository path component \"\(component)\"")
        }
        if registry == Self.dockerHub && components.count == 1 { components.insert("library", at: 0) }
        self.registry = registry
        repository = components.joined(separator: "/")
        guard registry.count + 1 + repository.count <= 255 else { throw invalid("name longer than 255 characters") }
    }

    /// `registry/repository`, what repo tags and repo digests start with.
    public var name: String { "\(registry)/\(repository)" }

    /// The fully qualified form: `docker.io/library/busybox:latest`, `…@sha256:…`, or both.
    public var description: String {
        var text = name
        if let tag { text += ":\(tag)" }
        if let digest { text += "@\(digest)" }
        return text
    }

    /// What the registry's manifest endpoint is asked for: the digest when there is one (it pins the content).
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The host whose API serves this registry.
    public var apiHost: String { registry == Self.dockerHub ? Self.dockerHubAPIHost : registry }

    /// The host part without a port, brackets removed (`[::1]:5000` → `::1`).
    var registryHostname: String {
        if registry.hasPrefix("["), let close = registry.firstIndex(of: "]") {
            return String(registry[registry.index(after: registry.startIndex)..<close])
        }
        return String(registry.split(separator: ":", maxSplits: 1)[0])
    }

    // MARK: grammar

    /// Docker's rule: the first component is a registry when it has a dot or a port, or is localhost.
    private static func looksLikeRegistry(_ component: Substring) -> Bool {
        component.contains(".") || component.contains(":") || component == "localhost" || component.hasPrefix("[")
            || component.contains(where: \.isUppercase)
    }

    private static func isValidRegistry(_ component: Substring) -> Bool {
        var host = component
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let address = host[host.index(after: host.startIndex)..<close]
            guard !address.isEmpty, address.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { return false }
                port = after.dropFirst()
            }
            host = ""
        } else if let colon = host.firstIndex(of: ":") {
            port = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        if let port, port.isEmpty || !port.allSatisfy(\.isASCIIDigit) || Int(port).map({ $0 > 65535 }) ?? true {
            return false
        }
        return component.hasPrefix("[")
            || host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
                !label.isEmpty && label.allSatisfy { $0.isASCIILetterOrDigit || $0 == "-" } && label.first != "-"
                    && label.last != "-"
            }
    }

    /// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
    private static func isValidPathComponent(_ component: Substring) -> Bool {
        guard let first = component.first, let last = component.last, first.isLowerAlnum, last.isLowerAlnum else {
            return false
        }
        var separator = ""
        for c in component {
            if c.isLowerAlnum {
                guard
                    separator.isEmpty || separator == "." || separator == "_" || separator == "__"
                        || separator.allSatisfy({ $0 == "-" })
                else { return false }
                separator = ""
            } else if c == "." || c == "_" || c == "-" {
                separator.append(c)
            } else {
                return false
            }
        }
        return true
    }

    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    private static func isValidTag(_ tag: Substring) -> Bool {
        guard let first = tag.first, tag.count <= 128, first.isASCIILetterOrDigit || first == "_" else { return false }
        return tag.allSatisfy { $0.isASCIILetterOrDigit || $0 == "_" || $0 == "." || $0 == "-" }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
    fileprivate var isASCIILetterOrDigit: Bool { isASCII && (isLetter || isNumber) }
    fileprivate var isLowerAlnum: Bool { isASCII && (isLowercase || isNumber) }
}
