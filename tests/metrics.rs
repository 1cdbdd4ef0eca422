//! The `metrics` feature: the server's counters mirrored to the `metrics` facade, labelled by
//! channel name, with handler latency and queue depth histograms.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, Server, TestServer, channel};
use ws_channels_tests::within;

/// Echoes.
#[channel("echo/<room>", name = "echo")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Echo {
    text: String,
}

/// A metric's name, labels and value.
type Recorded = (String, Vec<(String, String)>, DebugValue);

#[test]
fn counters_reach_the_facade_labelled_by_channel() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A local recorder sees what this thread records: the current-thread runtime runs the
    // connection tasks here.
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = Echo::register(Server::new(), |h| {
                h.on_message(|conn, msg| async move {
                    conn.send(&msg).await?;
                    Ok(())
                })
            });
            let test = TestServer::new(server);
            let (mut tx, mut rx) = test.connect(&EchoParams::new("a")).await.unwrap();
            for text in ["one", "two"] {
                tx.send(&Echo { text: text.into() }).await.unwrap();
                within("the echo", rx.next()).await.unwrap().unwrap();
            }
        });
    });
    let metrics: Vec<Recorded> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let find = |name: &str| {
        metrics
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not recorded: {metrics:#?}"))
    };
    let echo = vec![("channel".to_owned(), "echo".to_owned())];
    let (_, labels, value) = find("ws_channels_messages_in_total");
    assert_eq!((labels, value), (&echo, &DebugValue::Counter(2)));
    let (_, _, value) = find("ws_channels_connections_total");
    assert_eq!(value, &DebugValue::Counter(1));
    let (_, labels, value) = find("ws_channels_handler_seconds");
    assert_eq!(labels, &echo);
    assert!(
        matches!(value, DebugValue::Histogram(samples) if samples.len() == 2),
        "{value:?}"
    );
    let (_, _, value) = find("ws_channels_outbound_queue_depth");
    assert!(
        matches!(value, DebugValue::Histogram(samples) if samples.len() == 2),
        "{value:?}"
    );
}
