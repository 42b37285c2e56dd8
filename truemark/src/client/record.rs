//! The evidence of one True API call, ready to be stored.
//!
//! ПП 1944 lets a sale go ahead unchecked only if the seller can show that it tried, so every
//! call leaves a record: where it went, when, how long it took, and what was said both ways.
//! The API key is never part of it: a record holds no headers at all.

use super::urls::Endpoint;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use std::time::Duration;
use url::Url;

/// How much of a body a record keeps: 256 KiB, enough for a receipt of a hundred codes.
/// Longer bodies are cut at a character boundary and marked [`RecordedBody::truncated`].
pub const RECORDED_BODY_LIMIT: usize = 256 * 1024;

/// One True API call as it happened. Serialises to JSON for storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExchangeRecord {
    pub endpoint: Endpoint,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The full URL called. It carries no secret: addresses with credentials or a query are
    /// refused when they are parsed.
    #[serde(serialize_with = "url_as_text")]
    pub url: Url,
    /// When the call started, in UTC.
    pub started_at: DateTime<Utc>,
    /// From the start until the outcome was known.
    #[serde(rename = "duration_ms", serialize_with = "duration_as_millis")]
    pub duration: Duration,
    /// The answer's status, if one came.
    pub http_status: Option<u16>,
    /// What was sent, for calls with a body.
    pub request_body: Option<RecordedBody>,
    /// What came back, as far as it arrived (partly, when the call timed out while reading it).
    pub answer_body: Option<RecordedBody>,
    /// The transport error, for calls that got no complete answer.
    pub error: Option<String>,
}

impl ExchangeRecord {
    /// The scheme, host and port called, e.g. `https://cdn01.crpt.ru`.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
}

/// A body as text, exactly as it travelled up to [`RECORDED_BODY_LIMIT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedBody {
    /// The body decoded as UTF-8; a byte sequence that is not UTF-8 reads as U+FFFD.
    pub text: String,
    /// The body's full length in bytes, also when `text` is cut short.
    pub len: usize,
    /// `text` holds only the start of the body.
    pub truncated: bool,
}

impl RecordedBody {
    /// Records `bytes`, cut to [`RECORDED_BODY_LIMIT`].
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::capped(bytes, RECORDED_BODY_LIMIT)
    }

    fn capped(bytes: &[u8], limit: usize) -> Self {
        // NUL cannot be stored in a Postgres text or jsonb value; it reads as U+FFFD like any
        // other byte that is not text.
        let text = String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}");
        let truncated = text.len() > limit;
        let kept = if truncated {
            &text[..floor_char_boundary(&text, limit)]
        } else {
            &text[..]
        };
        Self {
            text: kept.to_owned(),
            len: bytes.len(),
            truncated,
        }
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0)
}

fn url_as_text<S: Serializer>(url: &Url, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(url.as_str())
}

fn duration_as_millis<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_body_is_kept_whole() {
        let body = RecordedBody::from_bytes("{\"cis\":\"01…\"}".as_bytes());

        assert_eq!(body.text, "{\"cis\":\"01…\"}");
        assert!(!body.truncated);
    }

    #[test]
    fn a_long_body_is_cut_between_characters() {
        let text = "жж".repeat(3);

        let body = RecordedBody::capped(text.as_bytes(), 5);

        assert_eq!(body.text, "жж");
        assert_eq!(body.len, 12);
        assert!(body.truncated);
    }

    #[test]
    fn a_body_that_is_not_utf8_is_still_recorded() {
        let body = RecordedBody::from_bytes(b"ok \xff");

        assert_eq!(body.text, "ok \u{fffd}");
        assert_eq!(body.len, 4);
    }
}
