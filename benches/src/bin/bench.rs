//! The benchmark runner: every scenario against every server, each server its own process
//! (pinned to core 0, this load generator to core 1, when `taskset` is there), servers
//! alternating round by round; prints medians, spread and ratios to the hand-written typed
//! floor (`typed-forward`) and to Node `ws`, measured in the same run.
//!
//! ```text
//! # the full run (a few minutes), written to benches/RESULTS.md:
//! cargo run --release -p ws-channels-benches --bin bench -- --out benches/RESULTS.md
//! # one scenario, quickly:
//! cargo run --release -p ws-channels-benches --bin bench -- echo --rounds 3 --secs 5
//! cargo run --release -p ws-channels-benches --bin bench -- broadcast-5000 --servers ws-channels,typed-forward
//! # every scenario against every server for a fraction of a second (the smoke test runs this):
//! cargo run -p ws-channels-benches --bin bench -- --smoke
//! ```
//!
//! Scenarios: `echo`, `echo-msgpack` (ws-channels' echo with JSON text frames and with its
//! channel declared `codec = msgpack`, the same struct as MessagePack binary frames: rates, CPU
//! and bytes on the wire per message, MessagePack over JSON), `broadcast-1000`, `broadcast-5000`, `broadcast-1000-silent`,
//! `broadcast-5000-silent` (10 % of the subscribers never read), `broadcast` (those four),
//! `idle`, `accept`, `cross-node-latency-10` (one message a millisecond to 10 subscribers:
//! delivery latency), `cross-node-1000` (a broadcast blast to 1 000), `cross-node` (those two);
//! none named: all. The cross-node scenarios compare ws-channels in one process (local
//! delivery), the same with the Redis backplane attached, and two such processes with the
//! publisher on one and the subscribers on the other (delivery through Redis), on a
//! `redis-server` the run starts on a free loopback port (skipped, loudly, without one). Options: `--rounds N` (3), `--secs S` (echo seconds, 5),
//! `--messages N` (per broadcast, 200; the publisher stays within 128 messages of the slowest
//! reader; with 200 messages of ~96 bytes the silent subscribers' kernel buffers absorb
//! everything, so it takes thousands for their queues to fill),
//! `--subscribers A,B` (the two broadcast sizes, 1000,5000; `broadcast-1000` and
//! `broadcast-5000` name the first and the second whatever they are),
//! `--servers a,b`, `--out FILE`, `--no-pin`, `--max-minutes M` (the run's own time bound, 30).
//! Traffic stays on 127.0.0.1.
//!
//! Instruction counts, which other load on the machine does not move: the environment variable
//! `BENCH_SERVER_WRAPPER` names a command every Rust server runs under, and each line reports
//! how many messages were checked, so a count divides into instructions per message:
//!
//! ```text
//! BENCH_SERVER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p" \
//!   cargo run --release -p ws-channels-benches --bin bench -- echo --rounds 1 --servers ws-channels
//! ```
//!
//! (The startup and handshakes are in the count too: compare two run lengths, or servers at
//! the same load.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use ws_channels_benches::proc::{self, Pinning, Program, Server};
use ws_channels_benches::servers::{self, Mode};
use ws_channels_benches::stats::{median, spread};
use ws_channels_benches::{Result, load};

