//! How a True API call ended, classified as PROTOCOL.md §4 prescribes.
//!
//! Every call ends in exactly one [`Outcome`]. The variants follow what a caller must do next,
//! not how HTTP spelled it: an emergency lets the sale go ahead without a check, an
//! unauthorized key is the tenant's configuration error and must not move to another host,
//! and a host failure moves to the next host.

use super::ANSWER_READ_LIMIT;
use crate::wire::{CdnInfoAnswer, CodesCheckAnswer, HealthCheckAnswer};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// The classified end of one True API call, with the answer when there is one.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// HTTP 200 with `code == 0`: the answer to decide from.
    Answered(T),
    /// HTTP 200 with `code != 0`: ЧЗ refused to decide. Show the texts; no decision can be
    /// taken from this answer.
    Refused(Refusal),
    /// HTTP 203 or 418: ГИС МТ has declared an emergency. The sale proceeds without a check and
    /// fiscal tag 1260 stays empty.
    Emergency {
        /// 203 or 418.
        status: u16,
    },
    /// HTTP 401: the key is wrong or expired. The tenant's configuration error: stop, and do
    /// not fail over to another host or fall back to no-check mode on its account.
    Unauthorized,
    /// HTTP 429: retry the same host once, then block it and move on.
    RateLimited {
        /// The wait the host asked for in `Retry-After`, if it named one.
        retry_after: Option<Duration>,
    },
    /// The host could not give an answer: block it and try the next one.
    HostFailure(HostFailure),
    /// No complete answer within the call's time limit (or the connect timeout): a host
    /// failure for failover, and the "no answer in 1.5 s" of ПП 1944.
    TimedOut {
        /// The limit that ran out.
        after: Duration,
    },
}

/// A `code != 0` answer's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i64,
    pub description: Option<String>,
    pub error_message: Option<String>,
}

/// Why a host gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFailure {
    /// A 5xx other than the cross-border outage below.
    ServerError { status: u16 },
    /// A 5xx whose `error_message` is `"5000"`: the cross-border check service is down.
    /// Callers treat it as an emergency when it repeats (see
    /// [`HostFailure::is_cross_border_outage`]).
    CrossBorderServiceDown { status: u16 },
    /// A status the protocol does not give (400, 404, a redirect, which is never followed …).
    UnexpectedStatus { status: u16 },
    /// No connection: refused, reset while connecting, unknown host, TLS failure.
    Connect { reason: String },
    /// The connection broke after it was made, before the answer was complete.
    Transport { reason: String },
    /// A 200 whose body is not the expected JSON (or exceeds the size the client reads).
    MalformedBody { reason: String },
}

impl HostFailure {
    /// True for the `error_message` "5000" answer, which callers count: repeated, it means the
    /// emergency case of PROTOCOL.md §4 rather than one broken host.
    pub fn is_cross_border_outage(&self) -> bool {
        matches!(self, Self::CrossBorderServiceDown { .. })
    }
}

/// The name of an outcome without its data, for logs, metrics and stored evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    Answered,
    Refused,
    Emergency,
    Unauthorized,
    RateLimited,
    HostFailure,
    TimedOut,
}

impl OutcomeKind {
    /// A short stable name, e.g. `host_failure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Refused => "refused",
            Self::Emergency => "emergency",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::HostFailure => "host_failure",
            Self::TimedOut => "timed_out",
        }
    }
}

impl<T> Outcome<T> {
    /// The outcome's name without its data.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Answered(_) => OutcomeKind::Answered,
            Self::Refused(_) => OutcomeKind::Refused,
            Self::Emergency { .. } => OutcomeKind::Emergency,
            Self::Unauthorized => OutcomeKind::Unauthorized,
            Self::RateLimited { .. } => OutcomeKind::RateLimited,
            Self::HostFailure(_) => OutcomeKind::HostFailure,
            Self::TimedOut { .. } => OutcomeKind::TimedOut,
        }
    }

    /// The answer, for [`Outcome::Answered`].
    pub fn answer(&self) -> Option<&T> {
        match self {
            Self::Answered(answer) => Some(answer),
            _ => None,
        }
    }

    /// Converts the answer, keeping every other outcome as it is.
    pub fn map<U>(self, convert: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Self::Answered(answer) => Outcome::Answered(convert(answer)),
            Self::Refused(refusal) => Outcome::Refused(refusal),
            Self::Emergency { status } => Outcome::Emergency { status },
            Self::Unauthorized => Outcome::Unauthorized,
            Self::RateLimited { retry_after } => Outcome::RateLimited { retry_after },
            Self::HostFailure(failure) => Outcome::HostFailure(failure),
            Self::TimedOut { after } => Outcome::TimedOut { after },
        }
    }
}

/// An answer body whose top-level `code` says whether it was processed.
pub(crate) trait ServiceAnswer: DeserializeOwned {
    fn code(&self) -> Option<i64>;
    fn description(&self) -> Option<&str>;
    fn error_message(&self) -> Option<&str>;
}

