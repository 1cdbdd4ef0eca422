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
    impl __wsc::Params for NotificationParams {
        type Channel = Notification;
        const TEMPLATE: __wsc::Template = __wsc::Template::__new(
            "notifications/{userId}",
            &[__wsc::Segment::Static("notifications"), __wsc::Segment::Param("userId")],
        );
        #[inline]
        fn from_values(
            values: &[__wsc::String],
        ) -> __wsc::Result<Self, __wsc::ParamError> {
            __wsc::Ok(Self {
                user_id: __wsc::parse_param::<
                    u64,
                >("notifications/{userId}", "userId", values.get(0))?,
            })
        }
        #[inline]
        fn to_values(&self) -> __wsc::Vec<__wsc::String> {
            __wsc::Vec::from([__wsc::format_param::<u64>(&self.user_id)])
        }
    }
    #[automatically_derived]
    impl __wsc::PartialEq for NotificationParams {
        #[inline]
        fn eq(&self, other: &Self) -> bool {
            __wsc::params_eq(self, other)
        }
    }
    #[automatically_derived]
    impl __wsc::Display for NotificationParams {
        #[inline]
        fn fmt(&self, f: &mut __wsc::Formatter<'_>) -> __wsc::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl __wsc::FromStr for NotificationParams {
        type Err = __wsc::ParamError;
        #[inline]
        fn from_str(path: &__wsc::str) -> __wsc::Result<Self, Self::Err> {
            __wsc::Params::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for Notification {
        const NAME: &'static __wsc::str = "Notification";
        const SHAPE: __wsc::Shape = __wsc::Shape::ServerOnly;
        type Params = NotificationParams;
        type ClientMessage = __wsc::NoMessage;
        type ServerMessage = Notification;
        type Codec = __wsc::Json;
    }
};
