import Foundation
import PodvisorImages
import Synchronization

/// One line per blob on the terminal, redrawn in place as bytes arrive.
final class ProgressBars: Sendable {
    private struct State {
        var order: [Digest] = []
        var progress: [Digest: PullProgress] = [:]
        var drawn = 0
        var lastDraw = ContinuousClock.now - .seconds(1)
    }

    private let state = Mutex(State())

    func update(_ progress: PullProgress) {
        state.withLock { state in
            if state.progress[progress.digest] == nil { state.order.append(progress.digest) }
            state.progress[progress.digest] = progress
            if ContinuousClock.now - state.lastDraw > .milliseconds(100) { Self.draw(&state) }
        }
    }

    func finish() { state.withLock { Self.draw(&$0) } }

    private static func draw(_ state: inout State) {
        state.lastDraw = .now
        var text = state.drawn > 0 ? "\u{1B}[\(state.drawn)A" : ""
        for digest in state.order {
            let progress = state.progress[digest]!
            let fraction = progress.total > 0 ? Double(progress.done) / Double(progress.total) : 1
            let filled = Int(fraction * 30)
            let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: 30 - filled)
            text += "\u{1B}[2K\(digest.hex.prefix(12)) [\(bar)] \(formatBytes(progress.done)) / \(formatBytes(progress.total))\n"
        }
        state.drawn = state.order.count
        FileHandle.standardError.write(Data(text.utf8))
    }
}
