//! Compile cost of the `#[channel]` macro, measured from outside: generates crates in a
//! temporary directory, all depending on this workspace's `ws-channels` by path, with the
//! same 100 asymmetric channel types (a three-variant tagged client enum and a two-variant
//! server enum each, two typed address parameters), in pairs:
//!
//! - `with-macro`: each client enum carries `#[channel("kindN/<room>/<user: u64>", server = EventN)]`;
//! - `serde-only`: the same types with their serde derives only.
//!
//! Two shapes, each such a pair (`--shape`, both by default):
//!
//! - `lib`: the types in a library's `src/lib.rs`, nothing else (the cost of declaring them).
//! - `bin`: the types in a binary's `src/main.rs`, as an application rebuilds. A binary only
//!   generates code reachable from `main`, so `main` uses every channel the way an application
//!   does: `with-macro` registers each one on one `Server` with an `on_message` that answers
//!   the client enum with the server enum (`Join` → `Joined`, `Say` → `Said`, naming the
//!   params' `room`, `Leave` → no reply) through `conn.send`. `serde-only` does the same
//!   application work without channels: one function per channel that decodes the client
//!   enum from JSON, answers it the same way (the room passed in) and encodes the reply, kept
//!   in a routing table by address prefix, as an application routing frames by hand over one
//!   socket loop would. The ratio therefore counts, besides the macro's own items, the
//!   runtime code each registered channel instantiates (its connection task, reader, codec),
//!   which is what an application of many channels pays.
//!
//! After one untimed build of each crate (which compiles the dependencies once, into a target
//! directory all share), it touches each crate's source and times `cargo check`, then
//! `cargo build` (debug, so codegen and linking are included), the two crates of a shape
//! alternating round by round; prints medians and the ratio.
//! Not run in tests (minutes on 2 cores):
//!
//! ```text
//! cargo run --release -p ws-channels-benches --bin compile_cost                 # 5 rounds
//! cargo run --release -p ws-channels-benches --bin compile_cost -- --rounds 3 --out benches/RESULTS.md
//! cargo run --release -p ws-channels-benches --bin compile_cost -- --rounds 1 --shape bin --instructions
//! ```
//!
//! Options: `--rounds N` (5), `--channels N` (100), `--shape lib|bin|both` (both), `--out FILE`
//! (write the "Compile cost" section of a results file), `--keep` (leave the generated crates),
//! `--max-minutes M` (45), `--instructions` (also count the instructions of each crate's rustc
//! in one more `cargo check` and one more `cargo build` after a touch, under
//! `valgrind --tool=callgrind`: the same count whatever else the machine runs, where times
//! move by several percent; the linker, a process of its own, is not counted; adds minutes).
//! Runs `cargo --offline` with a copy of the workspace's lock file, so the versions are the
//! workspace's and nothing is fetched.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ws_channels_benches::stats::{median, spread};
use ws_channels_benches::{Result, proc};

/// The two crates of a shape: with the macro, and serde derives only.
const CRATES: [&str; 2] = ["with-macro", "serde-only"];

/// A library declaring the channels, or an application using them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Lib,
    Bin,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Lib => "lib",
            Shape::Bin => "bin",
        }
    }

    /// The source file the crate is made of, touched before each rebuild.
    fn source(self) -> &'static str {
        match self {
            Shape::Lib => "src/lib.rs",
            Shape::Bin => "src/main.rs",
        }
    }

    /// The directory of one of the shape's crates (`lib-with-macro`).
    fn crate_dir(self, dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{}-{name}", self.name()))
    }
}

