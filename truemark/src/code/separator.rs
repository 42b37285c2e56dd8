//! The group separator in all the shapes tills deliver it, and the [`Layout`] of a code once
//! every certain separator is the GS byte.
//!
//! Spellings fall in two classes. A *certain* spelling contains a character outside GS1's set
//! (`\`, `#`, `{`, `^`, `~`), so it can never be part of a serial or a crypto tail: wherever it
//! stands, it is a separator. An *ambiguous* spelling (`<GS>`, `<FNC1>`) is made only of
//! characters that real serials contain, so it is read as a separator only where the structure of
//! the code puts one, and only when the code has no certain separator at all (a till that sends
//! real separators does not also spell them out).

use std::ops::Range;

use super::CodeError;
use super::gs1::{GS, is_gs1_char};
use super::repair::Repair;

/// Text that may stand for GS but is made of characters that serials also contain.
const AMBIGUOUS_SPELLINGS: [&[u8]; 2] = [b"<GS>", b"<FNC1>"];

/// Certain spellings that are not escapes: FNC1 as label software writes it, and the caret
/// notation that terminals show for the GS control character.
const CERTAIN_LITERALS: [&[u8]; 4] = [b"{FNC1}", b"{GS}", b"^]", b"~1"];

/// The code as ASCII bytes with each certain separator as GS, plus the places where an ambiguous
/// spelling of the separator stands (still written out in `bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    bytes: Vec<u8>,
    ambiguous: Vec<Range<usize>>,
}

impl Layout {
    /// Lays out `text`: replaces every certain spelling of the separator by GS (noting each
    /// spelling in `repairs`) and marks the ambiguous ones.
    ///
    /// # Errors
    /// [`CodeError::InvalidCharacters`] for any character that is neither in GS1's set nor part
    /// of a separator spelling.
    pub(super) fn of(text: &str, repairs: &mut Vec<Repair>) -> Result<Self, CodeError> {
        let mut bytes = Vec::with_capacity(text.len());
        let mut ambiguous = Vec::new();
        let mut rest = text.as_bytes();

        while let Some(&byte) = rest.first() {
            let taken = if let Some(len) = certain_spelling_len(rest) {
                note_spelling(rest, len, repairs);
                bytes.push(GS);
                len
            } else if let Some(len) = ambiguous_spelling_len(rest) {
                ambiguous.push(bytes.len()..bytes.len() + len);
                bytes.extend_from_slice(rest.get(..len).unwrap_or_default());
                len
            } else if byte == GS || is_gs1_char(byte) {
                bytes.push(byte);
                1
            } else {
                return Err(CodeError::InvalidCharacters);
            };
            rest = rest.get(taken..).unwrap_or_default();
        }

        // A reader's suffix, not part of the code: drop it before deciding how to read `<GS>`.
        if bytes.last() == Some(&GS) {
            while bytes.pop_if(|b| *b == GS).is_some() {}
            repairs.push(Repair::ExtraSeparatorRemoved);
        }
        if bytes.contains(&GS) {
            ambiguous.clear();
        }
        Ok(Self { bytes, ambiguous })
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where ambiguous spellings stand, in order; empty when the code has a certain separator.
    pub(super) fn ambiguous_spans(&self) -> &[Range<usize>] {
        &self.ambiguous
    }

    /// Whether the code has any separator, certain or ambiguous.
    pub(super) fn has_separator(&self) -> bool {
        !self.ambiguous.is_empty() || self.bytes.contains(&GS)
    }

    /// The same layout without a final full stop, if it ends with one.
    pub(super) fn without_trailing_full_stop(&self) -> Option<Self> {
        let (last, kept) = self.bytes.split_last()?;
        (*last == b'.').then(|| Self {
            bytes: kept.to_vec(),
            ambiguous: self.ambiguous.clone(),
        })
    }
}

/// Drops separators (in any spelling) in front of the code: scanners send the FNC1 that opens a
/// GS1 symbol as one. At the very start even `<GS>` is certain, since codes begin with digits.
pub(super) fn strip_leading<'a>(text: &'a str, repairs: &mut Vec<Repair>) -> &'a str {
    let mut rest = text;
    while let Some(len) = leading_separator_len(rest.as_bytes()) {
        let Some(after) = rest.get(len..) else { break };
        rest = after;
    }
    if rest.len() != text.len() {
        repairs.push(Repair::LeadingSeparatorRemoved);
    }
    rest
}

fn leading_separator_len(bytes: &[u8]) -> Option<usize> {
    match bytes.first() {
        Some(&GS) => Some(1),
        Some(_) => certain_spelling_len(bytes).or_else(|| ambiguous_spelling_len(bytes)),
        None => None,
    }
}

fn note_spelling(rest: &[u8], len: usize, repairs: &mut Vec<Repair>) {
    let spelling = rest.get(..len).unwrap_or_default();
    repairs.push(Repair::SeparatorSpellingReplaced {
        spelling: String::from_utf8_lossy(spelling).into_owned(),
    });
}

/// The length of the certain separator spelling at the start of `bytes`, if there is one.
fn certain_spelling_len(bytes: &[u8]) -> Option<usize> {
    escaped_gs_len(bytes)
        .or_else(|| character_reference_len(bytes))
        .or_else(|| {
            CERTAIN_LITERALS
                .iter()
                .find_map(|literal| prefix_len(bytes, literal))
        })
}

