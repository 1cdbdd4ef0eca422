//! Processes: each server runs as a child process (this binary with `--serve NAME MODE`, or
//! Node), pinned to its own core when `taskset` is there; plus the readings taken from
//! outside (resident memory, open file descriptors) and the file-descriptor limit.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::servers::{self, Mode};
use crate::{BoxError, Result};

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The environment variable naming a command the Rust servers run under, e.g.
/// `valgrind --tool=callgrind`; split at whitespace.
pub const WRAP_ENV: &str = "BENCH_SERVER_WRAPPER";

/// How long a stopping server may take to exit by itself (its standard input closed) before
/// it is killed: a wrapper such as callgrind writes its profile then.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Where the server and the load generator run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinning {
    /// The server's core, if pinned.
    pub server: Option<usize>,
    /// The load generator's core, if pinned.
    pub load: Option<usize>,
}

impl Pinning {
    /// Server on core 0, load generator on core 1, when `taskset` exists and there are two
    /// cores; otherwise unpinned, with the reason.
    pub fn detect(wanted: bool) -> (Self, String) {
        let unpinned = Self {
            server: None,
            load: None,
        };
        if !wanted {
            return (unpinned, "unpinned (--no-pin)".to_owned());
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return (unpinned, format!("UNPINNED: only {cores} core(s) available"));
        }
        if !Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return (unpinned, "UNPINNED: taskset not found (util-linux)".to_owned());
        }
        let pinning = Self {
            server: Some(0),
            load: Some(1),
        };
        (
            pinning,
            "server pinned to core 0, load generator to core 1 (taskset)".to_owned(),
        )
    }

    /// Pins this process (the load generator) to its core. Call it before starting any
    /// runtime: threads created later inherit the affinity.
    pub fn pin_self(&self) -> Result<()> {
        if let Some(core) = self.load {
            let status = Command::new("taskset")
                .args(["-a", "-p", "-c", &core.to_string(), &std::process::id().to_string()])
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                return Err("taskset could not pin the load generator".into());
            }
        }
        Ok(())
    }
}

/// Which server program to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program<'a> {
    /// One of [`servers::RUST_SERVERS`], run by the current executable.
    Rust(&'a str),
    /// The Node `ws` server in `benches/node/`.
    Node,
    /// `ws-channels-redis`: ws-channels with the Redis backplane, on the Redis at this URL.
    Redis(&'a str),
}

/// A running server, killed when dropped. It also exits by itself when its standard input
/// closes, so a benchmark that dies leaves no server behind.
#[derive(Debug)]
pub struct Server {
    child: Child,
    // Held open: the child exits when it closes.
    stdin: Option<ChildStdin>,
    /// Its listening address on 127.0.0.1.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `program` in `mode` and waits for its address.
    pub fn start(program: Program<'_>, mode: Mode, pinning: Pinning) -> Result<Self> {
        let (exe, args): (std::ffi::OsString, Vec<std::ffi::OsString>) = match program {
            Program::Rust(name) => (
                std::env::current_exe()?.into(),
                vec!["--serve".into(), name.into(), mode.name().into()],
            ),
            Program::Node => (
                "node".into(),
                vec![node_dir().join("server.js").into(), mode.name().into()],
            ),
            Program::Redis(url) => (
                std::env::current_exe()?.into(),
                vec![
                    "--serve".into(),
                    "ws-channels-redis".into(),
                    mode.name().into(),
                    url.into(),
                ],
            ),
        };
        // A Rust server may run under a wrapper (`valgrind --tool=callgrind`): instruction
        // counts do not move with other load on the machine.
        let wrapper: Vec<std::ffi::OsString> = match program {
            Program::Rust(_) | Program::Redis(_) => std::env::var(WRAP_ENV)
                .map(|w| w.split_whitespace().map(Into::into).collect())
                .unwrap_or_default(),
            Program::Node => Vec::new(),
        };
        let pin = pinning
            .server
            .map(|core| ["taskset".into(), "-c".into(), core.to_string().into()]);
        let mut argv = pin.into_iter().flatten().chain(wrapper).chain([exe]).chain(args);
        let mut command = Command::new(argv.next().ok_or("no program")?);
        command.args(argv);
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Read the address on a thread, so a server that never prints cannot hang the run.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining, so a chatty server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server = Self {
            child,
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("{program:?} did not print its address in {START_TIMEOUT:?}"))??;
        server.addr = line
            .trim()
            .strip_prefix("listening on ws://")
            .ok_or_else(|| format!("{program:?} printed {line:?}, not its address"))?
            .parse()?;
        Ok(server)
    }

    /// The server's process id (taskset execs it, so this is the server itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid())
    }

    /// CPU time it has used so far (user + system, every thread). On a shared machine this
    /// moves much less with other load than wall-clock rates do.
    pub fn cpu_time(&self) -> Result<Duration> {
        if let Some(on_cpu) = threads_cpu_time(&self.pid().to_string()) {
            return Ok(on_cpu);
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')').ok_or("bad stat")?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11).ok_or("bad stat")?.parse::<u64>()? + fields.get(12).ok_or("bad stat")?.parse::<u64>()?;
        Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
    }

    /// Its open file descriptors.
    pub fn open_fds(&self) -> Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid()))?.count())
    }
}

