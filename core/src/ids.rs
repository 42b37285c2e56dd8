//! Small validated values shared by the domain modules.

use chrono::{DateTime, FixedOffset, Utc};

use crate::error::{Error, Result};

/// Trims `value` and checks it is 1 to `max` characters of printable text.
pub fn text(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// An optional text: `None` stays `None`, an empty string clears the value.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => text(field, value, max).map(Some),
    }
}

/// A Russian taxpayer number: 10 digits for an organisation, 12 for an individual.
pub fn inn(field: &str, value: Option<&str>) -> Result<Option<String>> {
    digits(field, value, &[10, 12], "must be 10 or 12 digits")
}

/// A Russian registration reason code: 9 digits.
pub fn kpp(field: &str, value: Option<&str>) -> Result<Option<String>> {
    digits(field, value, &[9], "must be 9 digits")
}

fn digits(
    field: &str,
    value: Option<&str>,
    lengths: &[usize],
    message: &str,
) -> Result<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if lengths.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(v.to_owned()))
        }
        Some(_) => Err(Error::invalid(field, message)),
    }
}

/// A store or credential status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    pub fn from_stored(value: &str) -> Self {
        if value == "active" {
            Self::Active
        } else {
            Self::Disabled
        }
    }
}

pub fn utc(at: DateTime<FixedOffset>) -> DateTime<Utc> {
    at.with_timezone(&Utc)
}
