import PodvisorCore

/// How long each step of a start took, for the debug log: where a pod start goes.
struct StepTimes: CustomStringConvertible {
    private var steps: [(name: String, took: Duration)] = []
    private var last = ContinuousClock.now

    mutating func lap(_ step: String) {
        let now = ContinuousClock.now
        steps.append((step, last.duration(to: now)))
        last = now
    }

    var description: String { steps.map { "\($0.name) \($0.took.milliseconds) ms" }.joined(separator: ", ") }
}

/// What `body` returned and how long it took: one of the steps that run at once within a lap.
func timed<T: Sendable>(_ body: () async throws(PodvisorError) -> T) async throws(PodvisorError) -> (value: T, took: Duration) {
    let started = ContinuousClock.now
    let value = try await body()
    return (value, started.duration(to: .now))
}
