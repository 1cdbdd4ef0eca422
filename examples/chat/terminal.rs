//! The chat example's terminal client:
//!
//! ```sh
//! cargo run --example chat -- --client ws://127.0.0.1:8080 --room lobby --name bot
//! ```
//!
//! It prints every event of the room, says each line of standard input, authenticates with a
//! token header (`Authorization: Bearer demo-token-<name>`), reconnects by itself when the
//! server restarts (and says so), and exits with status 0 at the end of its input.
//!
//! What others sent (names, text, close reasons, errors quoting them) is printed escaped
//! ([`ws_channels::Escaped`]): a peer cannot send this terminal control sequences or forge a
//! line.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use ws_channels::{Client, ConnectionState, Escaped, Event, Reconnect, Report};

use crate::{ChatCommand, ChatCommandParams, ChatEvent, TOKEN_PREFIX};

/// `--client <base> --room <room> --name <name>`, in any order after `--client`.
struct Args {
    base: String,
    room: String,
    name: String,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let base = args
            .next()
            .ok_or("--client needs the server's address: ws://127.0.0.1:8080")?;
        let (mut room, mut name) = ("lobby".to_owned(), None);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--room" => room = value,
                "--name" => name = Some(value),
                other => return Err(format!("unknown option {other}: expected --room or --name")),
            }
        }
        let name = name.ok_or("--name is required")?;
        Ok(Self { base, room, name })
    }
}

/// Runs the terminal client with the arguments after `--client`.
pub(crate) async fn run(args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(args)?;
    let (client, mut events) = Client::builder(&args.base, &ChatCommandParams::new(args.room.as_str()))
        .bearer(&format!("{TOKEN_PREFIX}{}", args.name))
        .reconnect(Reconnect::new().max_delay(Duration::from_secs(5)))
        .on_state(|state| match state {
            ConnectionState::Reconnecting { attempt, delay, error } => {
                println!(
                    "* disconnected ({}); attempt {attempt} in {delay:.1?}",
                    Escaped(Report(&**error))
                );
            }
            ConnectionState::Closed { code, reason, .. } => println!("* closed ({code:?} {})", Escaped(reason)),
            _ => {}
        })
        .connect()
        .await?;
    println!("* connected to {} as {}", args.room, args.name);

    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Message(event)) => print_event(&event),
                Ok(Event::Reconnected { attempt }) => {
                    println!("* reconnected after {attempt} attempt(s); messages sent meanwhile may be missing")
                }
                Ok(Event::Binary(bytes)) => println!("* {} bytes", bytes.len()),
                Ok(other) => println!("* {}", Escaped(format_args!("{other:?}"))),
                Err(error) => println!("! {}", Escaped(Report(&error))),
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if let Err(error) = client.send(&ChatCommand::Say { text: text.to_owned() }).await {
            println!("! not sent: {}", Escaped(Report(&error)));
        }
    }
    // End of input: close, let the printer drain what arrived, and leave with status 0.
    client.close().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), printer).await;
    Ok(())
}

/// Prints an event, every string in it escaped: all of them come from the server and others.
fn print_event(event: &ChatEvent) {
    match event {
        ChatEvent::Joined { user } => println!("* {} joined", Escaped(user)),
        ChatEvent::Left { user } => println!("* {} left", Escaped(user)),
        ChatEvent::Message { user, text, .. } => println!("<{}> {}", Escaped(user), Escaped(text)),
        ChatEvent::Typing { user } => println!("* {} is typing", Escaped(user)),
        ChatEvent::Error { message } => println!("! {}", Escaped(message)),
    }
}
