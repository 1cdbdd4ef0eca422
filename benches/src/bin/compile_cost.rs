//! Compile cost of the `#[channel]` macro, measured from outside: generates two crates in a
//! temporary directory, both depending on this workspace's `ws-channels` by path, with the
//! same 100 asymmetric channel types (a three-variant tagged client enum and a two-variant
//! server enum each, two typed address parameters):
//!
//! - `with-macro`: each client enum carries `#[channel("kindN/<room>/<user: u64>", server = EventN)]`;
//! - `serde-only`: the same types with their serde derives only.
//!
//! After one untimed build of each (which compiles the dependencies once, into a target
//! directory both share), it touches each crate's source and times `cargo check`, then
//! `cargo build` (debug), crates alternating round by round; prints medians and the ratio.
//! Not run in tests (minutes on 2 cores):
//!
//! ```text
//! cargo run --release -p ws-channels-benches --bin compile_cost                 # 5 rounds
//! cargo run --release -p ws-channels-benches --bin compile_cost -- --rounds 3 --out benches/RESULTS.md
//! cargo run --release -p ws-channels-benches --bin compile_cost -- --rounds 1 --instructions
//! ```
//!
//! Options: `--rounds N` (5), `--channels N` (100), `--out FILE` (write the "Compile cost"
//! section of a results file), `--keep` (leave the generated crates), `--max-minutes M` (30),
//! `--instructions` (also count the instructions of each crate's rustc in one more
//! `cargo check` after a touch, under `valgrind --tool=callgrind`: the same count whatever else
//! the machine runs, where times move by several percent; adds minutes).
//! Runs `cargo --offline` with a copy of the workspace's lock file, so the versions are the
//! workspace's and nothing is fetched.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ws_channels_benches::stats::{median, spread};
use ws_channels_benches::{Result, proc};

const CRATES: [&str; 2] = ["with-macro", "serde-only"];

struct Args {
    rounds: usize,
    channels: usize,
    out: Option<PathBuf>,
    keep: bool,
    max_minutes: u64,
    instructions: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 5,
        channels: 100,
        out: None,
        keep: false,
        max_minutes: 30,
        instructions: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => args.rounds = value()?.parse()?,
            "--channels" => args.channels = value()?.parse()?,
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
    for name in CRATES {
        generate(&dir.join(name), name, name == "with-macro", args.channels, workspace)?;
    }
    let target = dir.join("target");
    let mut section = format!(
        "## Compile cost\n\n{} asymmetric channels (a three-variant tagged client enum and a two-variant server \
         enum each, two typed parameters), debug profile, rebuild of the crate alone after touching its source; \
         {} rounds, crates alternating, medians (± half the spread, (max − min) / median); CPU time is \
         cargo's and rustc's user + system time, which other load on the machine moves less than wall-clock \
         time.\n\n\
         - date: {}; {}\n- command: `cargo run --release -p ws-channels-benches --bin compile_cost -- {}`\n\n\
         | command | with `#[channel]` | serde derives only | ratio |\n|---|---:|---:|---:|\n",
        args.channels,
        args.rounds,
        output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        output_of("rustc", &["-V"]),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    );
    for command in ["check", "build"] {
        eprintln!("cargo {command}: a first build of each crate (not timed)");
        for name in CRATES {
            cargo(command, &dir.join(name), &target)?;
        }
        let mut walls: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut cpus: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..args.rounds {
            for i in 0..CRATES.len() {
                // Alternate which crate goes first, so drift on the machine hits both.
                let which = (i + round) % CRATES.len();
                let crate_dir = dir.join(CRATES[which]);
                touch(&crate_dir.join("src/lib.rs"))?;
                let timing = cargo(command, &crate_dir, &target)?;
                eprintln!(
                    "cargo {command} round {} {:<10} {:.2} s ({:.2} s CPU)",
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
                "| `cargo {command}`, {what} | {:.2} s (±{:.0} %) | {:.2} s (±{:.0} %) | **{:.2}×** |",
                with.0,
                with.1 * 50.0,
                without.0,
                without.1 * 50.0,
                with.0 / without.0
            );
        }
    }
    if args.instructions {
        let [with, without] = instructions(dir, &target)?;
        let _ = writeln!(
            section,
            "| `cargo check`, rustc instructions (callgrind) | {:.0} M | {:.0} M | **{:.3}×** |",
            with as f64 / 1e6,
            without as f64 / 1e6,
            with as f64 / without as f64
        );
    }
    println!("\n{section}");
    if let Some(out) = &args.out {
        ws_channels_benches::results::write_compile(out, &section)?;
        eprintln!("written to {}", out.display());
    }
    Ok(())
}

/// The instructions rustc runs for each crate's `cargo check` after a touch, counted by
/// callgrind: cargo runs the crate's rustc through a wrapper (`RUSTC_WORKSPACE_WRAPPER`), which
/// runs it under valgrind only when asked, so a first, uncounted check with the same wrapper
/// leaves the incremental state a counted rebuild starts from, as a timed one does.
fn instructions(dir: &Path, target: &Path) -> Result<[u64; 2]> {
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
    for (i, name) in CRATES.into_iter().enumerate() {
        let crate_dir = dir.join(name);
        let out = dir.join(format!("callgrind.{name}"));
        eprintln!("cargo check {name}: counting rustc's instructions under callgrind (minutes)");
        for counted in [false, true] {
            touch(&crate_dir.join("src/lib.rs"))?;
            let mut command = cargo_command("check", &crate_dir, target);
            command.env("RUSTC_WORKSPACE_WRAPPER", &wrapper);
            if counted {
                command.env("CALLGRIND_OUT", &out);
            }
            run_cargo(command, "check", &crate_dir)?;
        }
        let profile = fs::read_to_string(&out)?;
        counts[i] = profile
            .lines()
            .find_map(|line| line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")))
            .and_then(|total| total.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("no instruction total in {}", out.display()))?;
        eprintln!("cargo check {name}: {} instructions", counts[i]);
    }
    Ok(counts)
}

/// Writes a crate of `channels` channel types.
fn generate(dir: &Path, name: &str, with_macro: bool, channels: usize, workspace: &Path) -> Result<()> {
    fs::create_dir_all(dir.join("src"))?;
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nws-channels = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
         # Not part of any enclosing workspace.\n[workspace]\n",
        workspace.join("ws-channels").display().to_string()
    );
    fs::write(dir.join("Cargo.toml"), manifest)?;
    fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let mut source = String::from(
        "//! Generated by the ws-channels compile-cost benchmark.\n\n\
         use serde::{Deserialize, Serialize};\n",
    );
    if with_macro {
        source.push_str("use ws_channels::channel;\n");
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
    fs::write(dir.join("src/lib.rs"), source)?;
    Ok(())
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
