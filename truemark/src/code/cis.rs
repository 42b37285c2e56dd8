//! The identification code (КИ), the key of our own mark records.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::CodeError;
use super::input;
use super::parts::CodeKind;
use super::structure::{Structure, Wanted};

/// An identification code (КИ, `cis` in our base): `01` + GTIN + `21` + serial for a GS1 code,
/// or the first 21 characters of a tobacco pack's code. It is the marking code without its crypto
/// tail, the key of the mark base, the sold-mark list and `DELETE /unique_product_stamp/<КИ>`.
///
/// Serialises as its text; deserialises through [`Cis::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cis {
    text: String,
    kind: CodeKind,
}

impl Cis {
    /// Reads a КИ from text that holds one: a КИ as such (e.g. from a URL path), or a full
    /// marking code in any form [`MarkingCode::parse`](super::MarkingCode::parse) accepts, whose
    /// crypto tail is then cut off.
    ///
    /// Text without any separator is taken as a КИ as it is: a lost separator is not restored
    /// here, since a КИ has none to lose. Separator-free text of 21 or 29 characters is a tobacco
    /// pack's code.
    ///
    /// # Errors
    /// The same refusals as `MarkingCode::parse`, except that a missing crypto tail is fine; a
    /// crypto tail that is present must be well-formed.
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        let reading = input::read(raw, Wanted::Cis)?;
        Ok(Self::of(&reading.structure))
    }

    pub(super) fn of(structure: &Structure) -> Self {
        Self {
            text: structure.cis_text(),
            kind: structure.kind,
        }
    }

    /// The КИ text, printable ASCII without separators.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The layout of the marking code this КИ belongs to.
    pub fn kind(&self) -> CodeKind {
        self.kind
    }
}

impl fmt::Display for Cis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Cis {
    type Err = CodeError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl AsRef<str> for Cis {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<Cis> for String {
    fn from(cis: Cis) -> Self {
        cis.text
    }
}

impl Serialize for Cis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Cis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}
