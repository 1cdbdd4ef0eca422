// A documented pub channel under `#![deny(missing_docs, warnings)]`: every generated item is documented.
#![deny(missing_docs, warnings, unused_qualifications)]
//! A crate with a public channel.

use serde::{Deserialize, Serialize};
use ws_channels::channel;

/// The public channels.
pub mod channels {
    use super::*;

    /// Events about one user.
    #[channel("user/events/<userId>/<seq: u64>")]
    #[derive(Debug, Serialize, Deserialize)]
    pub struct UserEvents {
        /// What happened.
        pub text: String,
    }

    /// What the server pushes.
    #[channel("notify/<userId>", server_only)]
    #[derive(Debug, Serialize, Deserialize)]
    pub enum Notification {
        /// A ping.
        Ping,
    }

    /// A command from a client.
    #[channel("commands/<id: u32>", server = Notification)]
    #[derive(Debug, Serialize, Deserialize)]
    pub enum Command {
        /// Stop.
        Stop,
    }
}

fn main() {
    let params = channels::UserEventsParams::new("u1", 1u64);
    assert_eq!(params.to_string(), "user/events/u1/1");
    let _ = channels::NotificationParams::new("u1");
    let _ = channels::CommandParams::new(1u32);
}
