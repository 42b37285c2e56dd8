//! The True API's JSON as it travels: discovery, health check and code check.
//!
//! The same types read ЧЗ's answers in the client and write them in the sandbox emulator, so
//! every field keeps its wire name and serialises back faithfully. Fields these types do not
//! know are kept in `extra` and written back out, so nothing a newer ЧЗ sends is lost.
//!
//! Strictness is deliberate and uneven. Every field may be absent or `null`, because real
//! answers leave out whatever does not apply. A field that is present with the wrong type
//! (`"found": "yes"`) is an error for the whole answer: a sale must never be decided from a
//! field we could not read, and the client reports such an answer as a malformed body.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use std::time::Duration;

/// Fields a wire type does not name, kept exactly as they came.
pub type UnknownFields = Map<String, Value>;

/// The answer to `GET {base}/api/v4/true-api/cdn/info`: the CDN hosts to check codes on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdnInfoAnswer {
    /// `0` when the list is valid; anything else is a refusal explained by the texts below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Sent by some error answers instead of, or next to, `description`.
    #[serde(
        rename = "error_message",
        default,
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<CdnHostEntry>>,
    #[serde(flatten)]
    pub extra: UnknownFields,
}

/// One entry of the discovery list, e.g. `{"host": "https://cdn01.crpt.ru"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CdnHostEntry {
    /// The host's base URL, unvalidated: the client validates it into a `CdnHost`.
    pub host: Option<String>,
    #[serde(flatten)]
    pub extra: UnknownFields,
}

impl CdnHostEntry {
    /// An entry naming `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: Some(host.into()),
            extra: UnknownFields::new(),
        }
    }
}

/// The answer to `GET {host}/api/v4/true-api/cdn/health/check`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckAnswer {
    /// `0` when the host is healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The host's own average processing time in milliseconds. Kept as the JSON number it was
    /// (integers are usual, a fraction is not refused); [`Self::avg_time`] reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_time_ms: Option<Number>,
    #[serde(
        rename = "error_message",
        default,
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
    #[serde(flatten)]
    pub extra: UnknownFields,
}

impl HealthCheckAnswer {
    /// The host's reported average time, or `None` when absent, negative or not finite.
    pub fn avg_time(&self) -> Option<Duration> {
        let millis = self.avg_time_ms.as_ref()?.as_f64()?;
        Duration::try_from_secs_f64(millis / 1000.0).ok()
    }
}

/// The body of `POST {host}/api/v4/true-api/codes/check`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodesCheckRequest {
    /// Full marking codes, GS separators and crypto tail included, one receipt's worth.
    pub codes: Vec<String>,
    /// The serial number of the till's fiscal drive (ФН).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fiscal_drive_number: Option<String>,
    #[serde(flatten)]
    pub extra: UnknownFields,
}

impl CodesCheckRequest {
    /// A request to check `codes` for the till whose fiscal drive is `fiscal_drive_number`.
    pub fn new(codes: Vec<String>, fiscal_drive_number: impl Into<String>) -> Self {
        Self {
            codes,
            fiscal_drive_number: Some(fiscal_drive_number.into()),
            extra: UnknownFields::new(),
        }
    }

    /// The request as JSON text, the same text `serde_json::to_string` writes. Built from JSON
    /// values, whose rendering cannot fail, so sending a request has no encoding error to report.
    pub fn to_json_text(&self) -> String {
        let mut body = self.extra.clone();
        let codes = self.codes.iter().cloned().map(Value::String).collect();
        body.insert("codes".to_owned(), Value::Array(codes));
        if let Some(number) = &self.fiscal_drive_number {
            body.insert(
                "fiscalDriveNumber".to_owned(),
                Value::String(number.clone()),
            );
        }
        Value::Object(body).to_string()
    }
}

