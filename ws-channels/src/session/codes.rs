//! The protocol's codes: error replies, disconnects (WebSocket close codes) and unsubscribes,
//! each with its fixed message, and what centrifuge-js does when it receives one.
//!
//! The codes and messages are the Go library's (`errors.go`, `disconnect.go`,
//! `unsubscribe.go`); the reactions are the SDK's (`centrifuge.ts`, `subscription.ts`); the
//! design's part A5 cites the lines. Crate-private: the session endpoint and the session client
//! (later slices) are the users; applications see these codes through typed refusals.
//!
//! **A reason is never valid JSON.** On a close, the SDK first tries `JSON.parse(reason)` as
//! "advice" `{reason, reconnect}`: a reason that happens to parse (`1`, `true`, `"x"`) would
//! mean "do not reconnect" whatever the code. And a reason is never empty: the SDK reads a
//! 3500–3999 code as final only when the close has a reason. [`sdk_reconnects_after_close`]
//! is the SDK's rule, advice included; the tests hold every reason here to both.

use std::ops::RangeInclusive;

/// What centrifuge-js does after an error reply to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SdkReaction {
    /// Tries again after a backoff (reconnects, or resubscribes).
    Retry,
    /// Drops its token, asks the application for a new one (`getToken`), then tries again.
    RetryWithNewToken,
    /// Gives up: the client ends disconnected, or the subscription unsubscribed.
    Final,
}

/// The SDK's reaction to an error reply to `connect` (`centrifuge.ts` 1226–1243): `code < 100`,
/// temporary errors and 109 reconnect, everything else is final.
pub(crate) fn sdk_on_connect_error(code: u32, temporary: bool) -> SdkReaction {
    match code {
        109 => SdkReaction::RetryWithNewToken,
        _ if code < 100 || temporary => SdkReaction::Retry,
        _ => SdkReaction::Final,
    }
}

/// The SDK's reaction to an error reply to `subscribe` (`subscription.ts` 1036–1056, 812–831):
/// `code < 100`, temporary errors and 109 resubscribe with backoff, everything else is final
/// (112 too, unless the subscription has a `getState` hook, which resets and resubscribes).
pub(crate) fn sdk_on_subscribe_error(code: u32, temporary: bool) -> SdkReaction {
    match code {
        109 => SdkReaction::RetryWithNewToken,
        _ if code < 100 || temporary => SdkReaction::Retry,
        _ => SdkReaction::Final,
    }
}

/// The SDK's reaction to an error reply to `refresh` (`centrifuge.ts` 1595–1605): `code < 100`
/// and temporary errors retry in 5–10 s, everything else (109 included) disconnects for good.
pub(crate) fn sdk_on_refresh_error(code: u32, temporary: bool) -> SdkReaction {
    match code < 100 || temporary {
        true => SdkReaction::Retry,
        false => SdkReaction::Final,
    }
}

/// Error codes applications may use in replies of their own (Go's `errors.go` 12–14: the
/// library reserves 0–399).
pub(crate) const APP_ERROR_CODES: RangeInclusive<u32> = 400..=1999;

/// An error reply's code: `{"id":n,"error":{"code":…,"message":…,"temporary":…}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// 100: the server failed (a handler's 5xx, panic or timeout). Temporary: the SDK retries
    /// with backoff.
    Internal = 100,
    /// 101: the connect credentials were refused. Final for the SDK.
    Unauthorized = 101,
    /// 102: the channel name matches no channel template.
    UnknownChannel = 102,
    /// 103: a channel refused the subscription, or a publish without a subscription.
    PermissionDenied = 103,
    /// 104: the method exists in the protocol but the server does not serve it.
    MethodNotFound = 104,
    /// 105: a second subscribe to a channel the session is already subscribed to.
    AlreadySubscribed = 105,
    /// 106: a limit (subscriptions per session, connections per address) was reached.
    LimitExceeded = 106,
    /// 107: a malformed parameter: a channel name that is too long or not canonical, publish
    /// data that does not decode or validate.
    BadRequest = 107,
    /// 108: not served on this channel or by this server (history, presence, rpc, map
    /// subscriptions, binary codecs).
    NotAvailable = 108,
    /// 109: the token expired: the SDK fetches a new one (`getToken`) and tries again.
    TokenExpired = 109,
    /// 110: the connection's credentials are already past their expiry at connect.
    Expired = 110,
    /// 111: a rate limit refused the command. Temporary: the SDK backs off.
    TooManyRequests = 111,
    /// 112: the stream no longer holds the position a recovery or history call asked for.
    UnrecoverablePosition = 112,
    /// 113: a pagination request while another one of the same channel is running. Temporary.
    ConcurrentPagination = 113,
}