/// The hand-written typed floor every ratio is taken against.
const FLOOR: &str = "typed-forward";
const NODE: &str = "node";
/// ws-channels with the Redis backplane, one process.
const REDIS: &str = "ws-channels-redis";
/// Two `REDIS` processes: the publisher on one, the subscribers on the other.
const CROSS: &str = "cross-node";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    Echo,
    /// ws-channels' echo under each codec.
    EchoMsgPack,
    Broadcast {
        subscribers: usize,
        silent: bool,
    },
    Idle,
    Accept,
    /// Through the Redis backplane; `paced`: one message a millisecond, for latency.
    CrossNode {
        subscribers: usize,
        paced: bool,
    },
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Self::Echo => "echo".into(),
            Self::EchoMsgPack => "echo-msgpack".into(),
            Self::Broadcast {
                subscribers,
                silent: false,
            } => format!("broadcast-{subscribers}"),
            Self::Broadcast {
                subscribers,
                silent: true,
            } => format!("broadcast-{subscribers}-silent"),
            Self::Idle => "idle".into(),
            Self::Accept => "accept".into(),
            Self::CrossNode {
                subscribers,
                paced: true,
            } => format!("cross-node-latency-{subscribers}"),
            Self::CrossNode {
                subscribers,
                paced: false,
            } => format!("cross-node-{subscribers}"),
        }
    }

    fn mode(self) -> Mode {
        match self {
            Self::Broadcast { .. } | Self::CrossNode { .. } => Mode::Broadcast,
            _ => Mode::Echo,
        }
    }

    /// The servers compared, the floor first. `typed-queue` and `raw-bytes` differ from the
    /// floor only in how an echo is written, so they run in `echo` alone.
    fn servers(self) -> &'static [&'static str] {
        match self {
            Self::Echo => &[FLOOR, "typed-queue", "raw-bytes", "ws-channels", NODE],
            // JSON first: the ratios are MessagePack over it.
            Self::EchoMsgPack => &["ws-channels", servers::MSGPACK],
            // Against ws-channels' own local delivery: the floor and Node have no backplane.
            Self::CrossNode { .. } => &["ws-channels", REDIS, CROSS],
            _ => &[FLOOR, "ws-channels", NODE],
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Echo | Self::EchoMsgPack => "msg/s",
            Self::Broadcast { .. } | Self::CrossNode { .. } => "deliveries/s",
            Self::Idle => "KiB/conn",
            Self::Accept => "conn/s",
        }
    }
}

/// How big each scenario is.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    echo_conns: usize,
    echo_window: usize,
    echo_time: Duration,
    broadcast_subscribers: [usize; 2],
    broadcast_messages: u64,
    idle_conns: usize,
    idle_settle: Duration,
    accept_conns: usize,
    /// Subscribers of the paced (latency) and the blast cross-node scenarios.
    cross_subscribers: [usize; 2],
    /// Messages of the paced cross-node scenario (the blast sends `broadcast_messages`).
    cross_messages: u64,
}

/// The paced publisher's interval.
const PACE: Duration = Duration::from_millis(1);

const FULL: Sizes = Sizes {
    echo_conns: 50,
    echo_window: 16,
    echo_time: Duration::from_secs(5),
    broadcast_subscribers: [1000, 5000],
    broadcast_messages: 200,
    idle_conns: 10_000,
    idle_settle: Duration::from_secs(1),
    accept_conns: 5000,
    cross_subscribers: [10, 1000],
    cross_messages: 1000,
};

/// Every path taken, at a size that runs in a fraction of a second.
const SMOKE: Sizes = Sizes {
    echo_conns: 4,
    echo_window: 4,
    echo_time: Duration::from_millis(200),
    broadcast_subscribers: [20, 50],
    broadcast_messages: 20,
    idle_conns: 50,
    idle_settle: Duration::from_millis(100),
    accept_conns: 50,
    cross_subscribers: [3, 20],
    cross_messages: 20,
};

