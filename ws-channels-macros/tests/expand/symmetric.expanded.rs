/// A user signed up.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSignedUp {
    /// The user identifier.
    user_id: String,
    email: String,
}
///The path parameters of the [`UserSignedUp`] channel, `user/events/<userId>`.
#[derive(Debug, Clone)]
pub struct UserSignedUpParams {
    ///The `userId` parameter of `user/events/<userId>`.
    pub user_id: ::std::string::String,
}
impl UserSignedUpParams {
    ///The parameters of one concrete `user/events/<userId>` address.
    pub fn new(user_id: impl ::core::convert::Into<::std::string::String>) -> Self {
        Self {
            user_id: ::core::convert::Into::into(user_id),
        }
    }
    ///The WebSocket URL of this `user/events/<userId>` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter.
    pub fn url(&self, base: &::core::primitive::str) -> ::std::string::String {
        ::ws_channels::__private::url(self, base)
    }
}
impl UserSignedUp {
    ///Client: sends `message` on `user/events/<userId>` over an already-connected WebSocket (any `MessageSink`, such as a tokio-tungstenite stream).
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
    ///Client: the typed messages the server sends on `user/events/<userId>`; a frame that does not decode or validate is one `Err` item and the stream goes on.
    pub fn subscribe<R: ::ws_channels::__private::MessageStream>(
        stream: R,
    ) -> ::ws_channels::__private::Subscription<Self, R> {
        ::ws_channels::__private::subscribe::<Self, R>(stream)
    }
}
impl UserSignedUp {
    ///Server: handles `user/events/<userId>` on `server`; `configure` sets the handler's callbacks (`on_connect`, `on_message`, …).
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
    impl __wsc::Params for UserSignedUpParams {
        type Channel = UserSignedUp;
        const TEMPLATE: __wsc::Template = __wsc::Template::__new(
            "user/events/{userId}",
            &[
                __wsc::Segment::Static("user"),
                __wsc::Segment::Static("events"),
                __wsc::Segment::Param("userId"),
            ],
        );
        const DESCRIPTIONS: &'static [(
            &'static ::core::primitive::str,
            &'static ::core::primitive::str,
        )] = &[("userId", "The user identifier.")];
        fn from_values(
            values: &[::std::string::String],
        ) -> ::core::result::Result<Self, __wsc::ParamError> {
            let mut __values = values.iter();
            ::core::result::Result::Ok(Self {
                user_id: __wsc::parse_param::<
                    ::std::string::String,
                >(
                    <Self as __wsc::Params>::TEMPLATE.address(),
                    "userId",
                    __values.next(),
                )?,
            })
        }
        fn to_values(&self) -> ::std::vec::Vec<::std::string::String> {
            ::std::vec![__wsc::format_param:: < ::std::string::String > (& self.user_id)]
        }
    }
    #[automatically_derived]
    impl ::core::cmp::PartialEq for UserSignedUpParams {
        fn eq(&self, other: &Self) -> bool {
            __wsc::Params::to_values(self) == __wsc::Params::to_values(other)
        }
    }
    #[automatically_derived]
    impl ::core::fmt::Display for UserSignedUpParams {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl ::core::str::FromStr for UserSignedUpParams {
        type Err = __wsc::ParamError;
        fn from_str(
            path: &::core::primitive::str,
        ) -> ::core::result::Result<Self, Self::Err> {
            <Self as __wsc::Params>::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for UserSignedUp {
        const NAME: &'static ::core::primitive::str = "UserSignedUp";
        const DESCRIPTION: &'static ::core::primitive::str = "A user signed up.";
        const SHAPE: __wsc::Shape = __wsc::Shape::Symmetric;
        type Params = UserSignedUpParams;
        type ClientMessage = UserSignedUp;
        type ServerMessage = UserSignedUp;
        type Codec = __wsc::Json;
    }
    #[automatically_derived]
    impl __wsc::ClientSends for UserSignedUp {}
};
