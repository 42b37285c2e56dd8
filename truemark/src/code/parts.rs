//! The parts a marking code is made of.

use std::fmt;

use serde::Serialize;

/// The layout of a marking code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// A GS1 element string: `01` GTIN, `21` serial, perhaps other elements, and the crypto part
    /// (`93`, or `91` + `92`), with GS separators.
    Gs1DataMatrix,
    /// The 29-character code of a tobacco pack (nicotine products use it too): GTIN(14),
    /// serial(7), encoded maximum retail price(4), verification code(4); no AIs, no separators.
    TobaccoPack,
}

/// A GTIN-14: exactly 14 ASCII digits.
///
/// The check digit is not verified: ГИС МТ does that and answers with its own error code, while
/// a local refusal would only hide what ЧЗ thinks of the code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Gtin(String);

impl Gtin {
    /// Wraps 14 digits; `None` for anything else.
    pub(super) fn new(digits: &str) -> Option<Self> {
        let valid = digits.len() == 14 && digits.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| Self(digits.to_owned()))
    }

    /// The 14 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Gtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cryptographic part of a marking code, case-sensitive and never altered by parsing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CryptoTail {
    /// The 4-character verification code: AI `93` of a GS1 code, or the last four characters
    /// of a tobacco pack's code.
    VerificationCode(String),
    /// AI `91`, the 4-character verification key id, and AI `92`, the 44- or 88-character
    /// signature (medicines, and early codes of other groups).
    Signature {
        /// The value of AI `91`.
        key_id: String,
        /// The value of AI `92`.
        signature: String,
    },
}

/// A GS1 element of a code: application identifier and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Element {
    ai: String,
    value: String,
}

impl Element {
    pub(super) fn new(ai: &str, value: &str) -> Self {
        Self {
            ai: ai.to_owned(),
            value: value.to_owned(),
        }
    }

    /// The application identifier, e.g. `8005` or `3103`.
    pub fn ai(&self) -> &str {
        &self.ai
    }

    /// The value exactly as it was in the code.
    pub fn value(&self) -> &str {
        &self.value
    }
}
