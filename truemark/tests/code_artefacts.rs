//! Each kind of scanner artefact of PROTOCOL.md §8, beyond the recorded fixture rows: what is
//! repaired to the canonical code, and what is refused with which error.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use truemark::code::{Cis, CodeError, CodeKind, CryptoTail, MarkingCode, Repair};

const GS: char = '\u{1d}';

/// A code whose serial holds most of the punctuation real serials have.
const TRICKY: &str = "0104670540176099215\"<%;>\u{1d}93dGVz";
const TRICKY_CIS: &str = "0104670540176099215\"<%;>";
/// A medicine code: key id and signature instead of `93`.
const SIGNED: &str = "010401154803070721FWX00GG65908U\u{1d}91EE06\u{1d}92ty6nIoq1w2xrmcVLmKc3+cnhZxS/kgAnq7Bf5FH0CRQ=";
/// A tobacco block with its price.
const BLOCK: &str = "010461013628057121/798DM%\u{1d}8005199000\u{1d}93dGVz";
/// A tobacco pack.
const PACK: &str = "04601653035829H;dV)bFABVUdGVz";

fn parsed(raw: &str) -> MarkingCode {
    MarkingCode::parse(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e:?}"))
}

fn refusal(raw: &str) -> CodeError {
    match MarkingCode::parse(raw) {
        Ok(code) => panic!("{raw:?} accepted as {:?}", code.full()),
        Err(error) => error,
    }
}

fn with_separator(code: &str, spelling: &str) -> String {
    code.replace(GS, spelling)
}

#[test]
fn every_certain_separator_spelling_gives_the_canonical_code() {
    let spellings = [
        "\\u001d",
        "\\u001D",
        "\\\\u001d",
        "\\u1d",
        "\\x1d",
        "\\x1D",
        "&#29;",
        "&#x1D;",
        "&#x1d;",
        "&#X001D;",
        "{FNC1}",
        "{GS}",
        "^]",
        "~1",
    ];

    for code in [TRICKY, SIGNED, BLOCK] {
        for spelling in spellings {
            let scanned = with_separator(code, spelling);

            let normalised = parsed(&scanned);

            assert_eq!(normalised.full(), code, "{scanned:?}");
            assert!(
                normalised
                    .repairs()
                    .contains(&Repair::SeparatorSpellingReplaced {
                        spelling: spelling.to_owned()
                    }),
                "{scanned:?}: {:?}",
                normalised.repairs()
            );
        }
    }
}

#[test]
fn text_separators_are_read_where_the_structure_needs_them() {
    for code in [TRICKY, SIGNED, BLOCK] {
        for spelling in ["<GS>", "<FNC1>", "<gs>"] {
            let scanned = with_separator(code, spelling);

            assert_eq!(parsed(&scanned).full(), code, "{scanned:?}");
        }
    }
}

#[test]
fn a_serial_containing_gs_as_text_keeps_it_when_real_separators_are_present() {
    let code = "0104670540176099215<GS>Um\u{1d}93dGVz";

    let normalised = parsed(code);

    assert_eq!(normalised.serial(), "5<GS>Um");
    assert_eq!(normalised.full(), code);
    assert!(normalised.repairs().is_empty());
}

#[test]
fn a_serial_containing_gs_as_text_survives_when_only_the_structure_can_tell() {
    let scanned = "0104670540176099215<GS>Um<GS>93dGVz";

    let normalised = parsed(scanned);

    assert_eq!(normalised.serial(), "5<GS>Um");
    assert_eq!(normalised.full(), "0104670540176099215<GS>Um\u{1d}93dGVz");
}

#[test]
fn a_serial_containing_fnc1_text_survives_a_certain_spelling_elsewhere() {
    let scanned = "0104670540176099215<FNC1>\\u001d93dGVz";

    assert_eq!(parsed(scanned).serial(), "5<FNC1>");
}

