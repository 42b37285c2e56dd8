//! The per-code objects the emulator reports, and the defaults behind them.

use crate::fixture::CodeScript;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use truemark::wire::{CheckedCode, CodeStatus};

const GS: char = '\u{1d}';

/// What the emulator reports for a code that no fixture row or override names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownCodes {
    /// `found=false errorCode=10`: the code does not exist in ГИС МТ, as on the real service.
    #[default]
    NotFound,
    /// The defaults of a listed code: valid, verified, in circulation. For rehearsing sales
    /// of arbitrary goods.
    Valid,
}

/// The per-code object for `code`: the script's fields over the defaults of a listed code,
/// or, with no script, what `unknown` prescribes. Relative dates resolve against `now`.
///
/// # Errors
/// Only if a script's fields do not read as a per-code object, which [`CodeScript::parse`]
/// already refuses.
pub(crate) fn checked_code(
    code: &str,
    script: Option<&CodeScript>,
    unknown: UnknownCodes,
    now: DateTime<Utc>,
) -> Result<CheckedCode, serde_json::Error> {
    let base = match (script, unknown) {
        (Some(_), _) | (None, UnknownCodes::Valid) => in_circulation(code),
        (None, UnknownCodes::NotFound) => not_found(code),
    };
    let mut object = match serde_json::to_value(base)? {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    if let Some(script) = script {
        script.apply_fields(&mut object, now);
    }
    CheckedCode::from_raw(Value::Object(object))
}

/// A valid, verified code in circulation, owned by the caller, with what the code itself
/// tells: its GTIN, its print view and a likely product group.
fn in_circulation(code: &str) -> CodeStatus {
    let parts = CodeParts::of(code);
    CodeStatus {
        cis: Some(code.to_owned()),
        found: Some(true),
        valid: Some(true),
        verified: Some(true),
        utilised: Some(true),
        realizable: Some(true),
        sold: Some(false),
        is_blocked: Some(false),
        print_view: Some(parts.print_view.to_owned()),
        gtin: parts.gtin.map(str::to_owned),
        group_ids: parts.group.map(|group| vec![group]),
        is_owner: Some(true),
        error_code: Some(0),
        gray_zone: Some(false),
        package_type: Some("UNIT".to_owned()),
        elimination_state: Some(0),
        is_tracking: Some(false),
        ..CodeStatus::default()
    }
}

/// What ЧЗ says of a code it does not know: not found, error 10, nothing else.
fn not_found(code: &str) -> CodeStatus {
    CodeStatus {
        cis: Some(code.to_owned()),
        found: Some(false),
        error_code: Some(10),
        message: Some("Код не найден в ГИС МТ".to_owned()),
        ..CodeStatus::default()
    }
}

/// What can be read off a marking code without knowing its product group for sure.
#[derive(Debug, PartialEq, Eq)]
struct CodeParts<'a> {
    gtin: Option<&'a str>,
    /// The code without its crypto tail; the whole code when its shape is not recognised.
    print_view: &'a str,
    group: Option<u32>,
}

/// Product groups as ЧЗ numbers them.
const TOBACCO: u32 = 3;
const MILK: u32 = 8;
const WATER: u32 = 13;
const BEER: u32 = 15;

impl<'a> CodeParts<'a> {
    /// `01` + GTIN + `21` + serial up to the first GS, or a 29-character tobacco pack code.
    /// The group is a guess from the shape: a tobacco price (AI 8005) or pack shape means
    /// tobacco; otherwise the serial's length (6 milk, 7 beer, 13 water — clothes and shoes
    /// share 13, water is the one guessed). Fixture rows that matter set `groupIds` anyway.
    fn of(code: &'a str) -> Self {
        if let Some(parts) = Self::of_gs1(code) {
            return parts;
        }
        if let Some(parts) = Self::of_tobacco_pack(code) {
            return parts;
        }
        Self {
            gtin: None,
            print_view: code,
            group: None,
        }
    }

