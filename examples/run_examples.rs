//! Runs the example programs as a user would, over loopback: the server prints its address,
//! the client connects, publishes and prints the typed reply.
//!
//! The tests that drive the examples from Node.js or Chromium start with `require`: without
//! the component they are skipped with a notice (a failure under `CI=true`).
//!
//! `cargo test --workspace` builds the example programs before running these; a run narrowed
//! with `--test run_examples` does not, so build them first (`cargo build --examples`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use ws_channels_tests::{Component, Running, example, node_project, require};

/// Starts a server example on port 0 and returns it with the address it printed.
fn start_server(name: &str) -> (Running, String) {
    start_server_with(name, &[])
}

/// [`start_server`], with more arguments after the address.
fn start_server_with(name: &str, args: &[&str]) -> (Running, String) {
    try_start_server_on(name, "127.0.0.1:0", args)
        .unwrap_or_else(|| panic!("{name} did not print `listening on ws://…`"))
}

/// Starts a server example listening on `bind` (more arguments after it) and returns it with
/// the address it printed; `None` if it exits first (the address is taken) or prints nothing
/// within 20 s.
fn try_start_server_on(name: &str, bind: &str, args: &[&str]) -> Option<(Running, String)> {
    let mut child = example(name)
        .arg(bind)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start example {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).ok()?;
    Some((running, addr))
}

/// Starts the server example `name` again on the address it had. The port was free a moment
/// ago, but another socket may hold it briefly (a client's outgoing connection can be given
/// it as its own port), so a failed start is tried again for a while.
fn restart_server_on(name: &str, addr: &str) -> Running {
    let bind = addr.trim_start_matches("ws://");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((running, at)) = try_start_server_on(name, bind, &[]) {
            assert_eq!(at, addr, "restarted on the same address");
            return running;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} could not listen on {bind} again within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn chat_prints_the_address_of_its_page() {
    let mut child = example("chat")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start example chat");
    let stdout = child.stdout.take().expect("piped stdout");
    let _running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout).lines().map_while(Result::ok).take(2).collect();
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(Duration::from_secs(20)).expect("chat prints two lines");
    let ws = lines[0]
        .strip_prefix("listening on ws://")
        .expect("the ws:// address first");
    assert_eq!(lines[1], format!("chat page at http://{ws}/ (open it in two tabs)"));
}

