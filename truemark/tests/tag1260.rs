//! Tag 1260 as receipts carry it: the JSON shape, the values, and the STLV bytes checked one by
//! one against a hand-computed example.

use truemark::tag1260::{Tag1260, Tag1260Error};

const REQ_ID: &str = "f7b51a1b-75f0-4c3b-8843-52daa4765dea";
const REQ_TIMESTAMP: i64 = 1_773_524_146_442;

#[test]
fn a_permissive_answer_fills_the_four_parts() {
    let tag = Tag1260::permissive(REQ_ID, REQ_TIMESTAMP).unwrap();

    assert_eq!(tag.foiv_id(), "030");
    assert_eq!(tag.document_date(), "21.11.2023");
    assert_eq!(tag.document_number(), "1944");
    assert_eq!(
        tag.value(),
        "UUID=f7b51a1b-75f0-4c3b-8843-52daa4765dea&Time=1773524146442"
    );
}

#[test]
fn a_local_module_answer_adds_instance_and_version() {
    let tag = Tag1260::local_module(REQ_ID, REQ_TIMESTAMP, "lm-7c1e", "1.5.0-142").unwrap();

    assert_eq!(
        tag.value(),
        "UUID=f7b51a1b-75f0-4c3b-8843-52daa4765dea&Time=1773524146442&Inst=lm-7c1e&Ver=1.5.0-142"
    );
}

#[test]
fn the_answer_is_kept_exactly_as_received() {
    let upper_case_id = REQ_ID.to_uppercase();

    let tag = Tag1260::permissive(&upper_case_id, 0).unwrap();

    assert_eq!(tag.value(), format!("UUID={upper_case_id}&Time=0"));
}

#[test]
fn the_tag_serialises_with_numeric_keys() {
    let tag = Tag1260::permissive(REQ_ID, REQ_TIMESTAMP).unwrap();

    let json = serde_json::to_value(&tag).unwrap();

    assert_eq!(
        json,
        serde_json::json!({
            "1262": "030",
            "1263": "21.11.2023",
            "1264": "1944",
            "1265": "UUID=f7b51a1b-75f0-4c3b-8843-52daa4765dea&Time=1773524146442",
        })
    );
}

#[test]
fn the_stlv_bytes_match_the_hand_computed_layout() {
    // 1260 = 0x04EC, 1262 = 0x04EE, 1263 = 0x04EF, 1264 = 0x04F0, 1265 = 0x04F1; tag and length
    // little-endian. Inner length 7 + 14 + 8 + 64 = 93 = 0x5D; tag 1265 holds 60 = 0x3C bytes.
    let mut expected: Vec<u8> = vec![0xEC, 0x04, 0x5D, 0x00];
    expected.extend([0xEE, 0x04, 0x03, 0x00, b'0', b'3', b'0']);
    expected.extend([0xEF, 0x04, 0x0A, 0x00]);
    expected.extend(b"21.11.2023");
    expected.extend([0xF0, 0x04, 0x04, 0x00, b'1', b'9', b'4', b'4']);
    expected.extend([0xF1, 0x04, 0x3C, 0x00]);
    expected.extend(b"UUID=f7b51a1b-75f0-4c3b-8843-52daa4765dea&Time=1773524146442");

    let tag = Tag1260::permissive(REQ_ID, REQ_TIMESTAMP).unwrap();

    assert_eq!(expected.len(), 4 + 93);
    assert_eq!(tag.tlv_bytes(), expected);
}

#[test]
fn the_stlv_hex_is_uppercase() {
    let tag = Tag1260::permissive(REQ_ID, REQ_TIMESTAMP).unwrap();

    let hex = tag.tlv_hex();

    assert!(hex.starts_with("EC045D00EE040300303330EF040A00"));
    assert_eq!(hex.len(), 2 * (4 + 93));
    assert!(!hex.bytes().any(|b| b.is_ascii_lowercase()));
}

#[test]
fn a_malformed_req_id_is_refused() {
    for req_id in [
        "",
        "not-a-uuid",
        "f7b51a1b75f04c3b884352daa4765dea",
        "f7b51a1b-75f0-4c3b-8843-52daa4765dea&Time=1",
    ] {
        assert_eq!(
            Tag1260::permissive(req_id, REQ_TIMESTAMP),
            Err(Tag1260Error::MalformedReqId),
            "{req_id:?}"
        );
    }
}

#[test]
fn a_negative_timestamp_is_refused() {
    assert_eq!(
        Tag1260::permissive(REQ_ID, -1),
        Err(Tag1260Error::NegativeTimestamp)
    );
}

#[test]
fn local_module_fields_that_would_break_the_value_are_refused() {
    let too_long = "1".repeat(65);
    for (inst, version, error) in [
        ("", "1.0", Tag1260Error::MalformedInstance),
        ("a&b", "1.0", Tag1260Error::MalformedInstance),
        ("lm", "1.0=x", Tag1260Error::MalformedVersion),
        ("lm", "1 0", Tag1260Error::MalformedVersion),
        ("лм", "1.0", Tag1260Error::MalformedInstance),
        ("lm", too_long.as_str(), Tag1260Error::MalformedVersion),
    ] {
        assert_eq!(
            Tag1260::local_module(REQ_ID, REQ_TIMESTAMP, inst, version),
            Err(error),
            "{inst:?} {version:?}"
        );
    }
}