impl ErrorCode {
    /// Every error code, in order.
    pub(crate) const ALL: [Self; 14] = [
        Self::Internal,
        Self::Unauthorized,
        Self::UnknownChannel,
        Self::PermissionDenied,
        Self::MethodNotFound,
        Self::AlreadySubscribed,
        Self::LimitExceeded,
        Self::BadRequest,
        Self::NotAvailable,
        Self::TokenExpired,
        Self::Expired,
        Self::TooManyRequests,
        Self::UnrecoverablePosition,
        Self::ConcurrentPagination,
    ];

    /// The number on the wire.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// The fixed message Go sends with the code (an application may send its own).
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Internal => "internal server error",
            Self::Unauthorized => "unauthorized",
            Self::UnknownChannel => "unknown channel",
            Self::PermissionDenied => "permission denied",
            Self::MethodNotFound => "method not found",
            Self::AlreadySubscribed => "already subscribed",
            Self::LimitExceeded => "limit exceeded",
            Self::BadRequest => "bad request",
            Self::NotAvailable => "not available",
            Self::TokenExpired => "token expired",
            Self::Expired => "expired",
            Self::TooManyRequests => "too many requests",
            Self::UnrecoverablePosition => "unrecoverable position",
            Self::ConcurrentPagination => "concurrent pagination",
        }
    }

    /// Whether the reply says `"temporary":true`: the SDK then retries instead of giving up.
    pub(crate) fn temporary(self) -> bool {
        matches!(
            self,
            Self::Internal | Self::TooManyRequests | Self::ConcurrentPagination
        )
    }

    /// What the SDK does when a `connect` gets this error.
    pub(crate) fn on_connect(self) -> SdkReaction {
        sdk_on_connect_error(self.code(), self.temporary())
    }

    /// What the SDK does when a `subscribe` gets this error.
    pub(crate) fn on_subscribe(self) -> SdkReaction {
        sdk_on_subscribe_error(self.code(), self.temporary())
    }

    /// What the SDK does when a `refresh` gets this error.
    pub(crate) fn on_refresh(self) -> SdkReaction {
        sdk_on_refresh_error(self.code(), self.temporary())
    }
}

/// Application close codes the SDK reconnects after.
pub(crate) const APP_CLOSE_RECONNECT: RangeInclusive<u16> = 4000..=4499;
/// Application close codes the SDK stops at.
pub(crate) const APP_CLOSE_FINAL: RangeInclusive<u16> = 4500..=4999;

