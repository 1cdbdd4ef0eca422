//! Soak test: a ws-channels server (its own process, pinned like the benchmarks) with 10 000
//! connections over 100 rooms (`soak/<room>`) for N minutes, with churn: every connection
//! lives for a random time around `--lifetime` seconds, then leaves and a new one takes its
//! place. Each connection sends a message to its room every `--every` seconds; the server
//! broadcasts it to the room's others, and every receiver checks each sender's sequence:
//! a gap is a lost message, a step back a reordered or repeated one.
//!
//! Prints, each minute, connections open, messages sent and delivered, losses and the
//! server's resident memory; at the end, its open file descriptors (before any connection and
//! after every one closed). Exits non-zero on a loss, a reorder or leaked descriptors. Not run
//! in CI (it takes minutes):
//!
//! ```text
//! cargo run --release -p ws-channels-benches --bin soak -- --minutes 10
//! cargo run --release -p ws-channels-benches --bin soak -- --minutes 1 --conns 2000 --rooms 20
//! ```
//!
//! Options: `--minutes N` (10), `--conns N` (10 000), `--rooms N` (100), `--every S` (10),
//! `--lifetime S` (120), `--no-pin`. Traffic stays on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use ws_channels_benches::load::{WAIT, connect};
use ws_channels_benches::proc::{self, Pinning, Program, Server};
use ws_channels_benches::servers::Mode;
use ws_channels_benches::wire::{Header, RoomChat, now_us};
use ws_channels_benches::{BoxError, Result};

#[derive(Debug, Clone, Copy)]
struct Args {
    minutes: f64,
    conns: usize,
    rooms: usize,
    every: Duration,
    lifetime: Duration,
    pin: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        minutes: 10.0,
        conns: 10_000,
        rooms: 100,
        every: Duration::from_secs(10),
        lifetime: Duration::from_secs(120),
        pin: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--minutes" => args.minutes = value()?.parse()?,
            "--conns" => args.conns = value()?.parse()?,
            "--rooms" => args.rooms = value()?.parse()?,
            "--every" => args.every = Duration::from_secs_f64(value()?.parse()?),
            "--lifetime" => args.lifetime = Duration::from_secs_f64(value()?.parse()?),
            "--no-pin" => args.pin = false,
            other => return Err(format!("unknown argument {other} (see the header of soak.rs)").into()),
        }
    }
    if args.rooms == 0 || args.conns < 2 * args.rooms {
        return Err("need at least two connections per room".into());
    }
    Ok(args)
}

/// What every connection adds to.
#[derive(Default)]
struct Counters {
    open: AtomicU64,
    joined: AtomicU64,
    sent: AtomicU64,
    delivered: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    /// Connections that ended before their time (closed by the server, or failed).
    broken: AtomicU64,
}

