//! The load tool (`relay-load`, LOAD.md) still runs its scenarios end to end, on plans small
//! enough for a test: it is a binary, so only running it keeps it from rotting.

use std::process::Command;

/// Runs `relay-load` with `args` and returns its standard output; fails on a non-zero exit.
fn relay_load(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_relay-load"))
        .args(args)
        .output()
        .expect("cannot run relay-load");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "relay-load {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn throughput_routes_every_envelope_durably() {
    let out = relay_load(&["throughput", "--devices", "8", "--envelopes", "200"]);
    assert!(out.contains("delivered 200 envelopes"), "{out}");
    assert!(out.contains("every delivery acknowledged"), "{out}");
    assert!(!out.contains("error:"), "{out}");
}

#[test]
fn latency_records_the_measured_window() {
    let out = relay_load(&[
        "--storage",
        "memory",
        "latency",
        "--devices",
        "4",
        "--rate",
        "200",
        "--seconds",
        "1",
        "--warmup",
        "0",
    ]);
    assert!(out.contains("send-to-delivery: p50"), "{out}");
    assert!(!out.contains("error:"), "{out}");
}

#[test]
fn drain_delivers_and_acknowledges_the_backlog() {
    let out = relay_load(&["drain", "--envelopes", "300", "--repeat", "1"]);
    assert!(out.contains("all acknowledged at the relay"), "{out}");
}

#[test]
fn connect_and_idle_against_a_spawned_relay() {
    let relay_bin = env!("CARGO_BIN_EXE_chat-relay");
    let out = relay_load(&[
        "--relay",
        "spawn",
        "--relay-bin",
        relay_bin,
        "connect",
        "--connections",
        "20",
    ]);
    assert!(out.contains("20 authenticated connects"), "{out}");
    let out = relay_load(&[
        "--relay",
        "spawn",
        "--relay-bin",
        relay_bin,
        "idle",
        "--connections",
        "20",
    ]);
    assert!(out.contains("KiB per connection"), "{out}");
}
