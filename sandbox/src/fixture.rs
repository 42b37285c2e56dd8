//! Fixture files: which state the emulator reports for which marking code.
//!
//! A fixture is a tab-separated file in the shape of `fixtures/crpt-acceptance-cases.tsv`:
//! `#` comment lines, one header line naming the columns, then one row per case. Three
//! columns are read, found by name: `case` (a unique id), `code` (the full marking code, with
//! `<GS>` standing for the byte 0x1D) and `state`. Other columns are ignored.
//!
//! The `state` column is a list of space-separated `key=value` items:
//! - a per-code field of the answer, by its wire name (`utilised=false`, `groupIds=[3]`,
//!   `ogvs=["RPN"]`, `packageType=GROUP`, `mrp=10000`). A value starting with `[`, `{` or `"`
//!   is JSON and may contain spaces; `true`, `false`, `null` and numbers are JSON; the words
//!   `yesterday`, `today` and `tomorrow` are midnight UTC of that day, computed when the
//!   answer is given; any other word is a string;
//! - a behaviour of the whole request holding the code: `http=203` answers with that HTTP
//!   status, `delay=1800ms` (or `delay=2s`) waits before answering. A behaviour may be followed
//!   by `on every host` (the default) or `on host N` (N counts from 0).
//!
//! Fields a row leaves out keep the defaults of a valid, verified code in circulation (see
//! the crate documentation).

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use std::fmt;
use std::path::Path;
use std::time::Duration;
use truemark::wire::CheckedCode;

/// The acceptance catalogue shipped with iMark, built into the emulator.
const ACCEPTANCE_CASES: &str = include_str!("../../fixtures/crpt-acceptance-cases.tsv");

/// The GS separator as fixture files spell it.
const GS_PLACEHOLDER: &str = "<GS>";

/// The rows of one or more fixture files, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fixture {
    cases: Vec<FixtureCase>,
}

/// One row of a fixture: a case id, its code and what ЧЗ says about that code.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureCase {
    /// The row's `case` column, unique within a fixture.
    pub case: String,
    /// The full marking code, with real 0x1D bytes.
    pub code: String,
    /// The row's `scenario` column, empty when there is none.
    pub scenario: String,
    /// The row's `state` column, parsed.
    pub script: CodeScript,
}

/// A parsed `state` column: the fields to report and the behaviours to act out.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeScript {
    text: String,
    fields: Vec<(String, FieldValue)>,
    behaviours: Vec<ScopedBehaviour>,
}

/// A per-code field's value in a script.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Reported as written.
    Json(Value),
    /// Midnight UTC of the day this many days from the day of the answer (`yesterday` is −1).
    DaysFromToday(i64),
}

/// What the emulator does with a whole request that holds the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer with this HTTP status and no per-code data.
    HttpStatus(u16),
    /// Wait this long before answering.
    Delay(Duration),
}

/// A behaviour and the hosts it applies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopedBehaviour {
    pub behaviour: Behaviour,
    pub hosts: HostScope,
}

/// The hosts a behaviour applies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostScope {
    Every,
    /// The host with this index (from 0, in start order).
    Only(usize),
}

impl HostScope {
    /// Whether the host with index `host` is in scope.
    pub fn covers(self, host: usize) -> bool {
        match self {
            Self::Every => true,
            Self::Only(index) => index == host,
        }
    }
}

/// Why a fixture cannot be used. Each message names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read the fixture {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: no header line naming the columns `case`, `code` and `state`")]
    NoHeader { origin: String },
    #[error("{origin}:{line}: {reason}")]
    Row {
        origin: String,
        line: usize,
        reason: String,
    },
    #[error("case {case:?} is defined twice")]
    DuplicateCase { case: String },
}

/// Why a `state` text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScriptError(String);

impl Fixture {
    /// The acceptance catalogue shipped with iMark (`fixtures/crpt-acceptance-cases.tsv`).
    ///
    /// # Errors
    /// Never for the shipped file; a test keeps it so.
    pub fn acceptance() -> Result<Self, FixtureError> {
        Self::parse(ACCEPTANCE_CASES, "crpt-acceptance-cases.tsv")
    }