/// The answer to `POST {host}/api/v4/true-api/codes/check`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodesCheckAnswer {
    /// `0` when the codes were processed; anything else is a refusal to decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        rename = "error_message",
        default,
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
    /// One entry per code checked. An absent or `null` list reads as empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub codes: Vec<CheckedCode>,
    /// The check's UUID, kept as text exactly as sent: fiscal tag 1265 repeats it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
    /// When ЧЗ processed the check, in milliseconds since the epoch (UTC), exactly as sent:
    /// fiscal tag 1265 repeats it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_timestamp: Option<i64>,
    #[serde(flatten)]
    pub extra: UnknownFields,
}

/// One code's entry in a code-check answer: the JSON object exactly as ЧЗ sent it, with a typed
/// view of it.
///
/// The raw object is what iMark hands back to the till; the typed view is what decisions read.
/// Both always agree: the view is parsed from the raw object and neither can change alone.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedCode {
    raw: Value,
    status: CodeStatus,
    /// Known fields whose value had the wrong type: absent from the typed view.
    malformed: Vec<String>,
}

impl CheckedCode {
    /// Reads one per-code object. A known field of the wrong type reads as absent and is named
    /// in [`Self::malformed_fields`], so that one odd field never costs the whole answer.
    ///
    /// # Errors
    /// When `raw` is not a JSON object.
    pub fn from_raw(raw: Value) -> Result<Self, serde_json::Error> {
        if let Ok(status) = CodeStatus::deserialize(&raw) {
            return Ok(Self {
                raw,
                status,
                malformed: Vec::new(),
            });
        }
        let Value::Object(fields) = &raw else {
            return Err(serde::de::Error::custom(
                "a checked code must be a JSON object",
            ));
        };
        let mut readable = serde_json::Map::new();
        let mut malformed = Vec::new();
        for (name, value) in fields {
            let single = Value::Object(serde_json::Map::from_iter([(name.clone(), value.clone())]));
            if CodeStatus::deserialize(&single).is_ok() {
                readable.insert(name.clone(), value.clone());
            } else {
                malformed.push(name.clone());
            }
        }
        let status = CodeStatus::deserialize(&Value::Object(readable))?;
        Ok(Self {
            raw,
            status,
            malformed,
        })
    }

    /// The known fields that had the wrong type and read as absent.
    pub fn malformed_fields(&self) -> &[String] {
        &self.malformed
    }

    /// The object as ЧЗ sent it.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The typed view of [`Self::raw`].
    pub fn status(&self) -> &CodeStatus {
        &self.status
    }

    /// Gives up the typed view, keeping the object as sent.
    pub fn into_raw(self) -> Value {
        self.raw
    }
}

impl TryFrom<CodeStatus> for CheckedCode {
    type Error = serde_json::Error;

    fn try_from(status: CodeStatus) -> Result<Self, Self::Error> {
        let raw = serde_json::to_value(&status)?;
        Ok(Self {
            raw,
            status,
            malformed: Vec::new(),
        })
    }
}

