//! The shared fixtures: every scanner artefact normalises as recorded, and every test code of
//! CRPT's acceptance catalogue is canonical already.

use std::path::PathBuf;

use truemark::code::{Cis, CodeError, MarkingCode};

/// Reads a fixture as rows of tab-separated columns, without comments and the header, with
/// `<GS>` turned into the GS byte.
fn fixture_rows(name: &str) -> Vec<Vec<String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .skip(1)
        .map(|line| {
            line.split('\t')
                .map(|cell| cell.replace("<GS>", "\u{1d}"))
                .collect()
        })
        .collect()
}

/// Maps the fixture's wording of a refusal ("empty code (the input …)") to the machine code.
fn error_code_of(description: &str) -> String {
    let name = description.split(" (").next().unwrap_or(description);
    name.trim().replace(' ', "_")
}

#[test]
fn every_scanner_artefact_normalises_as_recorded() {
    let rows = fixture_rows("scanner-artefacts.tsv");
    assert!(rows.len() >= 10, "fixture rows: {}", rows.len());

    for row in rows {
        let [input, cis, full, error] = row.as_slice() else {
            panic!("malformed fixture row {row:?}");
        };

        let parsed = MarkingCode::parse(input);

        if error.is_empty() {
            let code = parsed.unwrap_or_else(|e| panic!("{input:?} refused: {e:?}"));
            assert_eq!(code.cis().as_str(), cis, "КИ of {input:?}");
            assert_eq!(code.full(), full, "full code of {input:?}");
            assert_eq!(code.original(), input);
        } else {
            let refusal = parsed.expect_err(input);
            assert_eq!(refusal.code(), error_code_of(error), "refusal of {input:?}");
        }
    }
}

#[test]
fn every_acceptance_code_is_canonical_with_its_cis() {
    let rows = fixture_rows("crpt-acceptance-cases.tsv");
    assert!(rows.len() >= 20, "fixture rows: {}", rows.len());

    for row in rows {
        let code_text = &row[1];

        let code = MarkingCode::parse(code_text).unwrap_or_else(|e| panic!("{code_text:?}: {e:?}"));

        assert_eq!(code.full(), code_text);
        assert!(
            code.repairs().is_empty(),
            "{code_text:?}: {:?}",
            code.repairs()
        );
        let expected_cis = expected_cis(code_text);
        assert_eq!(code.cis().as_str(), expected_cis);
        assert_eq!(Cis::parse(code_text).unwrap().as_str(), expected_cis);
        assert_eq!(Cis::parse(&expected_cis).unwrap().as_str(), expected_cis);
    }
}

/// The КИ as PROTOCOL.md §8 defines it: everything before the first GS, or the first 21
/// characters of a 29-character pack code.
fn expected_cis(code: &str) -> String {
    match code.split_once('\u{1d}') {
        Some((cis, _)) => cis.to_owned(),
        None => code.chars().take(21).collect(),
    }
}

#[test]
fn acceptance_prices_come_from_the_code_where_it_carries_one() {
    let rows = fixture_rows("crpt-acceptance-cases.tsv");

    for row in rows {
        let code = MarkingCode::parse(&row[1]).unwrap();
        let price_in_code = row[1]
            .split('\u{1d}')
            .find_map(|part| part.strip_prefix("8005"));

        assert_eq!(
            code.price_kopecks(),
            price_in_code.map(|p| p.parse().unwrap()),
            "{row:?}"
        );
    }
}

#[test]
fn fixture_refusals_name_real_error_codes() {
    assert_eq!(
        error_code_of("empty code (the input is an empty string)"),
        "empty_code"
    );
    assert_eq!(CodeError::EmptyCode.code(), "empty_code");
    assert_eq!(
        error_code_of("not a marking code (an EAN-13 barcode was scanned)"),
        CodeError::NotAMarkingCode.code()
    );
}
