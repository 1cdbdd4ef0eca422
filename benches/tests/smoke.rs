//! Keeps the suite working: every scenario against every Rust server (and Node when it is
//! installed) for a fraction of a second, with every message checked, in one run of the
//! `bench` binary.
//!
//! ```text
//! cargo test -p ws-channels-benches
//! ```

use std::process::Command;

#[test]
fn every_scenario_runs_against_every_server() {
    // Under CI a missing Node fails here; elsewhere it is reported as skipped.
    let node = ws_channels_tests::require(&[ws_channels_tests::Component::Node]);
    // And a missing redis-server: the run skips the cross-node servers without it.
    let redis = ws_channels_tests::require(&[ws_channels_tests::Component::Redis]);
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--smoke")
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown by `cargo test -- --nocapture`, and on failure.
    println!("{stderr}\n{stdout}");
    assert!(output.status.success(), "the smoke run failed:\n{stderr}\n{stdout}");
    if node {
        assert!(
            stdout.contains("| echo | node |"),
            "Node is here: the smoke run must include it"
        );
    }
    for server in ["ws-channels", "typed-forward", "typed-queue", "raw-bytes"] {
        assert!(
            stdout.contains(&format!("| echo | {server} |")),
            "no echo row for {server}"
        );
    }
    // MessagePack next to JSON, both echoes checked message by message, each with its size.
    for server in ["ws-channels", "ws-channels-msgpack"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| echo-msgpack | {server} |")))
            .unwrap_or_else(|| panic!("no echo-msgpack row for {server}"));
        assert!(row.contains(" B |"), "no bytes on the wire for {server}: {row}");
    }
    assert!(
        stdout.contains("echo-msgpack: MessagePack over JSON:"),
        "no MessagePack/JSON ratio"
    );
    for scenario in ["broadcast-20 ", "broadcast-50-silent", "idle", "accept"] {
        for server in ["ws-channels", "typed-forward"] {
            assert!(
                stdout.contains(&format!("| {} | {server} |", scenario.trim())),
                "no {scenario} row for {server}"
            );
        }
    }
    if redis {
        for scenario in ["cross-node-latency-3", "cross-node-20"] {
            for server in ["ws-channels", "ws-channels-redis", "cross-node"] {
                assert!(
                    stdout.contains(&format!("| {scenario} | {server} |")),
                    "no {scenario} row for {server}"
                );
            }
        }
    }
    assert!(!stdout.contains("ERRORS"), "a measurement failed:\n{stdout}");
}
