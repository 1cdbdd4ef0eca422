// Private channels inside a module under the lints this workspace uses: nothing fires on generated code.
#![deny(
    warnings,
    unreachable_pub,
    missing_docs,
    unused_qualifications,
    rust_2018_idioms,
    dead_code
)]
//! Private channels.

mod inner {
    use serde::{Deserialize, Serialize};
    use ws_channels::{Channel, Server, channel};

    #[channel("user/<userId>")]
    #[derive(Serialize, Deserialize)]
    struct UserEvents {
        text: String,
    }

    #[channel("crate/<id: u64>")]
    #[derive(Serialize, Deserialize)]
    pub(crate) struct CrateEvents {
        pub(crate) text: String,
    }

    pub(crate) fn server() -> Server {
        let server = UserEvents::register(Server::new(), |h| {
            h.on_message(|conn, message| async move {
                conn.send(&UserEvents { text: message.text }).await?;
                Ok(())
            })
        });
        CrateEvents::register(server, |h| {
            h.on_message(|conn, message| async move {
                conn.send(&CrateEvents { text: message.text }).await?;
                Ok(())
            })
        })
    }
}

fn main() {
    drop(inner::server());
}