/// The length of the ambiguous separator spelling at the start of `bytes`, if there is one.
pub(super) fn ambiguous_spelling_len(bytes: &[u8]) -> Option<usize> {
    AMBIGUOUS_SPELLINGS
        .iter()
        .find_map(|spelling| prefix_len(bytes, spelling))
}

/// A backslash escape of GS: `\u001d` (JSON), `\x1d` (C, Python) or the broken `\u1d` written
/// by drivers that format the byte without padding. Extra backslashes from double escaping are
/// part of the spelling.
///
/// Only these exact forms: a greedy hex reader would take `\u1d21` (GS, then AI 21) for U+1D21.
fn escaped_gs_len(bytes: &[u8]) -> Option<usize> {
    let backslashes = bytes.iter().take_while(|b| **b == b'\\').count();
    if backslashes == 0 {
        return None;
    }
    let escape = bytes.get(backslashes..)?;
    [b"u001d".as_slice(), b"u1d", b"x1d"]
        .iter()
        .find_map(|form| prefix_len(escape, form))
        .map(|len| backslashes + len)
}

/// An XML/HTML numeric character reference to GS: `&#29;`, `&#x1D;`, `&#x001d;` … The closing
/// `;` is required: without it `&#2993…` could not be told apart from GS followed by AI 93.
fn character_reference_len(bytes: &[u8]) -> Option<usize> {
    let body = bytes.strip_prefix(b"&#")?;
    let (radix, digits_at) = match body.first() {
        Some(b'x' | b'X') => (16, 1),
        _ => (10, 0),
    };
    let digits = body.get(digits_at..)?;
    let count = digits.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if count == 0 || count > 6 || digits.get(count) != Some(&b';') {
        return None;
    }
    let text = std::str::from_utf8(digits.get(..count)?).ok()?;
    let value = u32::from_str_radix(text, radix).ok()?;
    (value == u32::from(GS)).then_some(2 + digits_at + count + 1)
}

fn prefix_len(bytes: &[u8], spelling: &[u8]) -> Option<usize> {
    let head = bytes.get(..spelling.len())?;
    head.eq_ignore_ascii_case(spelling)
        .then_some(spelling.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laid_out(text: &str) -> Layout {
        Layout::of(text, &mut Vec::new()).unwrap()
    }

    #[test]
    fn every_certain_spelling_becomes_the_gs_byte() {
        for spelling in [
            "\u{1d}",
            "\\u001d",
            "\\u001D",
            "\\U001D",
            "\\u1d",
            "\\u1D",
            "\\x1d",
            "\\\\u001d",
            "&#29;",
            "&#029;",
            "&#x1D;",
            "&#x1d;",
            "&#X001D;",
            "{FNC1}",
            "{fnc1}",
            "{GS}",
            "^]",
            "~1",
        ] {
            let layout = laid_out(&format!("21ab{spelling}93cd"));

            assert_eq!(layout.bytes(), b"21ab\x1d93cd", "{spelling:?}");
        }
    }

    #[test]
    fn the_broken_escape_is_not_read_greedily() {
        let layout = laid_out("01046800462647\\u1d215l>VEUc\\u1d93Is54");

        assert_eq!(layout.bytes(), b"01046800462647\x1d215l>VEUc\x1d93Is54");
    }

    #[test]
    fn ambiguous_spellings_stay_text_and_are_marked() {
        let layout = laid_out("21a<GS>b<FNC1>93cd");

        assert_eq!(layout.bytes(), b"21a<GS>b<FNC1>93cd");
        assert_eq!(layout.ambiguous_spans(), [3..7, 8..14]);
    }

    #[test]
    fn ambiguous_spellings_are_data_once_a_certain_separator_is_present() {
        let layout = laid_out("21a<GS>b\\u001d93cd");

        assert_eq!(layout.bytes(), b"21a<GS>b\x1d93cd");
        assert!(layout.ambiguous_spans().is_empty());
    }

    #[test]
    fn references_to_other_characters_are_not_separators() {
        for text in [
            "&#30;", "&#x1E;", "&#29", "&#;", "\\u001e", "\\x1e", "{FNC2}", "~2",
        ] {
            assert_eq!(
                Layout::of(text, &mut Vec::new()),
                Err(CodeError::InvalidCharacters),
                "{text:?}"
            );
        }
    }

    #[test]
    fn characters_outside_gs1_are_refused() {
        for text in [
            "ab cd",
            "ab\tcd",
            "ab\u{0}cd",
            "ab@cd",
            "ab€cd",
            "ab\u{fffd}",
        ] {
            assert_eq!(
                Layout::of(text, &mut Vec::new()),
                Err(CodeError::InvalidCharacters)
            );
        }
    }

    #[test]
    fn leading_separators_in_any_spelling_are_dropped() {
        for text in [
            "\u{1d}01",
            "<FNC1>01",
            "<GS>01",
            "{FNC1}\u{1d}01",
            "\\u001d01",
        ] {
            let mut repairs = Vec::new();

            assert_eq!(strip_leading(text, &mut repairs), "01", "{text:?}");
            assert_eq!(repairs, [Repair::LeadingSeparatorRemoved]);
        }
    }

    #[test]
    fn each_spelling_used_is_noted() {
        let mut repairs = Vec::new();

        Layout::of("21ab&#29;93cd", &mut repairs).unwrap();

        assert_eq!(
            repairs,
            [Repair::SeparatorSpellingReplaced {
                spelling: "&#29;".into()
            }]
        );
    }
}
