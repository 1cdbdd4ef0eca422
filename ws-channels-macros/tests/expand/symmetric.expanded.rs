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
    pub fn new(
        user_id: impl ::ws_channels::__private::Into<::std::string::String>,
    ) -> Self {
        Self {
            user_id: ::ws_channels::__private::Into::into(user_id),
        }
    }
    ///The WebSocket URL of this `user/events/<userId>` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter.
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
        const DESCRIPTIONS: &'static [(&'static __wsc::str, &'static __wsc::str)] = &[
            ("userId", "The user identifier."),
        ];
        #[inline]
        fn from_values(
            values: &[__wsc::String],
        ) -> __wsc::Result<Self, __wsc::ParamError> {
            __wsc::Ok(Self {
                user_id: __wsc::parse_param::<
                    ::std::string::String,
                >("user/events/{userId}", "userId", values.get(0))?,
            })
        }
        #[inline]
        fn to_values(&self) -> __wsc::Vec<__wsc::String> {
            __wsc::Vec::from([
                __wsc::format_param::<::std::string::String>(&self.user_id),
            ])
        }
    }
    #[automatically_derived]
    impl __wsc::PartialEq for UserSignedUpParams {
        #[inline]
        fn eq(&self, other: &Self) -> bool {
            __wsc::params_eq(self, other)
        }
    }
    #[automatically_derived]
    impl __wsc::Display for UserSignedUpParams {
        #[inline]
        fn fmt(&self, f: &mut __wsc::Formatter<'_>) -> __wsc::fmt::Result {
            __wsc::fmt_params(self, f)
        }
    }
    #[automatically_derived]
    impl __wsc::FromStr for UserSignedUpParams {
        type Err = __wsc::ParamError;
        #[inline]
        fn from_str(path: &__wsc::str) -> __wsc::Result<Self, Self::Err> {
            __wsc::Params::from_path(path)
        }
    }
    #[automatically_derived]
    impl __wsc::Channel for UserSignedUp {
        const NAME: &'static __wsc::str = "UserSignedUp";
        const DESCRIPTION: &'static __wsc::str = "A user signed up.";
        const SHAPE: __wsc::Shape = __wsc::Shape::Symmetric;
        type Params = UserSignedUpParams;
        type ClientMessage = UserSignedUp;
        type ServerMessage = UserSignedUp;
        type Codec = __wsc::Json;
    }
    #[automatically_derived]
    impl __wsc::ClientSends for UserSignedUp {}
};
