//! The project's WebSocket subprotocol grammar: how a client names the codec and the channel
//! it expects, so a typed client never silently talks to another channel.
//!
//! ```text
//! wsc.v1.<codec>            the codec only: json, msgpack or raw
//! wsc.v1.<codec>.<NAME>     and the channel's NAME (everything after the third dot)
//! ```
//!
//! A client may offer any number of subprotocols (`Sec-WebSocket-Protocol`); plain clients offer
//! none and get the channel as declared. The server answers with the first `wsc.v1` offer that
//! matches the channel at the requested address (its codec, and its name when one is given)
//! and refuses the handshake with 400 when the client offered `wsc.v1` names and none matches:
//! a typed client that landed on another channel's address is told, not served. Offers in
//! other grammars are ignored. Each channel has one codec: a client cannot negotiate another
//! (see the `codec` argument of `#[channel]`).

/// The grammar's prefix and version.
const PREFIX: &str = "wsc.v1.";

/// The subprotocol a typed client of channel `name` with codec `codec` offers: the channel's
/// name is left out when it cannot travel in a header token.
pub(crate) fn offer(codec: &str, name: &str) -> String {
    match name.bytes().all(is_token_byte) && !name.is_empty() {
        true => format!("{PREFIX}{codec}.{name}"),
        false => format!("{PREFIX}{codec}"),
    }
}

/// What the server makes of the offered subprotocols for a channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Choice<'a> {
    /// Nothing in this grammar was offered: no subprotocol in the answer.
    None,
    /// Answer with this offer.
    Accept(&'a str),
    /// Offers in this grammar, none for this channel.
    Mismatch,
}

/// Picks the first offer in this grammar that names `codec` and, if it names one, `name`.
pub(crate) fn choose<'a>(offers: impl Iterator<Item = &'a str>, codec: &str, name: &str) -> Choice<'a> {
    let mut seen = false;
    for offer in offers {
        let Some(rest) = offer.strip_prefix(PREFIX) else {
            continue;
        };
        seen = true;
        let (offered_codec, offered_name) = match rest.split_once('.') {
            Some((codec, name)) => (codec, Some(name)),
            None => (rest, None),
        };
        if offered_codec == codec && offered_name.is_none_or(|offered| offered == name) {
            return Choice::Accept(offer);
        }
    }
    match seen {
        true => Choice::Mismatch,
        false => Choice::None,
    }
}

/// RFC 7230 `tchar`: what a subprotocol token may contain.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_name_the_codec_and_the_channel_when_it_fits_a_token() {
        assert_eq!(offer("json", "chat"), "wsc.v1.json.chat");
        assert_eq!(offer("msgpack", "user.events"), "wsc.v1.msgpack.user.events");
        assert_eq!(offer("json", "has space"), "wsc.v1.json");
    }

    #[test]
    fn the_server_picks_the_first_matching_offer_or_refuses_a_mismatch() {
        let pick = |offers: &[&'static str]| choose(offers.iter().copied(), "json", "chat");
        assert_eq!(pick(&[]), Choice::None);
        assert_eq!(pick(&["graphql-ws"]), Choice::None, "other grammars are ignored");
        assert_eq!(pick(&["wsc.v1.json.chat"]), Choice::Accept("wsc.v1.json.chat"));
        assert_eq!(pick(&["wsc.v1.json"]), Choice::Accept("wsc.v1.json"));
        assert_eq!(
            pick(&["wsc.v1.msgpack.chat", "wsc.v1.json.chat"]),
            Choice::Accept("wsc.v1.json.chat")
        );
        assert_eq!(pick(&["wsc.v1.json.files"]), Choice::Mismatch, "another channel");
        assert_eq!(pick(&["wsc.v1.msgpack"]), Choice::Mismatch, "another codec");
    }
}
