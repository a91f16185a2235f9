import Testing

@testable import PodvisorCore

/// Table headers with quoted parts, as containerd's hosts.toml writes them, and tables in document order.
@Suite struct TOMLTableTests {
    @Test func quotedHeaderPartsKeepTheirDotsAndOrder() throws {
        let document = try TOMLDocument(
            parsing: """
                server = "https://registry.k8s.io"

                [host."http://127.0.0.1:5000"]
                  capabilities = ["pull", "resolve"]
                [host.'https://mirror.example:443/v2']
                  skip_verify = true
                [ host . "http://127.0.0.1:5000" ]
                  override_path = false
                """)
        #expect(
            document.tables == [
                TOMLTable(path: [], values: ["server": .string("https://registry.k8s.io")]),
                TOMLTable(
                    path: ["host", "http://127.0.0.1:5000"],
                    values: [
                        "capabilities": .array([.string("pull"), .string("resolve")]), "override_path": .boolean(false),
                    ]),
                TOMLTable(path: ["host", "https://mirror.example:443/v2"], values: ["skip_verify": .boolean(true)]),
            ])
        #expect(document.values["host.http://127.0.0.1:5000.capabilities"] == .array([.string("pull"), .string("resolve")]))
    }

    @Test func plainDocumentsHaveTheirTablesToo() throws {
        let document = try TOMLDocument(parsing: "a = 1\n[vm]\nvcpus = 2\n[x.y]\n")
        #expect(document.tables.map(\.path) == [[], ["vm"], ["x", "y"]])
        #expect(document.tables[1].values == ["vcpus": .integer(2)])
        #expect(document.tables[2].values.isEmpty)
    }

    @Test func duplicateKeysInAQuotedTableAreRefused() {
        #expect(throws: PodvisorError.self) {
            try TOMLDocument(parsing: "[host.\"h\"]\na = 1\n[host.\"h\"]\na = 2")
        }
    }

    @Test(arguments: ["[host.\"unterminated]", "[host.\"a\" x]", "[host.'a]", "[host.\"\\q\"]", "[\"a\".]"])
    func malformedQuotedHeadersAreRefused(text: String) {
        let error = #expect(throws: PodvisorError.self) { try TOMLDocument(parsing: text) }
        #expect(error?.message.hasPrefix("TOML line 1:") == true)
    }
}
