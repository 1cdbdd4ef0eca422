//! Shared helpers for the integration tests: servers on `127.0.0.1:0`, raw WebSocket peers,
//! time bounds so every test stops by itself, and [`require`], the one rule for tests that
//! need a program from outside Rust (the examples crate's tests use it too).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use ws_channels::tungstenite::Message;
use ws_channels::tungstenite::protocol::CloseFrame;
use ws_channels::{ClientSocket, Error, Server};

/// The longest any single step of a test may take.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// How a test server is served: the same registrations, two HTTP stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `Server::serve_with_shutdown` on tokio-tungstenite.
    Standalone,
    /// `Server::into_router` merged into an axum `Router`, served by `axum::serve`.
    Axum,
}

/// A server running on an ephemeral loopback port until shut down or dropped.
pub struct Served {
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl Served {
    /// Binds `127.0.0.1:0` and serves `server` standalone in the background.
    pub async fn start<S: Send + Sync + 'static>(server: Server<S>) -> Self {
        Self::start_on(Backend::Standalone, server).await
    }

    /// Binds `127.0.0.1:0` and serves `server` on `backend` in the background.
    pub async fn start_on<S: Send + Sync + 'static>(backend: Backend, server: Server<S>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = match backend {
            Backend::Standalone => tokio::spawn(server.serve_with_shutdown(listener, async {
                let _ = rx.await;
            })),
            Backend::Axum => {
                let handle = server.handle();
                let app = axum::Router::new()
                    .route("/health", axum::routing::get(|| async { "ok" }))
                    .merge(server.into_router());
                let serving = ws_channels::serve_app(listener, app).with_graceful_shutdown(async move {
                    let _ = rx.await;
                    handle.shutdown().await;
                });
                tokio::spawn(async move { serving.await.map_err(Error::from) })
            }
        };
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `ws://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Starts a graceful shutdown; returns the server task, which ends when the shutdown does.
    pub fn begin_shutdown(&mut self) -> JoinHandle<Result<(), Error>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("the server task is only taken once")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Opens a raw WebSocket to `path` (with its query string) on `server`.
pub async fn raw_connect(server: &Served, path: &str) -> ClientSocket {
    let url = format!("{}{path}", server.base());
    let (socket, _) = within(
        &format!("connect {url}"),
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    socket
}

/// The HTTP status a WebSocket handshake to `path` gets (101 when it is accepted).
pub async fn handshake_status(server: &Served, path: &str) -> u16 {
    handshake_status_at(server.addr, path, &[]).await
}

/// The HTTP status a WebSocket handshake to `path` on `addr`, with `headers` added, gets (101
/// when it is accepted): for servers other than a [`Served`] one (an example's process, a front
/// end of a test's own).
pub async fn handshake_status_at(addr: SocketAddr, path: &str, headers: &[(&'static str, &str)]) -> u16 {
    use ws_channels::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{addr}{path}");
    let mut request = url.as_str().into_client_request().expect("a request for the URL");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
    }
    match within("handshake", tokio_tungstenite::connect_async(request)).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(ws_channels::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake to {url} failed without a status: {other}"),
    }
}

/// An example program (`examples/`), as `cargo test` builds it: next to the test binary's
/// `deps/` directory. Fails the test with the command that builds it when it is missing (a run
/// narrowed to one test target does not build the examples).
pub fn example(name: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target profile dir")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: `cargo build -p ws-channels-examples --examples` (`cargo test --workspace` builds it)",
        path.display()
    );
    std::process::Command::new(path)
}

/// A child process, killed when the test ends however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends raw HTTP and returns the status line's code and the whole response.
pub async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    within("raw http", async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("write request");
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.expect("read response");
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"));
        (status, response)
    })
    .await
}

/// Reads frames to the end of the connection, as a well-behaved client does (reading on after
/// the server's close frame is what sends the close reply). Returns the text frames read and
/// the server's close frame, `None` if the connection ended without one.
pub async fn read_until_close(socket: &mut ClientSocket) -> (Vec<String>, Option<CloseFrame>) {
    within("waiting for the connection to close", async {
        let mut texts = Vec::new();
        let mut close = None;
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Text(text)) => texts.push(text.to_string()),
                Ok(Message::Close(frame)) => close = frame,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (texts, close)
    })
    .await
}

/// Reads the next text frame, skipping control frames.
pub async fn next_text(socket: &mut ClientSocket) -> String {
    within("waiting for a text frame", async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Close(frame))) => {
                    panic!("closed instead of a text frame: {frame:?}")
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => panic!("socket error instead of a text frame: {error}"),
                None => panic!("connection ended instead of a text frame"),
            }
        }
    })
    .await
}

/// A program from outside Rust that some tests need. Such a test starts with
/// `if !require(&[Component::Node]) { return; }`; see [`require`] for what happens when the
/// component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// Node.js 20+ and npm: Node clients drive the examples, the official AsyncAPI parser
    /// validates the documents, `tsc` compiles the generated TypeScript.
    Node,
    /// A Chromium binary for the browser test: `$CHROMIUM`, else `chromium` or
    /// `chromium-browser` on `PATH` (see [`chromium`]).
    Chromium,
    /// `redis-server` on `PATH`: the backplane tests start their own, on free loopback ports
    /// ([`RedisServer`]), so they can restart it and never see another run's keys.
    Redis,
}

impl Component {
    /// What the component is, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Component::Node => "Node.js 20+ with npm",
            Component::Chromium => "Chromium",
            Component::Redis => "Redis",
        }
    }

    /// How to provide it.
    pub fn how_to_provide(self) -> &'static str {
        match self {
            Component::Node => "install Node.js 20+ with npm (https://nodejs.org/, or `apt-get install nodejs npm`)",
            Component::Chromium => {
                "`apt-get install chromium`, or set CHROMIUM to a Chromium or Chrome binary \
                 (macOS: CHROMIUM=/Applications/Chromium.app/Contents/MacOS/Chromium)"
            }
            Component::Redis => "`apt-get install redis-server` (macOS: `brew install redis`)",
        }
    }

    /// Looks for the component: `Err` says what is missing.
    pub fn probe(self) -> Result<(), String> {
        match self {
            Component::Node => {
                let version = tool_version("node")?;
                let major = version
                    .trim()
                    .trim_start_matches('v')
                    .split('.')
                    .next()
                    .and_then(|major| major.parse::<u32>().ok());
                match major {
                    Some(major) if major >= 20 => tool_version("npm").map(drop),
                    _ => Err(format!(
                        "`node --version` says {}, and 20 or later is needed",
                        version.trim()
                    )),
                }
            }
            Component::Chromium => {
                let path = chromium()
                    .ok_or_else(|| "no CHROMIUM, and no `chromium` or `chromium-browser` on PATH".to_owned())?;
                if path.is_file() {
                    Ok(())
                } else {
                    Err(format!("CHROMIUM={} does not exist", path.display()))
                }
            }
            Component::Redis => tool_version("redis-server").map(drop),
        }
    }
}

/// Runs `tool --version`; its output, or why it could not.
fn tool_version(tool: &str) -> Result<String, String> {
    match std::process::Command::new(tool).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        Ok(output) => Err(format!("`{tool} --version` failed ({})", output.status)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(format!("`{tool}` is not on PATH")),
        Err(error) => Err(format!("`{tool}` cannot run: {error}")),
    }
}

/// The Node packages the non-Rust clients use: `tests/node`, installed from its lock file
/// (`npm ci`, bounded to 5 minutes) when they are missing or older than the lock file, once per
/// test process. Callers have checked `require(&[Component::Node])`.
pub fn node_project() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // npm records what it installed in `node_modules/.package-lock.json`: a lock file
        // changed since (a package added) needs a new install.
        let modified = |file: &str| std::fs::metadata(dir.join(file)).and_then(|m| m.modified()).ok();
        let installed = modified("node_modules/.package-lock.json");
        if installed.is_none() || installed < modified("package-lock.json") {
            let mut npm = std::process::Command::new("npm");
            npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
            let mut npm = Running(npm.spawn().expect("npm runs"));
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            let status = loop {
                if let Some(status) = npm.0.try_wait().expect("wait for npm") {
                    break status;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "npm ci did not finish in 5 minutes"
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            assert!(status.success(), "npm ci in {}: {status}", dir.display());
        }
    });
    dir
}

/// The Chromium the browser test drives: `$CHROMIUM` as given (even if it does not exist, so
/// that a wrong setting is reported rather than silently replaced), else the first `chromium`
/// or `chromium-browser` on `PATH`.
pub fn chromium() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").filter(|path| !path.is_empty()) {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Whether this run is CI's: `CI` set to anything but `false`/`0`, as CI services set it
/// (and `.ci/run` exports `CI=true`, so a local run of it enforces the same).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "0" && !ci.eq_ignore_ascii_case("false"))
}

/// The rule for tests that need programs from outside Rust, in one place. Returns whether
/// every component in `components` is present, and the calling test should run.
///
/// - Under CI ([`in_ci`]), a missing component fails the test with what is missing and how
///   to provide it: CI installs every component, so a missing one is a broken CI machine, not
///   a reason to pass without testing.
/// - Elsewhere (a fresh laptop), the test is skipped: it returns `false`, so the test returns
///   early and the rest of the suite still passes, and the skip is printed, with what is
///   needed and the command that provides it. libtest hides what a passing test prints with
///   `eprintln!`, so the notice is written to the process's stderr directly, which libtest
///   does not capture: it shows in a plain `cargo test` run.
#[must_use = "return from the test when this is false"]
pub fn require(components: &[Component]) -> bool {
    let missing: Vec<(Component, String)> = components
        .iter()
        .filter_map(|&component| probe_once(component).err().map(|why| (component, why)))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if in_ci() {
        let details: Vec<String> = missing
            .iter()
            .map(|(component, why)| {
                format!(
                    "  {}: {why}; provide it: {}",
                    component.name(),
                    component.how_to_provide()
                )
            })
            .collect();
        panic!(
            "{test} needs a component from outside Rust that is missing, and under CI every one must be installed:\n{}",
            details.join("\n")
        );
    }
    let mut notice = String::new();
    for (component, why) in &missing {
        notice += &format!("SKIPPED {test}: needs {} ({why})\n", component.name());
    }
    // How to provide a component is said once per test process, not once per skipped test.
    static EXPLAINED: std::sync::Mutex<Vec<Component>> = std::sync::Mutex::new(Vec::new());
    let mut explained = EXPLAINED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (component, _) in &missing {
        if !explained.contains(component) {
            explained.push(*component);
            notice += &format!(
                "  to run the tests that need {}: {}; under CI=true a missing component fails them instead\n",
                component.name(),
                component.how_to_provide()
            );
        }
    }
    use std::io::Write as _;
    // Straight to the process's stderr: libtest only captures `print!`/`eprint!` output.
    let _ = std::io::stderr().lock().write_all(notice.as_bytes());
    false
}

/// [`Component::probe`], once per component per test process.
fn probe_once(component: Component) -> Result<(), String> {
    static PROBED: Mutex<std::collections::BTreeMap<Component, Result<(), String>>> =
        Mutex::new(std::collections::BTreeMap::new());
    let mut probed = lock(&PROBED);
    probed.entry(component).or_insert_with(|| component.probe()).clone()
}

/// Runs each listed `async fn name(backend: Backend)` against both backends, as the tests
/// `name::standalone` and `name::axum`: the behaviour must not depend on the front end.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                super::$name($crate::Backend::Standalone).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn axum() {
                super::$name($crate::Backend::Axum).await;
            }
        }
    )*};
}

/// Where a message counts its serializations, to prove a broadcast is encoded once. Not part
/// of the message's value: any two compare equal.
#[derive(Debug, Clone, Default)]
pub struct Encodings(pub Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>);

impl PartialEq for Encodings {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A `redis-server` of the test's own, on a free loopback port, without persistence; killed
/// when dropped. Needs [`Component::Redis`].
pub struct RedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> Self {
        // Bind port 0 to learn a free port, then hand it to redis-server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    /// Its loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server by its pid (SIGKILL: no goodbye to its clients, as in a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`kill`](Self::kill)) and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        within("redis-server to answer", async {
            loop {
                if let Ok(mut socket) = TcpStream::connect(("127.0.0.1", self.port)).await {
                    let mut pong = [0; 7];
                    if socket.write_all(b"PING\r\n").await.is_ok()
                        && socket.read_exact(&mut pong).await.is_ok()
                        && &pong == b"+PONG\r\n"
                    {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy on a free loopback port in front of another loopback port, able to fail its
/// connections the ways a network does: [`stall`](Self::stall) makes every connection it
/// carries forward nothing more while both of its sockets stay open (a partition: no FIN or
/// RST crosses, so a client waits for its own timeouts), and
/// [`close_those_that_sent`](Self::close_those_that_sent) closes the ones whose client sent
/// some bytes (a Redis `SUBSCRIBE`, say). Connections made afterwards are forwarded as usual.
/// Stops everything it runs when dropped (on a current-thread runtime, as `#[tokio::test]`'s:
/// there no connection can be accepted while it is dropped).
pub struct FaultyProxy {
    port: u16,
    links: Arc<Mutex<Vec<ProxyLink>>>,
    accepting: JoinHandle<()>,
}

