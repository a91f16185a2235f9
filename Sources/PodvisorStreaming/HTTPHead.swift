import Foundation

/// The HTTP/1.1 head of a streaming request or of its answer: all a connection sees of HTTP before it is
/// upgraded to SPDY. Header names are kept lowercase; repeated headers keep every value.
struct HTTPHead: Equatable {
    /// Request: method, target, version. Response: version, status code, reason.
    var startLine: [String]
    var headers: [String: [String]] = [:]

    /// Parses a head (up to and including the blank line); nil if it is not HTTP/1.x.
    init?(_ bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ", maxSplits: 2).map(String.init)
        guard parts.count >= 2, parts.contains(where: { $0.hasPrefix("HTTP/1.") }) else { return nil }
        startLine = parts
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            headers[name, default: []].append(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    init(startLine: [String], headers: [String: [String]]) {
        self.startLine = startLine
        self.headers = headers
    }

    /// Every comma-separated value of a header, over all its lines.
    func values(_ name: String) -> [String] {
        (headers[name] ?? []).flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func has(_ name: String, token: String) -> Bool {
        values(name).contains { $0.lowercased() == token.lowercased() }
    }

    var serialized: [UInt8] {
        var text = startLine.joined(separator: " ") + "\r\n"
        for (name, values) in headers.sorted(by: { $0.key < $1.key }) {
            for value in values { text += "\(name): \(value)\r\n" }
        }
        return Array((text + "\r\n").utf8)
    }

    /// A complete plain-text response that ends the connection (refusals before any upgrade).
    static func response(_ status: Int, _ reason: String, body: String, headers extra: [String: [String]] = [:]) -> [UInt8] {
        var headers = extra
        headers["content-type"] = ["text/plain; charset=utf-8"]
        headers["content-length"] = ["\(body.utf8.count + 1)"]
        headers["connection"] = ["close"]
        return HTTPHead(startLine: ["HTTP/1.1", "\(status)", reason], headers: headers).serialized + Array((body + "\n").utf8)
    }
}