/// Waits for a line of `lines` that contains `wanted`, skipping others; returns what was read.
fn wait_for_line(lines: &mpsc::Receiver<String>, wanted: &str, seen: &mut Vec<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(wanted);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => panic!("no line with {wanted:?}; the client printed:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn the_terminal_chat_client_chats_and_survives_a_server_restart() {
    use std::io::Write;

    let (server, addr) = start_server("chat");
    let mut client = example("chat")
        .args(["--client", &addr, "--room", "lobby", "--name", "bot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the terminal client");
    let mut stdin = client.stdin.take().expect("piped stdin");
    let stdout = client.stdout.take().expect("piped stdout");
    let mut client = Running(client);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    wait_for_line(&lines, "* connected to lobby as bot", &mut seen);
    writeln!(stdin, "hello from the terminal").unwrap();
    wait_for_line(&lines, "<bot> hello from the terminal", &mut seen);

    // The server goes away without a word (killed) and comes back on the same port.
    drop(server);
    wait_for_line(&lines, "* disconnected", &mut seen);
    let port = addr.rsplit(':').next().expect("a port");
    let _restarted = Running(
        example("chat")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("restart the chat server"),
    );
    wait_for_line(&lines, "* reconnected", &mut seen);
    writeln!(stdin, "still here").unwrap();
    wait_for_line(&lines, "<bot> still here", &mut seen);

    // End of input: a clean exit.
    drop(stdin);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = client.0.try_wait().expect("wait for the client") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the client did not exit at the end of its input"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

/// Runs a command to completion within a time bound and returns its stdout.
fn output_within(mut command: Command, bound: Duration) -> String {
    let child = command.stdout(Stdio::piped()).spawn().expect("spawn");
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(bound)
        .unwrap_or_else(|_| panic!("process {pid} did not finish within {bound:?}"))
        .expect("wait for the process");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit status {}, output:\n{stdout}",
        output.status
    );
    stdout
}

#[test]
fn user_events_client_gets_the_servers_reply() {
    let (_server, addr) = start_server("user_events");
    assert!(addr.starts_with("ws://127.0.0.1:"), "{addr}");
    let mut client = example("user_events");
    client.args(["--client", &addr]);
    let out = output_within(client, Duration::from_secs(20));
    assert!(
        out.contains(r#"received UserSignedUp { user_id: "user123", email: "updated@example.com" }"#),
        "client output:\n{out}"
    );
}

/// The client's view of the echo example's `Echo` channel: the same name, so the channel
/// subprotocol the client offers (`wsc.v1.json.Echo`) matches what the server serves there.
#[ws_channels::channel("echo", name = "Echo")]
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Probe {
    hello: String,
}

#[test]
fn echo_server_sends_every_message_back() {
    let (_server, addr) = start_server("echo");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let exchange = async {
            let (tx, mut rx) = ws_channels::connect(&addr, &ProbeParams::new()).await?;
            let probe = Probe { hello: "world".into() };
            tx.send(&probe).await?;
            let echoed = futures_util::StreamExt::next(&mut rx).await.expect("an echo")?;
            assert_eq!(echoed, ws_channels::Event::Message(probe));
            Ok::<_, ws_channels::Error>(())
        };
        tokio::time::timeout(Duration::from_secs(20), exchange)
            .await
            .expect("echo within 20 s")
            .expect("echo exchange");
    });
}

#[test]
fn chat_speaks_to_a_node_ws_client() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let (_server, addr) = start_server("chat");
    let mut client = Command::new("node");
    client.arg("chat_client.mjs").arg(&addr).current_dir(node);
    let out = output_within(client, Duration::from_secs(30));
    assert!(out.contains("chat: all checks passed"), "node client output:\n{out}");
}

/// Runs an example to completion with `args` and returns its stdout.
fn run_example(name: &str, args: &[&str]) -> String {
    let mut command = example(name);
    command.args(args);
    output_within(command, Duration::from_secs(20))
}

/// Follows a local `$ref` (`#/components/...`) inside `document`.
fn resolve<'a>(document: &'a serde_json::Value, value: &'a serde_json::Value) -> &'a serde_json::Value {
    match value.get("$ref").and_then(|r| r.as_str()) {
        Some(reference) => {
            let target = document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
            resolve(document, target)
        }
        None => value,
    }
}