struct Args {
    rounds: usize,
    channels: usize,
    shapes: Vec<Shape>,
    out: Option<PathBuf>,
    keep: bool,
    max_minutes: u64,
    instructions: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 5,
        channels: 100,
        shapes: vec![Shape::Lib, Shape::Bin],
        out: None,
        keep: false,
        max_minutes: 45,
        instructions: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => args.rounds = value()?.parse()?,
            "--channels" => args.channels = value()?.parse()?,
            "--shape" => {
                args.shapes = match value()?.as_str() {
                    "lib" => vec![Shape::Lib],
                    "bin" => vec![Shape::Bin],
                    "both" => vec![Shape::Lib, Shape::Bin],
                    other => return Err(format!("unknown shape {other}, expected one of: lib, bin, both").into()),
                }
            }
            "--out" => args.out = Some(value()?.into()),
            "--keep" => args.keep = true,
            "--instructions" => args.instructions = true,
            "--max-minutes" => args.max_minutes = value()?.parse()?,
            other => return Err(format!("unknown argument {other} (see the header of compile_cost.rs)").into()),
        }
    }
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // Bounded: a build that hangs ends the run (its cargo is killed with our process group
    // only if the caller's shell does so; the bound at least stops the measuring).
    let bound = Duration::from_secs(args.max_minutes * 60);
    std::thread::spawn(move || {
        std::thread::sleep(bound);
        eprintln!("compile_cost: over its time bound of {bound:?}, stopping");
        std::process::exit(2);
    });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the benches crate has a parent")?;
    let dir = std::env::temp_dir().join(format!("ws-channels-compile-cost-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let outcome = run(&args, workspace, &dir);
    if args.keep {
        eprintln!("generated crates kept in {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(&dir);
    }
    outcome
}

fn run(args: &Args, workspace: &Path, dir: &Path) -> Result<()> {
    for &shape in &args.shapes {
        for name in CRATES {
            generate(
                &shape.crate_dir(dir, name),
                shape,
                name == "with-macro",
                args.channels,
                workspace,
            )?;
        }
    }
    let target = dir.join("target");
    let shapes = args
        .shapes
        .iter()
        .map(|s| format!("`{}`", s.name()))
        .collect::<Vec<_>>();
    let mut section = format!(
        "## Compile cost\n\n{} asymmetric channels (a three-variant tagged client enum and a two-variant server \
         enum each, two typed parameters), debug profile, rebuild of the crate alone after touching its source, \
         for each shape ({}; see the header of `compile_cost.rs`); {} rounds, the two crates of a shape \
         alternating, medians (± half the spread, (max − min) / median); CPU time is cargo's and rustc's \
         user + system time, which other load on the machine moves less than wall-clock time.\n\n\
         - date: {}; {}\n- command: `cargo run --release -p ws-channels-benches --bin compile_cost -- {}`\n\n\
         | shape | command | with `#[channel]` | serde derives only | ratio |\n|---|---|---:|---:|---:|\n",
        args.channels,
        shapes.join(", "),
        args.rounds,
        output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        output_of("rustc", &["-V"]),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    );
    for &shape in &args.shapes {
        for command in ["check", "build"] {
            time_rounds(args, shape, command, dir, &target, &mut section)?;
        }
    }
    if args.instructions {
        for &shape in &args.shapes {
            for command in ["check", "build"] {
                let [with, without] = instructions(shape, command, dir, &target)?;
                let _ = writeln!(
                    section,
                    "| {} | `cargo {command}`, rustc instructions (callgrind) | {:.0} M | {:.0} M | **{:.3}×** |",
                    shape.name(),
                    with as f64 / 1e6,
                    without as f64 / 1e6,
                    with as f64 / without as f64
                );
            }
        }
    }
    println!("\n{section}");
    if let Some(out) = &args.out {
        ws_channels_benches::results::write_compile(out, &section)?;
        eprintln!("written to {}", out.display());
    }
    Ok(())
}

/// Times `args.rounds` rebuilds of each of the shape's crates with `cargo COMMAND` after a
/// first, untimed one, and adds the medians' rows to `section`.
fn time_rounds(
    args: &Args,
    shape: Shape,
    command: &str,
    dir: &Path,
    target: &Path,
    section: &mut String,
) -> Result<()> {
    let shape_name = shape.name();
    eprintln!("{shape_name}: cargo {command}: a first build of each crate (not timed)");
    for name in CRATES {
        cargo(command, &shape.crate_dir(dir, name), target)?;
    }
    let mut walls: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut cpus: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        for i in 0..CRATES.len() {
            // Alternate which crate goes first, so drift on the machine hits both.
            let which = (i + round) % CRATES.len();
            let crate_dir = shape.crate_dir(dir, CRATES[which]);
            touch(&crate_dir.join(shape.source()))?;
            let timing = cargo(command, &crate_dir, target)?;
            eprintln!(
                "{shape_name}: cargo {command} round {} {:<10} {:.2} s ({:.2} s CPU)",
                round + 1,
                CRATES[which],
                timing.wall.as_secs_f64(),
                timing.cpu.as_secs_f64()
            );
            walls[which].push(timing.wall.as_secs_f64());
            cpus[which].push(timing.cpu.as_secs_f64());
        }
    }
    for (what, times) in [("time", walls), ("CPU time", cpus)] {
        let [with, without] = times.map(|t| (median(&t), spread(&t)));
        let _ = writeln!(
            section,
            "| {shape_name} | `cargo {command}`, {what} | {:.2} s (±{:.0} %) | {:.2} s (±{:.0} %) | **{:.2}×** |",
            with.0,
            with.1 * 50.0,
            without.0,
            without.1 * 50.0,
            with.0 / without.0
        );
    }
    Ok(())
}

/// The instructions rustc runs for each of the shape's crates in `cargo COMMAND` after a
/// touch, counted by callgrind: cargo runs the crate's rustc through a wrapper
/// (`RUSTC_WORKSPACE_WRAPPER`), which runs it under valgrind only when asked, so a first,
/// uncounted rebuild with the same wrapper leaves the incremental state a counted rebuild
/// starts from, as a timed one does. The linker rustc starts is not followed.
fn instructions(shape: Shape, command: &str, dir: &Path, target: &Path) -> Result<[u64; 2]> {
    let wrapper = dir.join("callgrind-rustc.sh");
    fs::write(
        &wrapper,
        "#!/bin/sh
# cargo runs the crate's rustc through this (RUSTC_WORKSPACE_WRAPPER).
         if [ -n \"$CALLGRIND_OUT\" ]; then
           exec valgrind --tool=callgrind --callgrind-out-file=\"$CALLGRIND_OUT\" \"$@\"
fi
exec \"$@\"
",
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
    }
    let mut counts = [0; 2];
    let shape_name = shape.name();
    for (i, name) in CRATES.into_iter().enumerate() {
        let crate_dir = shape.crate_dir(dir, name);
        let out = dir.join(format!("callgrind.{shape_name}-{command}-{name}"));
        eprintln!("{shape_name}: cargo {command} {name}: counting rustc's instructions under callgrind (minutes)");
        for counted in [false, true] {
            touch(&crate_dir.join(shape.source()))?;
            let mut cargo = cargo_command(command, &crate_dir, target);
            cargo.env("RUSTC_WORKSPACE_WRAPPER", &wrapper);
            if counted {
                cargo.env("CALLGRIND_OUT", &out);
            }
            run_cargo(cargo, command, &crate_dir)?;
        }
        let profile = fs::read_to_string(&out)?;
        counts[i] = profile
            .lines()
            .find_map(|line| line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")))
            .and_then(|total| total.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("no instruction total in {}", out.display()))?;
        eprintln!("{shape_name}: cargo {command} {name}: {} instructions", counts[i]);
    }
    Ok(counts)
}

/// Writes a crate of `channels` channel types, in the shape's form (see the file's header).
fn generate(dir: &Path, shape: Shape, with_macro: bool, channels: usize, workspace: &Path) -> Result<()> {
    fs::create_dir_all(dir.join("src"))?;
    let name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or("a generated crate's directory has a name")?;
    // The hand-routed application encodes and decodes itself.
    let serde_json = match (shape, with_macro) {
        (Shape::Bin, false) => "serde_json = \"1\"\n",
        _ => "",
    };
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nws-channels = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
         {serde_json}\n# Not part of any enclosing workspace.\n[workspace]\n",
        workspace.join("ws-channels").display().to_string()
    );
    fs::write(dir.join("Cargo.toml"), manifest)?;
    fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let mut source = String::from(
        "//! Generated by the ws-channels compile-cost benchmark.\n\n\
         use serde::{Deserialize, Serialize};\n",
    );
    match (shape, with_macro) {
        (Shape::Lib, true) => source.push_str("use ws_channels::channel;\n"),
        (Shape::Bin, true) => source.push_str("use ws_channels::{Channel, Server, channel};\n"),
        (_, false) => {}
    }
    for i in 0..channels {
        let attribute = if with_macro {
            format!("#[channel(\"kind{i}/<room>/<user: u64>\", server = Event{i})]\n")
        } else {
            String::new()
        };
        let _ = write!(
            source,
            r#"
/// What a client of kind {i} sends.
{attribute}#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Command{i} {{
    /// Enter the room.
    Join {{ name: String }},
    /// Say something.
    Say {{ text: String, seq: u64 }},
    /// Leave, maybe saying why.
    Leave {{ reason: Option<String> }},
}}

/// What the server of kind {i} sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event{i} {{
    /// Someone entered.
    Joined {{ name: String, members: u32 }},
    /// Someone said something.
    Said {{ from: String, text: String, seq: u64 }},
}}
"#
        );
    }
    if shape == Shape::Bin {
        write_main(&mut source, with_macro, channels);
    }
    fs::write(dir.join(shape.source()), source)?;
    Ok(())
}

