use ws_channels::channel;

#[derive(serde::Serialize, serde::Deserialize)]
struct Reply;

#[channel("proxy/<id>", codec = raw, server = Reply)]
struct Proxy;

fn main() {}
