//! Fiscal tag 1260, the industry requisite of a receipt line (ФФД 1.2), as permissive mode fills
//! it after a check (PROTOCOL.md §6).
//!
//! The tag is printed on the receipt and stored by the fiscal drive, so its value is validated
//! here, once, before any till sees it. With no ЧЗ answer (emergency, outage) there is no tag at
//! all: callers then build none.

use serde::Serialize;

/// Tag 1262, the id of the federal authority (ФОИВ) whose document applies: `030`.
pub const FOIV_ID: &str = "030";
/// Tag 1263, the date of that document: ПП РФ № 1944 of 21.11.2023.
pub const DOCUMENT_DATE: &str = "21.11.2023";
/// Tag 1264, the number of that document.
pub const DOCUMENT_NUMBER: &str = "1944";

/// The longest value ФФД 1.2 allows for tag 1265.
const MAX_VALUE_LEN: usize = 256;
/// The longest local-module instance id or version taken into tag 1265.
const MAX_MODULE_FIELD_LEN: usize = 64;

const TAG_INDUSTRY_REQUISITE: u16 = 1260;
const TAG_FOIV_ID: u16 = 1262;
const TAG_DOCUMENT_DATE: u16 = 1263;
const TAG_DOCUMENT_NUMBER: u16 = 1264;
const TAG_VALUE: u16 = 1265;

/// Why a tag 1260 could not be built from an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Tag1260Error {
    /// `reqId` is not a UUID in its 36-character hyphenated form.
    #[error("reqId is not a hyphenated UUID")]
    MalformedReqId,
    /// `reqTimestamp` is negative, which no real answer has.
    #[error("reqTimestamp is negative")]
    NegativeTimestamp,
    /// The local module's instance id is empty, too long, or has characters that would break the
    /// `key=value&…` form of tag 1265 (`&`, `=`, spaces, non-ASCII).
    #[error("the local module's instance id cannot be carried in tag 1265")]
    MalformedInstance,
    /// The local module's version, likewise.
    #[error("the local module's version cannot be carried in tag 1265")]
    MalformedVersion,
}

/// Tag 1260 for one receipt line: the constant parts of ПП 1944 and, in tag 1265, the id and
/// time of the ЧЗ answer that allowed the sale.
///
/// Serialises as `{"1262": "030", "1263": "21.11.2023", "1264": "1944", "1265": "UUID=…&Time=…"}`,
/// the shape cash-register drivers take in JSON; [`Self::tlv_hex`] gives the raw bytes for drivers
/// that take those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag1260 {
    #[serde(rename = "1262")]
    foiv_id: &'static str,
    #[serde(rename = "1263")]
    document_date: &'static str,
    #[serde(rename = "1264")]
    document_number: &'static str,
    #[serde(rename = "1265")]
    value: String,
}

impl Tag1260 {
    /// The tag for an answer of ГИС МТ: tag 1265 is `UUID=<reqId>&Time=<reqTimestamp>`, both
    /// exactly as the answer gave them (`req_timestamp_ms` in milliseconds since the epoch).
    ///
    /// # Errors
    /// [`Tag1260Error::MalformedReqId`] unless `req_id` is a hyphenated UUID (either case);
    /// [`Tag1260Error::NegativeTimestamp`] for a negative time.
    pub fn permissive(req_id: &str, req_timestamp_ms: i64) -> Result<Self, Tag1260Error> {
        Ok(Self::with_value(answer_reference(
            req_id,
            req_timestamp_ms,
        )?))
    }

    /// The tag for an answer of the local module (ЛМ ЧЗ): as [`Self::permissive`], followed by
    /// `&Inst=<inst>&Ver=<version>`.
    ///
    /// # Errors
    /// Those of [`Self::permissive`]; [`Tag1260Error::MalformedInstance`] or
    /// [`Tag1260Error::MalformedVersion`] unless the field is 1–64 printable ASCII characters
    /// without `&` and `=`.
    pub fn local_module(
        req_id: &str,
        req_timestamp_ms: i64,
        inst: &str,
        version: &str,
    ) -> Result<Self, Tag1260Error> {
        let reference = answer_reference(req_id, req_timestamp_ms)?;
        if !is_module_field(inst) {
            return Err(Tag1260Error::MalformedInstance);
        }
        if !is_module_field(version) {
            return Err(Tag1260Error::MalformedVersion);
        }
        Ok(Self::with_value(format!(
            "{reference}&Inst={inst}&Ver={version}"
        )))
    }