impl Serialize for CheckedCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CheckedCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        Self::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// What ЧЗ says about one code (PROTOCOL.md §4). Every field is optional: absent and `null`
/// both read as `None`, and `None` is written as `null`, as ЧЗ itself does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeStatus {
    /// The code as sent.
    pub cis: Option<String>,
    /// The code exists in ГИС МТ.
    pub found: Option<bool>,
    /// The code's structure is valid.
    pub valid: Option<bool>,
    /// The crypto tail was verified.
    pub verified: Option<bool>,
    /// The code was reported as applied to the pack.
    pub utilised: Option<bool>,
    /// The code is in circulation ("В обороте").
    pub realizable: Option<bool>,
    /// The code was already withdrawn from circulation by a sale.
    pub sold: Option<bool>,
    /// An authority has banned the sale; [`Self::ogvs`] names it.
    pub is_blocked: Option<bool>,
    /// The authorities that blocked the code: `RAR`, `FTS`, `FNS`, `RSHN`, `RPN`, `MVD`, `RZN`,
    /// `VETRF`.
    pub ogvs: Option<Vec<String>>,
    /// ISO date-time; [`parse_wire_instant`] reads it.
    pub expire_date: Option<String>,
    /// ISO date-time; [`parse_wire_instant`] reads it.
    pub production_date: Option<String>,
    /// Dairy extra, kept as sent: its shape is not published.
    pub variable_expirations: Option<Value>,
    /// Dairy extra.
    pub product_weight: Option<Number>,
    /// Dairy extra (veterinary document), kept as sent: its shape is not published.
    pub pr_vet_document: Option<Value>,
    /// The code without its crypto tail.
    pub print_view: Option<String>,
    /// GTIN-14.
    pub gtin: Option<String>,
    /// Product groups: 3 tobacco, 8 milk, 13 water, 15 beer, 16 НСП …
    pub group_ids: Option<Vec<u32>>,
    /// The caller owns the code.
    pub is_owner: Option<bool>,
    /// `0` no error, `10` not found in ГИС МТ, and the others listed in PROTOCOL.md §4.
    pub error_code: Option<i64>,
    /// Text that explains `error_code`.
    pub message: Option<String>,
    /// Kopecks: the tobacco maximum retail price; for НСП (group 16), a minimum.
    pub mrp: Option<i64>,
    /// Kopecks: the single minimum price (ЕМЦ).
    pub smp: Option<i64>,
    /// Tobacco in the "grey zone".
    pub gray_zone: Option<bool>,
    /// Units or volume in the pack.
    pub inner_unit_count: Option<Number>,
    /// Units or volume of the pack already sold.
    pub sold_unit_count: Option<Number>,
    /// `UNIT`, `GROUP`, …
    pub package_type: Option<String>,
    /// Packs inside this one.
    pub package_quantity: Option<i64>,
    /// The enclosing aggregate's code.
    pub parent: Option<String>,
    /// `1` distance sale or samples, `2` own needs: withdrawn but still sellable.
    pub elimination_state: Option<i64>,
    pub is_tracking: Option<bool>,
    pub producer_inn: Option<String>,
    #[serde(flatten)]
    pub extra: UnknownFields,
}

/// A date-time field of a ЧЗ answer that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ISO date or date-time: {text:?}")]
pub struct WireDateError {
    /// The text as received.
    pub text: String,
}

/// Reads a date-time as ЧЗ writes them (`2025-09-18T00:00:00.000Z`).
///
/// Also accepts an explicit offset, no offset at all (read as UTC, which ЧЗ uses) and a bare
/// date (midnight UTC), since dates of other origins arrive in those shapes.
///
/// # Errors
/// When the text is none of those shapes.
pub fn parse_wire_instant(text: &str) -> Result<DateTime<Utc>, WireDateError> {
    let trimmed = text.trim();
    let parsed = DateTime::parse_from_rfc3339(trimmed)
        .map(|instant| instant.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|naive| naive.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|naive| naive.and_utc())
        });

    parsed.ok_or_else(|| WireDateError {
        text: text.to_owned(),
    })
}

