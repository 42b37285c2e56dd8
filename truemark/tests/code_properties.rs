//! Properties of marking-code parsing over generated input: no input panics, whatever is
//! accepted is canonical on a second read, and every artefact of a valid code reads back to it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::sample::select;
use truemark::code::{Cis, MarkingCode};

const GS: &str = "\u{1d}";

/// GS1's 82 characters, the alphabet of serials and tails.
const GS1_CHARS: &str =
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

const CERTAIN_SPELLINGS: [&str; 12] = [
    "\\u001d",
    "\\u001D",
    "\\\\u001d",
    "\\u1d",
    "\\x1d",
    "&#29;",
    "&#x1D;",
    "&#x1d;",
    "{FNC1}",
    "{GS}",
    "^]",
    "~1",
];
const PREFIXES: [&str; 7] = ["", "]d2", "]C1", "]Q3", GS, "<FNC1>", "]d2\u{1d}"];
const SUFFIXES: [&str; 8] = ["", "\r\n", "\n", " ", "\t", ".", ".\r\n", GS];

/// A valid code, canonical, with the КИ it must yield.
#[derive(Debug, Clone)]
struct Generated {
    full: String,
    cis: String,
}

/// Text of `len` characters drawn from `alphabet`.
fn text_of(alphabet: &str, len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(alphabet.chars().collect::<Vec<_>>()), len)
        .prop_map(|chars| chars.into_iter().collect())
}

fn gs1_text(len: usize) -> impl Strategy<Value = String> {
    text_of(GS1_CHARS, len)
}

fn digits(len: usize) -> impl Strategy<Value = String> {
    text_of("0123456789", len)
}

fn serial() -> impl Strategy<Value = String> {
    prop_oneof![gs1_text(6), gs1_text(7), gs1_text(13)]
}

fn crypto_tail() -> impl Strategy<Value = String> {
    const BASE64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let signature = prop_oneof![
        text_of(BASE64, 43).prop_map(|text| format!("{text}=")),
        text_of(BASE64, 86).prop_map(|text| format!("{text}==")),
    ];
    prop_oneof![
        gs1_text(4).prop_map(|code| format!("93{code}")),
        (gs1_text(4), signature).prop_map(|(key, signature)| format!("91{key}{GS}92{signature}")),
    ]
}

fn gs1_code() -> impl Strategy<Value = Generated> {
    (
        digits(14),
        serial(),
        proptest::option::of(digits(6)),
        proptest::option::of(digits(6)),
        crypto_tail(),
        proptest::option::of(digits(6)),
    )
        .prop_map(|(gtin, serial, price, expiry, tail, weight)| {
            let cis = format!("01{gtin}21{serial}");
            let mut full = format!("{cis}{GS}");
            if let Some(price) = &price {
                full.push_str(&format!("8005{price}{GS}"));
            }
            if let Some(expiry) = &expiry {
                full.push_str(&format!("17{expiry}"));
            }
            full.push_str(&tail);
            if let Some(weight) = &weight {
                full.push_str(&format!("{GS}3103{weight}"));
            }
            Generated { full, cis }
        })
}

/// A GS1 code with nothing but GTIN, serial and crypto tail.
fn bare_gs1_code() -> impl Strategy<Value = Generated> {
    (digits(14), serial(), crypto_tail()).prop_map(|(gtin, serial, tail)| {
        let cis = format!("01{gtin}21{serial}");
        Generated {
            full: format!("{cis}{GS}{tail}"),
            cis,
        }
    })
}

fn pack_code() -> impl Strategy<Value = Generated> {
    (digits(14), gs1_text(7), gs1_text(4), gs1_text(4)).prop_map(|(gtin, serial, mrp, check)| {
        Generated {
            full: format!("{gtin}{serial}{mrp}{check}"),
            cis: format!("{gtin}{serial}"),
        }
    })
}

fn valid_code() -> impl Strategy<Value = Generated> {
    prop_oneof![3 => gs1_code(), 1 => pack_code()]
}

/// Fragments that make input look like a marking code, to drive parsing deep.
fn code_soup() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        select(vec![
            "01", "21", "93", "91", "92", "8005", "17", "3103", "240", "10", GS, "<GS>", "<FNC1>",
            "\\u001d", "\\u1d", "&#29;", "~1", "]d2", ".", "(", ")", " ", "\r\n", "==",
        ])
        .prop_map(str::to_owned),
        digits(14),
        gs1_text(1),
        gs1_text(4),
    ];
    proptest::collection::vec(fragment, 0..16).prop_map(|parts| parts.concat())
}

/// Whatever is accepted must read again, from its canonical form, as the same code with no
/// repairs, and as a КИ, as its КИ.
fn assert_canonical_on_reread(accepted: &MarkingCode) -> Result<(), TestCaseError> {
    let again = MarkingCode::parse(accepted.full()).map_err(|e| {
        TestCaseError::fail(format!("{:?} refused on re-read: {e:?}", accepted.full()))
    })?;
    prop_assert_eq!(again.full(), accepted.full());
    prop_assert_eq!(again.cis(), accepted.cis());
    prop_assert!(again.repairs().is_empty(), "repairs {:?}", again.repairs());
    let cis = Cis::parse(accepted.full());
    prop_assert_eq!(cis.as_ref(), Ok(accepted.cis()));
    Ok(())
}