#[derive(Debug)]
struct Args {
    scenarios: Vec<Scenario>,
    rounds: usize,
    sizes: Sizes,
    servers: Option<Vec<String>>,
    out: Option<String>,
    pin: bool,
    max_minutes: u64,
    smoke: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        scenarios: Vec::new(),
        rounds: 3,
        sizes: FULL,
        servers: None,
        out: None,
        pin: true,
        max_minutes: 30,
        smoke: false,
    };
    let mut names = Vec::new();
    let mut secs = None;
    let mut messages = None;
    let mut subscribers = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => args.rounds = value()?.parse()?,
            "--secs" => secs = Some(value()?.parse::<f64>()?),
            "--messages" => messages = Some(value()?.parse::<u64>()?),
            "--subscribers" => {
                let both: Vec<usize> = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?;
                subscribers = Some(<[usize; 2]>::try_from(both).map_err(|_| "--subscribers needs two counts")?);
            }
            "--servers" => args.servers = Some(value()?.split(',').map(str::to_owned).collect()),
            "--out" => args.out = Some(value()?),
            "--max-minutes" => args.max_minutes = value()?.parse()?,
            "--no-pin" => args.pin = false,
            "--smoke" => args.smoke = true,
            "-h" | "--help" => {
                println!("see the header of benches/src/bin/bench.rs");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}").into()),
            name => names.push(name.to_owned()),
        }
    }
    if args.smoke {
        args.sizes = SMOKE;
        args.rounds = 1;
        args.pin = false;
        args.max_minutes = args.max_minutes.min(2);
    }
    if let Some(secs) = secs {
        args.sizes.echo_time = Duration::from_secs_f64(secs);
    }
    if let Some(messages) = messages {
        args.sizes.broadcast_messages = messages;
    }
    if let Some(subscribers) = subscribers {
        args.sizes.broadcast_subscribers = subscribers;
    }
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let [small, large] = args.sizes.broadcast_subscribers;
    let broadcasts = [(small, false), (large, false), (small, true), (large, true)]
        .map(|(subscribers, silent)| Scenario::Broadcast { subscribers, silent });
    let [paced, blast] = args.sizes.cross_subscribers;
    let cross = [(paced, true), (blast, false)].map(|(subscribers, paced)| Scenario::CrossNode { subscribers, paced });
    let all: Vec<Scenario> = [Scenario::Echo, Scenario::EchoMsgPack]
        .into_iter()
        .chain(broadcasts)
        .chain([Scenario::Idle, Scenario::Accept])
        .chain(cross)
        .collect();
    if names.is_empty() {
        args.scenarios.clone_from(&all);
    }
    for name in names {
        let found: Vec<Scenario> = match name.as_str() {
            "all" => all.clone(),
            "broadcast" => broadcasts.to_vec(),
            // Full-size names select the scenario at whatever size this run has.
            "broadcast-1000" | "broadcast-small" => vec![broadcasts[0]],
            "broadcast-5000" | "broadcast-large" => vec![broadcasts[1]],
            "broadcast-1000-silent" | "broadcast-small-silent" => vec![broadcasts[2]],
            "broadcast-5000-silent" | "broadcast-large-silent" => vec![broadcasts[3]],
            "cross-node" => cross.to_vec(),
            "cross-node-latency-10" | "cross-node-latency" => vec![cross[0]],
            "cross-node-1000" | "cross-node-blast" => vec![cross[1]],
            other => all.iter().copied().filter(|s| s.name() == other).collect(),
        };
        if found.is_empty() {
            return Err(format!("unknown scenario {name:?}").into());
        }
        args.scenarios.extend(found);
    }
    args.scenarios.sort();
    args.scenarios.dedup();
    Ok(args)
}

/// One measurement: the scenario's figure and, for throughput, its latencies (µs).
#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    /// The server's CPU time per message, ns.
    cpu_ns: Option<f64>,
    /// The load generator's CPU time over wall-clock time.
    load_busy: Option<f64>,
    /// Messages or deliveries checked.
    count: Option<u64>,
    /// Echo: bytes on the wire of one message as the server sends it.
    wire_bytes: Option<f64>,
}

#[derive(Debug, Default)]
struct Cell {
    samples: Vec<Sample>,
    errors: Vec<String>,
}

impl Cell {
    fn values(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.value).collect()
    }

    fn median(&self) -> Option<f64> {
        (!self.samples.is_empty()).then(|| median(&self.values()))
    }

    fn p99s(&self) -> Vec<f64> {
        self.samples.iter().filter_map(|s| s.p99_us).collect()
    }
}

type Results = BTreeMap<(Scenario, String), Cell>;