    /// Reads a fixture file.
    ///
    /// # Errors
    /// When the file cannot be read or one of its rows cannot be used.
    pub fn load(path: &Path) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Reads fixture text; `origin` names it in error messages.
    ///
    /// # Errors
    /// When there is no header line, a row has no case or code, a `state` cannot be read, or
    /// a case id repeats.
    pub fn parse(text: &str, origin: &str) -> Result<Self, FixtureError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim_end_matches('\r')))
            .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'));

        let columns = lines
            .next()
            .and_then(|(_, header)| Columns::find(header))
            .ok_or_else(|| FixtureError::NoHeader {
                origin: origin.to_owned(),
            })?;

        let mut fixture = Self::default();
        for (line, row) in lines {
            let case = columns.read_row(row).map_err(|reason| FixtureError::Row {
                origin: origin.to_owned(),
                line,
                reason,
            })?;
            fixture.push(case)?;
        }
        Ok(fixture)
    }

    /// This fixture's cases followed by `other`'s.
    ///
    /// # Errors
    /// When both define the same case id.
    pub fn merge(mut self, other: Self) -> Result<Self, FixtureError> {
        for case in other.cases {
            self.push(case)?;
        }
        Ok(self)
    }

    /// Every row, in file order.
    pub fn cases(&self) -> &[FixtureCase] {
        &self.cases
    }

    /// The row with this case id.
    pub fn case(&self, case: &str) -> Option<&FixtureCase> {
        self.cases.iter().find(|row| row.case == case)
    }

    fn push(&mut self, case: FixtureCase) -> Result<(), FixtureError> {
        if self.case(&case.case).is_some() {
            return Err(FixtureError::DuplicateCase { case: case.case });
        }
        self.cases.push(case);
        Ok(())
    }
}

/// Where the columns the emulator reads sit in a fixture's rows.
struct Columns {
    case: usize,
    code: usize,
    state: usize,
    scenario: Option<usize>,
}

impl Columns {
    fn find(header: &str) -> Option<Self> {
        let names: Vec<&str> = header.split('\t').map(str::trim).collect();
        let position = |name: &str| names.iter().position(|column| *column == name);
        Some(Self {
            case: position("case")?,
            code: position("code")?,
            state: position("state")?,
            scenario: position("scenario"),
        })
    }

    fn read_row(&self, row: &str) -> Result<FixtureCase, String> {
        let cells: Vec<&str> = row.split('\t').collect();
        // Editors drop trailing empty cells; a missing cell reads as empty.
        let cell = |index: usize| cells.get(index).copied().unwrap_or_default();

        let case = cell(self.case).trim();
        if case.is_empty() {
            return Err("the row has no case id".to_owned());
        }
        // The code is taken as written, apart from the placeholder: spaces and quotes are
        // part of real serials.
        let code = cell(self.code).replace(GS_PLACEHOLDER, "\u{1d}");
        if code.trim().is_empty() {
            return Err(format!("case {case} has no code"));
        }
        let script =
            CodeScript::parse(cell(self.state)).map_err(|error| format!("case {case}: {error}"))?;

        Ok(FixtureCase {
            case: case.to_owned(),
            code,
            scenario: self.scenario.map(cell).unwrap_or_default().to_owned(),
            script,
        })
    }
}

impl CodeScript {
    /// Reads a `state` text (see the module documentation).
    ///
    /// # Errors
    /// When an item is not `key=value`, a JSON value is broken, a behaviour's value is not a
    /// status or a duration, a scope is misplaced, or a field would give the per-code object
    /// a type ЧЗ does not send (`found="yes"`).
    pub fn parse(text: &str) -> Result<Self, ScriptError> {
        let mut script = Self {
            text: text.trim().to_owned(),
            fields: Vec::new(),
            behaviours: Vec::new(),
        };
        let mut rest = text.trim_start();

        while !rest.is_empty() {
            if let Some(after_scope) = rest.strip_prefix("on ") {
                rest = script.scope_last_behaviour(after_scope)?;
            } else {
                rest = script.read_item(rest)?;
            }
            rest = rest.trim_start();
        }

        script.check_field_types()?;
        Ok(script)
    }

    /// The script as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The per-code fields it sets, in order.
    pub fn fields(&self) -> &[(String, FieldValue)] {
        &self.fields
    }

    /// The request behaviours it asks for, in order.
    pub fn behaviours(&self) -> &[ScopedBehaviour] {
        &self.behaviours
    }