/// Reads `error_message` whether ЧЗ sends it as text or as a bare number (`"5000"` or `5000`).
fn lenient_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    })
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURE_ANSWER: &str = include_str!("../../fixtures/codes-check-answer.json");

    #[test]
    fn the_fixture_answer_reads_with_its_nulls_and_exact_timestamp() {
        let answer: CodesCheckAnswer = serde_json::from_str(FIXTURE_ANSWER).unwrap();

        assert_eq!(answer.code, Some(0));
        assert_eq!(
            answer.req_id.as_deref(),
            Some("f7b51a1b-75f0-4c3b-8843-52daa4765dea")
        );
        assert_eq!(answer.req_timestamp, Some(1_773_524_146_442));
        let [code] = answer.codes.as_slice() else {
            panic!("one code expected, got {}", answer.codes.len());
        };
        let status = code.status();
        assert_eq!(status.cis.as_deref(), Some("00840147505712Zz;ZnRbAAAAdGVz"));
        assert_eq!(status.group_ids, Some(vec![16]));
        assert_eq!(status.mrp, Some(20_000));
        assert_eq!(status.smp, None);
        assert_eq!(status.expire_date, None);
        assert_eq!(status.ogvs, None);
        assert_eq!(status.found, Some(true));
        assert_eq!(status.package_type.as_deref(), Some("UNIT"));
    }

    #[test]
    fn fields_the_types_do_not_name_are_kept() {
        let answer: CodesCheckAnswer = serde_json::from_str(FIXTURE_ANSWER).unwrap();

        let extra = &answer.codes[0].status().extra;
        assert!(extra.contains_key("productionSerialNumber"));
        assert_eq!(extra.get("factorySerialNumber"), Some(&Value::Null));
    }

    #[test]
    fn the_raw_object_is_kept_exactly_as_received() {
        let fixture: Value = serde_json::from_str(FIXTURE_ANSWER).unwrap();

        let answer: CodesCheckAnswer = serde_json::from_value(fixture.clone()).unwrap();

        assert_eq!(answer.codes[0].raw(), &fixture["codes"][0]);
        assert_eq!(serde_json::to_value(&answer).unwrap(), fixture);
    }

    #[test]
    fn an_empty_per_code_object_reads_as_all_unknown() {
        let code = CheckedCode::from_raw(json!({})).unwrap();

        assert_eq!(code.status(), &CodeStatus::default());
    }

    #[test]
    fn null_and_absent_read_alike() {
        let with_nulls = CheckedCode::from_raw(json!({"found": null, "groupIds": null})).unwrap();
        let absent = CheckedCode::from_raw(json!({})).unwrap();

        assert_eq!(with_nulls.status(), absent.status());
    }

    #[test]
    fn a_field_of_the_wrong_type_reads_as_absent_and_is_named() {
        let cases = [
            (json!({"cis": "x", "found": "yes", "valid": true}), "found"),
            (json!({"cis": "x", "mrp": 100.5}), "mrp"),
            (json!({"cis": "x", "groupIds": 3}), "groupIds"),
            (json!({"cis": "x", "groupIds": [-3]}), "groupIds"),
            (json!({"cis": "x", "errorCode": "10"}), "errorCode"),
        ];

        for (raw, field) in cases {
            let code = CheckedCode::from_raw(raw.clone()).unwrap();
            assert_eq!(code.malformed_fields(), [field.to_owned()], "{raw}");
            assert_eq!(code.status().cis.as_deref(), Some("x"));
            assert_eq!(code.raw(), &raw, "the raw object is kept as sent");
        }
        let kept = CheckedCode::from_raw(json!({"found": "yes", "valid": false})).unwrap();
        assert_eq!(kept.status().valid, Some(false));
        assert_eq!(kept.status().found, None);
    }

    #[test]
    fn a_code_that_is_not_an_object_is_refused() {
        assert!(CheckedCode::from_raw(json!("a string where an object belongs")).is_err());
        assert!(CheckedCode::from_raw(json!([1, 2])).is_err());
    }

    #[test]
    fn a_wrongly_typed_field_does_not_cost_the_whole_answer() {
        let body = r#"{"code":0,"codes":[{"cis":"x","found":"maybe"}],"reqTimestamp":1}"#;

        let answer = serde_json::from_str::<CodesCheckAnswer>(body).unwrap();

        assert_eq!(answer.codes[0].malformed_fields(), ["found".to_owned()]);
        assert_eq!(answer.req_timestamp, Some(1));
    }

    #[test]
    fn a_fractional_timestamp_is_refused_rather_than_rounded() {
        let body = r#"{"code":0,"codes":[],"reqTimestamp":1773524146442.5}"#;

        assert!(serde_json::from_str::<CodesCheckAnswer>(body).is_err());
    }

    #[test]
    fn a_null_code_list_reads_as_empty() {
        let answer: CodesCheckAnswer =
            serde_json::from_str(r#"{"code":1,"description":"busy","codes":null}"#).unwrap();

        assert!(answer.codes.is_empty());
        assert_eq!(answer.description.as_deref(), Some("busy"));
    }

    #[test]
    fn error_message_reads_as_text_or_number() {
        let text: CodesCheckAnswer = serde_json::from_str(r#"{"error_message":"5000"}"#).unwrap();
        let number: CodesCheckAnswer = serde_json::from_str(r#"{"error_message":5000}"#).unwrap();

        assert_eq!(text.error_message.as_deref(), Some("5000"));
        assert_eq!(number.error_message.as_deref(), Some("5000"));
    }

    #[test]
    fn the_cdn_list_reads_and_writes_its_wire_shape() {
        let body = json!({
            "code": 0,
            "description": "ok",
            "hosts": [{"host": "https://cdn01.crpt.ru"}, {"host": "https://cdn02.crpt.ru"}]
        });

        let answer: CdnInfoAnswer = serde_json::from_value(body.clone()).unwrap();

        let hosts = answer.hosts.as_deref().unwrap();
        assert_eq!(hosts[1].host.as_deref(), Some("https://cdn02.crpt.ru"));
        assert_eq!(serde_json::to_value(&answer).unwrap(), body);
    }

    #[test]
    fn the_health_answer_keeps_avg_time_as_sent() {
        let body = json!({"code": 0, "description": "ok", "avgTimeMs": 9});

        let answer: HealthCheckAnswer = serde_json::from_value(body.clone()).unwrap();

        assert_eq!(answer.avg_time(), Some(Duration::from_millis(9)));
        assert_eq!(serde_json::to_value(&answer).unwrap(), body);
    }

    #[test]
    fn a_negative_avg_time_reads_as_unknown() {
        let answer: HealthCheckAnswer = serde_json::from_str(r#"{"avgTimeMs":-1}"#).unwrap();

        assert_eq!(answer.avg_time(), None);
    }

    #[test]
    fn the_request_writes_camel_case_names() {
        let request = CodesCheckRequest::new(vec!["010\u{1d}93ab".into()], "7380440800000001");

        let body = serde_json::to_value(&request).unwrap();

        assert_eq!(
            body,
            json!({"codes": ["010\u{1d}93ab"], "fiscalDriveNumber": "7380440800000001"})
        );
    }

    #[test]
    fn the_request_text_matches_its_serde_form() {
        let mut request = CodesCheckRequest::new(vec!["a\"b\u{1d}c".into()], "1");
        request.extra.insert("note".into(), json!([1, null]));

        let text: Value = serde_json::from_str(&request.to_json_text()).unwrap();

        assert_eq!(text, serde_json::to_value(&request).unwrap());
    }

    #[test]
    fn a_typed_status_writes_nulls_for_unknown_fields() {
        let status = CodeStatus {
            cis: Some("x".into()),
            found: Some(false),
            error_code: Some(10),
            ..CodeStatus::default()
        };

        let code = CheckedCode::try_from(status).unwrap();

        assert_eq!(code.raw()["found"], json!(false));
        assert_eq!(code.raw()["errorCode"], json!(10));
        assert_eq!(code.raw()["isBlocked"], Value::Null);
    }

    #[test]
    fn wire_instants_read_in_every_shape_seen() {
        let midnight = DateTime::parse_from_rfc3339("2025-09-18T00:00:00Z").unwrap();

        for text in [
            "2025-09-18T00:00:00.000Z",
            "2025-09-18T03:00:00+03:00",
            "2025-09-18T00:00:00",
            "2025-09-18",
        ] {
            assert_eq!(parse_wire_instant(text).unwrap(), midnight, "{text}");
        }
        assert!(parse_wire_instant("18.09.2025").is_err());
    }
}