/// The application's `main` (see the file's header): each channel registered on a `Server`
/// with a handler answering its messages, or the same answers routed by hand.
fn write_main(source: &mut String, with_macro: bool, channels: usize) {
    if with_macro {
        source.push_str("\nfn main() {\n    let mut server = Server::new();\n");
        for i in 0..channels {
            let _ = write!(
                source,
                r#"    server = Command{i}::register(server, |h| {{
        h.on_message(|conn, command| async move {{
            let event = match command {{
                Command{i}::Join {{ name }} => Event{i}::Joined {{ name, members: 1 }},
                Command{i}::Say {{ text, seq }} => Event{i}::Said {{ from: conn.params().room.clone(), text, seq }},
                Command{i}::Leave {{ .. }} => return Ok(()),
            }};
            conn.send(&event).await?;
            Ok(())
        }})
    }});
"#
            );
        }
        source.push_str("    drop(server);\n}\n");
    } else {
        source.push_str(
            "\n/// Answers one client frame on a room: the reply to send, if any.\n\
             type Route = fn(&str, &str) -> Result<Option<String>, serde_json::Error>;\n\n\
             fn main() {\n    let mut routes: Vec<(&'static str, Route)> = Vec::new();\n",
        );
        for i in 0..channels {
            let _ = write!(
                source,
                r#"    routes.push(("kind{i}/", |room, frame| {{
        let event = match serde_json::from_str::<Command{i}>(frame)? {{
            Command{i}::Join {{ name }} => Event{i}::Joined {{ name, members: 1 }},
            Command{i}::Say {{ text, seq }} => Event{i}::Said {{ from: room.to_owned(), text, seq }},
            Command{i}::Leave {{ .. }} => return Ok(None),
        }};
        serde_json::to_string(&event).map(Some)
    }}));