/// One proxied connection: what its client sent first, and its pump's controls.
struct ProxyLink {
    /// The client's first bytes (up to 4 KiB): enough to tell a connection's role.
    sent: Arc<Mutex<Vec<u8>>>,
    control: tokio::sync::watch::Sender<LinkState>,
    pump: JoinHandle<()>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Forwarding,
    Stalled,
    Closed,
}

impl FaultyProxy {
    /// Starts forwarding connections to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let links = Arc::new(Mutex::new(Vec::new()));
        let accepting = tokio::spawn({
            let links = links.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    // Registered before it connects onwards: a fault injected meanwhile
                    // applies to it too.
                    let sent = Arc::new(Mutex::new(Vec::new()));
                    let (control, state) = tokio::sync::watch::channel(LinkState::Forwarding);
                    let pump = tokio::spawn(pump(client, target, sent.clone(), state));
                    lock(&links).push(ProxyLink { sent, control, pump });
                }
            }
        });
        Self { port, links, accepting }
    }

    /// `redis://127.0.0.1:PORT`: the proxy's address as a Redis URL.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection carried so far forwards nothing more; its sockets stay open.
    pub fn stall(&self) {
        for link in lock(&self.links).iter() {
            link.control.send_if_modified(|state| {
                let stall = *state == LinkState::Forwarding;
                if stall {
                    *state = LinkState::Stalled;
                }
                stall
            });
        }
    }

    /// Closes the connections whose client's first 4 KiB contain `bytes` (note that
    /// `SUBSCRIBE` is also in `PSUBSCRIBE` and `UNSUBSCRIBE`); returns how many.
    pub fn close_those_that_sent(&self, bytes: &[u8]) -> usize {
        let links = lock(&self.links);
        let mut closed = 0;
        for link in links.iter() {
            if lock(&link.sent).windows(bytes.len()).any(|window| window == bytes) {
                link.control.send_replace(LinkState::Closed);
                closed += 1;
            }
        }
        closed
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        for link in lock(&self.links).drain(..) {
            link.pump.abort();
        }
    }
}