fn mutated(code: &str, edits: &[(usize, u8, String)]) -> String {
    let mut chars: Vec<String> = code.chars().map(String::from).collect();
    for (position, kind, fragment) in edits {
        let at = position % (chars.len() + 1);
        match kind % 3 {
            0 => chars.insert(at, fragment.clone()),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = fragment.clone(),
            _ => chars.push(fragment.clone()),
        }
    }
    chars.concat()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(code) = MarkingCode::parse(&text) {
            assert_canonical_on_reread(&code)?;
        }
        let _ = Cis::parse(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);

        if let Ok(code) = MarkingCode::parse(&text) {
            assert_canonical_on_reread(&code)?;
        }
        let _ = Cis::parse(&text);
    }

    #[test]
    fn code_like_text_never_panics_and_what_is_accepted_is_canonical(text in code_soup()) {
        if let Ok(code) = MarkingCode::parse(&text) {
            assert_canonical_on_reread(&code)?;
        }
        let _ = Cis::parse(&text);
    }

    #[test]
    fn mutations_of_valid_codes_never_panic(
        code in valid_code(),
        edits in proptest::collection::vec(
            (any::<usize>(), any::<u8>(), prop_oneof![
                gs1_text(1),
                select(vec![GS, "<GS>", "\\u1d", "&#29;", ".", " ", "й", "\u{0}"]).prop_map(str::to_owned),
            ]),
            1..4,
        ),
    ) {
        let text = mutated(&code.full, &edits);

        if let Ok(code) = MarkingCode::parse(&text) {
            assert_canonical_on_reread(&code)?;
        }
        let _ = Cis::parse(&text);
    }

    #[test]
    fn a_valid_code_is_its_own_canonical_form(code in valid_code()) {
        let parsed = MarkingCode::parse(&code.full)
            .map_err(|e| TestCaseError::fail(format!("{:?} refused: {e:?}", code.full)))?;

        prop_assert_eq!(parsed.full(), &code.full);
        prop_assert_eq!(parsed.cis().as_str(), &code.cis);
        prop_assert!(parsed.repairs().is_empty(), "repairs {:?}", parsed.repairs());
        assert_canonical_on_reread(&parsed)?;
        prop_assert_eq!(Cis::parse(&code.cis).map(String::from), Ok(code.cis));
    }

    #[test]
    fn certain_spellings_prefixes_and_trailing_junk_read_back_to_the_code(
        code in valid_code(),
        spelling in select(CERTAIN_SPELLINGS.to_vec()),
        prefix in select(PREFIXES.to_vec()),
        suffix in select(SUFFIXES.to_vec()),
    ) {
        let scanned = format!("{prefix}{}{suffix}", code.full.replace(GS, spelling));

        let parsed = MarkingCode::parse(&scanned)
            .map_err(|e| TestCaseError::fail(format!("{scanned:?} refused: {e:?}")))?;

        prop_assert_eq!(parsed.full(), &code.full);
        prop_assert_eq!(parsed.cis().as_str(), &code.cis);
        prop_assert_eq!(parsed.original(), &scanned);
    }

    #[test]
    fn separators_spelled_as_text_read_back_to_the_code(
        code in gs1_code(),
        spelling in select(vec!["<GS>", "<FNC1>", "<gs>"]),
    ) {
        let lowered = code.full.to_ascii_lowercase();
        prop_assume!(!lowered.contains("<gs>") && !lowered.contains("<fnc1>"));
        let scanned = code.full.replace(GS, spelling);

        let parsed = MarkingCode::parse(&scanned)
            .map_err(|e| TestCaseError::fail(format!("{scanned:?} refused: {e:?}")))?;

        prop_assert_eq!(parsed.full(), &code.full);
    }

    #[test]
    fn base64_of_a_scanned_code_reads_back_to_the_code(
        code in valid_code(),
        spelling in select(CERTAIN_SPELLINGS.to_vec()),
        prefix in select(PREFIXES.to_vec()),
        suffix in select(SUFFIXES.to_vec()),
    ) {
        let encoded = STANDARD.encode(format!("{prefix}{}{suffix}", code.full.replace(GS, spelling)));

        let parsed = MarkingCode::parse(&encoded)
            .map_err(|e| TestCaseError::fail(format!("{encoded:?} refused: {e:?}")))?;

        prop_assert_eq!(parsed.full(), &code.full);
    }

    #[test]
    fn a_lost_separator_before_the_tail_is_restored(code in bare_gs1_code()) {
        // A tail ending in `.` may also read as a shorter code with a stray full stop.
        prop_assume!(!code.full.ends_with('.'));
        let scanned = code.full.replace(GS, "");

        let parsed = MarkingCode::parse(&scanned)
            .map_err(|e| TestCaseError::fail(format!("{scanned:?} refused: {e:?}")))?;

        prop_assert_eq!(parsed.full(), &code.full);
    }
}
