// `validate` and `on_invalid = reply`, with `Validate` on both message types and `ErrorReply` on the server's.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, Error, ErrorReply, Server, Validate, ValidationError, channel};

#[channel("chat/<room>", server = ChatEvent, validate, on_invalid = reply)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChatCommand {
    Say { text: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChatEvent {
    Message { text: String },
    Error { message: String },
}

impl Validate for ChatCommand {
    fn validate(&self) -> Result<(), ValidationError> {
        let ChatCommand::Say { text } = self;
        if text.is_empty() {
            return Err(ValidationError::field("text", "must not be empty"));
        }
        Ok(())
    }
}

impl Validate for ChatEvent {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl ErrorReply for ChatEvent {
    fn error_reply(error: &Error) -> Self {
        ChatEvent::Error {
            message: error.to_string(),
        }
    }
}

fn main() {
    let server = ChatCommand::register(Server::new(), |h| {
        h.on_message(|conn, ChatCommand::Say { text }| async move {
            conn.send(&ChatEvent::Message { text }).await?;
            Ok(())
        })
    });
    drop(server);

    assert!(
        ChatCommand::validate_client(&ChatCommand::Say {
            text: String::new()
        })
        .is_err()
    );
    assert!(ChatCommand::validate_client(&ChatCommand::Say { text: "hi".into() }).is_ok());
    assert!(
        ChatCommand::validate_server(&ChatEvent::Message {
            text: String::new()
        })
        .is_ok()
    );
    let reply = ChatCommand::on_invalid(&Error::RateLimited);
    assert!(matches!(reply, Some(ChatEvent::Error { .. })), "{reply:?}");
}
