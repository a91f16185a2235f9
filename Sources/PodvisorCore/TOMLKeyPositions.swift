/// Where each key of a TOML document is first written: its line (for errors) and its offset (for file order).
///
/// toml++ records every node's source region, but TOMLKit's API exposes neither those regions nor the order keys
/// were written in (it lists a table's keys sorted), so they are found by this scan of the text. It runs only on
/// a document TOMLKit has already accepted and therefore validates nothing: it follows `[table]` and `[[array]]`
/// headers, dotted keys and inline tables, records each key path when it first appears, and steps over strings
/// (all four kinds), comments and arrays so that nothing inside them is taken for a key.
struct TOMLKeyPositions {
    struct Position {
        var line: Int
        var offset: Int
    }

    private var positions: [[String]: Position] = [:]
    private let bytes: [UInt8]
    private var index = 0
    private var line = 1

    subscript(path: [String]) -> Position? { positions[path] }

    /// TOML's bare key characters: A-Z a-z 0-9 _ -.
    static func isBareKey(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }

    init(scanning text: String) {
        bytes = Array(text.utf8)
        var table: [String] = []
        while true {
            skipTrivia()
            guard peek != nil else { break }
            if next(is: "[") {
                let arrayOfTables = bytes.dropFirst(index).starts(with: "[[".utf8)
                advance(arrayOfTables ? 2 : 1)
                table = key(under: [])!
                advance(arrayOfTables ? 2 : 1)
            } else {
                keyValue(under: table)
            }
        }
    }

    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private func next(is character: Character) -> Bool { peek == character.asciiValue }

    /// Never past the end, so no slice can start out of bounds whatever the scan meets.
    private mutating func advance(_ count: Int = 1) { index = min(index + count, bytes.count) }

    private mutating func skipSpaces() {
        while next(is: " ") || next(is: "\t") { advance() }
    }

    /// Spaces, line breaks and comments.
    private mutating func skipTrivia() {
        while let byte = peek {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"): advance()
            case UInt8(ascii: "\n"):
                advance()
                line += 1
            case UInt8(ascii: "#"):
                while let byte = peek, byte != UInt8(ascii: "\n") { advance() }
            default: return
            }
        }
    }

    /// Reads a dotted key and records every path it names below `prefix`, all at the key's position; inside an
    /// array (`prefix` nil) nothing is recorded and nil is returned.
    private mutating func key(under prefix: [String]?) -> [String]? {
        let position = Position(line: line, offset: index)
        var path = prefix ?? []
        while true {
            skipSpaces()
            if next(is: "\"") || next(is: "'") {
                let (quote, body) = string()
                path.append(quote == UInt8(ascii: "\"") ? Self.unescaped(body) : String(decoding: body, as: UTF8.self))
            } else {
                let start = index
                while let byte = peek, Self.isBareKey(byte) { advance() }
                path.append(String(decoding: bytes[start..<index], as: UTF8.self))
            }
            if prefix != nil && positions[path] == nil { positions[path] = position }
            skipSpaces()
            guard next(is: ".") else { break }
            advance()
        }
        return prefix == nil ? nil : path
    }

    private mutating func keyValue(under table: [String]?) {
        let path = key(under: table)
        advance()  // "="
        skipSpaces()
        value(at: path)
    }

    /// Steps over a value: an inline table (its keys recorded below `path`), an array (nothing in it recorded), a
    /// string, or a number, boolean or date.
    private mutating func value(at path: [String]?) {
        switch peek {
        case UInt8(ascii: "{"):
            advance()
            while true {
                skipTrivia()
                if next(is: "}") || peek == nil {
                    advance()
                    return
                }
                if next(is: ",") { advance() } else { keyValue(under: path) }
            }
        case UInt8(ascii: "["):
            advance()
            while true {
                skipTrivia()
                if next(is: "]") || peek == nil {
                    advance()
                    return
                }
                if next(is: ",") { advance() } else { value(at: nil) }
            }
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            _ = string()
        default:
            // A date-time may hold a space; it ends where the next element, the array, the table or a comment starts.
            repeat { advance() } while peek.map { !",]}#\r\n".utf8.contains($0) } ?? false
        }
    }

    /// Steps over a string of any kind and returns its quote and what lies between the quotes, escapes undecoded.
    private mutating func string() -> (quote: UInt8, body: ArraySlice<UInt8>) {
        let quote = bytes[index]
        let multiLine = bytes.dropFirst(index).starts(with: repeatElement(quote, count: 3))
        advance(multiLine ? 3 : 1)
        let start = index
        while let byte = peek {
            if byte == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") {
                // The escaped character, unless it is the line break of a line-ending backslash (counted below).
                advance()
                if !next(is: "\n") { advance() }
                continue
            }
            if byte == UInt8(ascii: "\n") { line += 1 }
            if byte == quote {
                if !multiLine {
                    advance()
                    return (quote, bytes[start..<index - 1])
                }
                // Up to two quotes may stand just before the closing three.
                let run = bytes[index...].prefix { $0 == quote }.count
                advance(run)
                if run >= 3 { return (quote, bytes[start..<index - 3]) }
                continue
            }
            advance()
        }
        return (quote, bytes[start...])
    }

    /// A basic string key's text: TOML 1.0's escapes (\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX) decoded.
    private static func unescaped(_ body: ArraySlice<UInt8>) -> String {
        var result = String.UnicodeScalarView()
        var scalars = String(decoding: body, as: UTF8.self).unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            guard scalar == "\\", let escaped = scalars.next() else {
                result.append(scalar)
                continue
            }
            switch escaped {
            case "b": result.append("\u{8}")
            case "t": result.append("\t")
            case "n": result.append("\n")
            case "f": result.append("\u{C}")
            case "r": result.append("\r")
            case "u", "U":
                let digits = String(String.UnicodeScalarView((0..<(escaped == "u" ? 4 : 8)).compactMap { _ in scalars.next() }))
                if let value = UInt32(digits, radix: 16), let decoded = Unicode.Scalar(value) { result.append(decoded) }
            default: result.append(escaped)
            }
        }
        return String(result)
    }
}