impl Drop for Server {
    /// Closes its standard input, so it exits by itself, and kills it if it has not within
    /// 30 seconds (a wrapper such as callgrind writes its profile as the server exits).
    fn drop(&mut self) {
        drop(self.stdin.take());
        let stopping = std::time::Instant::now();
        while stopping.elapsed() < STOP_GRACE {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time of this process (the load generator), every thread.
pub fn own_cpu_time() -> Result<Duration> {
    threads_cpu_time("self").ok_or_else(|| "no /proc/self/task/*/schedstat".into())
}

/// The time process `pid` spent on a CPU, summed over its threads, in nanoseconds: far finer
/// than the 10 ms ticks of `stat`, which a 200 ms broadcast needs. `None` without schedstat.
fn threads_cpu_time(pid: &str) -> Option<Duration> {
    let mut ns = 0_u64;
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(schedstat) = std::fs::read_to_string(task.ok()?.path().join("schedstat")) else {
            continue;
        };
        if let Some(on_cpu) = schedstat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()) {
            ns += on_cpu;
            threads += 1;
        }
    }
    (threads > 0).then(|| Duration::from_nanos(ns))
}

/// CPU time (user + system) of this process's children that have ended and been waited
/// for, and of their own children: what `cargo` and every `rustc` it ran cost.
pub fn children_cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').ok_or("bad stat")?.1.split_whitespace().collect();
    let ticks: u64 =
        fields.get(13).ok_or("bad stat")?.parse::<u64>()? + fields.get(14).ok_or("bad stat")?.parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// Clock ticks per second, the unit of `/proc/PID/stat` times.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Resident memory of process `pid`, KiB (Linux).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS (Linux only)")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

/// The Node server's folder.
pub fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// Whether the Node server can run: `node` present and `node_modules` installed (by `npm ci`
/// from the checked-in lock file when missing). `Err` says loudly why not.
pub fn node_ready() -> Result<(), String> {
    let version = Command::new("node").arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        return Err("node not found: the Node `ws` server is SKIPPED".to_owned());
    }
    let dir = node_dir();
    if dir.join("node_modules").join("ws").is_dir() {
        return Ok(());
    }
    eprintln!("installing the Node server's dependencies: npm ci in benches/node");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&dir)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => Err("npm ci failed in benches/node: the Node `ws` server is SKIPPED".to_owned()),
    }
}

/// Raises this process's soft file-descriptor limit to its hard limit (children inherit it)
/// and says whether `needed` descriptors fit.
pub fn raise_fd_limit(needed: u64) -> Result<u64> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    if limit < needed {
        return Err(
            format!("{needed} file descriptors needed, the hard limit is {limit}: raise it (ulimit -Hn)").into(),
        );
    }
    Ok(limit)
}

/// The entry point of a server child: when the arguments are `--serve NAME MODE`, serves until
/// standard input closes (the parent ended) and returns `Some`; otherwise `None`.
pub fn serve_if_asked() -> Option<Result<()>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("--serve") {
        return None;
    }
    Some((|| {
        let (name, mode, redis) = match args.as_slice() {
            [_, name, mode] => (name, mode, None),
            [_, name, mode, redis] => (name, mode, Some(redis.clone())),
            _ => return Err::<(), BoxError>("usage: --serve NAME MODE [REDIS_URL]".into()),
        };
        let mode = Mode::parse(mode)?;
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        std::thread::spawn(|| {
            // The parent holds our stdin: EOF means it is gone, and so should we be.
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(0);
        });
        servers::run(name, mode, redis)
    })())
}

/// A `redis-server` of the run's own, on a free loopback port, without persistence; killed
/// when dropped. The `ws-channels-redis` servers find it through
/// [`Program::Redis`].
#[derive(Debug)]
pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
}

impl Redis {
    /// Starts one and waits until it answers; `Err` says why not (no `redis-server` on PATH).
    pub fn start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server not started ({e}): the Redis servers are SKIPPED"))?;
        let redis = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let started = std::time::Instant::now();
        while started.elapsed() < START_TIMEOUT {
            use std::io::Write as _;
            if let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut pong = [0; 7];
                if socket.write_all(b"PING\r\n").is_ok()
                    && socket.read_exact(&mut pong).is_ok()
                    && &pong == b"+PONG\r\n"
                {
                    return Ok(redis);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer: the Redis servers are SKIPPED".to_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
