//! Frames: one WebSocket text frame carries several protocol messages, one per line.
//!
//! A client's frame splits into commands ([`decode_commands`]): lines separated by `\n`, at
//! most one trailing `\n` (Go's `decode.go`), decoded all or nothing. centrifuge-js sends
//! `connect` and every pending `subscribe` in one frame when its socket opens, so a frame
//! after a reconnect holds 1 + N commands, handled in order, connect first.
//!
//! A server's replies join into frames ([`join_frames`]): adjacent replies share a frame,
//! `\n`-separated, within a byte limit; a push always travels alone (its bytes are shared
//! between every member of a topic, so they are never copied into a joined frame).

use std::borrow::Cow;

use super::protocol::{Command, DecodeError};

/// The default limit of commands in one frame (the design's B7): at least the default
/// subscription limit (128) plus the `connect` of the SDK's reconnect batch.
pub(crate) const MAX_COMMANDS_PER_FRAME: usize = 256;

/// Why a client's frame is refused. Every one closes the session with 3501 "bad request",
/// and none of the frame's commands is handled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The frame has no command at all (empty, or a lone `\n`).
    #[error("empty frame")]
    Empty,
    /// More commands than the limit; none was decoded.
    #[error("{commands} commands in one frame, over the limit of {max}")]
    TooManyCommands {
        /// How many lines the frame has.
        commands: usize,
        /// The limit.
        max: usize,
    },
    /// An empty line (two `\n` in a row, a leading `\n`, or two at the end).
    #[error("command {index} of the frame is an empty line")]
    EmptyLine {
        /// The line's index in the frame, from 0.
        index: usize,
    },
    /// A line that is no valid command.
    #[error("command {index} of the frame: {error}")]
    BadCommand {
        /// The line's index in the frame, from 0.
        index: usize,
        /// Why it is not a command.
        #[source]
        error: DecodeError,
    },
}

/// Splits a client's frame into its commands, in order: all of them, or the first error.
///
/// The limit is checked before any decoding (counting `\n` bytes), so an oversized frame
/// costs one scan. Never panics, whatever the input.
pub(crate) fn decode_commands(frame: &str, max_commands: usize) -> Result<Vec<Command>, FrameError> {
    let body = frame.strip_suffix('\n').unwrap_or(frame);
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let commands = body.bytes().filter(|&b| b == b'\n').count() + 1;
    if commands > max_commands {
        return Err(FrameError::TooManyCommands {
            commands,
            max: max_commands,
        });
    }
    let mut out = Vec::with_capacity(commands);
    for (index, line) in body.split('\n').enumerate() {
        if line.is_empty() {
            return Err(FrameError::EmptyLine { index });
        }
        out.push(Command::decode(line).map_err(|error| FrameError::BadCommand { index, error })?);
    }
    Ok(out)
}

/// One encoded message waiting to be written: a reply may share a frame, a push may not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing<B> {
    /// A reply to a command (or the server's ping): its compact JSON, without `\n`.
    Reply(B),
    /// A push: its compact JSON, written as a frame of its own.
    Push(B),
}

impl<B> Outgoing<B> {
    /// The encoded message.
    pub(crate) fn bytes(&self) -> &B {
        match self {
            Self::Reply(bytes) | Self::Push(bytes) => bytes,
        }
    }
}

/// The frames for `outgoing`, in order: each push alone, and each run of adjacent replies
/// joined with `\n` into as few frames as fit in `max_bytes` (a reply larger than the limit
/// goes alone: splitting it is impossible, and refusing it is the encoder's business).
///
/// A frame of one message borrows it; only joined frames are allocated.
pub(crate) fn join_frames<B: AsRef<[u8]>>(outgoing: &[Outgoing<B>], max_bytes: usize) -> Frames<'_, B> {
    Frames {
        rest: outgoing,
        max_bytes,
    }
}

/// The iterator of [`join_frames`].
#[derive(Debug)]
pub(crate) struct Frames<'a, B> {
    /// What is left to frame.
    rest: &'a [Outgoing<B>],
    /// The byte limit of a joined frame.
    max_bytes: usize,
}

