import Foundation
import PodvisorCore

// One execution of one CNI plugin (spec 1.0, section 2: the execution protocol).
//
//   CNIInvocation(command:config:plugin:attachment:binDirs:prevResult:)
//   invocation.stdin -> Data                  the plugin object + name, cniVersion, prevResult, runtimeConfig
//   invocation.environment -> [String: String]
//   invocation.run(pluginPath:) async throws -> Data     stdout; a failure quotes the plugin's error object

struct CNIInvocation: Sendable {
    enum Command: String, Sendable {
        case add = "ADD"
        case check = "CHECK"
        case del = "DEL"
    }

    var command: Command
    var config: CNIConfig
    var plugin: CNIPlugin
    var attachment: CNIAttachment
    var binDirs: [String]
    var prevResult: CNIResult?

    /// The plugin's own object with the list's `name` and `cniVersion`, the previous result and the runtime
    /// capabilities it declared, as libcni builds it.
    var stdin: Data {
        var object = plugin.object
        object["name"] = .string(config.name)
        object["cniVersion"] = .string(config.cniVersion)
        object["prevResult"] = prevResult?.raw
        object["runtimeConfig"] = attachment.runtimeConfig(for: plugin)
        return JSONValue.object(object).encoded()
    }

    var environment: [String: String] {
        [
            "CNI_COMMAND": command.rawValue,
            "CNI_CONTAINERID": attachment.containerID,
            "CNI_NETNS": attachment.netnsPath,
            "CNI_IFNAME": attachment.interfaceName,
            "CNI_ARGS": attachment.cniArgs,
            "CNI_PATH": binDirs.joined(separator: ":"),
        ]
    }

    /// Runs the plugin; its standard output on success.
    func run(pluginPath: String) async throws(PodvisorError) -> Data {
        let output = try await HostProgram.run(pluginPath, [], environment: environment, input: stdin)
        guard output.status == 0 else {
            throw PodvisorError(.internalError, "CNI plugin \"\(plugin.type)\" \(command.rawValue) failed: \(Self.failure(output))")
        }
        return output.stdout
    }

    /// What a failed plugin said: its error object (`{code, msg, details}` on stdout), else its raw output.
    static func failure(_ output: HostProgram.Output) -> String {
        struct ErrorObject: Decodable {
            var code: Int?
            var msg: String?
            var details: String?
        }
        if let error = try? JSONDecoder().decode(ErrorObject.self, from: output.stdout), let msg = error.msg {
            var text = msg
            if let details = error.details, !details.isEmpty { text += " (\(details))" }
            if let code = error.code { text += " [code \(code)]" }
            return text
        }
        let said = [String(decoding: output.stdout, as: UTF8.self), output.stderr]
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
        return "exit status \(output.status)" + (said.isEmpty ? "" : ": \(said.prefix(2000))")
    }
}
