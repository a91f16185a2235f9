import Testing

@testable import PodvisorCore

@Suite struct TOMLTests {
    /// The message of the error that parsing `text` throws; fails the test when it parses.
    static func failure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        do {
            let document = try TOMLDocument(parsing: text)
            Issue.record("parsed: \(document.values)", sourceLocation: sourceLocation)
            return ""
        } catch {
            #expect(error.code == .invalidArgument, sourceLocation: sourceLocation)
            return error.message
        }
    }

    @Test func tablesAndDottedTablesPrefixKeys() throws {
        let document = try TOMLDocument(
            parsing: """
                top = 1
                [vm]
                memory_mib = 256
                [ a . b-c ]
                d_e = true
                [vm]
                vcpus = 2
                """)
        #expect(
            document.values == [
                "top": .integer(1),
                "vm.memory_mib": .integer(256),
                "a.b-c.d_e": .boolean(true),
                "vm.vcpus": .integer(2),
            ])
    }

    @Test func quotedKeys() throws {
        #expect(try TOMLDocument(parsing: "\"key\" = 1").values == ["key": .integer(1)])
    }

    @Test func basicStringEscapes() throws {
        let document = try TOMLDocument(parsing: #"s = "a\"b\\c\nd\te # not a comment""#)
        #expect(document.values["s"] == .string("a\"b\\c\nd\te # not a comment"))
    }

    @Test func literalStringsTakeBackslashesVerbatim() throws {
        let document = try TOMLDocument(parsing: #"s = 'C:\path\n "quoted"'"#)
        #expect(document.values["s"] == .string(#"C:\path\n "quoted""#))
    }

    @Test func emptyStrings() throws {
        #expect(try TOMLDocument(parsing: "a = \"\"\nb = ''").values == ["a": .string(""), "b": .string("")])
    }

    @Test(arguments: [
        ("0", 0), ("42", 42), ("+17", 17), ("-5", -5), ("1_000_000", 1_000_000), ("-2_048", -2048),
        ("9223372036854775807", Int.max),
    ])
    func integers(text: String, expected: Int) throws {
        #expect(try TOMLDocument(parsing: "n = \(text)").values["n"] == .integer(expected))
    }

    @Test(arguments: ["1.5", "0x10", "1e3", "--1", "+", "1-2", "9223372036854775808", "inf"])
    func unsupportedOrInvalidNumbersAreRefused(text: String) {
        #expect(Self.failure("n = \(text)").hasPrefix("TOML line 1:"))
    }

    @Test func booleans() throws {
        #expect(try TOMLDocument(parsing: "t = true\nf = false").values == ["t": .boolean(true), "f": .boolean(false)])
        #expect(Self.failure("t = True").contains("expected a string, integer, boolean or array"))
        #expect(Self.failure("t = truest").contains("unexpected text after the value"))
    }

    @Test func arrays() throws {
        let document = try TOMLDocument(
            parsing: """
                empty = []
                mixed = [ 1, "two", 'three', false ]
                nested = [[1, 2], [], ["x"]]
                trailing = [1, 2, ]
                """)
        #expect(document.values["empty"] == .array([]))
        #expect(document.values["mixed"] == .array([.integer(1), .string("two"), .string("three"), .boolean(false)]))
        #expect(document.values["nested"] == .array([.array([.integer(1), .integer(2)]), .array([]), .array([.string("x")])]))
        #expect(document.values["trailing"] == .array([.integer(1), .integer(2)]))
    }

    @Test(arguments: ["a = [1 2]", "a = [,]", "a = [1,,2]", "a = [1", "a = [1,", "a = [1]]"])
    func malformedArraysAreRefused(text: String) {
        #expect(Self.failure(text).hasPrefix("TOML line 1:"))
    }

    @Test func multiLineArraysAreRefusedNotMisread() {
        #expect(Self.failure("a = [\n1,\n2\n]").hasPrefix("TOML line 1:"))
    }

    @Test func commentsBlankLinesAndWhitespace() throws {
        let document = try TOMLDocument(
            parsing: """
                # leading comment

                \t[vm]   # table comment
                  memory_mib=512# no space needed
                \tkernel = "/k#1" # hash inside a string is not a comment
                """)
        #expect(document.values == ["vm.memory_mib": .integer(512), "vm.kernel": .string("/k#1")])
    }

    @Test func crlfLineEndings() throws {
        let document = try TOMLDocument(parsing: "# c\r\n[vm]\r\nvcpus = 2\r\nkernel = 'k'\r\n")
        #expect(document.values == ["vm.vcpus": .integer(2), "vm.kernel": .string("k")])
        #expect(Self.failure("a = 1\r\nb = ?\r\n").hasPrefix("TOML line 2:"))
    }

    @Test func emptyDocument() throws {
        #expect(try TOMLDocument(parsing: "").values.isEmpty)
        #expect(try TOMLDocument(parsing: "\n# only a comment\n").values.isEmpty)
    }

    @Test func duplicateKeysAreRefused() {
        #expect(Self.failure("a = 1\na = 2") == "TOML line 2: duplicate key a")
        #expect(Self.failure("[vm]\nvcpus = 1\n[other]\nx = 1\n[vm]\nvcpus = 2") == "TOML line 6: duplicate key vm.vcpus")
    }

    @Test func errorsCarryTheirLineNumber() {
        #expect(Self.failure("a = 1\n\n# c\nb = @") == "TOML line 4: expected a string, integer, boolean or array")
        #expect(Self.failure("a = 1\nb 2").hasPrefix("TOML line 2: expected '='"))
    }

    @Test func unterminatedStrings() {
        #expect(Self.failure("a = 1\ns = \"abc") == "TOML line 2: unterminated string")
        #expect(Self.failure("s = 'abc") == "TOML line 1: unterminated string")
        #expect(Self.failure(#"s = "abc\"#) == "TOML line 1: unterminated escape")
        // A string never continues onto the next line.
        #expect(Self.failure("s = \"abc\n\"") == "TOML line 1: unterminated string")
    }

    @Test(arguments: [#"s = "\u0041""#, #"s = "\r""#, #"s = "\q""#])
    func unsupportedEscapesAreRefused(text: String) {
        #expect(Self.failure(text).contains("unsupported escape"))
    }

    @Test(arguments: ["a = 1 2", "a = \"x\" y", "a = 'x''y'", "a = true false", "a = [] ,", "a = \"\"\"x\"\"\""])
    func garbageAfterTheValueIsRefused(text: String) {
        #expect(Self.failure(text) == "TOML line 1: unexpected text after the value")
    }

    @Test(arguments: ["[vm", "[]", "[vm.]", "[vm] x = 1", "[[vm]]", "[.vm]"])
    func malformedTableHeadersAreRefused(text: String) {
        #expect(Self.failure(text).hasPrefix("TOML line 1:"))
    }

    @Test(arguments: ["= 1", "a.b = 1", "a", "a =", "a = # comment"])
    func malformedKeyValueLinesAreRefused(text: String) {
        #expect(Self.failure(text).hasPrefix("TOML line 1:"))
    }
}
