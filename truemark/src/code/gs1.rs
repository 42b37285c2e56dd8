//! What GS1 says about element strings: the characters allowed, and each application
//! identifier's length.

/// The group separator (ASCII GS) that ends a variable-length element.
pub(super) const GS: u8 = 0x1D;

/// Whether `byte` belongs to GS1's 82-character set, the only characters a serial, a crypto
/// tail or any other value of a marking code may contain.
///
/// Worth knowing: `\ # $ @ [ ] ^ { } ~ |`, the backtick and the space are *not* in it, which is
/// what makes spellings of the separator such as `\u001d` or `&#29;` recognisable anywhere.
pub(super) fn is_gs1_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!\"%&'()*+,-./:;<=>?_".contains(&byte)
}

/// How long the value of an application identifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Length {
    Fixed(usize),
    UpTo(usize),
}

/// What GS1 fixes about one application identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AiSpec {
    pub length: Length,
    /// The value is digits only.
    pub numeric: bool,
}

const fn fixed_digits(n: usize) -> AiSpec {
    AiSpec {
        length: Length::Fixed(n),
        numeric: true,
    }
}

const fn up_to_digits(n: usize) -> AiSpec {
    AiSpec {
        length: Length::UpTo(n),
        numeric: true,
    }
}

const fn up_to_chars(n: usize) -> AiSpec {
    AiSpec {
        length: Length::UpTo(n),
        numeric: false,
    }
}

/// Reads the application identifier at the start of `bytes`: its digits and its spec.
///
/// Covers the identifiers a marking code can carry (GTIN, serial, dates, weights, prices, batch,
/// the ЧЗ crypto AIs 91–93 …). `None` for anything else: an unknown identifier's length cannot be
/// known, so guessing it could cut a value in the wrong place.
pub(super) fn application_identifier(bytes: &[u8]) -> Option<(&str, AiSpec)> {
    let prefix = two_digits(bytes)?;
    let (ai_len, spec) = match prefix {
        0 => (2, fixed_digits(18)),
        1 | 2 => (2, fixed_digits(14)),
        10 | 21 | 22 => (2, up_to_chars(20)),
        11..=17 => (2, fixed_digits(6)),
        20 => (2, fixed_digits(2)),
        24 | 25 | 40 | 41 | 42 | 71 => (3, three_digit_ai(digit(bytes, 2)?, prefix)?),
        30 | 37 => (2, up_to_digits(8)),
        31..=36 => (4, fixed_digits(6)),
        39 => (4, amount_ai(digit(bytes, 2)?)?),
        70 | 80 | 81 | 82 => (4, four_digit_ai(two_digits(bytes.get(2..)?)?, prefix)?),
        90..=99 => (2, up_to_chars(90)),
        _ => return None,
    };
    let ai = std::str::from_utf8(bytes.get(..ai_len)?).ok()?;
    ai.bytes().all(|b| b.is_ascii_digit()).then_some((ai, spec))
}

fn three_digit_ai(third: u8, prefix: u8) -> Option<AiSpec> {
    Some(match (prefix, third) {
        (24, 0 | 1) | (25, 0 | 1) | (40, 0 | 1 | 3) => up_to_chars(30),
        (24, 2) => up_to_digits(6),
        (24, 3) | (25, 4) | (42, 0) | (71, 0..=6) => up_to_chars(20),
        (40, 2) => fixed_digits(17),
        (41, 0..=7) => fixed_digits(13),
        (42, 1) => up_to_chars(12),
        (42, 2 | 4 | 6) => fixed_digits(3),
        (42, 3 | 5) => up_to_digits(15),
        (42, 7) => up_to_chars(3),
        _ => return None,
    })
}