/// A session's end: the WebSocket close code and reason the server closes with (Centrifugo
/// sends no `disconnect` push over WebSocket, and neither do we). 3000–3499 reconnect,
/// 3500–3999 are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DisconnectCode {
    /// 3000: closed without a more specific cause.
    ConnectionClosed = 3000,
    /// 3001: the server is shutting down.
    Shutdown = 3001,
    /// 3004: the server failed outside any command (a bug in its own code path).
    InternalServerError = 3004,
    /// 3005: the connection's credentials expired and were not refreshed in time.
    ConnectionExpired = 3005,
    /// 3006: a subscription's credentials expired (Go; we end the subscription with 2501).
    SubscriptionExpired = 3006,
    /// 3008: the session's queue went over its byte bound: the client reads too slowly.
    Slow = 3008,
    /// 3009: writing to the socket failed.
    WriteError = 3009,
    /// 3010: the server lost state the connection needs.
    InsufficientState = 3010,
    /// 3011: the server asks the client to reconnect.
    ForceReconnect = 3011,
    /// 3012: no pong within the pong timeout after a ping.
    NoPong = 3012,
    /// 3013: a rate limit closed the session.
    TooManyRequests = 3013,
    /// 3014: the connection's token and subscriptions' state are stale: the SDK clears them
    /// and reconnects.
    StateInvalidated = 3014,
    /// 3500: the connect token is invalid (not merely expired).
    InvalidToken = 3500,
    /// 3501: a protocol violation: malformed JSON, a command before `connect`, a second
    /// `connect`, no known method, `id` 0 on a command that needs one, too many commands in
    /// a frame, a binary frame.
    BadRequest = 3501,
    /// 3502: no `connect` within the connect timeout.
    Stale = 3502,
    /// 3503: the server disconnects the client for good.
    ForceDisconnect = 3503,
    /// 3504: a limit on connections was reached.
    ConnectionLimit = 3504,
    /// 3505: the server-side subscriptions of a connect exceed the subscription limit.
    ChannelLimit = 3505,
    /// 3506: the client asked for a format the server does not speak (protobuf).
    InappropriateProtocol = 3506,
    /// 3507: the connect was refused for good (not an authentication failure).
    PermissionDenied = 3507,
    /// 3508: the client used a feature the server does not offer (an unhandled `send`).
    NotAvailable = 3508,
    /// 3509: the client caused too many errors.
    TooManyErrors = 3509,
}

impl DisconnectCode {
    /// Every disconnect code, in order.
    pub(crate) const ALL: [Self; 22] = [
        Self::ConnectionClosed,
        Self::Shutdown,
        Self::InternalServerError,
        Self::ConnectionExpired,
        Self::SubscriptionExpired,
        Self::Slow,
        Self::WriteError,
        Self::InsufficientState,
        Self::ForceReconnect,
        Self::NoPong,
        Self::TooManyRequests,
        Self::StateInvalidated,
        Self::InvalidToken,
        Self::BadRequest,
        Self::Stale,
        Self::ForceDisconnect,
        Self::ConnectionLimit,
        Self::ChannelLimit,
        Self::InappropriateProtocol,
        Self::PermissionDenied,
        Self::NotAvailable,
        Self::TooManyErrors,
    ];

    /// The WebSocket close code.
    pub(crate) fn code(self) -> u16 {
        self as u16
    }

    /// The close frame's reason: Go's fixed lower-case English, never empty, never JSON.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::ConnectionClosed => "connection closed",
            Self::Shutdown => "shutdown",
            Self::InternalServerError => "internal server error",
            Self::ConnectionExpired => "connection expired",
            Self::SubscriptionExpired => "subscription expired",
            Self::Slow => "slow",
            Self::WriteError => "write error",
            Self::InsufficientState => "insufficient state",
            Self::ForceReconnect => "force reconnect",
            Self::NoPong => "no pong",
            Self::TooManyRequests => "too many requests",
            Self::StateInvalidated => "state invalidated",
            Self::InvalidToken => "invalid token",
            Self::BadRequest => "bad request",
            Self::Stale => "stale",
            Self::ForceDisconnect => "force disconnect",
            Self::ConnectionLimit => "connection limit",
            Self::ChannelLimit => "channel limit",
            Self::InappropriateProtocol => "inappropriate protocol",
            Self::PermissionDenied => "permission denied",
            Self::NotAvailable => "not available",
            Self::TooManyErrors => "too many errors",
        }
    }

    /// Whether the SDK reconnects after this close (with its reason).
    pub(crate) fn reconnects(self) -> bool {
        sdk_reconnects_after_close(self.code(), self.reason())
    }
}