fn main() -> Result<()> {
    if let Some(served) = proc::serve_if_asked() {
        return served;
    }
    let args = parse_args()?;
    // The run bounds its own time: whatever hangs, it ends (and its servers with it, as
    // their standard input closes).
    let bound = Duration::from_secs(args.max_minutes * 60);
    std::thread::spawn(move || {
        std::thread::sleep(bound);
        eprintln!("bench: over its time bound of {bound:?}, stopping");
        std::process::exit(2);
    });
    proc::raise_fd_limit(args.sizes.idle_conns as u64 + 1000)?;
    let (pinning, pin_note) = Pinning::detect(args.pin);
    pinning.pin_self()?;
    let node = proc::node_ready();
    if let Err(why) = &node {
        eprintln!("\n!!!!!!!! {why} !!!!!!!!\n");
    }
    // One Redis for the whole run, if a scenario needs it.
    let wants_redis = args.scenarios.iter().any(|s| matches!(s, Scenario::CrossNode { .. }));
    let redis = wants_redis.then(proc::Redis::start);
    let redis_url = redis
        .as_ref()
        .and_then(|redis| redis.as_ref().ok())
        .map(|redis| redis.url.clone());
    if let Some(Err(why)) = &redis {
        eprintln!("\n!!!!!!!! {why} !!!!!!!!\n");
    }
    eprintln!("{pin_note}");
    // Pinned to one core, the load generator runs best on one thread.
    let runtime = match pinning.load {
        Some(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        None => tokio::runtime::Runtime::new()?,
    };
    let mut results = Results::new();
    for &scenario in &args.scenarios {
        let servers: Vec<&str> = scenario
            .servers()
            .iter()
            .copied()
            .filter(|s| args.servers.as_ref().is_none_or(|only| only.iter().any(|o| o == s)))
            .filter(|s| *s != NODE || node.is_ok())
            .filter(|s| ![REDIS, CROSS].contains(s) || redis_url.is_some())
            .collect();
        for round in 0..args.rounds {
            // Alternate: each round starts with a different server.
            for i in 0..servers.len() {
                let server = servers[(i + round) % servers.len()];
                let outcome = measure(&runtime, scenario, server, &args.sizes, pinning, redis_url.as_deref());
                let cell = results.entry((scenario, server.to_owned())).or_default();
                match outcome {
                    Ok(sample) => {
                        eprintln!(
                            "{:<24} round {} {server:<14} {}",
                            scenario.name(),
                            round + 1,
                            describe(scenario, &sample)
                        );
                        cell.samples.push(sample);
                    }
                    Err(error) => {
                        eprintln!(
                            "{:<24} round {} {server:<14} ERROR: {error}",
                            scenario.name(),
                            round + 1
                        );
                        cell.errors.push(error.to_string());
                    }
                }
            }
        }
    }
    let skipped: Vec<String> = node.err().into_iter().chain(redis.and_then(Result::err)).collect();
    let report = report(&args, &results, &pin_note, &skipped);
    println!("\n{report}");
    if let Some(out) = &args.out {
        ws_channels_benches::results::write_runtime(std::path::Path::new(out), &report)?;
        eprintln!("written to {out}");
    }
    let errors: usize = results.values().map(|c| c.errors.len()).sum();
    if errors > 0 {
        return Err(format!("{errors} measurement(s) failed").into());
    }
    Ok(())
}

/// Starts `server`, runs `scenario` against it once, stops it.
fn measure(
    runtime: &tokio::runtime::Runtime,
    scenario: Scenario,
    server: &str,
    sizes: &Sizes,
    pinning: Pinning,
    redis: Option<&str>,
) -> Result<Sample> {
    let program = match (server, redis) {
        (NODE, _) => Program::Node,
        (REDIS | CROSS, Some(url)) => Program::Redis(url),
        (REDIS | CROSS, None) => return Err("no redis-server".into()),
        _ => Program::Rust(server),
    };
    let running = Server::start(program, scenario.mode(), pinning)?;
    let addr = running.addr;
    // Cross-node: the publisher's node, another process on the same Redis.
    let publisher_node = match server {
        CROSS => Some(Server::start(program, scenario.mode(), pinning)?),
        _ => None,
    };
    let publish_at = publisher_node.as_ref().map_or(addr, |node| node.addr);
    let throughput = |t: load::Throughput| Sample {
        value: t.rate,
        p50_us: Some(t.p50_us),
        p99_us: Some(t.p99_us),
        cpu_ns: Some(t.cpu_ns),
        load_busy: Some(t.load_busy),
        count: Some(t.count),
        wire_bytes: t.wire_bytes,
    };
    let plain = |value| Sample {
        value,
        p50_us: None,
        p99_us: None,
        cpu_ns: None,
        load_busy: None,
        count: None,
        wire_bytes: None,
    };
    // A bound on the whole measurement, over the bounds on each wait.
    let bound = sizes.echo_time + PACE * sizes.cross_messages as u32 * 2 + Duration::from_secs(120);
    runtime.block_on(async {
        let measured = async {
            Ok(match scenario {
                Scenario::Echo | Scenario::EchoMsgPack => throughput(
                    load::echo(
                        &running,
                        servers::format(server),
                        sizes.echo_conns,
                        sizes.echo_window,
                        sizes.echo_time,
                    )
                    .await?,
                ),
                Scenario::Broadcast { subscribers, silent } => {
                    let silent = if silent { subscribers / 10 } else { 0 };
                    throughput(load::broadcast(&running, subscribers, silent, sizes.broadcast_messages).await?)
                }
                Scenario::Idle => plain(
                    load::idle(&running, sizes.idle_conns, sizes.idle_settle)
                        .await?
                        .per_conn_kib,
                ),
                Scenario::Accept => plain(load::accept(addr, sizes.accept_conns).await?),
                Scenario::CrossNode { subscribers, paced } => {
                    let (messages, pace) = match paced {
                        true => (sizes.cross_messages, Some(PACE)),
                        false => (sizes.broadcast_messages, None),
                    };
                    throughput(load::broadcast_across(publish_at, &running, subscribers, 0, messages, pace).await?)
                }
            })
        };
        tokio::time::timeout(bound, measured)
            .await
            .map_err(|_| format!("{} took over {bound:?}", scenario.name()))?
    })
}

fn describe(scenario: Scenario, sample: &Sample) -> String {
    let mut line = format!("{} {}", figure(scenario, sample.value), scenario.unit());
    if let (Some(p50), Some(p99)) = (sample.p50_us, sample.p99_us) {
        let _ = write!(line, "  p50 {} p99 {}", micros(p50), micros(p99));
    }
    if let Some(ns) = sample.cpu_ns {
        let _ = write!(line, "  server CPU {ns:.0} ns/msg");
    }
    if let Some(bytes) = sample.wire_bytes {
        let _ = write!(line, "  {bytes:.0} B/msg on the wire");
    }
    if let Some(busy) = sample.load_busy {
        let _ = write!(line, "  load generator busy {:.0} %", busy * 100.0);
    }
    if let Some(count) = sample.count {
        let _ = write!(line, "  ({count} checked)");
    }
    line
}

fn figure(scenario: Scenario, value: f64) -> String {
    match scenario {
        Scenario::Idle => format!("{value:.1}"),
        _ if value >= 1e6 => format!("{:.2} M", value / 1e6),
        _ if value >= 1e3 => format!("{:.0} k", value / 1e3),
        _ => format!("{value:.0}"),
    }
}

fn micros(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn ratio(value: Option<f64>, reference: Option<f64>) -> String {
    match (value, reference) {
        (Some(v), Some(r)) if r > 0.0 => format!("{:.2}×", v / r),
        _ => String::new(),
    }
}

/// The Markdown report: where and how it ran, the table, the targets, the errors.
fn report(args: &Args, results: &Results, pin_note: &str, skipped: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmark results\n");
    let _ = writeln!(out, "{}\n", environment(pin_note));
    for why in skipped {
        let _ = writeln!(out, "**{why}.**\n");
    }
    let sizes = &args.sizes;
    let [small, large] = sizes.broadcast_subscribers;
    let _ = writeln!(
        out,
        "Sizes: echo {} connections × {} in flight for {:?}; broadcast {} messages (the publisher at most \
         {} ahead of the slowest reader) to {small} and {large} subscribers (\"silent\": 10 % of them never read, with a 4 KiB receive buffer); idle {} \
         connections after one round trip each; accept {} handshakes, 64 at a time. {} round(s), servers \
         alternating, each measurement on a fresh server process. Medians; spread = (max − min) / median; \
         ratios are medians over the `{FLOOR}` floor and over Node `ws`, measured in the same run (for idle \
         memory a ratio above 1 means more memory). p50/p99: echo round trip, or publish to delivery. \
         Server CPU/msg: the server process's CPU time (user + system, every thread) over the measured \
         part, per message or delivery; other load on a shared machine moves it far less than the \
         wall-clock rates, so the targets below cross-check each ratio with it. The load generator has one \
         core too: \"load gen busy\" is its CPU time over wall-clock time; near 100 % it, not the server, set \
         the rate, fast servers' rates converge, and CPU/msg still tells them apart (so echo clients and broadcast \
         subscribers frame and parse by hand, which costs far less per frame than any server spends \
         writing it: `benches/src/raw.rs`). Wire B/msg (echo): \
         the mean size of one message's WebSocket frame as the server sends it, header and payload.\n",
        sizes.echo_conns,
        sizes.echo_window,
        sizes.echo_time,
        sizes.broadcast_messages,
        load::BROADCAST_WINDOW,
        sizes.idle_conns,
        sizes.accept_conns,
        args.rounds,
    );
    let _ = writeln!(
        out,
        "Servers (each its own process, on one tokio runtime per process):\n"
    );
    for (name, what) in servers::RUST_SERVERS {
        let _ = writeln!(out, "- `{name}`: {what}");
    }
    let _ = writeln!(
        out,
        "- `{NODE}`: Node `ws` (benches/node, from its lock file), `JSON.parse` / `JSON.stringify`, \
         broadcast stringified once\n- `{CROSS}`: two `{REDIS}` processes, the publisher connected to one and the subscribers to \
         the other, so every delivery crosses Redis (both pinned like the others; redis-server unpinned). \
         Cross-node scenarios: `cross-node-latency-N`, one message every {PACE:?} to N subscribers (its rate is \
         the pace's; read p50/p99); `cross-node-N`, a {} message blast like `broadcast`\n\nThe hand-written servers use ws-channels' default buffers (4 KiB read, \
         8 KiB write) and a bounded queue of {} per connection (full: the reader is disconnected, as under \
         ws-channels' default lag policy).\n",
        sizes.broadcast_messages,
        servers::QUEUE,
    );
    let _ = writeln!(
        out,
        "| scenario | server | median | spread | p50 | p99 | server CPU/msg | wire B/msg | load gen busy | × {FLOOR} | × node |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Rows in the order of each scenario's server list, the floor first.
    let rows = results.iter().map(|(key, cell)| {
        let rank = key.0.servers().iter().position(|s| *s == key.1);
        ((key.0, rank), key, cell)
    });
    let mut rows: Vec<_> = rows.collect();
    rows.sort_by_key(|row| row.0);
    for (_, &(scenario, ref server), cell) in rows {
        let floor = results.get(&(scenario, FLOOR.to_owned())).and_then(Cell::median);
        let node = results.get(&(scenario, NODE.to_owned())).and_then(Cell::median);
        let median_of = |f: fn(&Sample) -> Option<f64>| {
            let v: Vec<f64> = cell.samples.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| micros(median(&v)))
        };
        let value = cell.median();
        let shown = match value {
            Some(v) if cell.errors.is_empty() => format!("{} {}", figure(scenario, v), scenario.unit()),
            Some(v) => format!(
                "{} {} (ERRORS: {})",
                figure(scenario, v),
                scenario.unit(),
                cell.errors.len()
            ),
            None => format!("ERRORS: {}", cell.errors.len()),
        };
        let _ = writeln!(
            out,
            "| {} | {server} | {shown} | {} | {} | {} | {} | {} | {} | {} | {} |",
            scenario.name(),
            if cell.samples.len() > 1 {
                format!("{:.0} %", spread(&cell.values()) * 100.0)
            } else {
                String::new()
            },
            median_of(|s| s.p50_us).unwrap_or_default(),
            median_of(|s| s.p99_us).unwrap_or_default(),
            cpu_per_message(cell).map_or(String::new(), |ns| format!("{ns:.0} ns")),
            median_of_raw(cell, |s| s.wire_bytes).map_or(String::new(), |b| format!("{b:.0} B")),
            median_of_raw(cell, |s| s.load_busy).map_or(String::new(), |b| format!("{:.0} %", b * 100.0)),
            if server == FLOOR {
                String::new()
            } else {
                ratio(value, floor)
            },
            if server == NODE {
                String::new()
            } else {
                ratio(value, node)
            },
        );
    }
    let _ = writeln!(out, "\n## Targets (ws-channels, issue 7)\n");
    for line in targets(results) {
        let _ = writeln!(out, "- {line}");
    }
    let errors: Vec<String> = results
        .iter()
        .flat_map(|((scenario, server), cell)| {
            cell.errors
                .iter()
                .map(move |e| format!("{} / {server}: {e}", scenario.name()))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\n## Errors\n");
        for error in errors {
            let _ = writeln!(out, "- {error}");
        }
    }
    out
}

/// The median of a cell's server CPU time per message, ns.
fn cpu_per_message(cell: &Cell) -> Option<f64> {
    median_of_raw(cell, |s| s.cpu_ns)
}

/// The median of one optional figure over a cell's samples.
fn median_of_raw(cell: &Cell, figure: fn(&Sample) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = cell.samples.iter().filter_map(figure).collect();
    (!v.is_empty()).then(|| median(&v))
}

/// Each target of the issue, met or missed, for what this run measured.
fn targets(results: &Results) -> Vec<String> {
    let get = |scenario: Scenario, server: &str| -> Option<&Cell> { results.get(&(scenario, server.to_owned())) };
    let med = |scenario, server: &str| get(scenario, server).and_then(Cell::median);
    let verdict = |ok: bool| if ok { "met" } else { "**MISSED**" };
    let mut lines = Vec::new();
    let mut ratio_target = |scenario: Scenario, over: &str, at_least: f64| {
        if let (Some(v), Some(r)) = (med(scenario, "ws-channels"), med(scenario, over)) {
            let ratio = v / r;
            // Server CPU per message barely moves with other load on the machine: a
            // cross-check of the wall-clock ratio.
            let cpu = |server: &str| get(scenario, server).and_then(cpu_per_message);
            let by_cpu = match (cpu(over), cpu("ws-channels")) {
                (Some(theirs), Some(ours)) => format!(" (by server CPU per message: {:.2}×)", theirs / ours),
                _ => String::new(),
            };
            lines.push(format!(
                "{}: {ratio:.2}× {over}{by_cpu} (target ≥ {at_least}×): {}",
                scenario.name(),
                verdict(ratio >= at_least)
            ));
        }
    };
    let mut scenarios: Vec<Scenario> = results.keys().map(|(s, _)| *s).collect();
    scenarios.dedup();
    for &scenario in &scenarios {
        match scenario {
            Scenario::Echo => {
                ratio_target(scenario, FLOOR, 0.97);
                ratio_target(scenario, NODE, 7.0);
            }
            Scenario::Broadcast { silent: false, .. } => {
                ratio_target(scenario, FLOOR, 1.1);
                ratio_target(scenario, NODE, 15.0);
            }
            _ => {}
        }
    }
    for &scenario in &scenarios {
        let Scenario::Broadcast {
            subscribers,
            silent: true,
        } = scenario
        else {
            continue;
        };
        let alone = Scenario::Broadcast {
            subscribers,
            silent: false,
        };
        for server in ["ws-channels", FLOOR, NODE] {
            let (Some(with), Some(without)) = (get(scenario, server), get(alone, server)) else {
                continue;
            };
            let (p_with, p_without) = (with.p99s(), without.p99s());
            if p_with.is_empty() || p_without.is_empty() {
                continue;
            }
            let change = median(&p_with) / median(&p_without) - 1.0;
            let allowed = 0.10_f64.max(spread(&p_without)).max(spread(&p_with));
            let line = format!(
                "{}: readers' p99 {:+.0} % with 10 % silent subscribers (allowed ±{:.0} %)",
                scenario.name(),
                change * 100.0,
                allowed * 100.0
            );
            if server == "ws-channels" {
                lines.push(format!("{line}: {}", verdict(change <= allowed)));
            } else {
                lines.push(format!("{line} — {server}, for reference"));
            }
        }
    }
    // MessagePack over JSON, the same ws-channels echo: for reference, no target.
    let pack = |server: &str| get(Scenario::EchoMsgPack, server).filter(|cell| !cell.samples.is_empty());
    if let (Some(json), Some(msgpack)) = (pack("ws-channels"), pack(servers::MSGPACK)) {
        let over =
            |figure: fn(&Sample) -> Option<f64>| match (median_of_raw(msgpack, figure), median_of_raw(json, figure)) {
                (Some(m), Some(j)) => format!("{:.2}×", m / j),
                _ => "?".to_owned(),
            };
        let bytes = |cell| median_of_raw(cell, |s| s.wire_bytes).map_or("?".to_owned(), |b| format!("{b:.0} B"));
        lines.push(format!(
            "echo-msgpack: MessagePack over JSON: {} the msg/s, {} the server CPU per message, {} the bytes on the \
             wire per message ({} vs {}), for reference",
            over(|s| Some(s.value)),
            over(|s| s.cpu_ns),
            over(|s| s.wire_bytes),
            bytes(msgpack),
            bytes(json),
        ));
    }
    for &scenario in &scenarios {
        let Scenario::CrossNode { paced, .. } = scenario else {
            continue;
        };
        let p50 = |server: &str| median_of_raw(get(scenario, server)?, |s| s.p50_us);
        match paced {
            true => {
                if let (Some(local), Some(cross)) = (p50("ws-channels"), p50(CROSS)) {
                    let added = cross - local;
                    lines.push(format!(
                        "{}: Redis adds {} at p50 over local delivery ({} → {}) (target ≤ 1 ms): {}",
                        scenario.name(),
                        micros(added),
                        micros(local),
                        micros(cross),
                        verdict(added <= 1000.0)
                    ));
                }
            }
            false => {
                for server in [REDIS, CROSS] {
                    if let (Some(v), Some(local)) = (med(scenario, server), med(scenario, "ws-channels")) {
                        lines.push(format!(
                            "{}: `{server}` delivers {:.2}× the deliveries/s of in-process `ws-channels`, for reference",
                            scenario.name(),
                            v / local
                        ));
                    }
                }
            }
        }
    }
    if let Some(kib) = med(Scenario::Idle, "ws-channels") {
        lines.push(format!(
            "idle: {kib:.1} KiB per connection (target ≤ 8 KiB): {}",
            verdict(kib <= 8.0)
        ));
    }
    let errors: usize = results.values().map(|c| c.errors.len()).sum();
    lines.push(format!(
        "no errors, no lost or reordered message (every delivery checked): {}",
        verdict(errors == 0)
    ));
    lines
}

/// Machine, versions, date and command, for the top of the report.
fn environment(pin_note: &str) -> String {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    // Counted from /proc: this process is pinned to one of them.
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map_or(0, |c| c.lines().filter(|l| l.starts_with("processor")).count());
    let ws_version = std::fs::read_to_string(proc::node_dir().join("node_modules/ws/package.json"))
        .ok()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
        .and_then(|p| p["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "not installed".to_owned());
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "- date: {}\n- machine: {cpu}, {cores} cores, Linux {}; {pin_note}\n- versions: ws-channels at commit {}, {}, \
         tokio-tungstenite 0.29, Node {} with ws {ws_version}\n- command: `cargo run --release -p ws-channels-benches --bin bench -- {}`",
        run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        run("uname", &["-r"]),
        run("git", &["rev-parse", "--short", "HEAD"]),
        run("rustc", &["-V"]),
        run("node", &["--version"]),
        args.join(" "),
    )
}