#[test]
fn entity_like_text_in_a_serial_is_kept_byte_for_byte() {
    // `&`, `;`, `<`, `>` and digits are serial characters; only `&#…;` (with `#`) is a separator.
    let code = "0104670540176099215&29;<>\u{1d}93dGVz";

    let normalised = parsed(&with_separator(code, "&#29;"));

    assert_eq!(normalised.serial(), "5&29;<>");
    assert_eq!(normalised.full(), code);
}

#[test]
fn text_separators_that_fit_two_readings_are_refused() {
    // Either a 7-character serial, a batch and the tail, or a 15-character serial and the tail:
    // both are valid codes.
    let scanned = "0104670540176099215abcdef<GS>10cd<GS>93dGVz";

    assert_eq!(refusal(scanned), CodeError::SeparatorAmbiguous);
}

#[test]
fn a_serial_of_usual_length_is_preferred_to_one_that_took_in_a_whole_element() {
    // The other reading, a 19-character serial ending in `<GS>17250131`, would be a serial of
    // usual length with an expiry date glued on.
    let scanned = "0104670540176099215abcdef<GS>17250131<GS>93dGVz";

    let normalised = parsed(scanned);

    assert_eq!(normalised.serial(), "5abcdef");
    assert_eq!(
        normalised.full(),
        "0104670540176099215abcdef\u{1d}1725013193dGVz"
    );
}

#[test]
fn leading_separators_and_symbology_identifiers_are_dropped() {
    for prefix in [
        "\u{1d}",
        "<FNC1>",
        "{FNC1}",
        "]d2",
        "]C1",
        "]Q3",
        "]d2\u{1d}",
        "\\u001d",
    ] {
        let scanned = format!("{prefix}{TRICKY}");

        assert_eq!(parsed(&scanned).full(), TRICKY, "{scanned:?}");
    }
    assert_eq!(parsed(&format!("]d1{PACK}")).full(), PACK);
}

#[test]
fn surrounding_whitespace_and_a_stray_full_stop_are_dropped() {
    for junk in [
        "\r\n",
        "\n",
        " ",
        "\t",
        ".",
        ".\r\n",
        "\u{1d}",
        "\u{1d}\r\n",
    ] {
        for code in [TRICKY, SIGNED, BLOCK, PACK] {
            let scanned = format!("  {code}{junk}");

            assert_eq!(parsed(&scanned).full(), code, "{scanned:?}");
        }
    }
}

#[test]
fn a_full_stop_that_belongs_to_the_tail_is_kept() {
    let code = "0104670540176099215'W9Um\u{1d}93dGV.";

    let normalised = parsed(code);

    assert_eq!(normalised.full(), code);
    assert_eq!(
        normalised.crypto(),
        &CryptoTail::VerificationCode("dGV.".into())
    );
}

#[test]
fn base64_of_the_whole_code_is_decoded() {
    for code in [TRICKY, SIGNED, BLOCK, PACK] {
        for encoded in [STANDARD.encode(code), STANDARD_NO_PAD.encode(code)] {
            let normalised = parsed(&encoded);

            assert_eq!(normalised.full(), code, "{encoded}");
            assert_eq!(normalised.original(), encoded);
            assert!(normalised.repairs().contains(&Repair::Base64Decoded));
        }
    }
}

#[test]
fn base64_of_a_code_with_its_own_artefacts_is_decoded_and_repaired() {
    let encoded = STANDARD.encode(format!("]d2{}\r\n", with_separator(TRICKY, "\\u001d")));

    assert_eq!(parsed(&encoded).full(), TRICKY);
}

#[test]
fn base64_of_a_refused_code_gives_the_inner_refusal() {
    let encoded = STANDARD.encode("(01)04670540176099(21)5'W9Um(93)dGVz");

    assert_eq!(refusal(&encoded), CodeError::PrintedTextNotDataMatrix);
}

#[test]
fn the_printed_text_under_the_symbol_is_refused() {
    for text in [
        "(01)04670540176099(21)5'W9Um",
        "(01)04670540176099(21)5'W9Um(93)dGVz",
        " (01)04670540176099(21)5'W9Um\r\n",
    ] {
        let error = refusal(text);

        assert_eq!(error, CodeError::PrintedTextNotDataMatrix, "{text:?}");
        assert!(error.cashier_message().contains("DataMatrix"));
    }
}