/// Whether centrifuge-js reconnects after a close with this code and reason
/// (`centrifuge.ts` 1030–1098).
///
/// A non-empty reason is first read as JSON advice `{reason, reconnect}`: if it parses, its
/// `reconnect` decides (absent: no reconnect). Otherwise 3500–3999 and 4500–4999 are final
/// when the reason is not empty. Below 3000, 1009 (message too big) is final and every other
/// code reconnects, whatever it meant in direct mode.
pub(crate) fn sdk_reconnects_after_close(code: u16, reason: &str) -> bool {
    let final_code = (3500..4000).contains(&code) || APP_CLOSE_FINAL.contains(&code);
    let mut reconnect = true;
    if !reason.is_empty() {
        reconnect = match serde_json::from_str::<serde_json::Value>(reason) {
            // `JSON.parse` failed, or gave `null`, whose `.reason` throws into the same branch.
            Err(_) | Ok(serde_json::Value::Null) => !final_code,
            Ok(serde_json::Value::Object(advice)) => advice.get("reconnect").is_some_and(js_truthy),
            // A number, string, boolean or array has no `reconnect`: `undefined`, falsy.
            Ok(_) => false,
        };
    }
    reconnect && code != 1009
}

/// JavaScript's truthiness of a JSON value.
fn js_truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => true,
    }
}

/// Unsubscribe codes applications may send for a final unsubscribe (Go's `unsubscribe.go`:
/// the library reserves 0–2099 and 2500–2599).
pub(crate) const APP_UNSUBSCRIBE_FINAL: RangeInclusive<u32> = 2100..=2499;
/// Unsubscribe codes applications may send to make the SDK resubscribe at once.
pub(crate) const APP_UNSUBSCRIBE_RESUBSCRIBE: RangeInclusive<u32> = 2600..=2999;

/// Whether centrifuge-js resubscribes after an `unsubscribe` push with this code: at 2500 and
/// above, **at once and without backoff** (`centrifuge.ts` 1935–1957); below, the subscription
/// ends unsubscribed.
pub(crate) fn sdk_resubscribes_after_unsubscribe(code: u32) -> bool {
    code >= 2500
}

/// An `unsubscribe` push's code: `{"push":{"channel":…,"unsubscribe":{"code":…,"reason":…}}}`,
/// the end of one subscription while the session stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnsubscribeCode {
    /// 2000: the server ended the subscription for good (a final close of the channel's
    /// `Conn`, `Hub::unsubscribe_session`). The SDK reports it unsubscribed.
    Server = 2000,
    /// 2500: the server ended the subscription but the client should come back: lag under
    /// `LagPolicy::Disconnect`, a retried close. The SDK resubscribes at once (and recovers,
    /// on history channels).
    InsufficientState = 2500,
    /// 2501: the subscription's credentials expired. The SDK resubscribes, fetching a new
    /// subscription token if the channel then refuses with 109.
    SubscriptionExpired = 2501,
    /// 2502: the subscription's state and token are stale: the SDK clears both and
    /// resubscribes. We avoid it (it drops the state a recovery needs).
    StateInvalidated = 2502,
}

impl UnsubscribeCode {
    /// Every unsubscribe code the server sends, in order.
    pub(crate) const ALL: [Self; 4] = [
        Self::Server,
        Self::InsufficientState,
        Self::SubscriptionExpired,
        Self::StateInvalidated,
    ];

