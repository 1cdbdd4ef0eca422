// Another channel's params where a specific channel's events are expected.
use serde::{Deserialize, Serialize};
use ws_channels::{Error, Events, channel};

#[channel("user/events/<userId>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

#[channel("other/<id>")]
#[derive(Serialize, Deserialize)]
struct Other {
    text: String,
}

async fn client(params: &OtherParams) -> Result<Events<UserEvents>, Error> {
    let (_tx, rx) = ws_channels::connect("ws://localhost:8080", params).await?;
    Ok(rx)
}

fn main() {
    let _ = client;
}
