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
        order_id: impl ::ws_channels::__private::Into<::std::string::String>,
        line: u32,
    ) -> Self {
        Self {
            order_id: ::ws_channels::__private::Into::into(order_id),
            line,
        }
    }
    ///The WebSocket URL of this `orders/{orderId}/<line: u32>` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter.
    #[inline]
    pub fn url(
        &self,
        base: &::ws_channels::__private::str,
    ) -> ::ws_channels::__private::String {
        ::ws_channels::__private::url(self, base)
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
        #[inline]
        fn from_values(
            values: &[__wsc::String],
        ) -> __wsc::Result<Self, __wsc::ParamError> {
            __wsc::Ok(Self {
                order_id: __wsc::parse_param::<
                    ::std::string::String,
                >("orders/{orderId}/{line}", "orderId", values.get(0))?,
                line: __wsc::parse_param::<
                    u32,
                >("orders/{orderId}/{line}", "line", values.get(1))?,
            })
        }
        #[inline]
        fn to_values(&self) -> __wsc::Vec<__wsc::String> {
            __wsc::Vec::from([
                __wsc::format_param::<::std::string::String>(&self.order_id),
                __wsc::format_param::<u32>(&self.line),
            ])
        }
    }
    #[automatically_derived]
    impl __wsc::PartialEq for OrderCommandParams {
        #[inline]
        fn eq(&self, other: &Self) -> bool {
            __wsc::params_eq(self, other)
        }
    }
    #[automatically_derived]
    impl __wsc::Display for OrderCommandParams {
        #[inline]
        fn fmt(&self, f: &mut __wsc::Formatter<'_>) -> __wsc::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl __wsc::FromStr for OrderCommandParams {
        type Err = __wsc::ParamError;
        #[inline]
        fn from_str(path: &__wsc::str) -> __wsc::Result<Self, Self::Err> {
            __wsc::Params::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for OrderCommand {
        const NAME: &'static __wsc::str = "orders";
        const SHAPE: __wsc::Shape = __wsc::Shape::Asymmetric;
        type Params = OrderCommandParams;
        type ClientMessage = OrderCommand;
        type ServerMessage = OrderEvent;
        type Codec = __wsc::Json;
        const LAG_POLICY: __wsc::LagPolicy = __wsc::LagPolicy::DropOldest;
        #[inline]
        fn validate_client(
            message: &Self::ClientMessage,
        ) -> __wsc::Result<(), __wsc::ValidationError> {
            <Self::ClientMessage as __wsc::Validate>::validate(message)
        }
        #[inline]
        fn validate_server(
            message: &Self::ServerMessage,
        ) -> __wsc::Result<(), __wsc::ValidationError> {
            <Self::ServerMessage as __wsc::Validate>::validate(message)
        }
        #[inline]
        fn on_invalid(error: &__wsc::Error) -> __wsc::Option<Self::ServerMessage> {
            __wsc::Some(<Self::ServerMessage as __wsc::ErrorReply>::error_reply(error))
        }
    }
    #[automatically_derived]
    impl __wsc::ClientSends for OrderCommand {}
};
