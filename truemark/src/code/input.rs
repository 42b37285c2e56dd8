//! The first look at raw scanned text: what surrounds the code, what it is wrapped in, and what
//! is clearly not a marking code at all.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::CodeError;
use super::gs1::GS;
use super::repair::Repair;
use super::separator::{self, Layout};
use super::structure::{self, Reading, Wanted};

/// Longer input is not a scan of one code. The longest ЧЗ code (`91`/`92` with an 88-character
/// signature plus a few elements) is under 200 characters; spelled separators and base64 leave
/// ample room below this.
const MAX_INPUT_LEN: usize = 1024;

/// The shortest base64 worth decoding: that of a 29-character pack code is 39 characters
/// without padding.
const MIN_BASE64_LEN: usize = 32;

/// Standard alphabet, padding optional: drivers differ on the padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Symbology identifier letters as they arrive with Caps Lock on: `]d` (Data Matrix), `]C`
/// (GS1-128) and `]Q` (QR Code) with their case inverted. No symbology used for marking codes is
/// identified by these letters.
const CAPS_LOCK_IDENTIFIERS: [u8; 3] = [b'D', b'c', b'q'];

/// Reads the structure of the code in `raw`, with every repair it took.
///
/// The text is read as it is first; only when that fails is it tried as base64, since a code
/// with its separators is never valid base64 but a КИ made of letters and digits can be.
pub(super) fn read(raw: &str, wanted: Wanted) -> Result<Reading, CodeError> {
    if raw.len() > MAX_INPUT_LEN {
        return Err(CodeError::Malformed);
    }
    let mut repairs = Vec::new();
    let text = trim(raw, &mut repairs);
    if text.is_empty() {
        return Err(CodeError::EmptyCode);
    }

    let as_sent = read_text(text, wanted, repairs.clone());
    let Err(error) = as_sent else { return as_sent };
    match decode_base64(text) {
        Some(decoded) => {
            repairs.push(Repair::Base64Decoded);
            // Text that decodes to printable ASCII was base64 by intent: its refusal is the
            // one that describes the code.
            read_text(&decoded, wanted, repairs)
        }
        None => Err(error),
    }
}

/// Reads the code in `text` once any base64 wrapping is gone.
fn read_text(text: &str, wanted: Wanted, mut repairs: Vec<Repair>) -> Result<Reading, CodeError> {
    let text = trim(text, &mut repairs);
    if text.is_empty() {
        return Err(CodeError::EmptyCode);
    }
    refuse_foreign_input(text)?;
    let text = strip_symbology_identifier(text, &mut repairs)?;
    refuse_product_barcode(text)?;
    let text = separator::strip_leading(text, &mut repairs);
    if text.is_empty() {
        return Err(CodeError::EmptyCode);
    }
    let layout = Layout::of(text, &mut repairs)?;

    let mut reading = structure::read(&layout, wanted)?;
    repairs.append(&mut reading.repairs);
    reading.repairs = super::repair::deduplicated(repairs);
    Ok(reading)
}

/// Drops whitespace (CR, LF, tabs, no-break spaces …), NUL and byte-order marks around the code.
/// None of them can be part of a code, so this never changes one.
fn trim<'a>(text: &'a str, repairs: &mut Vec<Repair>) -> &'a str {
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}' || c == '\0');
    if trimmed.len() != text.len() {
        repairs.push(Repair::SurroundingWhitespaceTrimmed);
    }
    trimmed
}

/// Decodes `text` if it is base64 of printable text, the way some fiscal drivers pass codes.
fn decode_base64(text: &str) -> Option<String> {
    let looks_encoded = text.len() >= MIN_BASE64_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !looks_encoded {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(text).ok()?).ok()?;
    let printable = decoded
        .bytes()
        .all(|b| b == GS || b.is_ascii_graphic() || b.is_ascii_whitespace());
    printable.then_some(decoded)
}

/// Refuses the printed human-readable text and input typed through a Russian layout.
///
/// A keyboard-wedge scanner in the Russian layout sends the keys of the code, so letters arrive
/// as Cyrillic. Mapping ЙЦУКЕН back to QWERTY is unambiguous for letters but not for the rest:
/// the key of `/` types `.` and that of `&` types `?`, while scanners that send some characters
/// as Alt codes bypass the layout, so a `.` or `?` in such input may stand for itself or for
/// `/` or `&`, all of which serials contain. The crypto tail must arrive byte for byte, so the
/// cashier is asked to switch the layout instead of iMark guessing.
fn refuse_foreign_input(text: &str) -> Result<(), CodeError> {
    if is_printed_text(text) {
        return Err(CodeError::PrintedTextNotDataMatrix);
    }
    if text
        .chars()
        .any(|c| ('\u{0400}'..='\u{04ff}').contains(&c) || c == '№')
    {
        return Err(CodeError::WrongKeyboardLayout);
    }
    Ok(())
}