#[test]
fn product_barcodes_are_refused() {
    for barcode in [
        "46070380",
        "460703804643",
        "4607038046435",
        "04607038046435",
        "]E04607038046435",
    ] {
        assert_eq!(refusal(barcode), CodeError::NotAMarkingCode, "{barcode:?}");
    }
    assert_eq!(refusal("0104607038046435"), CodeError::NotAMarkingCode);
    assert_eq!(refusal("00046070380464350012"), CodeError::NotAMarkingCode);
}

#[test]
fn empty_and_blank_input_is_refused() {
    for blank in [
        "",
        " ",
        "\r\n",
        "\t \u{feff}",
        "\0",
        "\u{1d}",
        "]d2\u{1d}\r\n",
    ] {
        assert_eq!(refusal(blank), CodeError::EmptyCode, "{blank:?}");
    }
}

#[test]
fn input_typed_through_the_russian_layout_is_refused() {
    // `]d2` and the code typed on the same keys with the Russian layout active.
    for typed in [
        "ъв20104670540176099215эЦ9Гь\u{1d}93вПМя",
        "0104670540176099215'W9Um\u{1d}93вПМя",
        "0104670540176099215№W9Um\u{1d}93dGVz",
    ] {
        let error = refusal(typed);

        assert_eq!(error, CodeError::WrongKeyboardLayout, "{typed:?}");
        assert!(error.cashier_message().contains("раскладк"));
    }
}

#[test]
fn caps_lock_is_refused_where_the_identifier_shows_it() {
    let inverted = "]D20104670540176099215'w9uM\u{1d}93DgvZ";

    assert_eq!(refusal(inverted), CodeError::CapsLockOn);
}

#[test]
fn letter_case_is_never_changed() {
    // Case 5.14: the same code with its tail's case changed is a different code, for ЧЗ to refuse.
    let code = "0104670540176099215<pGKy\u{1d}93DGVz";

    assert_eq!(parsed(code).full(), code);
}

#[test]
fn a_lost_separator_before_the_tail_is_restored_for_serials_of_known_length() {
    for (scanned, serial) in [
        ("0104670540176099215'W9Um93dGVz", "5'W9Um"),
        ("010462930887704421DzkcYt293dGVz", "DzkcYt2"),
        ("0104607038046435215Z7(DdTeBEIIU93mfhf", "5Z7(DdTeBEIIU"),
        (
            "010401154803070721FWX00GG65908U91EE0692ty6nIoq1w2xrmcVLmKc3+cnhZxS/kgAnq7Bf5FH0CRQ=",
            "FWX00GG65908U",
        ),
    ] {
        let normalised = parsed(scanned);

        assert_eq!(normalised.serial(), serial, "{scanned:?}");
        assert!(
            normalised
                .repairs()
                .contains(&Repair::LostSeparatorRestored)
        );
        assert_eq!(parsed(normalised.full()).full(), normalised.full());
    }
}

#[test]
fn a_lost_separator_that_cannot_be_placed_for_sure_is_refused() {
    for scanned in [
        // serial of 8: no product group uses it
        "0104670540176099215'W9Umab93dGVz",
        // a price between serial and tail
        "010461013628057121/798DM%800519900093dGVz",
        // the separator before the price lost, the one after it kept
        "010461013628057121/798DM%8005199000\u{1d}93dGVz",
        // a weight after the tail
        "0104670540176099215'W9Um93dGVz\u{1d}3103000350",
    ] {
        let error = refusal(scanned);

        assert_eq!(error, CodeError::SeparatorMissing, "{scanned:?}");
        assert!(error.cashier_message().contains("GS"));
    }
}