#[test]
fn user_events_asyncapi_describes_the_user_service() {
    let document: serde_json::Value =
        serde_json::from_str(&run_example("user_events", &["--asyncapi"])).expect("--asyncapi prints JSON");
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(document["info"]["title"], "User Service");
    // The User Service's contract: channel `userEvents` at `user/events/{userId}`, parameter
    // `userId` ("The user identifier"), message `UserSignedUp` with required string properties
    // `userId` and `email`, and a send and a receive operation on the channel.
    let channel = &document["channels"]["userEvents"];
    assert_eq!(channel["address"], "user/events/{userId}");
    assert_eq!(channel["parameters"]["userId"]["description"], "The user identifier.");
    let message = resolve(&document, &channel["messages"]["UserSignedUp"]);
    assert_eq!(message["name"], "UserSignedUp");
    let payload = resolve(&document, &message["payload"]);
    assert_eq!(payload["type"], "object");
    let properties: Vec<_> = payload["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    assert_eq!(properties, ["email", "userId"]);
    assert!(
        payload["properties"]
            .as_object()
            .expect("properties")
            .values()
            .all(|p| p["type"] == "string")
    );
    assert_eq!(payload["required"], serde_json::json!(["userId", "email"]));
    let actions: Vec<_> = document["operations"]
        .as_object()
        .expect("operations")
        .values()
        .map(|op| {
            (
                op["action"].as_str().unwrap_or_default().to_owned(),
                op["channel"]["$ref"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("receive".to_owned(), serde_json::json!("#/channels/userEvents")),
            ("send".to_owned(), serde_json::json!("#/channels/userEvents")),
        ]
    );
}

#[test]
fn asyncapi_documents_pass_the_official_parser() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let file = std::env::temp_dir().join(format!("ws-channels-user-events-{}.json", std::process::id()));
    std::fs::write(&file, run_example("user_events", &["--asyncapi"])).expect("write the document");
    let (_chat, addr) = start_server("chat");
    let chat_document = format!("{}/asyncapi.json", addr.replacen("ws://", "http://", 1));
    let mut validate = Command::new("node");
    validate
        .arg("validate_asyncapi.mjs")
        .arg(&file)
        .arg(&chat_document)
        .current_dir(node);
    let out = output_within(validate, Duration::from_secs(120));
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.matches("valid, 0 errors, 0 warnings").count(), 2, "{out}");
    assert!(out.contains("broken payload schema rejected"), "{out}");
}

/// The generated TypeScript clients checked in next to their examples.
const TYPESCRIPT_CLIENTS: [(&str, &str); 2] = [("user_events", "user_events.ts"), ("chat", "chat/chat.ts")];

#[test]
fn checked_in_typescript_clients_match_the_generator() {
    for (name, file) in TYPESCRIPT_CLIENTS {
        let generated = run_example(name, &["--typescript"]);
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file);
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write the client");
            continue;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "examples/{file} is stale: regenerate it with `cargo run --example {name} -- --typescript > examples/{file}` (or BLESS=1)"
        );
        assert_eq!(
            run_example(name, &["--typescript"]),
            generated,
            "generation is deterministic"
        );
    }
    // The runtime those modules import, next to them.
    for file in TYPESCRIPT_RUNTIMES {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file);
        let runtime = ws_channels::AsyncApi::typescript_runtime();
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&path, runtime).expect("write the runtime");
            continue;
        }
        assert!(
            std::fs::read_to_string(&path).unwrap_or_default() == runtime,
            "examples/{file} is stale: it is `AsyncApi::typescript_runtime()` (BLESS=1 rewrites it)"
        );
    }
}

/// The runtime the generated modules import, once per directory of them.
const TYPESCRIPT_RUNTIMES: [&str; 2] = ["ws-channels.ts", "chat/ws-channels.ts"];

#[test]
fn typescript_clients_compile_strict_and_talk_to_the_rust_servers() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let mut tsc = Command::new("node");
    tsc.args(["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"])
        .current_dir(&node);
    output_within(tsc, Duration::from_secs(120));
    // The chat page serves the compiled client and runtime: they must be what tsc makes of
    // them now.
    for file in ["chat.js", "ws-channels.js"] {
        let compiled = std::fs::read_to_string(node.join("build/examples/chat").join(file)).expect("tsc output");
        let served = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("chat").join(file);
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&served, &compiled).expect("write the compiled file");
        }
        assert!(
            std::fs::read_to_string(&served).unwrap_or_default() == compiled,
            "examples/chat/{file} is stale: copy tests/node/build/examples/chat/{file} over it (or BLESS=1)"
        );
    }
    let (_user_events, user_events) = start_server("user_events");
    let (_chat, chat) = start_server("chat");
    let mut client = Command::new("node");
    client
        .arg("build/tests/node/ts_client.js")
        .args([&user_events, &chat])
        .current_dir(&node);
    let out = output_within(client, Duration::from_secs(30));
    assert!(out.contains("ts client: all checks passed"), "{out}");
}

