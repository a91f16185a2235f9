/// The subset of TOML that podvisor's configuration and containerd's `hosts.toml` use: `[table]`, `[a.b]` and
/// `[a."quoted.part"]` headers, `key = value` with basic and literal strings, integers, booleans and arrays of
/// those, and comments. Anything else is refused with its line number, so a typo never silently becomes a default.
public enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case array([TOMLValue])
}

/// One `[header]` and the keys under it.
public struct TOMLTable: Sendable, Equatable {
    /// The header's key parts; a quoted part keeps its dots (`[host."http://127.0.0.1:5000"]` is
    /// `["host", "http://127.0.0.1:5000"]`). Keys before the first header are in the table with no parts.
    public var path: [String]
    public var values: [String: TOMLValue]
}

public struct TOMLDocument: Sendable, Equatable {
    /// Values by dotted path: `vm.memory_mib`.
    public var values: [String: TOMLValue]
    /// Tables in the order their headers first appear (the root table first); for keys that are not plain words,
    /// such as URLs, and where order matters.
    public var tables: [TOMLTable]

    public init(parsing text: String) throws(PodvisorError) {
        var values: [String: TOMLValue] = [:]
        var tables = [TOMLTable(path: [], values: [:])]
        var table = 0
        // "\r\n" is one Character in Swift: splitting on "\n" alone would leave a CRLF file one long line.
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (index, rawLine) in lines.enumerated() {
            let lineNumber = index + 1
            var parser = LineParser(text: Substring(rawLine), line: lineNumber)
            parser.skipSpaces()
            if parser.atEndOrComment { continue }
            if parser.peek == "[" {
                let path = try parser.tableHeader()
                if let existing = tables.firstIndex(where: { $0.path == path }) {
                    table = existing
                } else {
                    table = tables.count
                    tables.append(TOMLTable(path: path, values: [:]))
                }
                continue
            }
            let key = try parser.key()
            parser.skipSpaces()
            try parser.expect("=")
            parser.skipSpaces()
            let value = try parser.value()
            parser.skipSpaces()
            guard parser.atEndOrComment else { throw parser.error("unexpected text after the value") }
            let path = (tables[table].path + [key]).joined(separator: ".")
            guard values[path] == nil else { throw parser.error("duplicate key \(path)") }
            values[path] = value
            tables[table].values[key] = value
        }
        self.values = values
        self.tables = tables
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

    mutating func tableHeader() throws(PodvisorError) -> [String] {
        try expect("[")
        var parts: [String] = []
        repeat {
            skipSpaces()
            parts.append(try key())
            skipSpaces()
        } while text.first == "." && text.removeFirst() == "."
        try expect("]")
        skipSpaces()
        guard atEndOrComment else { throw error("unexpected text after the table header") }
        return parts
    }

    mutating func key() throws(PodvisorError) -> String {
        if text.first == "\"" { return try basicString() }
        if text.first == "'" { return try literalString() }
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

/// Typed reads of a value for a configuration key; the error names the key and what it must be.
extension TOMLValue {
    public func string(_ key: String) throws(PodvisorError) -> String {
        guard case .string(let s) = self else { throw PodvisorError(.invalidArgument, "\(key) must be a string") }
        return s
    }

    public func boolean(_ key: String) throws(PodvisorError) -> Bool {
        guard case .boolean(let b) = self else { throw PodvisorError(.invalidArgument, "\(key) must be true or false") }
        return b
    }

    public func strings(_ key: String) throws(PodvisorError) -> [String] {
        guard case .array(let items) = self else { throw PodvisorError(.invalidArgument, "\(key) must be an array") }
        return try items.map { (item) throws(PodvisorError) in try item.string(key) }
    }

    public func integer(_ key: String, in range: ClosedRange<Int>) throws(PodvisorError) -> Int {
        guard case .integer(let n) = self, range.contains(n) else {
            throw PodvisorError(.invalidArgument, "\(key) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }
}