    fn read_item<'a>(&mut self, text: &'a str) -> Result<&'a str, ScriptError> {
        let (key, after_key) = text
            .split_once('=')
            .filter(|(key, _)| is_field_name(key))
            .ok_or_else(|| ScriptError(format!("expected key=value at {:?}", first_word(text))))?;

        match key {
            "http" => {
                let (word, rest) = split_word(after_key);
                self.behave(Behaviour::HttpStatus(parse_status(word)?));
                Ok(rest)
            }
            "delay" => {
                let (word, rest) = split_word(after_key);
                self.behave(Behaviour::Delay(parse_delay(word)?));
                Ok(rest)
            }
            field => {
                let (value, rest) = read_value(after_key)
                    .map_err(|reason| ScriptError(format!("{field}: {reason}")))?;
                self.fields.push((field.to_owned(), value));
                Ok(rest)
            }
        }
    }

    fn behave(&mut self, behaviour: Behaviour) {
        self.behaviours.push(ScopedBehaviour {
            behaviour,
            hosts: HostScope::Every,
        });
    }

    /// Reads `every host` or `host N` (after `on `) into the behaviour just read.
    fn scope_last_behaviour<'a>(&mut self, text: &'a str) -> Result<&'a str, ScriptError> {
        let misplaced = || ScriptError("`on …` must follow http=… or delay=…".to_owned());
        let last = self.behaviours.last_mut().ok_or_else(misplaced)?;

        if let Some(rest) = text.strip_prefix("every host") {
            last.hosts = HostScope::Every;
            return Ok(rest);
        }
        let (index, rest) = text
            .strip_prefix("host ")
            .map(split_word)
            .ok_or_else(|| ScriptError(format!("expected `every host` or `host N` in {text:?}")))?;
        let index = index
            .parse()
            .map_err(|_| ScriptError(format!("not a host index: {index:?}")))?;
        last.hosts = HostScope::Only(index);
        Ok(rest)
    }

    /// Applies the fields to an empty per-code object and reads it back, so that a typo in a
    /// fixture is reported when it loads, not as a malformed answer during a test.
    fn check_field_types(&self) -> Result<(), ScriptError> {
        let mut object = serde_json::Map::new();
        self.apply_fields(&mut object, Utc::now());
        let code = CheckedCode::from_raw(Value::Object(object))
            .map_err(|error| ScriptError(format!("a field has the wrong type: {error}")))?;
        match code.malformed_fields() {
            [] => Ok(()),
            fields => Err(ScriptError(format!(
                "a field has the wrong type: {}",
                fields.join(", ")
            ))),
        }
    }

    /// Writes the script's fields into a per-code object, resolving relative days against
    /// `now`.
    pub fn apply_fields(&self, object: &mut serde_json::Map<String, Value>, now: DateTime<Utc>) {
        for (name, value) in &self.fields {
            let value = match value {
                FieldValue::Json(json) => json.clone(),
                FieldValue::DaysFromToday(days) => midnight_utc(now, *days),
            };
            object.insert(name.clone(), value);
        }
    }
}

impl fmt::Display for CodeScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Midnight UTC `days` away from `now`'s day, written as ЧЗ writes dates. Out of range, the
/// value is `null` (no date), which no realistic fixture reaches.
fn midnight_utc(now: DateTime<Utc>, days: i64) -> Value {
    TimeDelta::try_days(days)
        .and_then(|delta| now.date_naive().checked_add_signed(delta))
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|midnight| Value::String(midnight.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
        .unwrap_or(Value::Null)
}

fn read_value(text: &str) -> Result<(FieldValue, &str), String> {
    if text.starts_with(['[', '{', '"']) {
        return read_json(text).map(|(json, rest)| (FieldValue::Json(json), rest));
    }

    let (word, rest) = split_word(text);
    let value = match word {
        "" => return Err("no value".to_owned()),
        "yesterday" => FieldValue::DaysFromToday(-1),
        "today" => FieldValue::DaysFromToday(0),
        "tomorrow" => FieldValue::DaysFromToday(1),
        _ => FieldValue::Json(word_value(word)),
    };
    Ok((value, rest))
}

/// One JSON value from the start of `text`, and what follows it.
fn read_json(text: &str) -> Result<(Value, &str), String> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let value = values
        .next()
        .ok_or_else(|| "no value".to_owned())?
        .map_err(|error| format!("broken JSON: {error}"))?;
    let rest = &text[values.byte_offset()..];
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(format!(
            "unexpected text after the JSON value: {:?}",
            first_word(rest)
        ));
    }
    Ok((value, rest))
}

/// `true`, `false`, `null` and numbers are JSON; any other word is a string.
fn word_value(word: &str) -> Value {
    let is_json_scalar = matches!(word, "true" | "false" | "null")
        || word.starts_with(|first: char| first == '-' || first.is_ascii_digit());
    if is_json_scalar && let Ok(value) = serde_json::from_str(word) {
        return value;
    }
    Value::String(word.to_owned())
}

fn parse_status(word: &str) -> Result<u16, ScriptError> {
    word.parse()
        .ok()
        .filter(|status| (100..=599).contains(status))
        .ok_or_else(|| ScriptError(format!("not an HTTP status: {word:?}")))
}