/// Runs `client` (a Node program) to completion within `bound` and returns its output. Each
/// `restart server` line it prints is answered by killing the server example `name` (no close
/// frame reaches the clients) and starting it again on the same address, then a `restarted`
/// line on the client's stdin.
fn output_with_restarts(mut client: Command, name: &str, server: Running, addr: &str, bound: Duration) -> String {
    use std::io::Write as _;
    let mut child = client
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the client");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut child = Running(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut server = Some(server);
    let mut output = String::new();
    let deadline = std::time::Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
                if line == "restart server" {
                    drop(server.take());
                    server = Some(restart_server_on(name, addr));
                    writeln!(stdin, "restarted").expect("tell the client");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the client did not finish within {bound:?}:\n{output}"),
        }
    }
    let status = child.0.wait().expect("wait for the client");
    assert!(status.success(), "exit status {status}, output:\n{output}");
    output
}

/// Compiles the Node test project (`tsc -p tsconfig.json`) into a build directory of its own,
/// `build/<name>-<pid>`, since other tests compile the same project at the same time; returns
/// that directory, relative to the project.
fn compile_node_project(node: &std::path::Path, name: &str) -> String {
    let out_dir = format!("build/{name}-{}", std::process::id());
    let mut tsc = Command::new("node");
    tsc.args([
        "node_modules/typescript/bin/tsc",
        "-p",
        "tsconfig.json",
        "--outDir",
        &out_dir,
    ])
    .current_dir(node);
    output_within(tsc, Duration::from_secs(120));
    out_dir
}

/// The reconnecting `Connection` of the generated client, against the chat example across two
/// restarts of its process, and against `ws` servers ending connections each way the rules name.
#[test]
fn the_typescript_connection_survives_a_server_restart() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let out_dir = compile_node_project(&node, "reconnect");
    let (chat, addr) = start_server("chat");
    let mut client = Command::new("node");
    client
        .arg(format!("{out_dir}/tests/node/reconnect_client.js"))
        .arg(&addr)
        .current_dir(&node);
    let out = output_with_restarts(client, "chat", chat, &addr, Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(node.join(&out_dir));
    assert_eq!(out.matches("restart server").count(), 2, "{out}");
    assert!(out.contains("reconnect client: all checks passed"), "{out}");
}

/// Two pages chat, the server restarts, and both pages reconnect and chat again by themselves.
#[test]
fn the_chat_page_chats_between_two_headless_browsers() {
    if !require(&[Component::Node, Component::Chromium]) {
        return;
    }
    let node = node_project();
    let chromium = ws_channels_tests::chromium().expect("require found Chromium");
    let (chat, addr) = start_server("chat");
    let mut browser = Command::new("node");
    browser
        .arg("browser_chat.mjs")
        .arg(addr.replacen("ws://", "http://", 1))
        .env("CHROMIUM", chromium)
        .current_dir(node);
    let out = output_with_restarts(browser, "chat", chat, &addr, Duration::from_secs(90));
    assert_eq!(out.matches("restart server").count(), 1, "{out}");
    assert!(out.contains("browser chat: all checks passed"), "{out}");
}

#[test]
fn typescript_handles_every_serde_shape() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let dir = node.join(format!("build/contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the build dir");
    std::fs::write(dir.join("contract_types.ts"), run_example("contract_types", &[])).expect("write the module");
    std::fs::write(dir.join("samples.json"), run_example("contract_types", &["--samples"])).expect("write samples");
    std::fs::write(dir.join("ws-channels.ts"), ws_channels::AsyncApi::typescript_runtime()).expect("write the runtime");
    std::fs::copy(
        node.join("contract_types_check.ts"),
        dir.join("contract_types_check.ts"),
    )
    .expect("copy the check");
    strict_tsc(
        &node,
        &dir,
        &["ws-channels.ts", "contract_types.ts", "contract_types_check.ts"],
    );
    // Node treats the compiled files as ES modules thanks to tests/node/package.json.
    let mut check = Command::new("node");
    check
        .args(["contract_types_check.js", "samples.json"])
        .current_dir(&dir);
    let out = output_within(check, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.contains("contract types: all checks passed"), "{out}");
}