macro_rules! service_answer {
    ($type:ty) => {
        impl ServiceAnswer for $type {
            fn code(&self) -> Option<i64> {
                self.code
            }

            fn description(&self) -> Option<&str> {
                self.description.as_deref()
            }

            fn error_message(&self) -> Option<&str> {
                self.error_message.as_deref()
            }
        }
    };
}

service_answer!(CdnInfoAnswer);
service_answer!(HealthCheckAnswer);
service_answer!(CodesCheckAnswer);

/// What arrived from a host that answered at all.
#[derive(Debug, Default)]
pub(crate) struct ReceivedAnswer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
    /// The body went past the client's read limit and was not read to its end.
    pub oversized: bool,
}

/// Classifies a complete answer. `now` resolves a `Retry-After` given as a date.
pub(crate) fn classify_answer<T: ServiceAnswer>(
    received: &ReceivedAnswer,
    now: DateTime<Utc>,
) -> Outcome<T> {
    let status = received.status;
    match status {
        200 => classify_processed::<T>(received),
        203 | 418 => Outcome::Emergency { status },
        401 => Outcome::Unauthorized,
        429 => Outcome::RateLimited {
            retry_after: received
                .retry_after
                .as_deref()
                .and_then(|value| parse_retry_after(value, now)),
        },
        500..=599 if is_cross_border_outage(&received.body) => {
            Outcome::HostFailure(HostFailure::CrossBorderServiceDown { status })
        }
        500..=599 => Outcome::HostFailure(HostFailure::ServerError { status }),
        _ => Outcome::HostFailure(HostFailure::UnexpectedStatus { status }),
    }
}

fn classify_processed<T: ServiceAnswer>(received: &ReceivedAnswer) -> Outcome<T> {
    if received.oversized {
        return malformed(format!(
            "the answer exceeds the {ANSWER_READ_LIMIT} bytes the client reads"
        ));
    }
    let answer: T = match serde_json::from_slice(&received.body) {
        Ok(answer) => answer,
        Err(error) => return malformed(error.to_string()),
    };

    match answer.code() {
        Some(0) => Outcome::Answered(answer),
        Some(code) => Outcome::Refused(Refusal {
            code,
            description: answer.description().map(str::to_owned),
            error_message: answer.error_message().map(str::to_owned),
        }),
        None => malformed("the answer carries no `code`".to_owned()),
    }
}

fn malformed<T>(reason: String) -> Outcome<T> {
    Outcome::HostFailure(HostFailure::MalformedBody { reason })
}

/// The cross-border outage answer carries `error_message` "5000", as text or as a number.
fn is_cross_border_outage(body: &[u8]) -> bool {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match fields.get("error_message") {
        Some(Value::String(text)) => text.trim() == "5000",
        Some(Value::Number(number)) => number.as_u64() == Some(5000),
        _ => false,
    }
}

/// Reads `Retry-After` as delay-seconds or as an HTTP date; a date in the past means no wait.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Outcome<CodesCheckAnswer> {
        let received = ReceivedAnswer {
            status,
            body: body.as_bytes().to_vec(),
            ..ReceivedAnswer::default()
        };
        classify_answer(&received, Utc::now())
    }

    #[test]
    fn a_processed_answer_is_answered() {
        let outcome = answer(200, r#"{"code":0,"codes":[],"reqId":"r","reqTimestamp":1}"#);

        assert_eq!(outcome.kind(), OutcomeKind::Answered);
    }

    #[test]
    fn a_nonzero_code_is_a_refusal_with_its_texts() {
        let outcome = answer(
            200,
            r#"{"code":2,"description":"busy","error_message":"try"}"#,
        );

        assert_eq!(
            outcome,
            Outcome::Refused(Refusal {
                code: 2,
                description: Some("busy".into()),
                error_message: Some("try".into()),
            })
        );
    }

    #[test]
    fn emergencies_are_203_and_418() {
        assert_eq!(answer(203, ""), Outcome::Emergency { status: 203 });
        assert_eq!(answer(418, "{}"), Outcome::Emergency { status: 418 });
    }

    #[test]
    fn a_5000_server_error_is_the_cross_border_outage() {
        for body in [r#"{"error_message":"5000"}"#, r#"{"error_message":5000}"#] {
            let outcome = answer(500, body);

            assert_eq!(
                outcome,
                Outcome::HostFailure(HostFailure::CrossBorderServiceDown { status: 500 })
            );
        }
        assert_eq!(
            answer(502, r#"{"error_message":"bad gateway"}"#),
            Outcome::HostFailure(HostFailure::ServerError { status: 502 })
        );
    }

    #[test]
    fn a_200_body_that_is_not_the_answer_is_malformed() {
        for body in ["<html>", "", r#"{"description":"no code"}"#, "[1]"] {
            let outcome = answer(200, body);

            assert!(
                matches!(
                    outcome,
                    Outcome::HostFailure(HostFailure::MalformedBody { .. })
                ),
                "{body}: {outcome:?}"
            );
        }
    }

    #[test]
    fn statuses_outside_the_protocol_are_unexpected() {
        for status in [302, 400, 404] {
            assert_eq!(
                answer(status, ""),
                Outcome::HostFailure(HostFailure::UnexpectedStatus { status })
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);

        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
