use ws_channels::channel;

#[channel("files/<name>", codec = xml)]
#[derive(serde::Serialize, serde::Deserialize)]
struct FileEvent {
    name: String,
}

fn main() {}
