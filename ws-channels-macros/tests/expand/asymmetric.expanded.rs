#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatCommand {
    Say { text: String },
    Typing,
}
///The path parameters of the [`ChatCommand`] channel, `chat/<room>`.
#[derive(Debug, Clone)]
pub struct ChatCommandParams {
    ///The `room` parameter of `chat/<room>`.
    pub room: ::std::string::String,
}
impl ChatCommandParams {
    ///The parameters of one concrete `chat/<room>` address.
    pub fn new(room: impl ::core::convert::Into<::std::string::String>) -> Self {
        Self {
            room: ::core::convert::Into::into(room),
        }
    }
    ///The WebSocket URL of this `chat/<room>` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter.
    pub fn url(&self, base: &::core::primitive::str) -> ::std::string::String {
        ::ws_channels::__private::url(self, base)
    }
}
impl ChatCommand {
    ///Client: sends `message` on `chat/<room>` over an already-connected WebSocket (any `MessageSink`, such as a tokio-tungstenite stream).
    pub fn publish<
        '__a,
        W: ::ws_channels::__private::MessageSink + ?::core::marker::Sized,
    >(
        sink: &'__a mut W,
        message: &'__a <Self as ::ws_channels::__private::Channel>::ClientMessage,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<(), ::ws_channels::__private::Error>,
    > + '__a {
        ::ws_channels::__private::publish::<Self, W>(sink, message)
    }
    ///Client: the typed messages the server sends on `chat/<room>`; a frame that does not decode or validate is one `Err` item and the stream goes on.
    pub fn subscribe<R: ::ws_channels::__private::MessageStream>(
        stream: R,
    ) -> ::ws_channels::__private::Subscription<Self, R> {
        ::ws_channels::__private::subscribe::<Self, R>(stream)
    }
}
impl ChatCommand {
    ///Server: handles `chat/<room>` on `server`; `configure` sets the handler's callbacks (`on_connect`, `on_message`, …).
    pub fn register<S, D>(
        server: ::ws_channels::__private::Server<S>,
        configure: impl ::core::ops::FnOnce(
            ::ws_channels::__private::Handler<Self, S>,
        ) -> ::ws_channels::__private::Handler<Self, S, D>,
    ) -> ::ws_channels::__private::Server<S>
    where
        S: ::core::marker::Send + ::core::marker::Sync + 'static,
        D: ::core::marker::Send + ::core::marker::Sync + 'static,
    {
        ::ws_channels::__private::register(server, configure)
    }
}
const _: () = {
    use ::ws_channels::__private as __wsc;
    #[automatically_derived]
    impl __wsc::Params for ChatCommandParams {
        type Channel = ChatCommand;
        const TEMPLATE: __wsc::Template = __wsc::Template::__new(
            "chat/{room}",
            &[__wsc::Segment::Static("chat"), __wsc::Segment::Param("room")],
        );
        fn from_values(
            values: &[::std::string::String],
        ) -> ::core::result::Result<Self, __wsc::ParamError> {
            let mut __values = values.iter();
            ::core::result::Result::Ok(Self {
                room: __wsc::parse_param::<
                    ::std::string::String,
                >(<Self as __wsc::Params>::TEMPLATE.address(), "room", __values.next())?,
            })
        }
        fn to_values(&self) -> ::std::vec::Vec<::std::string::String> {
            ::std::vec![__wsc::format_param:: < ::std::string::String > (& self.room)]
        }
    }
    #[automatically_derived]
    impl ::core::cmp::PartialEq for ChatCommandParams {
        fn eq(&self, other: &Self) -> bool {
            __wsc::Params::to_values(self) == __wsc::Params::to_values(other)
        }
    }
    #[automatically_derived]
    impl ::core::fmt::Display for ChatCommandParams {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl ::core::str::FromStr for ChatCommandParams {
        type Err = __wsc::ParamError;
        fn from_str(
            path: &::core::primitive::str,
        ) -> ::core::result::Result<Self, Self::Err> {
            <Self as __wsc::Params>::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for ChatCommand {
        const NAME: &'static ::core::primitive::str = "ChatCommand";
        const SHAPE: __wsc::Shape = __wsc::Shape::Asymmetric;
        type Params = ChatCommandParams;
        type ClientMessage = ChatCommand;
        type ServerMessage = ChatEvent;
        type Codec = __wsc::Json;
    }
    #[automatically_derived]
    impl __wsc::ClientSends for ChatCommand {}
};