/// The human-readable line starts with an application identifier in parentheses, `(01)`; a
/// scanned code never starts with `(`.
fn is_printed_text(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('(') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (2..=4).contains(&digits) && rest.as_bytes().get(digits) == Some(&b')')
}

/// Drops an AIM symbology identifier (`]` + symbology letter + modifier) that the reader put in
/// front of the code.
///
/// Caps Lock cannot be repaired: it inverts the case of every letter, and the crypto tail is
/// case-sensitive (an inverted tail is a different, invalid tail that ЧЗ rejects). It can only
/// be recognised where the right case is known, which is in the identifier; elsewhere the code
/// goes to ЧЗ as it is and fails verification there.
fn strip_symbology_identifier<'a>(
    text: &'a str,
    repairs: &mut Vec<Repair>,
) -> Result<&'a str, CodeError> {
    let &[b']', letter, modifier, ..] = text.as_bytes() else {
        return Ok(text);
    };
    if !letter.is_ascii_alphabetic() || !modifier.is_ascii_alphanumeric() {
        return Ok(text);
    }
    if CAPS_LOCK_IDENTIFIERS.contains(&letter) {
        return Err(CodeError::CapsLockOn);
    }
    let (identifier, code) = text.split_at_checked(3).unwrap_or((text, ""));
    repairs.push(Repair::SymbologyIdentifierRemoved {
        identifier: identifier.to_owned(),
    });
    Ok(code)
}

/// Refuses an EAN-8, UPC-A, EAN-13 or GTIN-14: digits only, of one of their lengths.
fn refuse_product_barcode(text: &str) -> Result<(), CodeError> {
    let digits_only = text.bytes().all(|b| b.is_ascii_digit());
    if digits_only && matches!(text.len(), 8 | 12 | 13 | 14) {
        return Err(CodeError::NotAMarkingCode);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gs_byte_is_not_whitespace_and_survives_trimming() {
        let mut repairs = Vec::new();

        assert_eq!(trim("\u{1d}01\u{1d}", &mut repairs), "\u{1d}01\u{1d}");
        assert!(repairs.is_empty());
    }

    #[test]
    fn whitespace_nul_and_bom_around_the_code_are_trimmed() {
        let mut repairs = Vec::new();

        assert_eq!(trim("\u{feff} 01\r\n\0", &mut repairs), "01");
        assert_eq!(repairs, [Repair::SurroundingWhitespaceTrimmed]);
    }

    #[test]
    fn printed_text_is_recognised_by_its_parenthesised_ai() {
        assert!(is_printed_text("(01)04670540176099(21)5'W9Um"));
        assert!(is_printed_text("(8005)090000"));
        assert!(!is_printed_text("(abc)"));
        assert!(!is_printed_text("0104670540176099215(W9Um"));
    }

    #[test]
    fn base64_is_decoded_only_into_printable_text() {
        let encoded = "MDEwNDY3MDU0MDE3NjA5OTIxNU5OKmNNHTkzZEdWeg==";

        assert_eq!(
            decode_base64(encoded).as_deref(),
            Some("0104670540176099215NN*cM\u{1d}93dGVz")
        );
        assert_eq!(
            decode_base64("0104670540176099215NNxcM0104670540176099"),
            None
        );
    }

    #[test]
    fn the_symbology_identifier_is_dropped_and_noted() {
        let mut repairs = Vec::new();

        assert_eq!(
            strip_symbology_identifier("]C101046", &mut repairs),
            Ok("01046")
        );
        assert_eq!(
            repairs,
            [Repair::SymbologyIdentifierRemoved {
                identifier: "]C1".into()
            }]
        );
    }

    #[test]
    fn an_identifier_with_inverted_case_means_caps_lock() {
        for text in ["]D201046", "]c101046", "]q301046"] {
            assert_eq!(
                strip_symbology_identifier(text, &mut Vec::new()),
                Err(CodeError::CapsLockOn)
            );
        }
    }
}