#[test]
fn the_contract_types_document_passes_the_official_parser() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let file = std::env::temp_dir().join(format!("ws-channels-contract-types-{}.json", std::process::id()));
    std::fs::write(&file, run_example("contract_types", &["--asyncapi"])).expect("write the document");
    let mut validate = Command::new("node");
    validate.arg("validate_asyncapi.mjs").arg(&file).current_dir(node);
    let out = output_within(validate, Duration::from_secs(120));
    let _ = std::fs::remove_file(&file);
    assert!(out.contains("valid, 0 errors, 0 warnings"), "{out}");
}

#[test]
fn chat_logs_each_connection_opened_and_closed_without_its_query() {
    let mut child = example("chat")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start example chat");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let _running = Running(child);
    // Keep reading stdout: a closed pipe would fail the server's next print.
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = addr_tx.send(addr.to_owned());
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the chat prints its address");
    let (tx, logged) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The query is where tokens travel: it must never be logged.
    let url = format!("{addr}/chat/lobby?name=query-secret");
    let (mut socket, _) = tokio_tungstenite::tungstenite::connect(url.as_str()).expect("connect");
    socket
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .expect("close");
    while socket.read().is_ok() {}
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.contains("connection closed")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        seen.push(
            logged
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no close logged:\n{seen:#?}")),
        );
    }
    let opened = seen
        .iter()
        .find(|l| l.contains("connection opened"))
        .expect("an open logged");
    let closed = seen
        .iter()
        .find(|l| l.contains("connection closed"))
        .expect("a close logged");
    for line in [opened, closed] {
        assert!(
            line.contains("INFO") && line.contains("channel=\"chat\"") && line.contains("chat/lobby"),
            "{line}"
        );
        assert!(!line.contains("query-secret"), "the query must never be logged: {line}");
    }
    assert!(
        closed.contains("code=1000") && closed.contains("duration_ms="),
        "{closed}"
    );
}

/// The binary example's document: each message states its content type, and a raw channel's
/// operations carry both of its frame kinds.
#[test]
fn binary_asyncapi_states_each_messages_content_type() {
    let document: serde_json::Value =
        serde_json::from_str(&run_example("binary", &["--asyncapi"])).expect("--asyncapi prints JSON");
    let content_types = |operation: &str| -> Vec<String> {
        document["operations"][operation]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("operation {operation}"))
            .iter()
            .map(|reference| {
                let message = resolve(&document, reference);
                message["contentType"].as_str().unwrap_or("none").to_owned()
            })
            .collect()
    };
    for operation in ["receiveSensors", "sendSensors"] {
        assert_eq!(content_types(operation), ["application/msgpack"], "{operation}");
    }
    for operation in ["receiveRelay", "sendRelay"] {
        assert_eq!(
            content_types(operation),
            ["text/plain", "application/octet-stream"],
            "{operation}"
        );
    }
    // The MessagePack messages keep their typed payloads; the raw ones are strings.
    let sent = resolve(&document, &document["channels"]["sensors"]["messages"]["SensorEvent"]);
    let payload = resolve(&document, &sent["payload"]);
    assert!(
        payload["oneOf"].as_array().is_some_and(|variants| variants.len() == 2),
        "{payload}"
    );
    let binary = resolve(&document, &document["channels"]["relay"]["messages"]["RawBinary"]);
    assert_eq!(
        binary["payload"],
        serde_json::json!({ "type": "string", "format": "binary" })
    );
}

