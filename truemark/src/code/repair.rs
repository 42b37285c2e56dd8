//! The changes made to scanned text on its way to the canonical code, kept as evidence.

use serde::Serialize;

/// One change made to the scanned text to reach the canonical code.
///
/// A parse keeps the list next to the original input, so that anyone can later see why the code
/// sent to ЧЗ differs from what the till delivered. Serialised as
/// `{"repair": "<snake_case name>", ...details}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "repair", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Repair {
    /// Whitespace, CR/LF, NUL or a byte-order mark around the code was dropped.
    SurroundingWhitespaceTrimmed,
    /// The whole input was base64 (as some fiscal drivers pass it) and was decoded.
    Base64Decoded,
    /// The reader's symbology identifier (`]d2`, `]C1`, `]Q3` …) before the code was dropped.
    SymbologyIdentifierRemoved {
        /// The identifier as it arrived.
        identifier: String,
    },
    /// A separator before the first element (the FNC1 that marks GS1 mode) was dropped.
    LeadingSeparatorRemoved,
    /// A separator written as text was read as the GS byte.
    SeparatorSpellingReplaced {
        /// The spelling as it arrived, e.g. `\u001d`, `&#x1D;` or `<GS>`.
        spelling: String,
    },
    /// A separator after an element of predefined length (the GTIN, an expiry date …) was
    /// dropped: GS1 needs none there, and the canonical form has none.
    RedundantSeparatorRemoved,
    /// A repeated or trailing separator was dropped.
    ExtraSeparatorRemoved,
    /// A separator missing after a fixed-length element that GS1 ends with one (such as the
    /// tobacco price `8005`) was put back; the element's length leaves no doubt where it goes.
    SeparatorInserted {
        /// The application identifier of the element the separator follows.
        after: String,
    },
    /// The separator between the serial and the crypto tail was lost and was put back from the
    /// known lengths of both.
    LostSeparatorRestored,
    /// A stray full stop after the code was dropped.
    TrailingFullStopRemoved,
}

/// Drops repeated entries, keeping the first of each in order.
pub(super) fn deduplicated(repairs: Vec<Repair>) -> Vec<Repair> {
    let mut kept: Vec<Repair> = Vec::with_capacity(repairs.len());
    for repair in repairs {
        if !kept.contains(&repair) {
            kept.push(repair);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_serialise_with_a_snake_case_tag() {
        let spelled = Repair::SeparatorSpellingReplaced {
            spelling: "&#29;".into(),
        };

        let json = serde_json::to_string(&[spelled, Repair::Base64Decoded]).unwrap();

        assert_eq!(
            json,
            r##"[{"repair":"separator_spelling_replaced","spelling":"&#29;"},{"repair":"base64_decoded"}]"##
        );
    }

    #[test]
    fn repeated_repairs_are_kept_once_in_order() {
        let repairs = vec![
            Repair::ExtraSeparatorRemoved,
            Repair::Base64Decoded,
            Repair::ExtraSeparatorRemoved,
        ];

        assert_eq!(
            deduplicated(repairs),
            [Repair::ExtraSeparatorRemoved, Repair::Base64Decoded]
        );
    }
}
