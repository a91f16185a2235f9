import Foundation
import PodvisorCRI
import PodvisorCore

/// The signal StopContainer sends first: the container's `stop_signal`, else the image's `StopSignal`, else
/// SIGTERM, as containerd chooses it.
enum StopSignal {
    static func number(config: Runtime_V1_ContainerConfig, image: String?) throws(PodvisorError) -> Int32 {
        if config.stopSignal != .runtimeDefault {
            guard let number = number(of: config.stopSignal) else {
                throw PodvisorError(.invalidArgument, "stop_signal \(config.stopSignal) is not a signal of this runtime")
            }
            return number
        }
        guard let image, !image.isEmpty else { return SIGTERM }
        guard let number = number(named: image) else {
            throw PodvisorError(.invalidArgument, "the image's StopSignal \(image) is not a signal")
        }
        return number
    }

    /// Linux x86-64 numbers of signal names, with or without "SIG", and RTMIN+n / RTMAX-n.
    static func number(named text: String) -> Int32? {
        if let number = Int32(text), (1...64).contains(number) { return number }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if name.hasPrefix("RTMIN+"), let n = Int32(name.dropFirst(6)), (0...30).contains(n) { return 34 + n }
        if name.hasPrefix("RTMAX-"), let n = Int32(name.dropFirst(6)), (0...30).contains(n) { return 64 - n }
        return names[name]
    }

    static func number(of signal: Runtime_V1_Signal) -> Int32? {
        // Case names follow the proto's: sigusr1, sigrtminplus3, sigrtmaxminus2.
        let name = String(describing: signal).replacingOccurrences(of: "plus", with: "+").replacingOccurrences(of: "minus", with: "-")
        return number(named: name)
    }

    /// The CRI value for a signal number (ContainerStatus.stop_signal).
    static func criSignal(_ number: Int32) -> Runtime_V1_Signal {
        Runtime_V1_Signal.allCases.first { $0 != .runtimeDefault && Self.number(of: $0) == number } ?? .runtimeDefault
    }

    private static let names: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
        "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17,
        "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26,
        "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31, "RTMIN": 34, "RTMAX": 64,
    ]
}
