//! The load generator: opens connections to a server on 127.0.0.1, drives one scenario and
//! checks every message it gets back (each exactly once, in order). Every wait is bounded:
//! a server that stalls fails the scenario instead of hanging the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proc::{self, Server};
use crate::raw::{Data, RawClient};
use crate::stats::percentile;
use crate::wire::{Format, Header, WARMUP, chat_json, frame_len, now_us};
use crate::{BoxError, Result};

/// The longest any single wait may take (a connection, a reply, a delivery).
pub const WAIT: Duration = Duration::from_secs(10);

/// Handshakes in flight at once when opening many connections (ws-channels lets 1024 wait).
pub const CONNECTING: usize = 64;

/// A client connection.
pub type Client = WebSocketStream<TcpStream>;

/// Throughput and latency of one measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Messages (echo) or deliveries (broadcast) checked.
    pub count: u64,
    /// Per second.
    pub rate: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// The server's CPU time per message or delivery, ns.
    pub cpu_ns: f64,
    /// How busy the load generator was over the measured part: near 100 % (of its one core
    /// when pinned), it, not the server, set the rate.
    pub load_busy: f64,
    /// Echo only: the mean bytes on the wire of one message as the server sends it (its
    /// WebSocket frame: header and payload), over every reply checked.
    pub wire_bytes: Option<f64>,
}

impl Throughput {
    fn new(count: u64, elapsed: Duration, cpu: Duration, own_cpu: Duration, mut latencies: Vec<u32>) -> Self {
        Self {
            count,
            load_busy: own_cpu.as_secs_f64() / elapsed.as_secs_f64(),
            cpu_ns: cpu.as_nanos() as f64 / count as f64,
            rate: count as f64 / elapsed.as_secs_f64(),
            p50_us: percentile(&mut latencies, 50.0),
            p99_us: percentile(&mut latencies, 99.0),
            wire_bytes: None,
        }
    }
}

/// Opens a WebSocket to `path` on `addr`. A `small_receive_buffer` (4 KiB) makes a client
/// that never reads push back on the server soon, as a stalled phone would.
pub async fn connect(addr: SocketAddr, path: &str, small_receive_buffer: bool) -> Result<Client> {
    let open = async {
        let socket = TcpSocket::new_v4()?;
        if small_receive_buffer {
            socket.set_recv_buffer_size(4 * 1024)?;
        }
        let tcp = socket.connect(addr).await?;
        tcp.set_nodelay(true)?;
        // Small buffers: 10 000 clients in one process should not cost it gigabytes.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(8 * 1024);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(format!("ws://{addr}{path}"), tcp, Some(config)).await?;
        Ok::<_, BoxError>(ws)
    };
    timeout(WAIT, open)
        .await
        .map_err(|_| format!("connecting to {path} took over {WAIT:?}"))?
}

/// Opens `n` connections, [`CONNECTING`] at a time; those from index `small_from` on get a
/// small receive buffer.
pub async fn connect_many(addr: SocketAddr, path: &str, n: usize, small_from: usize) -> Result<Vec<Client>> {
    futures_util::stream::iter(0..n)
        .map(|i| connect(addr, path, i >= small_from))
        .buffered(CONNECTING)
        .try_collect()
        .await
}

/// The next frame, within [`WAIT`].
async fn next(
    rx: &mut (impl futures_util::Stream<Item = Result<Message, impl Into<BoxError>>> + Unpin),
) -> Result<Message> {
    match timeout(WAIT, rx.next()).await {
        Err(_) => Err(format!("nothing received for {WAIT:?}").into()),
        Ok(None) => Err("the server closed the connection".into()),
        Ok(Some(message)) => message.map_err(Into::into),
    }
}

/// Echo: `conns` connections keep `window` messages in flight each for `duration`, then
/// collect the replies still owed, every message in `format`. Every reply must be the
/// sender's next sequence number.
pub async fn echo(
    server: &Server,
    format: Format,
    conns: usize,
    window: usize,
    duration: Duration,
) -> Result<Throughput> {
    let clients: Vec<RawClient> = futures_util::stream::iter(0..conns)
        .map(|_| RawClient::connect(server.addr, "/bench", false))
        .buffered(CONNECTING)
        .try_collect()
        .await?;
    let (cpu, own_cpu) = (server.cpu_time()?, proc::own_cpu_time()?);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(id, ws)| tokio::spawn(echo_client(id as u32, ws, format, window, deadline)))
        .collect();
    let (mut count, mut bytes) = (0, 0);
    let mut latencies = Vec::new();
    for task in tasks {
        let echoed = task.await??;
        count += echoed.received;
        bytes += echoed.bytes;
        latencies.extend(echoed.latencies);
    }
    let elapsed = started.elapsed();
    let (cpu, own_cpu) = (server.cpu_time()? - cpu, proc::own_cpu_time()? - own_cpu);
    Ok(Throughput {
        wire_bytes: Some(bytes as f64 / count as f64),
        ..Throughput::new(count, elapsed, cpu, own_cpu, latencies)
    })
}