fn four_digit_ai(last_two: u8, prefix: u8) -> Option<AiSpec> {
    Some(match (prefix, last_two) {
        (70, 1) => fixed_digits(13),
        (70, 2) | (70, 20..=23) | (80, 3 | 4) => up_to_chars(30),
        (70, 3) => fixed_digits(10),
        (70, 4) => up_to_digits(4),
        (70, 5) => up_to_chars(12),
        (70, 6) => fixed_digits(6),
        (70, 7) | (80, 8 | 11) => up_to_digits(12),
        (70, 8) => up_to_chars(3),
        (70, 9) => up_to_chars(10),
        (70, 10) => up_to_chars(2),
        (80, 1) => fixed_digits(14),
        (80, 2 | 12) => up_to_chars(20),
        (80, 5) => fixed_digits(6),
        (80, 6 | 17 | 18 | 26) => fixed_digits(18),
        (80, 7) => up_to_chars(34),
        (80, 9) => up_to_chars(50),
        (80, 10) => up_to_chars(30),
        (80, 13 | 20) => up_to_chars(25),
        (80, 19) => up_to_digits(10),
        (81, 10 | 12) | (82, 0) => up_to_chars(70),
        (81, 11) => fixed_digits(4),
        _ => return None,
    })
}

fn amount_ai(third: u8) -> Option<AiSpec> {
    Some(match third {
        0 | 2 => up_to_digits(15),
        1 | 3 => up_to_digits(18),
        4 => fixed_digits(4),
        5 => fixed_digits(6),
        _ => return None,
    })
}

/// Whether GS1 fixes the length of `ai` so firmly that no separator is needed after it
/// (GS1 General Specifications, the "predefined length" table). Fixed-length AIs outside that
/// table, such as `8005`, still end with a separator.
pub(super) fn has_predefined_length(ai: &str) -> bool {
    matches!(
        two_digits(ai.as_bytes()),
        Some(0..=4 | 11..=20 | 31..=36 | 41)
    )
}

fn two_digits(bytes: &[u8]) -> Option<u8> {
    Some(digit(bytes, 0)? * 10 + digit(bytes, 1)?)
}

fn digit(bytes: &[u8], at: usize) -> Option<u8> {
    let byte = *bytes.get(at)?;
    byte.is_ascii_digit().then(|| byte - b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(text: &str) -> Option<(&str, AiSpec)> {
        application_identifier(text.as_bytes())
    }

    #[test]
    fn the_elements_of_marking_codes_have_their_gs1_lengths() {
        assert_eq!(spec_of("0104607"), Some(("01", fixed_digits(14))));
        assert_eq!(spec_of("21abc"), Some(("21", up_to_chars(20))));
        assert_eq!(spec_of("8005090000"), Some(("8005", fixed_digits(6))));
        assert_eq!(spec_of("17250131"), Some(("17", fixed_digits(6))));
        assert_eq!(spec_of("3103000350"), Some(("3103", fixed_digits(6))));
        assert_eq!(spec_of("240abc"), Some(("240", up_to_chars(30))));
        assert_eq!(spec_of("7003250131"), Some(("7003", fixed_digits(10))));
        assert_eq!(spec_of("93dGVz"), Some(("93", up_to_chars(90))));
    }

    #[test]
    fn unknown_or_non_numeric_identifiers_are_not_guessed() {
        for text in ["", "0", "5512", "2399", "8099", "a1", "2"] {
            assert_eq!(spec_of(text), None, "{text:?}");
        }
    }

    #[test]
    fn separators_are_redundant_only_after_predefined_lengths() {
        for ai in ["00", "01", "17", "3103", "410"] {
            assert!(has_predefined_length(ai), "{ai}");
        }
        for ai in ["21", "10", "8005", "240", "93", "7003"] {
            assert!(!has_predefined_length(ai), "{ai}");
        }
    }

    #[test]
    fn the_gs1_set_has_82_characters() {
        let count = (0u8..=127).filter(|b| is_gs1_char(*b)).count();

        assert_eq!(count, 82);
        assert!(!is_gs1_char(b'\\') && !is_gs1_char(b'#') && !is_gs1_char(GS));
    }
}
