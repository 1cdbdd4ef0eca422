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
    pub fn new(
        room: impl ::ws_channels::__private::Into<::std::string::String>,
    ) -> Self {
        Self {
            room: ::ws_channels::__private::Into::into(room),
        }
    }
    ///The WebSocket URL of this `chat/<room>` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter.
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
    impl __wsc::Params for ChatCommandParams {
        type Channel = ChatCommand;
        const TEMPLATE: __wsc::Template = __wsc::Template::__new(
            "chat/{room}",
            &[__wsc::Segment::Static("chat"), __wsc::Segment::Param("room")],
        );
        #[inline]
        fn from_values(
            values: &[__wsc::String],
        ) -> __wsc::Result<Self, __wsc::ParamError> {
            __wsc::Ok(Self {
                room: __wsc::parse_param::<
                    ::std::string::String,
                >("chat/{room}", "room", values.get(0))?,
            })
        }
        #[inline]
        fn to_values(&self) -> __wsc::Vec<__wsc::String> {
            __wsc::Vec::from([__wsc::format_param::<::std::string::String>(&self.room)])
        }
    }
    #[automatically_derived]
    impl __wsc::PartialEq for ChatCommandParams {
        #[inline]
        fn eq(&self, other: &Self) -> bool {
            __wsc::params_eq(self, other)
        }
    }
    #[automatically_derived]
    impl __wsc::Display for ChatCommandParams {
        #[inline]
        fn fmt(&self, f: &mut __wsc::Formatter<'_>) -> __wsc::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl __wsc::FromStr for ChatCommandParams {
        type Err = __wsc::ParamError;
        #[inline]
        fn from_str(path: &__wsc::str) -> __wsc::Result<Self, Self::Err> {
            __wsc::Params::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for ChatCommand {
        const NAME: &'static __wsc::str = "ChatCommand";
        const SHAPE: __wsc::Shape = __wsc::Shape::Asymmetric;
        type Params = ChatCommandParams;
        type ClientMessage = ChatCommand;
        type ServerMessage = ChatEvent;
        type Codec = __wsc::Json;
    }
    #[automatically_derived]
    impl __wsc::ClientSends for ChatCommand {}
};
