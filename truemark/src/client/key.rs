//! The tenant's True API key, kept out of every log and record.

use reqwest::header::HeaderValue;
use std::fmt;

/// The "token for cash registers" a participant issues in its ЧЗ account (one per ИНН), sent
/// as `X-API-KEY` on every True API call.
///
/// `Debug` and `Display` print `***`, so the key cannot leak through a log line or an error
/// message; [`Self::expose_secret`] is the one way to read it back. The header it produces is
/// marked sensitive, so HTTP/2 never stores it in a compression table.
#[derive(Clone, PartialEq, Eq)]
pub struct TrueApiKey {
    header: HeaderValue,
}

/// Why a text cannot be a True API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTrueApiKey {
    #[error("the key is empty")]
    Empty,
    #[error("the key must be printable ASCII with no spaces")]
    Characters,
}

impl TrueApiKey {
    /// Validates a key as pasted from the ЧЗ account: surrounding whitespace is dropped, and
    /// what remains must be printable ASCII (keys are UUID-like tokens).
    ///
    /// # Errors
    /// When nothing remains, or it holds a space, a control or a non-ASCII character.
    pub fn new(text: &str) -> Result<Self, InvalidTrueApiKey> {
        let key = text.trim();
        if key.is_empty() {
            return Err(InvalidTrueApiKey::Empty);
        }
        if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(InvalidTrueApiKey::Characters);
        }

        let mut header =
            HeaderValue::from_str(key).map_err(|_invalid| InvalidTrueApiKey::Characters)?;
        header.set_sensitive(true);
        Ok(Self { header })
    }

    /// The key itself. Only for sending it, or storing it encrypted; never for logging.
    pub fn expose_secret(&self) -> &str {
        // `new` admitted printable ASCII only, which always reads back as text.
        self.header.to_str().unwrap_or_default()
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }
}

impl fmt::Debug for TrueApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrueApiKey(***)")
    }
}

impl fmt::Display for TrueApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "4d4f6a2e-0c1b-4c1e-9a51-9c3b1e0f2a77";

    #[test]
    fn the_key_never_prints() {
        let key = TrueApiKey::new(KEY).unwrap();

        assert!(!format!("{key:?} {key} {key:#?}").contains(KEY));
    }

    #[test]
    fn a_pasted_key_loses_its_surrounding_whitespace() {
        let key = TrueApiKey::new(&format!("  {KEY}\n")).unwrap();

        assert_eq!(key.expose_secret(), KEY);
    }

    #[test]
    fn unusable_keys_are_refused() {
        assert_eq!(TrueApiKey::new(" "), Err(InvalidTrueApiKey::Empty));
        assert_eq!(
            TrueApiKey::new("two words"),
            Err(InvalidTrueApiKey::Characters)
        );
        assert_eq!(TrueApiKey::new("ключ"), Err(InvalidTrueApiKey::Characters));
        assert_eq!(
            TrueApiKey::new("a\u{7}b"),
            Err(InvalidTrueApiKey::Characters)
        );
    }
}
