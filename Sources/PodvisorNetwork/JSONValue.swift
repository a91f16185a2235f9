import Foundation
import PodvisorCore

/// A JSON value kept as it was read, so that keys podvisor does not know (a plugin's own settings, fields of a
/// newer result) pass through to the plugins unchanged. Integers stay integers: a plugin's `mtu` or
/// `ingressRate` must not come back as `1500.0`.
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses `data`; `what` names it in the error ("10-pods.conflist: not valid JSON (…)").
    public static func parse(_ data: Data, what: String) throws(PodvisorError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            // The decoder's own words ("Unexpected character … around line 3, column 5") say where.
            var detail = "\(error)"
            if case DecodingError.dataCorrupted(let context) = error {
                detail = context.underlyingError.map { "\($0)" } ?? context.debugDescription
            }
            throw PodvisorError(.invalidArgument, "\(what): not valid JSON (\(detail))")
        }
    }

    /// Compact JSON with sorted keys: the same value always gives the same bytes.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a JSONValue cannot fail: it holds nothing but JSON (a NaN never comes out of a parse).
        return (try? encoder.encode(self)) ?? Data("null".utf8)
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public subscript(key: String) -> JSONValue? { objectValue?[key] }
}