#[test]
fn the_binary_document_passes_the_official_parser() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let file = std::env::temp_dir().join(format!("ws-channels-binary-{}.json", std::process::id()));
    std::fs::write(&file, run_example("binary", &["--asyncapi"])).expect("write the document");
    let mut validate = Command::new("node");
    validate.arg("validate_asyncapi.mjs").arg(&file).current_dir(node);
    let out = output_within(validate, Duration::from_secs(120));
    let _ = std::fs::remove_file(&file);
    assert!(out.contains("valid, 0 errors, 0 warnings"), "{out}");
    assert!(out.contains("broken payload schema rejected"), "{out}");
}

#[test]
fn checked_in_binary_typescript_client_matches_the_generator() {
    let generated = run_example("binary", &["--typescript"]);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("binary.ts");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the client");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "examples/binary.ts is stale: regenerate it with `cargo run --example binary -- --typescript > examples/binary.ts` (or BLESS=1)"
    );
    assert!(
        generated.starts_with("// ")
            && generated
                .contains("\nimport { decode as msgpackDecode, encode as msgpackEncode } from \"@msgpack/msgpack\";\n"),
        "a MessagePack channel's module imports the codec"
    );
}

/// The generated client of the binary example, compiled strict, against the Rust server: both
/// channels both ways, a MessagePack frame of the wrong shape refused by the client's
/// validation, and the server's 1003 for a text frame on the MessagePack channel.
#[test]
fn binary_channels_talk_to_the_generated_typescript_client() {
    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let out_dir = compile_node_project(&node, "binary");
    let (_binary, addr) = start_server("binary");
    let mut client = Command::new("node");
    // The WHATWG WebSocket is behind a flag in Node 20 (and on by default from 22): the client
    // checks it whenever it is there.
    if node_accepts("--experimental-websocket") {
        client.arg("--experimental-websocket");
    }
    client
        .arg(format!("{out_dir}/tests/node/binary_client.js"))
        .arg(&addr)
        .current_dir(&node);
    let out = output_within(client, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(node.join(&out_dir));
    assert!(out.contains("binary client: all checks passed"), "{out}");
}

/// Whether this Node starts with `flag`; an unknown flag is an error, and a hung probe counts as no.
fn node_accepts(flag: &str) -> bool {
    let Ok(mut probe) = Command::new("node")
        .args([flag, "-e", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match probe.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let _ = probe.kill();
    let _ = probe.wait();
    false
}

/// A raw JSON chat client.
struct ChatClient(ws_channels::ClientSocket);

impl ChatClient {
    async fn join(addr: &str, name: &str) -> Self {
        let url = format!("{addr}/chat/lobby?name={name}");
        let (socket, _) = ws_channels_tests::within("connect", tokio_tungstenite::connect_async(url))
            .await
            .expect("connect to the chat");
        Self(socket)
    }

    async fn send(&mut self, event: serde_json::Value) {
        use futures_util::SinkExt;
        let frame = tokio_tungstenite::tungstenite::Message::text(event.to_string());
        self.0.send(frame).await.expect("send");
    }

    async fn say(&mut self, text: &str) {
        self.send(serde_json::json!({"type": "say", "text": text})).await;
    }

    /// Reads events until one satisfies `wanted`; returns it and those before it.
    async fn until(&mut self, what: &str, wanted: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        ws_channels_tests::within(what, async {
            loop {
                let text = ws_channels_tests::next_text(&mut self.0).await;
                let event: serde_json::Value = serde_json::from_str(&text).expect("a JSON event");
                let done = wanted(&event);
                seen.push(event);
                if done {
                    return;
                }
            }
        })
        .await;
        seen
    }
}

fn message_from(user: &'static str, text: impl Fn(&str) -> bool) -> impl Fn(&serde_json::Value) -> bool {
    move |event| event["type"] == "message" && event["user"] == user && event["text"].as_str().is_some_and(&text)
}

/// GET on a chat node: status and body.
async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let socket: std::net::SocketAddr = addr.trim_start_matches("ws://").parse().expect("host:port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {socket}\r\nConnection: close\r\n\r\n");
    let (status, response) = ws_channels_tests::raw_http(socket, &request).await;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    (status, body)
}

async fn until_http(addr: &str, path: &str, what: &str, wanted: impl Fn(u16, &str) -> bool) {
    ws_channels_tests::within(what, async {
        loop {
            let (status, body) = http_get(addr, path).await;
            if wanted(status, &body) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[test]
fn two_chat_nodes_share_a_room_through_redis_and_outlive_its_restart() {
    if !require(&[Component::Redis]) {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut redis = ws_channels_tests::RedisServer::start().await;
        let url = redis.url();
        let (_one, one) = start_server_with("chat", &["--redis", &url]);
        let (_two, two) = start_server_with("chat", &["--redis", &url]);
        let mut ann = ChatClient::join(&one, "ann").await;
        let mut bob = ChatClient::join(&two, "bob").await;
        for node in [&one, &two] {
            let counts_both = |status, body: &str| status == 200 && body.contains(r#""users":2"#);
            until_http(node, "/rooms/lobby", "both nodes' users counted", counts_both).await;
        }
        // Subscriptions settle in a moment: ann says hello until bob hears one.
        let mut hello = 0;
        ws_channels_tests::within("cross-node chat", async {
            loop {
                hello += 1;
                ann.say(&format!("hello {hello}")).await;
                let heard = tokio::time::timeout(
                    Duration::from_millis(200),
                    bob.until("hello", message_from("ann", |t| t.starts_with("hello"))),
                )
                .await;
                if heard.is_ok() {
                    return;
                }
            }
        })
        .await;

        // Typing reaches the others on the other node, never the typist.
        bob.send(serde_json::json!({"type": "typing"})).await;
        bob.say("hi").await;
        let ann_saw = ann.until("bob's hi", message_from("bob", |t| t == "hi")).await;
        assert!(
            ann_saw.iter().any(|e| e["type"] == "typing" && e["user"] == "bob"),
            "{ann_saw:?}"
        );
        let bob_saw = bob.until("his own hi", message_from("bob", |t| t == "hi")).await;
        assert!(!bob_saw.iter().any(|e| e["type"] == "typing"), "{bob_saw:?}");

        // Redis away: everyone stays connected and chats with their own node.
        redis.kill();
        until_http(&one, "/ready", "not ready without redis", |status, _| status == 503).await;
        ann.say("alone").await;
        ann.until("her own message", message_from("ann", |t| t == "alone"))
            .await;

        // Redis back: cross-node chat resumes by itself, and what was said meanwhile is gone.
        redis.restart().await;
        until_http(&one, "/ready", "ready again", |status, _| status == 200).await;
        until_http(&two, "/ready", "ready again", |status, _| status == 200).await;
        let mut back = 0;
        let heard = ws_channels_tests::within("cross-node chat after the restart", async {
            loop {
                back += 1;
                ann.say(&format!("back {back}")).await;
                let next = bob.until("ann again", message_from("ann", |_| true));
                if let Ok(events) = tokio::time::timeout(Duration::from_millis(300), next).await {
                    return events;
                }
            }
        })
        .await;
        let last = heard.last().expect("an event");
        assert!(
            last["text"].as_str().is_some_and(|t| t.starts_with("back ")),
            "bob heard {last}: `alone` stayed on ann's node"
        );
    });
}

/// The contract of [`typed_session_wrappers_talk_to_a_server_over_the_centrifuge_sdk`].
mod talk {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use ws_channels::channel;

    /// What a client says in a room.
    #[channel("talk/<room>", server = Heard)]
    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub(crate) enum Talk {
        /// Say something to the room.
        Say {
            /// The text.
            text: String,
        },
    }

    /// What the room hears. The contract allows 16 characters; the server does not check it,
    /// so a longer text is a publication the client's validator refuses.
    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    pub(crate) struct Heard {
        /// What was said.
        #[schemars(length(max = 16))]
        pub(crate) text: String,
    }

    /// A welcome, pushed when a client subscribes.
    #[channel("welcome", server_only)]
    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    pub(crate) struct Welcome {
        /// The greeting.
        pub(crate) greeting: String,
    }
}

/// The generated session wrappers with the real `centrifuge` SDK against a ws-channels server
/// with sessions: a typed subscribe by the canonical address (a room with `é`, a space and
/// `!`), a typed publish coming back as a validated message, a publication the validator
/// refuses going to `onInvalid` (never `onMessage`), an invalid message refused before it is
/// sent, the server's 107 for data the SDK sent unchecked, and a server-only channel.
#[test]
fn typed_session_wrappers_talk_to_a_server_over_the_centrifuge_sdk() {
    use talk::{Heard, Talk, Welcome};
    use ws_channels::{AsyncApi, Channel as _, Server, Sessions};

    if !require(&[Component::Node]) {
        return;
    }
    let node = node_project();
    let dir = node.join(format!("build/session-typed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the build dir");
    let module = AsyncApi::new("Talk", "1.0.0")
        .server("local", "localhost:8080", "ws")
        .sessions("localhost:8080", "ws")
        .channel::<Talk>()
        .channel::<Welcome>()
        .to_typescript();
    std::fs::write(dir.join("talk.ts"), module).expect("write the module");
    std::fs::write(dir.join("ws-channels.ts"), ws_channels::AsyncApi::typescript_runtime()).expect("write the runtime");
    std::fs::copy(
        node.join("session_typed_client.ts"),
        dir.join("session_typed_client.ts"),
    )
    .expect("copy the client");
    strict_tsc(&node, &dir, &["ws-channels.ts", "talk.ts", "session_typed_client.ts"]);

    // The server, in this process: `say` is heard by the room as it is, however long.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let server = Talk::register(Server::new(), |h| {
        h.on_message(|conn, Talk::Say { text }| async move {
            let _ = conn.broadcast(&Heard { text }).await?;
            Ok(())
        })
    });
    let server = Welcome::register(server, |h| {
        h.on_open(|conn| async move {
            conn.send(&Welcome {
                greeting: "welcome".into(),
            })
            .await?;
            Ok(())
        })
    })
    .sessions(Sessions::new());
    runtime.spawn(server.serve(listener));

    let mut client = Command::new("node");
    client
        .arg("session_typed_client.js")
        .arg(format!("ws://{addr}/connection/websocket"))
        .current_dir(&dir);
    let out = output_within(client, Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
    for line in [
        "channel talk/caf%C3%A9%20ok%21",
        "subscribed 1",
        "message hi",
        "invalid text: longer than 16 characters",
        "message after",
        "refused before sending: ValidationError",
        "server refused: 107",
        "welcome welcome",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert!(out.contains("typed session client: all checks passed"), "{out}");
}

/// Compiles `files` of `dir` with tsc under the strictest settings a user of the generated
/// module may have (ES2022 modules, Node's and the DOM's types), within two minutes.
fn strict_tsc(node: &std::path::Path, dir: &std::path::Path, files: &[&str]) {
    let mut tsc = Command::new("node");
    tsc.arg(node.join("node_modules/typescript/bin/tsc"))
        .args([
            "--strict",
            "--noPropertyAccessFromIndexSignature",
            "--noUncheckedIndexedAccess",
            "--exactOptionalPropertyTypes",
            "--verbatimModuleSyntax",
            "--erasableSyntaxOnly",
            "--noUnusedLocals",
            "--noImplicitReturns",
            "--target",
            "ES2022",
            "--module",
            "ES2022",
            "--moduleResolution",
            "Bundler",
            "--lib",
            "ES2022,DOM",
            "--types",
            "node",
            "--skipLibCheck",
        ])
        .args(files)
        .current_dir(dir);
    output_within(tsc, Duration::from_secs(120));
}