impl<'a, B: AsRef<[u8]>> Iterator for Frames<'a, B> {
    type Item = Cow<'a, [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        let (first, rest) = self.rest.split_first()?;
        let first = match first {
            Outgoing::Push(push) => {
                self.rest = rest;
                return Some(Cow::Borrowed(push.as_ref()));
            }
            Outgoing::Reply(reply) => reply.as_ref(),
        };
        // How many of the following replies fit behind `first`.
        let mut len = first.len();
        let mut count = 0;
        for next in rest {
            match next {
                Outgoing::Reply(reply) if len + 1 + reply.as_ref().len() <= self.max_bytes => {
                    len += 1 + reply.as_ref().len();
                    count += 1;
                }
                _ => break,
            }
        }
        let (joined, rest) = rest.split_at(count);
        self.rest = rest;
        if joined.is_empty() {
            return Some(Cow::Borrowed(first));
        }
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(first);
        for reply in joined {
            frame.push(b'\n');
            frame.extend_from_slice(reply.bytes().as_ref());
        }
        Some(Cow::Owned(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::protocol::Method;
    use proptest::prelude::*;

    fn names(commands: &[Command]) -> Vec<(u32, &'static str)> {
        commands.iter().map(|c| (c.id, c.method.name())).collect()
    }

    #[test]
    fn the_sdks_open_frame_splits_into_connect_then_subscribes() {
        let frame = concat!(
            r#"{"connect":{"name":"js"},"id":1}"#,
            "\n",
            r#"{"subscribe":{"channel":"chat/lobby","flag":1},"id":2}"#
        );
        let commands = decode_commands(frame, MAX_COMMANDS_PER_FRAME).unwrap();
        assert_eq!(names(&commands), [(1, "connect"), (2, "subscribe")]);
        // One trailing `\n` is allowed, and a lone command is a frame too.
        let trailing = format!("{frame}\n");
        assert_eq!(decode_commands(&trailing, MAX_COMMANDS_PER_FRAME).unwrap().len(), 2);
        assert_eq!(names(&decode_commands("{}", 1).unwrap()), [(0, "pong")]);
        assert_eq!(names(&decode_commands("{}\n", 1).unwrap()), [(0, "pong")]);
    }

    #[test]
    fn empty_frames_and_empty_lines_are_refused() {
        assert!(matches!(decode_commands("", 4), Err(FrameError::Empty)));
        assert!(matches!(decode_commands("\n", 4), Err(FrameError::Empty)));
        assert!(matches!(
            decode_commands("{}\n\n", 4),
            Err(FrameError::EmptyLine { index: 1 })
        ));
        assert!(matches!(
            decode_commands("\n{}", 4),
            Err(FrameError::EmptyLine { index: 0 })
        ));
        assert!(matches!(
            decode_commands("{}\n\n{}", 4),
            Err(FrameError::EmptyLine { index: 1 })
        ));
    }

    #[test]
    fn a_bad_command_names_its_line() {
        let frame = "{\"connect\":{},\"id\":1}\n{\"subscribe\":{\"channel\":\"a\"},\"id\":2}\n{\"id\":3";
        let err = decode_commands(frame, 8).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::BadCommand {
                    index: 2,
                    error: DecodeError::Malformed(_)
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("command 2 of the frame: malformed message"),
            "{err}"
        );
        let err = decode_commands("{}\n{\"id\":5}", 8).unwrap_err();
        assert!(matches!(
            err,
            FrameError::BadCommand {
                index: 1,
                error: DecodeError::NoMethod { id: 5 }
            }
        ));
    }

    #[test]
    fn the_limit_is_checked_before_decoding() {
        let frame = vec!["garbage"; 257].join("\n");
        assert!(matches!(
            decode_commands(&frame, MAX_COMMANDS_PER_FRAME),
            Err(FrameError::TooManyCommands {
                commands: 257,
                max: 256
            })
        ));
        let frame = vec!["{}"; 256].join("\n") + "\n";
        assert_eq!(decode_commands(&frame, MAX_COMMANDS_PER_FRAME).unwrap().len(), 256);
        assert!(matches!(
            decode_commands("{}", 0),
            Err(FrameError::TooManyCommands { commands: 1, max: 0 })
        ));
    }

    fn collect<B: AsRef<[u8]>>(outgoing: &[Outgoing<B>], max: usize) -> Vec<String> {
        join_frames(outgoing, max)
            .map(|f| String::from_utf8(f.into_owned()).unwrap())
            .collect()
    }

    #[test]
    fn replies_join_within_the_limit_and_pushes_go_alone() {
        use Outgoing::{Push, Reply};
        let a = r#"{"id":1,"connect":{}}"#; // 21 bytes
        let b = r#"{"id":2,"subscribe":{}}"#; // 23 bytes
        let c = r#"{"id":3,"subscribe":{}}"#;
        let p = r#"{"push":{"channel":"a","pub":{"data":1}}}"#;
        let out = [Reply(a), Reply(b), Push(p), Reply(c), Push(p), Push(p)];
        assert_eq!(
            collect(&out, 1 << 20),
            [format!("{a}\n{b}"), p.into(), c.into(), p.into(), p.into()]
        );
        // Exactly at the limit joins; one byte less does not.
        assert_eq!(collect(&out[..2], 21 + 1 + 23), [format!("{a}\n{b}")]);
        assert_eq!(collect(&out[..2], 21 + 23), [a, b]);
        // A reply over the limit still goes, alone.
        assert_eq!(collect(&[Reply(a), Reply(b)], 4), [a, b]);
        assert!(join_frames::<&str>(&[], 10).next().is_none());
        // Single messages are borrowed, not copied.
        assert!(matches!(join_frames(&[Reply(a)], 100).next(), Some(Cow::Borrowed(_))));
        assert!(matches!(
            join_frames(&[Push(p), Reply(a)], 1000).next(),
            Some(Cow::Borrowed(_))
        ));
    }

    proptest! {
        /// Arbitrary bytes never panic the splitter nor pass its limit.
        #[test]
        fn splitting_anything_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), max in 0usize..8) {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(commands) = decode_commands(&text, max) {
                prop_assert!(!commands.is_empty() && commands.len() <= max);
            }
        }

        /// Lines of command-like text, which get past the JSON parser more often.
        #[test]
        fn splitting_command_like_lines_never_panics(
            lines in prop::collection::vec(r#"\{("id":[0-9]{1,3},?)?("(ping|send|subscribe)":\{\})?\}|[\{\}\n"a:]{0,6}"#, 0..12),
        ) {
            let frame = lines.join("\n");
            if let Ok(commands) = decode_commands(&frame, 8) {
                prop_assert!(commands.len() <= 8);
            }
        }

        /// A frame of N encoded commands splits into the same N, in order.
        #[test]
        fn n_commands_split_into_n_in_order(
            subscribes in prop::collection::vec((1..=u32::MAX, ".{0,16}"), 1..40),
            trailing in any::<bool>(),
        ) {
            let lines: Vec<String> = subscribes
                .iter()
                .map(|(id, channel)| {
                    serde_json::to_string(&Command {
                        id: *id,
                        method: Method::Subscribe(crate::session::protocol::SubscribeRequest {
                            channel: channel.clone(),
                            flag: 1,
                            ..Default::default()
                        }),
                    })
                    .unwrap()
                })
                .collect();
            let mut frame = lines.join("\n");
            if trailing {
                frame.push('\n');
            }
            let commands = decode_commands(&frame, MAX_COMMANDS_PER_FRAME).unwrap();
            prop_assert_eq!(commands.len(), subscribes.len());
            for (command, (id, channel)) in commands.iter().zip(&subscribes) {
                prop_assert_eq!(command.id, *id);
                let Method::Subscribe(req) = &command.method else { panic!("{command:?}") };
                prop_assert_eq!(&req.channel, channel);
            }
        }

        /// Joined frames give back every message in order; pushes are alone; a joined frame
        /// keeps to the limit; and adjacent replies are joined as long as they fit.
        #[test]
        fn joining_keeps_order_and_limits(
            items in prop::collection::vec((any::<bool>(), "[a-z]{1,20}"), 0..30),
            max in 1usize..80,
        ) {
            let outgoing: Vec<Outgoing<String>> = items
                .iter()
                .map(|(push, text)| match push {
                    true => Outgoing::Push(text.clone()),
                    false => Outgoing::Reply(text.clone()),
                })
                .collect();
            let frames: Vec<Vec<u8>> = join_frames(&outgoing, max).map(Cow::into_owned).collect();
            let mut at = 0;
            for frame in &frames {
                let parts: Vec<&[u8]> = frame.split(|&b| b == b'\n').collect();
                if parts.len() > 1 {
                    prop_assert!(frame.len() <= max);
                }
                for part in parts {
                    let expected = &outgoing[at];
                    prop_assert_eq!(part, expected.bytes().as_bytes());
                    if matches!(expected, Outgoing::Push(_)) {
                        prop_assert_eq!(frame.as_slice(), part);
                    }
                    at += 1;
                }
                // Greedy: the next message is a push, or the next reply would not have fit.
                if let Some(Outgoing::Reply(next)) = outgoing.get(at) {
                    let last_is_reply = matches!(outgoing[at - 1], Outgoing::Reply(_));
                    prop_assert!(!last_is_reply || frame.len() + 1 + next.len() > max);
                }
            }
            prop_assert_eq!(at, outgoing.len());
        }
    }
}