#[test]
fn a_code_without_crypto_tail_is_refused() {
    for text in ["0104670540176099215'W9Um", "0104670540176099215'W9Um\u{1d}"] {
        assert_eq!(refusal(text), CodeError::CryptoTailMissing, "{text:?}");
    }
}

#[test]
fn a_truncated_tail_is_refused() {
    for text in [
        "0104670540176099215'W9Um\u{1d}93dGV",
        "0104670540176099215'W9Um\u{1d}93dGVzz",
        "010401154803070721FWX00GG65908U\u{1d}91EE06\u{1d}92ty6nIoq1w2xrmcVLmKc3+cnhZxS/kgAnq7Bf5FH",
        "010401154803070721FWX00GG65908U\u{1d}92ty6nIoq1w2xrmcVLmKc3+cnhZxS/kgAnq7Bf5FH0CRQ=",
    ] {
        assert_eq!(refusal(text), CodeError::CryptoTailMalformed, "{text:?}");
    }
}

#[test]
fn characters_that_no_code_has_are_refused() {
    for text in [
        "0104670540176099215'W9 m\u{1d}93dGVz",
        "0104670540176099215'W9Um\u{1e}93dGVz",
        "0104670540176099215'W9Um\\u001e93dGVz",
        "0104670540176099215'W9Um#93dGVz",
        "0104670540176099215'W9Um\u{1d}93dGV\u{fffd}",
        "0104670540176099215'W9Um\u{1d}93dGVz\r\n0104670540176099215'W9Um\u{1d}93dGVz",
    ] {
        assert_eq!(refusal(text), CodeError::InvalidCharacters, "{text:?}");
    }
}

#[test]
fn other_input_is_refused_as_malformed() {
    let too_long = format!("{TRICKY}{}", "a".repeat(2000));
    for text in [
        "hello",
        "0204670540176099",
        "55123",
        too_long.as_str(),
        "0104670540176099215'W9Um\u{1d}93dGVz\u{1d}93dGVz",
    ] {
        assert_eq!(refusal(text), CodeError::Malformed, "{text:?}");
    }
}

#[test]
fn a_dairy_code_keeps_its_weight_after_the_tail() {
    let code = "0104607009780221215;Fd(t\u{1d}93Yx1z\u{1d}3103000350";

    let normalised = parsed(code);

    assert_eq!(normalised.full(), code);
    assert_eq!(normalised.additional_elements()[0].ai(), "3103");
    assert_eq!(normalised.additional_elements()[0].value(), "000350");
    assert_eq!(normalised.price_kopecks(), None);
}

#[test]
fn separators_after_predefined_lengths_are_dropped_and_missing_ones_put_back() {
    let canonical = "01046700190342882151aj\"K>X+mFcP\u{1d}172701018005012300\u{1d}93dGVz";
    let spare_separators =
        "0104670019034288\u{1d}2151aj\"K>X+mFcP\u{1d}17270101\u{1d}8005012300\u{1d}93dGVz";
    let lost_after_price = "01046700190342882151aj\"K>X+mFcP\u{1d}17270101800501230093dGVz";

    let tidied = parsed(spare_separators);
    let completed = parsed(lost_after_price);

    assert_eq!(tidied.full(), canonical);
    assert!(
        tidied
            .repairs()
            .contains(&Repair::RedundantSeparatorRemoved)
    );
    assert_eq!(completed.full(), canonical);
    assert_eq!(
        completed.repairs(),
        [Repair::SeparatorInserted {
            after: "8005".into()
        }]
    );
    assert_eq!(completed.price_kopecks(), Some(12_300));
    assert_eq!(completed.additional_elements().len(), 2);
}

#[test]
fn the_parts_of_a_gs1_code_are_exposed() {
    let code = parsed(BLOCK);

    assert_eq!(code.kind(), CodeKind::Gs1DataMatrix);
    assert_eq!(code.gtin().as_str(), "04610136280571");
    assert_eq!(code.serial(), "/798DM%");
    assert_eq!(code.crypto(), &CryptoTail::VerificationCode("dGVz".into()));
    assert_eq!(code.price_kopecks(), Some(199_000));
    assert_eq!(code.encoded_mrp(), None);
    assert_eq!(code.cis().as_str(), "010461013628057121/798DM%");
}