fn parse_delay(word: &str) -> Result<Duration, ScriptError> {
    let invalid = || ScriptError(format!("not a delay such as 1800ms or 2s: {word:?}"));
    if let Some(millis) = word.strip_suffix("ms") {
        return millis
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| invalid());
    }
    if let Some(seconds) = word.strip_suffix('s') {
        return seconds
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| invalid());
    }
    Err(invalid())
}

fn is_field_name(key: &str) -> bool {
    key.starts_with(|first: char| first.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn split_word(text: &str) -> (&str, &str) {
    text.split_once(char::is_whitespace).unwrap_or((text, ""))
}

fn first_word(text: &str) -> &str {
    split_word(text).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(script: &CodeScript) -> serde_json::Map<String, Value> {
        let mut object = serde_json::Map::new();
        let now = DateTime::parse_from_rfc3339("2026-12-03T15:30:00Z").unwrap();
        script.apply_fields(&mut object, now.with_timezone(&Utc));
        object
    }

    #[test]
    fn the_acceptance_catalogue_loads() {
        let fixture = Fixture::acceptance().unwrap();

        assert_eq!(fixture.cases().len(), 21);
        let case = fixture.case("5.3").unwrap();
        assert_eq!(
            case.code,
            "010462930887704421DzkcYt2\u{1d}8005090000\u{1d}93dGVz"
        );
    }

    #[test]
    fn fields_read_as_json_or_words() {
        let script = CodeScript::parse(
            r#"groupIds=[3] packageType=GROUP packageQuantity=10 grayZone=true ogvs=["RPN"]"#,
        )
        .unwrap();

        assert_eq!(
            Value::Object(fields(&script)),
            json!({
                "groupIds": [3], "packageType": "GROUP", "packageQuantity": 10,
                "grayZone": true, "ogvs": ["RPN"]
            })
        );
        assert!(script.behaviours().is_empty());
    }

    #[test]
    fn json_values_may_hold_spaces() {
        let script = CodeScript::parse(r#"message="код не найден" errorCode=10"#).unwrap();

        assert_eq!(fields(&script)["message"], json!("код не найден"));
        assert_eq!(fields(&script)["errorCode"], json!(10));
    }

    #[test]
    fn relative_days_are_midnight_utc_of_the_answer_day() {
        let script = CodeScript::parse("expireDate=yesterday productionDate=tomorrow").unwrap();

        assert_eq!(
            fields(&script)["expireDate"],
            json!("2026-12-02T00:00:00.000Z")
        );
        assert_eq!(
            fields(&script)["productionDate"],
            json!("2026-12-04T00:00:00.000Z")
        );
    }

    #[test]
    fn behaviours_read_with_their_scope() {
        let script =
            CodeScript::parse("http=504 on every host delay=1800ms on host 2 found=false").unwrap();

        assert_eq!(
            script.behaviours(),
            [
                ScopedBehaviour {
                    behaviour: Behaviour::HttpStatus(504),
                    hosts: HostScope::Every
                },
                ScopedBehaviour {
                    behaviour: Behaviour::Delay(Duration::from_millis(1800)),
                    hosts: HostScope::Only(2)
                },
            ]
        );
        assert_eq!(fields(&script)["found"], json!(false));
    }

    #[test]
    fn unreadable_scripts_are_refused_with_a_reason() {
        for text in [
            "utilised",
            "found=\"yes\"",
            "groupIds=[3",
            "http=abc",
            "http=9999",
            "delay=soon",
            "on every host",
            "found=false on host 1 x",
            "=true",
            "mrp=12.5",
        ] {
            assert!(CodeScript::parse(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn an_empty_state_sets_nothing() {
        let script = CodeScript::parse("").unwrap();

        assert!(script.fields().is_empty());
        assert!(script.behaviours().is_empty());
    }

    #[test]
    fn columns_are_found_by_name_and_missing_cells_read_empty() {
        let text = "# a comment\nstate\tcode\tcase\nfound=false\tA<GS>B\tx1\n\tC\tx2\n";

        let fixture = Fixture::parse(text, "test").unwrap();

        assert_eq!(fixture.cases()[0].code, "A\u{1d}B");
        assert_eq!(fixture.cases()[1].script.text(), "");
    }

    #[test]
    fn a_repeated_case_id_is_refused() {
        let text = "case\tcode\tstate\n1\tA\t\n1\tB\t\n";

        let error = Fixture::parse(text, "test").unwrap_err();

        assert!(
            matches!(error, FixtureError::DuplicateCase { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_bad_row_names_its_line() {
        let text = "case\tcode\tstate\n1\tA\tfound=perhaps=\n";

        let error = Fixture::parse(text, "mine.tsv").unwrap_err();

        assert!(error.to_string().starts_with("mine.tsv:2:"), "{error}");
    }
}
