#[derive(Serialize, Deserialize)]
pub struct Notification {
    title: String,
}
///The path parameters of the [`Notification`] channel, `notifications/<userId: u64>`.
#[derive(Debug, Clone)]
pub struct NotificationParams {
    ///The `userId` parameter of `notifications/<userId: u64>`.
    pub user_id: u64,
}
impl NotificationParams {
    ///The parameters of one concrete `notifications/<userId: u64>` address.
    pub fn new(user_id: u64) -> Self {
        Self { user_id }
    }
    ///The WebSocket URL of this `notifications/<userId: u64>` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter.
    pub fn url(&self, base: &::core::primitive::str) -> ::std::string::String {
        ::ws_channels::__private::url(self, base)
    }
}
impl Notification {
    ///Client: the typed messages the server sends on `notifications/<userId: u64>`; a frame that does not decode or validate is one `Err` item and the stream goes on.
    pub fn subscribe<R: ::ws_channels::__private::MessageStream>(
        stream: R,
    ) -> ::ws_channels::__private::Subscription<Self, R> {
        ::ws_channels::__private::subscribe::<Self, R>(stream)
    }
}
impl Notification {
    ///Server: handles `notifications/<userId: u64>` on `server`; `configure` sets the handler's callbacks (`on_connect`, `on_message`, …).
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
    impl __wsc::Params for NotificationParams {
        type Channel = Notification;
        const TEMPLATE: __wsc::Template = __wsc::Template::__new(
            "notifications/{userId}",
            &[__wsc::Segment::Static("notifications"), __wsc::Segment::Param("userId")],
        );
        fn from_values(
            values: &[::std::string::String],
        ) -> ::core::result::Result<Self, __wsc::ParamError> {
            let mut __values = values.iter();
            ::core::result::Result::Ok(Self {
                user_id: __wsc::parse_param::<
                    u64,
                >(
                    <Self as __wsc::Params>::TEMPLATE.address(),
                    "userId",
                    __values.next(),
                )?,
            })
        }
        fn to_values(&self) -> ::std::vec::Vec<::std::string::String> {
            ::std::vec![__wsc::format_param:: < u64 > (& self.user_id)]
        }
    }
    #[automatically_derived]
    impl ::core::cmp::PartialEq for NotificationParams {
        fn eq(&self, other: &Self) -> bool {
            __wsc::Params::to_values(self) == __wsc::Params::to_values(other)
        }
    }
    #[automatically_derived]
    impl ::core::fmt::Display for NotificationParams {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl ::core::str::FromStr for NotificationParams {
        type Err = __wsc::ParamError;
        fn from_str(
            path: &::core::primitive::str,
        ) -> ::core::result::Result<Self, Self::Err> {
            <Self as __wsc::Params>::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for Notification {
        const NAME: &'static ::core::primitive::str = "Notification";
        const SHAPE: __wsc::Shape = __wsc::Shape::ServerOnly;
        type Params = NotificationParams;
        type ClientMessage = __wsc::NoMessage;
        type ServerMessage = Notification;
        type Codec = __wsc::Json;
    }
};
