//! The benchmark tool (`chatd-bench`, chatd/BENCHMARKS.md) still runs every scenario end to end,
//! on a plan small enough for a test. It is a binary, so only running it keeps it from rotting;
//! the figures themselves are not checked (no timed assertions in tests).

use std::process::Command;

#[test]
fn every_scenario_completes_and_prints_its_figures() {
    let output = Command::new(env!("CARGO_BIN_EXE_chatd-bench"))
        .arg("--bin-dir")
        .arg(tests::bin_dir())
        .args(["all", "--cli-sends", "3", "--cli-warmup", "1"])
        .args(["--status-calls", "100"])
        .args([
            "--latency-rate",
            "20",
            "--latency-seconds",
            "1",
            "--latency-warmup",
            "0",
        ])
        .args(["--throughput-seconds", "2", "--throughput-warmup", "1"])
        .args(["--connections", "2", "--window", "4", "--text-len", "16"])
        .args(["--fill", "150", "--settle-ms", "100"])
        .args(["--history-calls", "10", "--history-limit", "10"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run chatd-bench: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chatd-bench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for figure in [
        "-> chatd RSS idle",
        "-> chatctl send p50",
        "-> chatctl send p99",
        "-> daemon.status p50",
        "-> daemon.status p99",
        "-> send-to-event p50",
        "-> send-to-event p99",
        "-> throughput received (steady, messages/s)",
        "-> chatd RSS with 150 stored messages",
        "-> messages.history p50",
        "-> messages.history p99",
        "== summary (1 runs)",
    ] {
        assert!(stdout.contains(figure), "no `{figure}` in:\n{stdout}");
    }
}
