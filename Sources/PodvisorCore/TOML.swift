import TOMLKit

/// A TOML document (TOML 1.0 in full: TOMLKit, over toml++, parses and validates it) as podvisor's readers check
/// it: every key with its full dotted name and the line it is written on, tables in the order they are written.
/// A syntax error is refused with toml++'s line and description, so a typo never silently becomes a default.
public struct TOMLDocument: Sendable, Equatable {
    /// The root table's keys.
    public var keys: [TOMLKey]

    public init(parsing text: String) throws(PodvisorError) {
        // TOMLKit hands the text to C++ as a C string, which would end at a NUL and drop the rest unread.
        if let nul = text.utf8.firstIndex(of: 0) {
            let line = text.utf8[..<nul].count(where: { $0 == UInt8(ascii: "\n") }) + 1
            throw PodvisorError(.invalidArgument, "line \(line): a NUL character is not allowed in TOML")
        }
        let table: TOMLKit.TOMLTable
        do {
            table = try TOMLKit.TOMLTable(string: text)
        } catch {
            let parseError = error as? TOMLParseError
            throw PodvisorError(
                .invalidArgument, parseError.map { "line \($0.source.begin.line): \($0.description)" } ?? "\(error)")
        }
        // TOMLKit never frees a parsed document (9 KiB for Configs/podvisor.toml); clearing it frees its nodes, all
        // but 2 KiB of that. hosts.toml is read for every registry request, so this matters.
        defer { table.clear() }
        keys = Self.keys(of: table, at: [], line: 1, TOMLKeyPositions(scanning: text))
    }

    /// TOMLKit lists a table's keys sorted by name; the scan's positions put them back in file order. A key the scan
    /// did not find (it should find every one) gets its table's line and goes last rather than failing the read.
    private static func keys(
        of table: TOMLKit.TOMLTable, at path: [String], line: Int, _ positions: TOMLKeyPositions
    )
        -> [TOMLKey]
    {
        table.map { name, value in
            let keyPath = path + [name]
            let position = positions[keyPath]
            let keyLine = position?.line ?? line
            let key = TOMLKey(path: keyPath, line: keyLine, value: Self.value(value, at: keyPath, line: keyLine, positions))
            return (offset: position?.offset ?? Int.max, key: key)
        }
        .sorted { $0.offset < $1.offset }
        .map(\.key)
    }

    /// `path` is nil inside arrays: their elements have no dotted name of their own.
    private static func value(
        _ value: TOMLValueConvertible, at path: [String]?, line: Int, _ positions: TOMLKeyPositions
    ) -> TOMLValue {
        switch value.type {
        case .string: return .string(value.string!)
        case .int: return .integer(value.int!)
        case .bool: return .boolean(value.bool!)
        case .array: return .array(value.array!.map { Self.value($0, at: nil, line: line, positions) })
        case .table:
            guard let path else { return .other("a table") }
            return .table(keys(of: value.table!, at: path, line: line, positions))
        case .double: return .other("a float")
        case .date: return .other("a date")
        case .time: return .other("a time")
        case .dateTime: return .other("a date-time")
        }
    }
}

/// A value as podvisor's readers check it.
public indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case array([TOMLValue])
    /// Keys in the order they are written.
    case table([TOMLKey])
    /// A float, date, time or date-time, or a table inside an array: valid TOML that no podvisor key takes, kept
    /// as its kind ("a date") for the error that refuses it.
    case other(String)

    /// What the value is, for an error: "a string", "an integer", ….
    public var kind: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .boolean: "a boolean"
        case .array: "an array"
        case .table: "a table"
        case .other(let kind): kind
        }
    }
}

/// One key of a document: its path from the root, the line it is written on, its value.
public struct TOMLKey: Sendable, Equatable {
    public var path: [String]
    public var line: Int
    public var value: TOMLValue

    /// The full dotted name as TOML writes it, parts that are not bare keys quoted: `vm.memory_mib`,
    /// `host."https://mirror:5000".ca`.
    public var name: String {
        path.map { !$0.isEmpty && $0.utf8.allSatisfy(TOMLKeyPositions.isBareKey) ? $0 : PodvisorConfig.quote($0) }
            .joined(separator: ".")
    }

    /// An error about this key: "line 3: vm.kernel must be a string (not a date)".
    public func error(_ message: String) -> PodvisorError {
        PodvisorError(.invalidArgument, "line \(line): \(name) \(message)")
    }

    /// The error for a value of the wrong type: what it must be, and what it is.
    public func mismatch(_ expected: String) -> PodvisorError {
        error("must be \(expected) (not \(value.kind))")
    }

    public func string() throws(PodvisorError) -> String {
        guard case .string(let string) = value else { throw mismatch("a string") }
        return string
    }

    public func boolean() throws(PodvisorError) -> Bool {
        guard case .boolean(let boolean) = value else { throw mismatch("true or false") }
        return boolean
    }

    public func integer(in range: ClosedRange<Int>) throws(PodvisorError) -> Int {
        let expected = "an integer in \(range.lowerBound)...\(range.upperBound)"
        guard case .integer(let integer) = value else { throw mismatch(expected) }
        guard range.contains(integer) else { throw error("must be \(expected) (not \(integer))") }
        return integer
    }

    public func strings() throws(PodvisorError) -> [String] {
        guard case .array(let items) = value else { throw mismatch("an array of strings") }
        return try items.map { (item) throws(PodvisorError) in
            guard case .string(let string) = item else {
                throw error("must be an array of strings (not an array holding \(item.kind))")
            }
            return string
        }
    }

    public func table() throws(PodvisorError) -> [TOMLKey] {
        guard case .table(let keys) = value else { throw mismatch("a table") }
        return keys
    }
}
