/// The subset of TOML that podvisor's configuration uses: `[table]` and `[a.b]` headers, `key = value` with
/// basic and literal strings, integers, booleans and arrays of those, and comments. Anything else is refused
/// with its line number, so a typo never silently becomes a default.
public enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case array([TOMLValue])
}

public struct TOMLDocument: Sendable, Equatable {
    /// Values by dotted path: `vm.memory_mib`.
    public var values: [String: TOMLValue]

    public init(parsing text: String) throws(PodvisorError) {
        var values: [String: TOMLValue] = [:]
        var table = ""
        // "\r\n" is one Character in Swift: splitting on "\n" alone would leave a CRLF file one long line.
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (index, rawLine) in lines.enumerated() {
            let lineNumber = index + 1
            var parser = LineParser(text: Substring(rawLine), line: lineNumber)
            parser.skipSpaces()
            if parser.atEndOrComment { continue }
            if parser.peek == "[" {
                table = try parser.tableHeader()
                continue
            }
            let key = try parser.key()
            parser.skipSpaces()
            try parser.expect("=")
            parser.skipSpaces()
            let value = try parser.value()
            parser.skipSpaces()
            guard parser.atEndOrComment else { throw parser.error("unexpected text after the value") }
            let path = table.isEmpty ? key : "\(table).\(key)"
            guard values[path] == nil else { throw parser.error("duplicate key \(path)") }
            values[path] = value
        }
        self.values = values
    }
}

private struct LineParser {
    var text: Substring
    let line: Int

    var peek: Character? { text.first }
    var atEndOrComment: Bool { text.isEmpty || text.first == "#" || text.first == "\r" }

    func error(_ message: String) -> PodvisorError {
        PodvisorError(.invalidArgument, "TOML line \(line): \(message)")
    }

    mutating func skipSpaces() {
        text = text.drop { $0 == " " || $0 == "\t" }
    }

    mutating func expect(_ c: Character) throws(PodvisorError) {
        guard text.first == c else { throw error("expected '\(c)'") }
        text.removeFirst()
    }

    mutating func tableHeader() throws(PodvisorError) -> String {
        try expect("[")
        var parts: [String] = []
        repeat {
            skipSpaces()
            parts.append(try bareKey())
            skipSpaces()
        } while text.first == "." && text.removeFirst() == "."
        try expect("]")
        skipSpaces()
        guard atEndOrComment else { throw error("unexpected text after the table header") }
        return parts.joined(separator: ".")
    }

    mutating func key() throws(PodvisorError) -> String {
        if text.first == "\"" { return try basicString() }
        return try bareKey()
    }

    mutating func bareKey() throws(PodvisorError) -> String {
        let key = text.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        guard !key.isEmpty else { throw error("expected a key") }
        text.removeFirst(key.count)
        return String(key)
    }

    mutating func value() throws(PodvisorError) -> TOMLValue {
        switch text.first {
        case "\"": return .string(try basicString())
        case "'": return .string(try literalString())
        case "[": return try array()
        case "t" where text.hasPrefix("true"):
            text.removeFirst(4)
            return .boolean(true)
        case "f" where text.hasPrefix("false"):
            text.removeFirst(5)
            return .boolean(false)
        default:
            let token = text.prefix { $0.isNumber || $0 == "-" || $0 == "+" || $0 == "_" }
            guard !token.isEmpty, let number = Int(token.replacingOccurrences(of: "_", with: "")) else {
                throw error("expected a string, integer, boolean or array")
            }
            text.removeFirst(token.count)
            return .integer(number)
        }
    }

    mutating func array() throws(PodvisorError) -> TOMLValue {
        try expect("[")
        var items: [TOMLValue] = []
        while true {
            skipSpaces()
            if text.first == "]" { break }
            items.append(try value())
            skipSpaces()
            if text.first == "," { text.removeFirst() } else { break }
        }
        skipSpaces()
        try expect("]")
        return .array(items)
    }

    mutating func literalString() throws(PodvisorError) -> String {
        try expect("'")
        guard let end = text.firstIndex(of: "'") else { throw error("unterminated string") }
        let s = String(text[..<end])
        text = text[text.index(after: end)...]
        return s
    }

    mutating func basicString() throws(PodvisorError) -> String {
        try expect("\"")
        var result = ""
        while let c = text.first {
            text.removeFirst()
            switch c {
            case "\"": return result
            case "\\":
                guard let escaped = text.first else { throw error("unterminated escape") }
                text.removeFirst()
                switch escaped {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "\\": result.append("\\")
                case "\"": result.append("\"")
                default: throw error("unsupported escape \\\(escaped)")
                }
            default: result.append(c)
            }
        }
        throw error("unterminated string")
    }
}

extension Substring {
    fileprivate func replacingOccurrences(of target: Character, with replacement: String) -> String {
        String(self.filter { $0 != target })
    }
}