#[test]
fn the_parts_of_a_signed_code_are_exposed() {
    let code = parsed(SIGNED);

    assert_eq!(
        code.crypto(),
        &CryptoTail::Signature {
            key_id: "EE06".into(),
            signature: "ty6nIoq1w2xrmcVLmKc3+cnhZxS/kgAnq7Bf5FH0CRQ=".into(),
        }
    );
    assert!(code.additional_elements().is_empty());
}

#[test]
fn the_parts_of_a_tobacco_pack_are_exposed() {
    let code = parsed(PACK);

    assert_eq!(code.kind(), CodeKind::TobaccoPack);
    assert_eq!(code.gtin().as_str(), "04601653035829");
    assert_eq!(code.serial(), "H;dV)bF");
    assert_eq!(code.encoded_mrp(), Some("ABVU"));
    assert_eq!(code.price_kopecks(), None);
    assert_eq!(code.crypto(), &CryptoTail::VerificationCode("dGVz".into()));
    assert_eq!(code.cis().as_str(), "04601653035829H;dV)bF");
    assert_eq!(code.cis().kind(), CodeKind::TobaccoPack);
}

#[test]
fn a_cis_is_read_from_a_cis_or_from_any_full_code() {
    for (raw, cis) in [
        (TRICKY_CIS, TRICKY_CIS),
        (TRICKY, TRICKY_CIS),
        ("0104670540176099215<GS>Um", "0104670540176099215<GS>Um"),
        (
            "]d20104607038046435215Z7(DdTeBEIIU&#x1D;93mfhf\r\n",
            "0104607038046435215Z7(DdTeBEIIU",
        ),
        (PACK, "04601653035829H;dV)bF"),
        ("04601653035829H;dV)bF", "04601653035829H;dV)bF"),
    ] {
        let read = Cis::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e:?}"));

        assert_eq!(read.as_str(), cis, "{raw:?}");
        assert_eq!(read.to_string(), cis);
        assert_eq!(raw.parse::<Cis>().unwrap(), read);
    }
}

#[test]
fn a_cis_with_a_swallowed_tail_or_a_broken_tail_is_refused() {
    assert_eq!(
        Cis::parse("0104670540176099215'W9Umab93dGVz").map(String::from),
        Ok("0104670540176099215'W9Umab93dGVz".to_owned())
    );
    assert_eq!(
        Cis::parse("0104670540176099215'W9Um93dGVz"),
        Err(CodeError::SeparatorMissing)
    );
    assert_eq!(
        Cis::parse("0104670540176099215'W9Um\u{1d}93dG"),
        Err(CodeError::CryptoTailMalformed)
    );
    assert_eq!(Cis::parse(""), Err(CodeError::EmptyCode));
}

#[test]
fn a_cis_serialises_as_its_text_and_deserialises_through_parse() {
    let cis = Cis::parse(TRICKY).unwrap();

    let json = serde_json::to_string(&cis).unwrap();
    let back: Cis = serde_json::from_str(&json).unwrap();

    assert_eq!(json, r#""0104670540176099215\"<%;>""#);
    assert_eq!(back, cis);
    assert!(serde_json::from_str::<Cis>(r#""4607038046435""#).is_err());
}

#[test]
fn the_original_and_the_repairs_are_kept_as_evidence() {
    let scanned = "]d20104680046264732\\u1d215l>VEUc\\u1d93Is54\r\n";

    let code = parsed(scanned);

    assert_eq!(code.original(), scanned);
    assert_eq!(
        code.repairs(),
        [
            Repair::SurroundingWhitespaceTrimmed,
            Repair::SymbologyIdentifierRemoved {
                identifier: "]d2".into()
            },
            Repair::SeparatorSpellingReplaced {
                spelling: "\\u1d".into()
            },
            Repair::RedundantSeparatorRemoved,
        ]
    );
}
