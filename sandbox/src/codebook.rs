//! Which script answers for which code right now: fixture rows, the alternates activated
//! among them, and overrides set at run time.

use crate::fixture::{CodeScript, Fixture, FixtureCase};
use serde::Serialize;
use std::collections::HashMap;

/// The fixture rows by code, with run-time choices on top.
///
/// Several rows may share a code (cases 5.1 and 514 do). The first row for a code answers by
/// default; a later row answers once it is activated by its case id, until another row of
/// the same code is activated or the book is reset. An override set at run time answers
/// before any row.
#[derive(Debug)]
pub(crate) struct CodeBook {
    fixture: Fixture,
    /// For each code, the index in `fixture.cases()` of the row that answers for it.
    active: HashMap<String, usize>,
    overrides: HashMap<String, CodeScript>,
}

/// A fixture row as the control API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseView {
    pub case: String,
    pub code: String,
    pub scenario: String,
    pub state: String,
    /// This row answers for its code now (unless an override does).
    pub active: bool,
}

/// A run-time override as the control API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideView {
    pub code: String,
    pub state: String,
}

impl CodeBook {
    pub(crate) fn new(fixture: Fixture) -> Self {
        let mut book = Self {
            fixture,
            active: HashMap::new(),
            overrides: HashMap::new(),
        };
        book.activate_defaults();
        book
    }

    /// The script that answers for `code` (compared exactly, as sent), if any does.
    pub(crate) fn script_for(&self, code: &str) -> Option<&CodeScript> {
        self.overrides.get(code).or_else(|| {
            let row = *self.active.get(code)?;
            self.fixture.cases().get(row).map(|case| &case.script)
        })
    }

    /// Makes the row with id `case` answer for its code; returns that row.
    pub(crate) fn activate_case(&mut self, case: &str) -> Option<&FixtureCase> {
        let row = self
            .fixture
            .cases()
            .iter()
            .position(|row| row.case == case)?;
        let chosen = self.fixture.cases().get(row)?;
        self.active.insert(chosen.code.clone(), row);
        Some(chosen)
    }

    pub(crate) fn set_override(&mut self, code: String, script: CodeScript) {
        self.overrides.insert(code, script);
    }

    /// Drops the override of `code`; false if it had none.
    pub(crate) fn clear_override(&mut self, code: &str) -> bool {
        self.overrides.remove(code).is_some()
    }

    /// Drops every override and makes each code's first row answer again.
    pub(crate) fn reset(&mut self) {
        self.overrides.clear();
        self.activate_defaults();
    }

    pub(crate) fn cases(&self) -> Vec<CaseView> {
        let cases = self.fixture.cases();
        cases
            .iter()
            .enumerate()
            .map(|(row, case)| CaseView {
                case: case.case.clone(),
                code: case.code.clone(),
                scenario: case.scenario.clone(),
                state: case.script.text().to_owned(),
                active: self.active.get(&case.code) == Some(&row),
            })
            .collect()
    }

    pub(crate) fn overrides(&self) -> Vec<OverrideView> {
        let mut views: Vec<OverrideView> = self
            .overrides
            .iter()
            .map(|(code, script)| OverrideView {
                code: code.clone(),
                state: script.text().to_owned(),
            })
            .collect();
        views.sort_by(|a, b| a.code.cmp(&b.code));
        views
    }

    fn activate_defaults(&mut self) {
        self.active.clear();
        for (row, case) in self.fixture.cases().iter().enumerate() {
            self.active.entry(case.code.clone()).or_insert(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> CodeBook {
        let text = "case\tcode\tstate\n5.1\tC\tutilised=false\n514\tC\tdelay=1800ms\n9\tD\t\n";
        CodeBook::new(Fixture::parse(text, "test").unwrap())
    }

    #[test]
    fn the_first_row_of_a_code_answers_by_default() {
        let book = book();

        assert_eq!(book.script_for("C").unwrap().text(), "utilised=false");
    }

    #[test]
    fn an_activated_alternate_answers_until_reset() {
        let mut book = book();

        book.activate_case("514").unwrap();
        assert_eq!(book.script_for("C").unwrap().text(), "delay=1800ms");

        book.reset();
        assert_eq!(book.script_for("C").unwrap().text(), "utilised=false");
    }

    #[test]
    fn an_override_answers_before_any_row() {
        let mut book = book();

        book.set_override("D".into(), CodeScript::parse("sold=true").unwrap());

        assert_eq!(book.script_for("D").unwrap().text(), "sold=true");
        assert!(book.clear_override("D"));
        assert_eq!(book.script_for("D").unwrap().text(), "");
    }

    #[test]
    fn codes_match_exactly() {
        let book = book();

        assert!(book.script_for("c").is_none());
        assert!(book.script_for("C ").is_none());
    }

    #[test]
    fn the_listing_marks_the_active_rows() {
        let mut book = book();
        book.activate_case("514").unwrap();

        let active: Vec<(String, bool)> = book
            .cases()
            .into_iter()
            .map(|view| (view.case, view.active))
            .collect();

        assert_eq!(
            active,
            [
                ("5.1".into(), false),
                ("514".into(), true),
                ("9".into(), true)
            ]
        );
    }
}
