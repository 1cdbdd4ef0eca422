// Another channel's params where a specific channel's subscription is expected.
use serde::{Deserialize, Serialize};
use ws_channels::{Error, Subscription, channel};

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

type UserEventsStream =
    Subscription<UserEvents, futures_util::stream::SplitStream<ws_channels::ClientSocket>>;

async fn client(params: &OtherParams) -> Result<UserEventsStream, Error> {
    let (_tx, rx) = ws_channels::connect("ws://localhost:8080", params).await?;
    Ok(rx)
}

fn main() {
    let _ = client;
}
