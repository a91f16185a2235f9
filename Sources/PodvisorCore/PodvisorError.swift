/// The one error type of podvisor's host side: a code that callers switch on (and that maps onto a gRPC
/// status at the CRI edge), a message for people, and the underlying cause when there is one.
public struct PodvisorError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        case invalidArgument
        case notFound
        case alreadyExists
        case failedPrecondition
        /// Credentials are missing or were refused (a registry's 401/403).
        case permissionDenied
        /// The host lacks what a request needs (a device, a binary, a transport).
        case unsupported
        case timeout
        /// The peer (libvirt, QEMU, the agent) is gone or not answering.
        case unavailable
        /// Content does not match its digest or size: corrupt or tampered with.
        case dataLoss
        case internalError
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return "\(code.rawValue): \(message)" }
        return "\(code.rawValue): \(message): \(cause)"
    }
}

extension PodvisorError {
    /// A request's value as an error message quotes it: at most `limit` characters, so a megabyte of input
    /// never comes back as a megabyte of message.
    public static func quote(_ value: String, limit: Int = 64) -> String {
        let shown = value.count > limit ? "\(value.prefix(limit))… (\(value.utf8.count) bytes)" : value
        return "\"\(shown.unicodeScalars.map { $0.value < 0x20 || $0 == "\u{7f}" ? "?" : String($0) }.joined())\""
    }
}
