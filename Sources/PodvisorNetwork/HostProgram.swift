import Foundation
import PodvisorCore
import Subprocess

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs a host program (a CNI plugin, `ip`, `tc`, `nsenter`) to completion off the cooperative pool's threads:
/// swift-subprocess waits for the exit and drains the pipes asynchronously.
enum HostProgram {
    struct Output: Sendable {
        /// The exit status, or 128 + the signal that ended it (as a shell reports it).
        var status: Int32
        var stdout: Data
        var stderr: String
    }

    /// Output beyond these is an error: a plugin result or an `ip -j` answer is a few KiB.
    static let outputLimit = 4 << 20

    /// `executable` is a path, or a name looked up in PATH; the environment is inherited with `environment`
    /// set on top (libcni passes the runtime's own environment to plugins too).
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], input: Data = Data()
    ) async throws(PodvisorError) -> Output {
        let program: Executable = executable.contains("/") ? .path(FilePath(executable)) : .name(executable)
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in environment { updates[Environment.Key(rawValue: key)!] = value }
        do {
            let result = try await Subprocess.run(
                program, arguments: Arguments(arguments), environment: .inherit.updating(updates),
                input: .array(Array(input)), output: .bytes(limit: outputLimit), error: .string(limit: outputLimit))
            let status: Int32 =
                switch result.terminationStatus {
                case .exited(let code): code
                case .signaled(let signal): 128 + signal
                }
            return Output(status: status, stdout: Data(result.standardOutput), stderr: result.standardError)
        } catch {
            throw PodvisorError(.unavailable, "cannot run \(executable)", cause: error)
        }
    }

    /// Runs a command that must succeed; returns its standard output. The error quotes the command line and
    /// what it printed on standard error.
    @discardableResult
    static func check(_ executable: String, _ arguments: [String], input: Data = Data()) async throws(PodvisorError) -> String {
        let output = try await run(executable, arguments, input: input)
        guard output.status == 0 else { throw failure(executable, arguments, output) }
        return String(decoding: output.stdout, as: UTF8.self)
    }

    static func failure(_ executable: String, _ arguments: [String], _ output: Output) -> PodvisorError {
        let command = ([executable] + arguments).joined(separator: " ")
        let said = output.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        return PodvisorError(.internalError, "`\(command)` failed (exit \(output.status)): \(said)")
    }
}