"#
            );
        }
        source.push_str("    drop(routes);\n}\n");
    }
}

/// Marks a file as changed, as an editor's save would, without changing it.
fn touch(path: &Path) -> Result<()> {
    fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())?;
    Ok(())
}

/// How long a build took, and the CPU time it used (which moves much less with other load
/// on a shared machine).
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

/// Runs `cargo COMMAND` in `dir` and times it.
fn cargo(command: &str, dir: &Path, target: &Path) -> Result<Timing> {
    let cpu = proc::children_cpu_time()?;
    let started = Instant::now();
    run_cargo(cargo_command(command, dir, target), command, dir)?;
    let wall = started.elapsed();
    let cpu = proc::children_cpu_time()? - cpu;
    Ok(Timing { wall, cpu })
}

/// `cargo COMMAND` in `dir`, with the environment a user would have.
fn cargo_command(command: &str, dir: &Path, target: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cargo = Command::new(cargo);
    cargo
        .args([command, "--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        // The outer `cargo run` sets these for its own build; the generated crates get the
        // defaults a user would have.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdout(Stdio::null());
    cargo
}

/// Runs a cargo command to its end; its error output if it fails.
fn run_cargo(mut cargo: Command, command: &str, dir: &Path) -> Result<()> {
    let output = cargo.output()?;
    if !output.status.success() {
        return Err(format!(
            "cargo {command} failed in {}:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn output_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}