    fn of_gs1(code: &'a str) -> Option<Self> {
        let gtin = code.strip_prefix("01")?.get(..14)?;
        let after_gtin = code.get(16..)?;
        if !gtin.bytes().all(|byte| byte.is_ascii_digit()) || !after_gtin.starts_with("21") {
            return None;
        }
        let serial_length = after_gtin[2..].find(GS).unwrap_or(after_gtin.len() - 2);
        let print_view = &code[..18 + serial_length];

        let has_tobacco_price = code.contains(&format!("{GS}8005"));
        let group = match serial_length {
            _ if has_tobacco_price => Some(TOBACCO),
            6 => Some(MILK),
            7 => Some(BEER),
            13 => Some(WATER),
            _ => None,
        };
        Some(Self {
            gtin: Some(gtin),
            print_view,
            group,
        })
    }

    fn of_tobacco_pack(code: &'a str) -> Option<Self> {
        let is_pack = code.len() == 29
            && code.is_ascii()
            && !code.contains(GS)
            && code[..14].bytes().all(|byte| byte.is_ascii_digit());
        is_pack.then(|| Self {
            gtin: Some(&code[..14]),
            print_view: &code[..21],
            group: Some(TOBACCO),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn a_tobacco_block_reads_as_tobacco() {
        let parts = CodeParts::of("010462930887704421DzkcYt2\u{1d}8005090000\u{1d}93dGVz");

        assert_eq!(parts.gtin, Some("04629308877044"));
        assert_eq!(parts.print_view, "010462930887704421DzkcYt2");
        assert_eq!(parts.group, Some(TOBACCO));
    }

    #[test]
    fn a_tobacco_pack_keeps_its_first_21_characters() {
        let parts = CodeParts::of("04601653035829H;dV)bFABVUdGVz");

        assert_eq!(parts.gtin, Some("04601653035829"));
        assert_eq!(parts.print_view, "04601653035829H;dV)bF");
        assert_eq!(parts.group, Some(TOBACCO));
    }

    #[test]
    fn a_six_character_serial_reads_as_milk() {
        let parts = CodeParts::of("0104670540176099215'W9Um\u{1d}93dGVz");

        assert_eq!(parts.print_view, "0104670540176099215'W9Um");
        assert_eq!(parts.group, Some(MILK));
    }

    #[test]
    fn an_unrecognised_code_is_its_own_print_view() {
        for code in ["", "4601234567890", "01ж", "01046705401760992"] {
            let parts = CodeParts::of(code);

            assert_eq!(parts.print_view, code);
            assert_eq!(parts.gtin, None);
        }
    }

    #[test]
    fn a_listed_code_defaults_to_valid_in_circulation() {
        let script = CodeScript::parse("").unwrap();

        let code = checked_code(
            "0104670540176099215'W9Um\u{1d}93dGVz",
            Some(&script),
            UnknownCodes::NotFound,
            now(),
        )
        .unwrap();

        let status = code.status();
        assert_eq!(status.found, Some(true));
        assert_eq!(status.realizable, Some(true));
        assert_eq!(status.error_code, Some(0));
        assert_eq!(
            status.cis.as_deref(),
            Some("0104670540176099215'W9Um\u{1d}93dGVz")
        );
    }

    #[test]
    fn script_fields_replace_the_defaults() {
        let script = CodeScript::parse("utilised=false groupIds=[16]").unwrap();

        let code = checked_code("x", Some(&script), UnknownCodes::NotFound, now()).unwrap();

        assert_eq!(code.raw()["utilised"], json!(false));
        assert_eq!(code.raw()["groupIds"], json!([16]));
        assert_eq!(code.raw()["found"], json!(true));
    }

    #[test]
    fn an_unknown_code_is_not_found_unless_told_otherwise() {
        let not_found = checked_code("y", None, UnknownCodes::NotFound, now()).unwrap();
        let valid = checked_code("y", None, UnknownCodes::Valid, now()).unwrap();

        assert_eq!(not_found.status().found, Some(false));
        assert_eq!(not_found.status().error_code, Some(10));
        assert_eq!(valid.status().found, Some(true));
    }
}
