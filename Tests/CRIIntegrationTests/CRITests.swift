import Testing

/// Every CRI suite talks to the one podvisord of the test process, one test at a time: some restart it,
/// some count what it lists.
@Suite(.serialized) enum CRITests {}