    /// The number on the wire.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// The default reason (a close's own reason may replace it): never empty, never JSON.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Server => "server unsubscribe",
            Self::InsufficientState => "insufficient state",
            Self::SubscriptionExpired => "subscription expired",
            Self::StateInvalidated => "state invalidated",
        }
    }

    /// Whether the SDK resubscribes (at once) after this code.
    pub(crate) fn resubscribes(self) -> bool {
        sdk_resubscribes_after_unsubscribe(self.code())
    }

    /// What ends a subscription whose handler closed it with `close` (a close code of the
    /// direct mode): the closes a direct client retries (1001 going away, 1011 internal error,
    /// 1012 restart, 1013 try again later, 1014 bad gateway) resubscribe with 2500, expired
    /// credentials (4001) with 2501, every other is final, 2000.
    pub(crate) fn for_close(close: u16) -> Self {
        match close {
            1001 | 1011..=1014 => Self::InsufficientState,
            // The direct mode's expired credentials (`CLOSE_CREDENTIALS_EXPIRED`).
            4001 => Self::SubscriptionExpired,
            _ => Self::Server,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_json(text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text).is_ok()
    }

    #[test]
    fn error_codes_match_the_go_library() {
        let table: Vec<(u32, &str, bool)> = ErrorCode::ALL
            .iter()
            .map(|e| (e.code(), e.message(), e.temporary()))
            .collect();
        assert_eq!(
            table,
            [
                (100, "internal server error", true),
                (101, "unauthorized", false),
                (102, "unknown channel", false),
                (103, "permission denied", false),
                (104, "method not found", false),
                (105, "already subscribed", false),
                (106, "limit exceeded", false),
                (107, "bad request", false),
                (108, "not available", false),
                (109, "token expired", false),
                (110, "expired", false),
                (111, "too many requests", true),
                (112, "unrecoverable position", false),
                (113, "concurrent pagination", true),
            ]
        );
        for e in ErrorCode::ALL {
            assert!(!is_json(e.message()), "{e:?}");
            assert!(!APP_ERROR_CODES.contains(&e.code()));
        }
    }

    #[test]
    fn sdk_reactions_to_error_replies_follow_centrifuge_js() {
        use SdkReaction::*;
        assert_eq!(ErrorCode::Internal.on_connect(), Retry);
        assert_eq!(ErrorCode::TooManyRequests.on_connect(), Retry);
        assert_eq!(ErrorCode::TokenExpired.on_connect(), RetryWithNewToken);
        assert_eq!(ErrorCode::Unauthorized.on_connect(), Final);
        assert_eq!(ErrorCode::Expired.on_connect(), Final);
        assert_eq!(ErrorCode::TokenExpired.on_subscribe(), RetryWithNewToken);
        assert_eq!(ErrorCode::PermissionDenied.on_subscribe(), Final);
        assert_eq!(ErrorCode::Internal.on_subscribe(), Retry);
        // 109 on `refresh` is final: the SDK only retries `< 100` and temporary errors there.
        assert_eq!(ErrorCode::TokenExpired.on_refresh(), Final);
        assert_eq!(ErrorCode::Internal.on_refresh(), Retry);
        assert_eq!(sdk_on_connect_error(42, false), Retry);
        assert_eq!(sdk_on_subscribe_error(1500, true), Retry);
        assert_eq!(sdk_on_subscribe_error(1500, false), Final);
    }

    #[test]
    fn disconnect_codes_match_the_go_library_and_the_design() {
        for d in DisconnectCode::ALL {
            let code = d.code();
            assert!((3000..3600).contains(&code), "{d:?}");
            assert_eq!(d.reconnects(), code < 3500, "{d:?} {code}");
        }
        // The codes the design's refusal table uses, with their reasons.
        let used = [
            (DisconnectCode::Shutdown, 3001, "shutdown"),
            (DisconnectCode::InternalServerError, 3004, "internal server error"),
            (DisconnectCode::ConnectionExpired, 3005, "connection expired"),
            (DisconnectCode::Slow, 3008, "slow"),
            (DisconnectCode::NoPong, 3012, "no pong"),
            (DisconnectCode::TooManyRequests, 3013, "too many requests"),
            (DisconnectCode::InvalidToken, 3500, "invalid token"),
            (DisconnectCode::BadRequest, 3501, "bad request"),
            (DisconnectCode::Stale, 3502, "stale"),
            (DisconnectCode::ChannelLimit, 3505, "channel limit"),
            (DisconnectCode::InappropriateProtocol, 3506, "inappropriate protocol"),
            (DisconnectCode::PermissionDenied, 3507, "permission denied"),
            (DisconnectCode::NotAvailable, 3508, "not available"),
        ];
        for (d, code, reason) in used {
            assert_eq!((d.code(), d.reason()), (code, reason));
        }
    }

    #[test]
    fn no_reason_is_empty_or_valid_json() {
        let reasons = DisconnectCode::ALL
            .iter()
            .map(|d| d.reason())
            .chain(UnsubscribeCode::ALL.iter().map(|u| u.reason()))
            .chain(ErrorCode::ALL.iter().map(|e| e.message()));
        for reason in reasons {
            assert!(!reason.is_empty());
            assert!(
                !is_json(reason),
                "{reason:?} parses as JSON: the SDK would take it for advice"
            );
            assert_eq!(reason, reason.to_lowercase());
        }
    }

    #[test]
    fn the_sdk_close_rule_reads_advice_codes_and_empty_reasons() {
        // Plain reasons: the code decides.
        assert!(sdk_reconnects_after_close(3012, "no pong"));
        assert!(!sdk_reconnects_after_close(3501, "bad request"));
        assert!(!sdk_reconnects_after_close(4500, "app"));
        assert!(sdk_reconnects_after_close(4000, "app"));
        assert!(sdk_reconnects_after_close(1001, "going away"));
        assert!(sdk_reconnects_after_close(1011, "error"));
        assert!(!sdk_reconnects_after_close(1009, "too big"));
        // An empty reason: even a 35xx code reconnects (why no reason here is empty).
        assert!(sdk_reconnects_after_close(3501, ""));
        // A reason that is JSON is advice, whatever the code.
        assert!(!sdk_reconnects_after_close(3012, "1"));
        assert!(!sdk_reconnects_after_close(3012, "true"));
        assert!(!sdk_reconnects_after_close(3012, "\"no pong\""));
        assert!(sdk_reconnects_after_close(3501, r#"{"reason":"x","reconnect":true}"#));
        assert!(!sdk_reconnects_after_close(3012, r#"{"reason":"x"}"#));
        // `null` throws in the advice branch and falls back to the code.
        assert!(!sdk_reconnects_after_close(3501, "null"));
        assert!(sdk_reconnects_after_close(3012, "null"));
    }

    #[test]
    fn unsubscribe_codes_resubscribe_from_2500() {
        let table: Vec<(u32, &str, bool)> = UnsubscribeCode::ALL
            .iter()
            .map(|u| (u.code(), u.reason(), u.resubscribes()))
            .collect();
        assert_eq!(
            table,
            [
                (2000, "server unsubscribe", false),
                (2500, "insufficient state", true),
                (2501, "subscription expired", true),
                (2502, "state invalidated", true),
            ]
        );
        assert!(
            APP_UNSUBSCRIBE_FINAL
                .clone()
                .all(|c| !sdk_resubscribes_after_unsubscribe(c))
        );
        assert!(
            APP_UNSUBSCRIBE_RESUBSCRIBE
                .clone()
                .all(sdk_resubscribes_after_unsubscribe)
        );
        assert!(
            APP_CLOSE_RECONNECT
                .clone()
                .all(|c| sdk_reconnects_after_close(c, "app"))
        );
    }

    #[test]
    fn a_subscription_closed_as_a_direct_client_would_retry_resubscribes() {
        let retried: Vec<u16> = (1000..=1015)
            .chain([3000, 4000, 4001, 4999])
            .filter(|code| UnsubscribeCode::for_close(*code).resubscribes())
            .collect();
        assert_eq!(retried, [1001, 1011, 1012, 1013, 1014, 4001]);
        assert_eq!(UnsubscribeCode::for_close(4001), UnsubscribeCode::SubscriptionExpired);
        assert_eq!(UnsubscribeCode::for_close(1008), UnsubscribeCode::Server);
    }
}
