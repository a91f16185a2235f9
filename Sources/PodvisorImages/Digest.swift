import Crypto
import PodvisorCore

/// A content digest, `sha256:<64 lowercase hex>`. Only sha256 is accepted: it is what every registry serves, and a
/// digest we cannot verify must not address content.
public struct Digest: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let hex: String

    public init(parsing text: String) throws(PodvisorError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw PodvisorError(.invalidArgument, "invalid digest \(text): expected algorithm:hex")
        }
        let algorithm = text[..<colon]
        let hex = text[text.index(after: colon)...]
        guard algorithm == "sha256" else {
            throw PodvisorError(.unsupported, "digest algorithm \(algorithm) is not supported (only sha256)")
        }
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw PodvisorError(.invalidArgument, "invalid digest \(text): expected 64 lowercase hex digits")
        }
        self.hex = String(hex)
    }

    public static func sha256(of bytes: some Sequence<UInt8>) -> Digest {
        var hasher = SHA256()
        hasher.update(data: Array(bytes))
        return Digest(hasher.finalize())
    }

    init(_ digest: SHA256.Digest) {
        hex = digest.map { byte in
            let s = String(byte, radix: 16)
            return byte < 16 ? "0" + s : s
        }.joined()
    }

    public var description: String { "sha256:\(hex)" }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.hex < rhs.hex }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try Digest(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