    fn with_value(value: String) -> Self {
        debug_assert!(value.len() <= MAX_VALUE_LEN && value.is_ascii());
        Self {
            foiv_id: FOIV_ID,
            document_date: DOCUMENT_DATE,
            document_number: DOCUMENT_NUMBER,
            value,
        }
    }

    /// Tag 1262: `030`.
    pub fn foiv_id(&self) -> &str {
        self.foiv_id
    }

    /// Tag 1263: `21.11.2023`.
    pub fn document_date(&self) -> &str {
        self.document_date
    }

    /// Tag 1264: `1944`.
    pub fn document_number(&self) -> &str {
        self.document_number
    }

    /// Tag 1265: `UUID=<reqId>&Time=<reqTimestamp>`, perhaps with `&Inst=…&Ver=…`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The STLV 1260 with TLVs 1262–1265 inside, in that order, as ФФД lays out TLVs: tag as
    /// u16 little-endian, length of the value in bytes as u16 little-endian, then the value.
    /// Strings are CP866, which for these values (ASCII only, checked on construction) are
    /// their ASCII bytes.
    pub fn tlv_bytes(&self) -> Vec<u8> {
        let mut inner = Vec::with_capacity(self.value.len() + 40);
        push_tlv(&mut inner, TAG_FOIV_ID, self.foiv_id.as_bytes());
        push_tlv(&mut inner, TAG_DOCUMENT_DATE, self.document_date.as_bytes());
        push_tlv(
            &mut inner,
            TAG_DOCUMENT_NUMBER,
            self.document_number.as_bytes(),
        );
        push_tlv(&mut inner, TAG_VALUE, self.value.as_bytes());

        let mut stlv = Vec::with_capacity(inner.len() + 4);
        push_tlv(&mut stlv, TAG_INDUSTRY_REQUISITE, &inner);
        stlv
    }

    /// [`Self::tlv_bytes`] as uppercase hex without separators, e.g. `EC045D00EE0403003033…`.
    pub fn tlv_hex(&self) -> String {
        hex::encode_upper(self.tlv_bytes())
    }
}

/// `UUID=<reqId>&Time=<reqTimestamp>`, after checking both.
fn answer_reference(req_id: &str, req_timestamp_ms: i64) -> Result<String, Tag1260Error> {
    if !is_hyphenated_uuid(req_id) {
        return Err(Tag1260Error::MalformedReqId);
    }
    if req_timestamp_ms < 0 {
        return Err(Tag1260Error::NegativeTimestamp);
    }
    Ok(format!("UUID={req_id}&Time={req_timestamp_ms}"))
}

/// 8-4-4-4-12 hex digits. Kept as given (case included), since tag 1265 repeats ЧЗ's answer.
fn is_hyphenated_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, byte)| match i {
            8 | 13 | 18 | 23 => byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

fn is_module_field(text: &str) -> bool {
    (1..=MAX_MODULE_FIELD_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'&' && b != b'=')
}

/// Appends one TLV. Every length here is far below `u16::MAX`: values are bounded on
/// construction (tag 1265 by [`MAX_VALUE_LEN`]), and the STLV holds four of them.
fn push_tlv(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ_ID: &str = "f7b51a1b-75f0-4c3b-8843-52daa4765dea";

    #[test]
    fn uuids_are_recognised_in_their_hyphenated_form_only() {
        assert!(is_hyphenated_uuid(REQ_ID));
        assert!(is_hyphenated_uuid(&REQ_ID.to_uppercase()));
        assert!(!is_hyphenated_uuid("f7b51a1b75f04c3b884352daa4765dea"));
        assert!(!is_hyphenated_uuid(
            "{f7b51a1b-75f0-4c3b-8843-52daa4765dea}"
        ));
        assert!(!is_hyphenated_uuid("g7b51a1b-75f0-4c3b-8843-52daa4765dea"));
        assert!(!is_hyphenated_uuid("f7b51a1b-75f0-4c3b-8843-52daa4765de"));
    }

    #[test]
    fn the_longest_local_module_value_fits_tag_1265() {
        let field = "v".repeat(MAX_MODULE_FIELD_LEN);

        let tag = Tag1260::local_module(REQ_ID, i64::MAX, &field, &field).unwrap();

        assert!(tag.value().len() <= MAX_VALUE_LEN);
    }
}