/// What one echo client checked.
struct Echoed {
    received: u64,
    /// The wire bytes of the replies' frames.
    bytes: u64,
    latencies: Vec<u32>,
}

async fn echo_client(id: u32, mut ws: RawClient, format: Format, window: usize, deadline: Instant) -> Result<Echoed> {
    let mut latencies = Vec::new();
    let (mut sent, mut received, mut bytes) = (0_u64, 0_u64, 0_u64);
    for _ in 0..window {
        ws.send(format.binary(), |out| format.write_chat(id, sent, out))?;
        sent += 1;
    }
    ws.flush().await?;
    while received < sent {
        let mut reply = Some(ws.next_data().await?);
        // Take every reply already here before writing: the load generator batches too.
        while let Some(data) = reply.take() {
            let len = match data {
                Data::Text(text) => text.len(),
                Data::Binary(bytes) => bytes.len(),
            };
            let h = format.header_of(data)?;
            if (h.from, h.seq) != (id, received) {
                return Err(format!(
                    "echo: client {id} expected seq {received}, got {} of client {}",
                    h.seq, h.from
                )
                .into());
            }
            received += 1;
            bytes += frame_len(len) as u64;
            latencies.push(now_us().saturating_sub(h.ts) as u32);
            if Instant::now() < deadline {
                ws.send(format.binary(), |out| format.write_chat(id, sent, out))?;
                sent += 1;
            }
            reply = ws.buffered_data()?;
        }
        ws.flush().await?;
    }
    let _ = ws.close().await;
    Ok(Echoed {
        received,
        bytes,
        latencies,
    })
}

/// How far the broadcast publisher may run ahead of the slowest reading subscriber: half the
/// servers' queue bound, so a reader that keeps up is never taken for a slow consumer however
/// many messages a run sends (the rest of the bound covers what sits in socket buffers).
pub const BROADCAST_WINDOW: u64 = (crate::servers::QUEUE / 2) as u64;

/// Broadcast: `subscribers` connections (the last `silent` of them never read), one
/// publisher that sends `messages` as fast as it can within [`BROADCAST_WINDOW`] of the
/// slowest reader; the server sends each to everyone but the publisher. Counts the reading
/// subscribers' deliveries, from the first send to the last delivery.
pub async fn broadcast(server: &Server, subscribers: usize, silent: usize, messages: u64) -> Result<Throughput> {
    broadcast_across(server.addr, server, subscribers, silent, messages, None).await
}

/// [`broadcast`] with the publisher connected to `publish_at` (another node of a cluster, or
/// the same server) and the subscribers to `server`, whose CPU time is measured; with `pace`,
/// the publisher waits that long after each message, so latencies are those of delivery, not
/// of a queue a blast fills.
pub async fn broadcast_across(
    publish_at: SocketAddr,
    server: &Server,
    subscribers: usize,
    silent: usize,
    messages: u64,
    pace: Option<Duration>,
) -> Result<Throughput> {
    let addr = server.addr;
    let readers = subscribers - silent;
    let mut clients: Vec<RawClient> = futures_util::stream::iter(0..subscribers)
        .map(|i| RawClient::connect(addr, "/bench", i >= readers))
        .buffered(CONNECTING)
        .try_collect()
        .await?;
    // Held open to the end, never read.
    let silent_clients = clients.split_off(readers);
    let (mut publisher, _publisher_rx) = connect(publish_at, "/bench", false).await?.split();
    let ready = Arc::new(AtomicUsize::new(0));
    // Messages each reader has received.
    let progress: Arc<[AtomicU64]> = (0..readers).map(|_| AtomicU64::new(0)).collect();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, ws)| tokio::spawn(subscriber(ws, messages, ready.clone(), progress.clone(), i)))
        .collect();
    // A subscriber may be registered a moment after its handshake: warm up until every
    // reader has seen a message, so the measured sequence starts on a full room.
    let warming = Instant::now();
    let mut n = 0;
    while ready.load(Ordering::Relaxed) < readers {
        if warming.elapsed() > WAIT {
            let ready = ready.load(Ordering::Relaxed);
            return Err(format!("broadcast: {ready} of {readers} subscribers got a warm-up message").into());
        }
        publisher.send(Message::text(chat_json(WARMUP, n))).await?;
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (cpu, own_cpu) = (server.cpu_time()?, proc::own_cpu_time()?);
    let started = Instant::now();
    for seq in 0..messages {
        if seq >= BROADCAST_WINDOW && seq % 16 == 0 {
            publisher.flush().await?;
            let waiting = Instant::now();
            while slowest(&progress) + BROADCAST_WINDOW <= seq {
                if waiting.elapsed() > WAIT {
                    return Err(
                        format!("broadcast: a reader stayed over {BROADCAST_WINDOW} behind for {WAIT:?}").into(),
                    );
                }
                // Let the subscribers (on this runtime) read.
                tokio::task::yield_now().await;
            }
        }
        match pace {
            Some(pace) => {
                publisher.send(Message::text(chat_json(0, seq))).await?;
                tokio::time::sleep(pace).await;
            }
            None => publisher.feed(Message::text(chat_json(0, seq))).await?,
        }
    }
    publisher.flush().await?;
    let mut last = started;
    let mut latencies = Vec::with_capacity(readers * messages as usize);
    for task in tasks {
        let (done, mut l) = task.await??;
        last = last.max(done);
        latencies.append(&mut l);
    }
    let (cpu, own_cpu) = (server.cpu_time()? - cpu, proc::own_cpu_time()? - own_cpu);
    drop(silent_clients);
    Ok(Throughput::new(
        readers as u64 * messages,
        last - started,
        cpu,
        own_cpu,
        latencies,
    ))
}

