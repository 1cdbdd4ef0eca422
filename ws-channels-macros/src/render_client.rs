//! The client's wrappers: inherent `publish` (not on `server_only` channels) and `subscribe`,
//! each a one-line call to the runtime's generic function. Written as functions of the one
//! inherent impl `expand` opens; `private` is the path to the runtime's `__private`.

use crate::ast::{Model, Shape};
use crate::source::Source;

pub(crate) fn render(model: &Model, private: &str, out: &mut Source) {
    let template = model.template.value();
    if !matches!(model.shape(), Shape::ServerOnly) {
        let doc = format!(
            "Client: sends `message` on `{template}` over an already-connected WebSocket (any `MessageSink`, such as a tokio-tungstenite stream)."
        );
        // Not an `async fn`, nor an `impl Future`: that would give each channel a state
        // machine, or an opaque type, of its own; the runtime's named future costs the
        // compiler least.
        out.write(format_args!(
            "#[doc = {doc:?}]
            pub fn publish<'__a, W: {private}::MessageSink + ?{private}::Sized>(
                sink: &'__a mut W,
                message: &<Self as {private}::Channel>::ClientMessage,
            ) -> {private}::Publish<'__a, W> {{
                {private}::publish::<Self, W>(sink, message)
            }}"
        ));
    }
    let subscribe_doc = format!(
        "Client: the typed messages the server sends on `{template}`; a frame that does not decode or validate is one `Err` item and the stream goes on."
    );
    out.write(format_args!(
        "#[doc = {subscribe_doc:?}]
        pub fn subscribe<R: {private}::MessageStream>(stream: R) -> {private}::Subscription<Self, R> {{
            {private}::subscribe::<Self, R>(stream)
        }}"
    ));
}