/// Copies bytes both ways while the link forwards; a stalled link reads nothing more (its
/// sockets stay open until it is closed or the proxy dropped).
async fn pump(
    mut client: TcpStream,
    target: u16,
    sent: Arc<Mutex<Vec<u8>>>,
    mut state: tokio::sync::watch::Receiver<LinkState>,
) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (mut up, mut down) = ([0_u8; 4096], [0_u8; 4096]);
    loop {
        let current = *state.borrow_and_update();
        match current {
            LinkState::Forwarding => {}
            LinkState::Closed => return,
            LinkState::Stalled => {
                if state.changed().await.is_err() {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                {
                    let mut sent = lock(&sent);
                    let keep = n.min(4096 - sent.len().min(4096));
                    sent.extend_from_slice(&up[..keep]);
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Locks `mutex`, whether or not a panicking test thread poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A script of `tests/node` run against `url` (its `URL`), its stdout read as JSON lines;
/// killed when dropped, however the test ends.
pub struct NodeScript {
    /// The script's process.
    pub process: Running,
    /// Its stdout, a JSON value a line.
    pub lines: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
}

impl NodeScript {
    /// Starts `script` (in the installed Node project) with `URL` set to `url`.
    pub async fn start(script: &str, url: String) -> Self {
        let dir = tokio::task::spawn_blocking(node_project)
            .await
            .expect("the Node project");
        let mut child = std::process::Command::new("node")
            .arg(script)
            .env("URL", url)
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_in, lines) = tokio::sync::mpsc::unbounded_channel();
        // Ends with the process's stdout (the process is killed on drop).
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
                let event = serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if lines_in.send(event).is_err() {
                    break;
                }
            }
        });
        Self {
            process: Running(child),
            lines,
        }
    }

    /// Every line until the script's stdout ends, within `bound`.
    pub async fn all_lines(&mut self, bound: Duration) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        let reading = async {
            while let Some(line) = self.lines.recv().await {
                lines.push(line);
            }
        };
        if tokio::time::timeout(bound, reading).await.is_err() {
            panic!("the Node client did not finish in {bound:?}: {lines:#?}");
        }
        lines
    }

    /// How the script exited (bounded).
    pub async fn exit_status(&mut self) -> std::process::ExitStatus {
        within("node to exit", async {
            loop {
                if let Some(status) = self.process.0.try_wait().expect("wait for node") {
                    break status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }
}