fn main() -> Result<()> {
    if let Some(served) = proc::serve_if_asked() {
        return served;
    }
    let args = parse_args()?;
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    // Bounded: whatever hangs, the run ends a little after its time.
    let bound = run_for + Duration::from_secs(120);
    std::thread::spawn(move || {
        std::thread::sleep(bound);
        eprintln!("soak: over its time bound of {bound:?}, stopping");
        std::process::exit(2);
    });
    proc::raise_fd_limit(args.conns as u64 + 1000)?;
    let (pinning, note) = Pinning::detect(args.pin);
    pinning.pin_self()?;
    println!("{note}");
    let server = Server::start(Program::Rust("ws-channels"), Mode::Rooms, pinning)?;
    let fds_before = server.open_fds()?;
    println!(
        "soak: {} connections over {} rooms for {:.1} min, one message per connection every {:?}, \
         lifetimes around {:?}; server fds before: {fds_before}",
        args.conns, args.rooms, args.minutes, args.every, args.lifetime
    );
    let counters = Arc::new(Counters::default());
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    runtime.block_on(async {
        let end = Instant::now() + run_for;
        // ws-channels drops sockets beyond 1024 mid-handshake: connect 64 at a time.
        let connecting = Arc::new(Semaphore::new(64));
        let ids = Arc::new(AtomicU32::new(0));
        let slots: Vec<_> = (0..args.conns)
            .map(|slot| {
                let (counters, connecting, ids) = (counters.clone(), connecting.clone(), ids.clone());
                let room = slot % args.rooms;
                tokio::spawn(async move {
                    while Instant::now() < end {
                        let id = ids.fetch_add(1, Ordering::Relaxed);
                        let leave_at = (Instant::now() + lifetime(id, args.lifetime)).min(end);
                        let member = Member {
                            addr: server.addr,
                            room,
                            id,
                            every: args.every,
                            leave_at,
                        };
                        if let Err(error) = member.run(&counters, &connecting).await {
                            counters.broken.fetch_add(1, Ordering::Relaxed);
                            eprintln!("connection {id} in room {room}: {error}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                })
            })
            .collect();
        let mut minute = tokio::time::interval_at(started + Duration::from_secs(60), Duration::from_secs(60));
        let mut all = futures_util::future::join_all(slots);
        loop {
            tokio::select! {
                _ = &mut all => break,
                _ = minute.tick() => report(&counters, &server, started),
            }
        }
        Ok::<_, BoxError>(())
    })?;
    report(&counters, &server, started);
    // Give the server a moment to finish every close, then count what it still holds.
    std::thread::sleep(Duration::from_secs(3));
    let fds_after = server.open_fds()?;
    let c = &*counters;
    let (lost, reordered, broken) = (get(&c.lost), get(&c.reordered), get(&c.broken));
    println!(
        "end: {} connections made, {} sent, {} delivered, lost {lost}, reordered {reordered}, \
         ended early {broken}; server fds {fds_before} before, {fds_after} after; RSS {} KiB",
        get(&c.joined),
        get(&c.sent),
        get(&c.delivered),
        server.rss_kib()?
    );
    if lost > 0 || reordered > 0 || broken > 0 || fds_after > fds_before + 2 {
        return Err("soak: losses, reorders, broken connections or leaked file descriptors".into());
    }
    println!("soak: ok");
    Ok(())
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn report(counters: &Counters, server: &Server, started: Instant) {
    let c = counters;
    println!(
        "{:>5.1} min: {} open, {} joined, {} sent, {} delivered, lost {}, reordered {}, ended early {}, server RSS {} KiB",
        started.elapsed().as_secs_f64() / 60.0,
        get(&c.open),
        get(&c.joined),
        get(&c.sent),
        get(&c.delivered),
        get(&c.lost),
        get(&c.reordered),
        get(&c.broken),
        server.rss_kib().unwrap_or(0)
    );
}

/// A lifetime between half and one and a half times `mean`, spread by the id (no RNG needed:
/// a multiplicative hash is uniform enough to desynchronize the churn).
fn lifetime(id: u32, mean: Duration) -> Duration {
    let unit = f64::from(id.wrapping_mul(2_654_435_761)) / f64::from(u32::MAX);
    mean.mul_f64(0.5 + unit)
}

/// One connection's life in its room.
struct Member {
    addr: SocketAddr,
    room: usize,
    id: u32,
    every: Duration,
    leave_at: Instant,
}

impl Member {
    async fn run(&self, counters: &Counters, connecting: &Semaphore) -> Result<()> {
        let ws = {
            let _permit = connecting.acquire().await?;
            connect(self.addr, &format!("/soak/r{}", self.room), false).await?
        };
        counters.joined.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        let outcome = self.talk(ws, counters).await;
        counters.open.fetch_sub(1, Ordering::Relaxed);
        outcome
    }

    async fn talk(&self, ws: ws_channels_benches::load::Client, counters: &Counters) -> Result<()> {
        let (mut tx, mut rx) = ws.split();
        // Senders start at different moments, so the load is even rather than in bursts.
        let offset = self.every.mul_f64(f64::from(self.id % 1000) / 1000.0);
        let mut tick = tokio::time::interval_at(Instant::now() + offset, self.every);
        let mut last_seq: HashMap<u32, u64> = HashMap::new();
        let mut seq = 0;
        let leave = tokio::time::sleep_until(self.leave_at);
        tokio::pin!(leave);
        loop {
            tokio::select! {
                () = &mut leave => break,
                _ = tick.tick() => {
                    let message = RoomChat { from: self.id, seq, ts: now_us(), text: "soak".into() };
                    tx.send(Message::text(serde_json::to_string(&message)?)).await?;
                    seq += 1;
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                received = tokio::time::timeout(WAIT + self.every, rx.next()) => {
                    let message = received
                        .map_err(|_| "nothing received from a busy room")?
                        .ok_or("closed by the server")??;
                    let Message::Text(text) = message else { continue };
                    let h = Header::parse(&text)?;
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    // A sender first heard mid-sequence is not a loss: this connection
                    // joined after its earlier messages.
                    if let Some(last) = last_seq.insert(h.from, h.seq) {
                        if h.seq > last + 1 {
                            counters.lost.fetch_add(h.seq - last - 1, Ordering::Relaxed);
                        } else if h.seq <= last {
                            counters.reordered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        let _ = tx.close().await;
        Ok(())
    }
}
