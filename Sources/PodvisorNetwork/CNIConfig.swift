import Foundation
import PodvisorCore

// CNI network configuration, read the way libcni and containerd read a conf dir.
//
//   CNIConfig.load(confDir:) -> CNIConfigScan           the first valid file in lexical order, and why others were skipped
//   CNIConfig.parse(_:fileName:) throws -> CNIConfig    one file: a `.conflist`, or a `.conf`/`.json` single plugin
//   CNIConfig.pluginPath(_:binDirs:) -> String?         first executable match in the bin dirs
//
// The file's exact bytes are kept (`bytes`): the attachment cache stores them so that DEL runs with the
// configuration ADD used, whatever the conf dir holds by then.

/// One plugin of a network configuration list.
public struct CNIPlugin: Sendable, Equatable {
    /// The plugin binary's name ("bridge").
    public let type: String
    /// Runtime capabilities the plugin declares (`"capabilities": {"portMappings": true}`).
    public let capabilities: Set<String>
    /// The plugin's configuration object as written: every key, known or not, is passed to the plugin.
    public let object: [String: JSONValue]
}

/// A network configuration list: what every ADD, CHECK and DEL of the pod network runs.
public struct CNIConfig: Sendable, Equatable {
    public static let defaultConfDir = "/etc/cni/net.d"
    public static let defaultBinDirs = ["/opt/cni/bin", "/usr/lib/cni"]
    /// libcni's extensions; `.conflist` is a list, the others hold one plugin.
    public static let fileExtensions = ["conflist", "conf", "json"]
    /// Spec versions whose results podvisor reads (0.3.x, 0.4.0 and 1.x share one result shape).
    public static let supportedVersions: Set<String> = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

    public let cniVersion: String
    public let name: String
    public let plugins: [CNIPlugin]
    /// The list's `disableCheck`: CHECK is then skipped.
    public let disableCheck: Bool
    /// The file's name, which also tells its format.
    public let fileName: String
    /// The file's exact bytes.
    public let bytes: Data

    /// Parses one configuration file; `fileName`'s extension says whether it is a list. Errors name the file.
    public static func parse(_ bytes: Data, fileName: String) throws(PodvisorError) -> CNIConfig {
        guard case .object(let top) = try JSONValue.parse(bytes, what: fileName) else {
            throw invalid(fileName, "not a JSON object")
        }
        let pluginObjects: [[String: JSONValue]]
        if fileName.hasSuffix(".conflist") {
            guard case .array(let list)? = top["plugins"], !list.isEmpty else {
                throw invalid(fileName, "\"plugins\" must be a non-empty list")
            }
            pluginObjects = try list.map { (value) throws(PodvisorError) in
                guard case .object(let object) = value else { throw invalid(fileName, "a plugin is not a JSON object") }
                return object
            }
        } else {
            // A single plugin becomes a list of one, as libcni's ConfListFromConf; a list in a .conf has no
            // "type" and is refused here, as containerd does.
            pluginObjects = [top]
        }
        guard let name = top["name"]?.stringValue, !name.isEmpty else { throw invalid(fileName, "missing \"name\"") }
        guard let version = top["cniVersion"]?.stringValue, !version.isEmpty else {
            throw invalid(fileName, "missing \"cniVersion\"")
        }
        guard supportedVersions.contains(version) else {
            throw invalid(fileName, "cniVersion \(version) is not supported (\(supportedVersions.sorted().joined(separator: ", ")))")
        }
        let plugins = try pluginObjects.map { (object) throws(PodvisorError) in
            guard let type = object["type"]?.stringValue, !type.isEmpty, !type.contains("/") else {
                throw invalid(fileName, "a plugin has no valid \"type\"")
            }
            var capabilities = Set<String>()
            if case .object(let declared)? = object["capabilities"] {
                capabilities = Set(declared.compactMap { $0.value == .bool(true) ? $0.key : nil })
            }
            return CNIPlugin(type: type, capabilities: capabilities, object: object)
        }
        let disableCheck = top["disableCheck"] == .bool(true)
        return CNIConfig(
            cniVersion: version, name: name, plugins: plugins, disableCheck: disableCheck, fileName: fileName, bytes: bytes)
    }

    /// The first valid configuration in `confDir` in lexical order of file names, and every file skipped
    /// before it with the reason.
    public static func load(confDir: String) -> CNIConfigScan {
        var skipped: [String] = []
        for file in candidateFiles(confDir) {
            guard let bytes = readFile("\(confDir)/\(file)") else {
                skipped.append("\(file): cannot be read")
                continue
            }
            do {
                return CNIConfigScan(config: try parse(bytes, fileName: file), skipped: skipped)
            } catch {
                skipped.append(error.message)
            }
        }
        return CNIConfigScan(config: nil, skipped: skipped)
    }

    /// Names of the configuration files in `confDir`, sorted bytewise as libcni does.
    static func candidateFiles(_ confDir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: confDir)) ?? []
        return names.filter { name in
            let ext = (name as NSString).pathExtension
            var isDirectory: ObjCBool = false
            return fileExtensions.contains(ext)
                && FileManager.default.fileExists(atPath: "\(confDir)/\(name)", isDirectory: &isDirectory) && !isDirectory.boolValue
        }
        .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// The plugin binary: the first executable regular file named `type` in `binDirs`.
    public static func pluginPath(_ type: String, binDirs: [String]) -> String? {
        binDirs.lazy.map { "\($0)/\(type)" }.first { path in
            var info = stat()
            return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
        }
    }

    private static func invalid(_ fileName: String, _ why: String) -> PodvisorError {
        PodvisorError(.invalidArgument, "\(fileName): \(why)")
    }
}

/// What a scan of the conf dir found.
public struct CNIConfigScan: Sendable {
    public let config: CNIConfig?
    /// Files before the chosen one (all of them when none was valid), each as "file: why it was skipped".
    public let skipped: [String]
}
