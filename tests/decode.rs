//! Property tests: whatever frames arrive, a subscription never panics and yields exactly one
//! item per data frame, `Ok` exactly when the frame is the channel's message.

use futures_util::StreamExt;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use ws_channels::tungstenite::{Error as WsError, Message};
use ws_channels::{Channel, channel};

/// A tagged enum: the shape most channels use.
#[channel("fuzz/<id>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    Joined { user: String },
    Said { user: String, text: String, ts: u64 },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        ".{0,12}".prop_map(|user| Event::Joined { user }),
        (".{0,12}", ".{0,40}", any::<u64>()).prop_map(|(user, text, ts)| Event::Said { user, text, ts }),
    ]
}

/// A frame and whether it must decode.
fn frame() -> impl Strategy<Value = (Message, bool)> {
    prop_oneof![
        event().prop_map(|e| (
            Message::text(serde_json::to_string(&e).expect("events serialize")),
            true
        )),
        ".{0,64}".prop_map(|s| (Message::text(s), false)),
        r#"\{"type":"(joined|said|left)"(,"(user|text|ts)":("[a-z]{0,4}"|[0-9]{1,3}|null)){0,3}\}"#.prop_map(|s| {
            let valid = serde_json::from_str::<Event>(&s).is_ok();
            (Message::text(s), valid)
        }),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| (Message::binary(b), false)),
    ]
}

proptest! {
    #[test]
    fn one_item_per_data_frame_and_never_a_panic(frames in prop::collection::vec(frame(), 0..24)) {
        let expected: Vec<bool> = frames.iter().map(|(_, valid)| *valid).collect();
        let mut input: Vec<Result<Message, WsError>> = Vec::new();
        for (i, (frame, _)) in frames.into_iter().enumerate() {
            input.push(Ok(frame));
            if i % 3 == 0 {
                input.push(Ok(Message::Ping(vec![1].into())));
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let items: Vec<_> = runtime.block_on(Event::subscribe(futures_util::stream::iter(input)).collect());
        let got: Vec<bool> = items.iter().map(Result::is_ok).collect();
        prop_assert_eq!(got, expected);
    }
}
