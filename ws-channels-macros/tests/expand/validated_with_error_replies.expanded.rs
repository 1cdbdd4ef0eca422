#[derive(Serialize, Deserialize)]
pub(crate) struct OrderCommand {
    quantity: u32,
}
///The path parameters of the [`OrderCommand`] channel, `orders/{orderId}/<line: u32>`.
#[derive(Debug, Clone)]
pub(crate) struct OrderCommandParams {
    ///The `orderId` parameter of `orders/{orderId}/<line: u32>`.
    pub order_id: ::std::string::String,
    ///The `line` parameter of `orders/{orderId}/<line: u32>`.
    pub line: u32,
}
impl OrderCommandParams {
    ///The parameters of one concrete `orders/{orderId}/<line: u32>` address.
    pub fn new(
        order_id: impl ::core::convert::Into<::std::string::String>,
        line: u32,
    ) -> Self {
        Self {
            order_id: ::core::convert::Into::into(order_id),
            line,
        }
    }
    ///The WebSocket URL of this `orders/{orderId}/<line: u32>` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter.
    pub fn url(&self, base: &::core::primitive::str) -> ::std::string::String {
        ::ws_channels::__private::url(self, base)
    }
}
impl OrderCommand {
    ///Client: sends `message` on `orders/{orderId}/<line: u32>` over an already-connected WebSocket (any `MessageSink`, such as a tokio-tungstenite stream).
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
    ///Client: the typed messages the server sends on `orders/{orderId}/<line: u32>`; a frame that does not decode or validate is one `Err` item and the stream goes on.
    pub fn subscribe<R: ::ws_channels::__private::MessageStream>(
        stream: R,
    ) -> ::ws_channels::__private::Subscription<Self, R> {
        ::ws_channels::__private::subscribe::<Self, R>(stream)
    }
}
impl OrderCommand {
    ///Server: handles `orders/{orderId}/<line: u32>` on `server`; `configure` sets the handler's callbacks (`on_connect`, `on_message`, …).
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
    impl __wsc::Params for OrderCommandParams {
        type Channel = OrderCommand;
        const TEMPLATE: __wsc::Template = __wsc::Template::__new(
            "orders/{orderId}/{line}",
            &[
                __wsc::Segment::Static("orders"),
                __wsc::Segment::Param("orderId"),
                __wsc::Segment::Param("line"),
            ],
        );
        fn from_values(
            values: &[::std::string::String],
        ) -> ::core::result::Result<Self, __wsc::ParamError> {
            let mut __values = values.iter();
            ::core::result::Result::Ok(Self {
                order_id: __wsc::parse_param::<
                    ::std::string::String,
                >(
                    <Self as __wsc::Params>::TEMPLATE.address(),
                    "orderId",
                    __values.next(),
                )?,
                line: __wsc::parse_param::<
                    u32,
                >(<Self as __wsc::Params>::TEMPLATE.address(), "line", __values.next())?,
            })
        }
        fn to_values(&self) -> ::std::vec::Vec<::std::string::String> {
            ::std::vec![
                __wsc::format_param:: < ::std::string::String > (& self.order_id),
                __wsc::format_param:: < u32 > (& self.line)
            ]
        }
    }
    #[automatically_derived]
    impl ::core::cmp::PartialEq for OrderCommandParams {
        fn eq(&self, other: &Self) -> bool {
            __wsc::Params::to_values(self) == __wsc::Params::to_values(other)
        }
    }
    #[automatically_derived]
    impl ::core::fmt::Display for OrderCommandParams {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl ::core::str::FromStr for OrderCommandParams {
        type Err = __wsc::ParamError;
        fn from_str(
            path: &::core::primitive::str,
        ) -> ::core::result::Result<Self, Self::Err> {
            <Self as __wsc::Params>::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for OrderCommand {
        const NAME: &'static ::core::primitive::str = "orders";
        const SHAPE: __wsc::Shape = __wsc::Shape::Asymmetric;
        type Params = OrderCommandParams;
        type ClientMessage = OrderCommand;
        type ServerMessage = OrderEvent;
        type Codec = __wsc::Json;
        const LAG_POLICY: __wsc::LagPolicy = __wsc::LagPolicy::DropOldest;
        fn validate_client(
            message: &Self::ClientMessage,
        ) -> ::core::result::Result<(), __wsc::ValidationError> {
            <Self::ClientMessage as __wsc::Validate>::validate(message)
        }
        fn validate_server(
            message: &Self::ServerMessage,
        ) -> ::core::result::Result<(), __wsc::ValidationError> {
            <Self::ServerMessage as __wsc::Validate>::validate(message)
        }
        fn on_invalid(
            error: &__wsc::Error,
        ) -> ::core::option::Option<Self::ServerMessage> {
            ::core::option::Option::Some(
                <Self::ServerMessage as __wsc::ErrorReply>::error_reply(error),
            )
        }
    }
    #[automatically_derived]
    impl __wsc::ClientSends for OrderCommand {}
};