/// The fewest messages any reader has received.
fn slowest(progress: &[AtomicU64]) -> u64 {
    progress
        .iter()
        .map(|p| p.load(Ordering::Relaxed))
        .min()
        .unwrap_or(u64::MAX)
}

async fn subscriber(
    mut ws: RawClient,
    messages: u64,
    ready: Arc<AtomicUsize>,
    progress: Arc<[AtomicU64]>,
    index: usize,
) -> Result<(Instant, Vec<u32>)> {
    let mut warm = false;
    let mut latencies = Vec::with_capacity(messages as usize);
    let mut expected = 0;
    while expected < messages {
        let h = Header::parse(ws.next_text().await?)?;
        if h.from == WARMUP {
            if !warm {
                warm = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if (h.from, h.seq) != (0, expected) {
            return Err(format!("broadcast: expected seq {expected}, got {} of client {}", h.seq, h.from).into());
        }
        expected += 1;
        progress[index].store(expected, Ordering::Relaxed);
        latencies.push(now_us().saturating_sub(h.ts) as u32);
    }
    Ok((Instant::now(), latencies))
}

/// Opens a connection and checks one echo round trip, so it is fully set up on the server.
async fn connect_checked(addr: SocketAddr) -> Result<Client> {
    let mut ws = connect(addr, "/bench", false).await?;
    ws.send(Message::text(chat_json(1, 0))).await?;
    loop {
        if let Some(h) = Format::Json.header(&next(&mut ws).await?)? {
            if (h.from, h.seq) != (1, 0) {
                return Err(format!("idle: echo of (1, 0) came back as ({}, {})", h.from, h.seq).into());
            }
            return Ok(ws);
        }
    }
}

/// Memory per idle connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Idle {
    /// The server's RSS with one connection, KiB.
    pub before_kib: u64,
    /// With `conns` more, KiB.
    pub after_kib: u64,
    /// The difference per connection, KiB.
    pub per_conn_kib: f64,
}

/// Idle memory: RSS of an echo server before and after `conns` connections that each made
/// one round trip, then `settle` of quiet.
pub async fn idle(server: &Server, conns: usize, settle: Duration) -> Result<Idle> {
    // One connection first, so lazily built state is in the "before" figure.
    let warm = connect_checked(server.addr).await?;
    tokio::time::sleep(settle / 3).await;
    let before_kib = server.rss_kib()?;
    let clients: Vec<Client> = futures_util::stream::iter(0..conns)
        .map(|_| connect_checked(server.addr))
        .buffer_unordered(CONNECTING)
        .try_collect()
        .await?;
    tokio::time::sleep(settle).await;
    let after_kib = server.rss_kib()?;
    drop((warm, clients));
    Ok(Idle {
        before_kib,
        after_kib,
        per_conn_kib: after_kib.saturating_sub(before_kib) as f64 / conns as f64,
    })
}

/// Connections accepted per second: `conns` handshakes, [`CONNECTING`] at a time, each
/// counted when its 101 arrives; then the last one must echo.
pub async fn accept(addr: SocketAddr, conns: usize) -> Result<f64> {
    let started = Instant::now();
    let clients = connect_many(addr, "/bench", conns, conns).await?;
    let elapsed = started.elapsed();
    let mut last = clients.into_iter().last().ok_or("accept: no connection")?;
    last.send(Message::text(chat_json(7, 0))).await?;
    while Format::Json.header(&next(&mut last).await?)?.is_none() {}
    Ok(conns as f64 / elapsed.as_secs_f64())
}
