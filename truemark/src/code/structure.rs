//! From a [`Layout`] to the structure of a marking code: the GS1 elements or the 29-character
//! tobacco pack, checked against the rules of ЧЗ codes.
//!
//! A code is first read as written. Only when that gives no reading are repairs that change its
//! content tried (dropping a trailing full stop, restoring a lost separator), and a repair is
//! taken only when exactly one of them yields a valid code.

use std::ops::Range;

use super::CodeError;
use super::gs1::{self, AiSpec, GS, Length};
use super::parts::{CodeKind, CryptoTail, Element, Gtin};
use super::repair::Repair;
use super::separator::{self, Layout};

/// Serial lengths that ЧЗ product groups use: 6 (dairy), 7 (tobacco, beer), 13 (most others).
/// Used only to judge a lost separator, never to refuse a serial.
const KNOWN_SERIAL_LENGTHS: [usize; 3] = [6, 7, 13];

/// The longest canonical code accepted. Real codes are under 200 characters; the bound keeps the
/// canonical form (which may gain a separator or two) well inside the input limit, so that it
/// always reads again.
const MAX_CODE_LEN: usize = 512;

/// The work allowed to the search through ambiguous separator spellings; beyond it the input is
/// refused as ambiguous rather than explored further.
const SEARCH_STEPS: u32 = 4_096;

/// What the caller needs from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// A full marking code, crypto tail included.
    MarkingCode,
    /// An identification code: a full code or a КИ; a crypto tail, if present, must be valid.
    Cis,
}

/// The parts of a code, checked, before they become a `MarkingCode` or a `Cis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Structure {
    pub kind: CodeKind,
    pub gtin: Gtin,
    pub serial: String,
    pub crypto: Option<CryptoTail>,
    /// For a tobacco pack, the four characters that encode its maximum retail price.
    pub encoded_mrp: Option<String>,
    /// For a GS1 code, every element in scan order, `01` and `21` first.
    elements: Vec<Element>,
}

/// A structure together with the repairs that reading it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reading {
    pub structure: Structure,
    pub repairs: Vec<Repair>,
}

impl Structure {
    /// The identification code: `01` + GTIN + `21` + serial, or a pack's first 21 characters.
    pub fn cis_text(&self) -> String {
        match self.kind {
            CodeKind::Gs1DataMatrix => format!("01{}21{}", self.gtin, self.serial),
            CodeKind::TobaccoPack => format!("{}{}", self.gtin, self.serial),
        }
    }

    /// The canonical full code: GS only where GS1 needs one, that is after every element but
    /// the last whose length is not predefined.
    pub fn full_text(&self) -> String {
        match self.kind {
            CodeKind::Gs1DataMatrix => canonical_element_string(&self.elements),
            CodeKind::TobaccoPack => {
                let mut text = self.cis_text();
                text.extend(self.encoded_mrp.as_deref());
                if let Some(CryptoTail::VerificationCode(code)) = &self.crypto {
                    text.push_str(code);
                }
                text
            }
        }
    }

    /// The elements other than the GTIN, the serial and the crypto tail, in scan order.
    pub fn additional_elements(&self) -> Vec<Element> {
        self.elements
            .iter()
            .filter(|e| !matches!(e.ai(), "01" | "21" | "91" | "92" | "93"))
            .cloned()
            .collect()
    }
}

fn canonical_element_string(elements: &[Element]) -> String {
    let mut text = String::new();
    let mut elements = elements.iter().peekable();
    while let Some(element) = elements.next() {
        text.push_str(element.ai());
        text.push_str(element.value());
        if elements.peek().is_some() && !gs1::has_predefined_length(element.ai()) {
            text.push(char::from(GS));
        }
    }
    text
}

/// Reads the structure of the code laid out in `layout`.
///
/// # Errors
/// The refusal of the reading as written, or [`CodeError::SeparatorAmbiguous`] /
/// [`CodeError::SeparatorMissing`] when several repairs would fit.
pub(super) fn read(layout: &Layout, wanted: Wanted) -> Result<Reading, CodeError> {
    let reading = match read_as_written(layout, wanted) {
        Verdict::Accepted(reading) => reading,
        Verdict::Refused(error) => return Err(error),
        Verdict::Unreadable(error) => read_with_a_repair(layout, wanted).unwrap_or(Err(error))?,
    };

    if reading.structure.full_text().len() > MAX_CODE_LEN {
        return Err(CodeError::Malformed);
    }
    Ok(reading)
}

/// Tries the repairs that change what the code says: without a trailing full stop, with the
/// separator before the crypto tail restored. `None` when no repair gives a valid code; a
/// refusal when more than one does.
fn read_with_a_repair(layout: &Layout, wanted: Wanted) -> Option<Result<Reading, CodeError>> {
    let dotless = layout.without_trailing_full_stop();
    let mut repaired = Vec::new();
    if let Some(dotless) = &dotless
        && let Verdict::Accepted(reading) = read_as_written(dotless, wanted)
    {
        repaired.push(reading.after(Repair::TrailingFullStopRemoved));
    }
    let may_restore_separator = wanted == Wanted::MarkingCode;
    if may_restore_separator {
        repaired.extend(restore_lost_separator(layout));
        let dotless_restored = dotless.as_ref().and_then(restore_lost_separator);
        repaired.extend(dotless_restored.map(|r| r.after(Repair::TrailingFullStopRemoved)));
    }

    match <[Reading; 1]>::try_from(distinct(repaired)) {
        Ok([reading]) => Some(Ok(reading)),
        Err(readings) if readings.is_empty() => None,
        Err(_) if may_restore_separator && !layout.has_separator() => {
            Some(Err(CodeError::SeparatorMissing))
        }
        Err(_) => Some(Err(CodeError::SeparatorAmbiguous)),
    }
}

impl Reading {
    fn after(mut self, repair: Repair) -> Self {
        self.repairs.push(repair);
        self
    }
}

enum Verdict {
    Accepted(Reading),
    /// No reading can be trusted, whatever repair is tried.
    Refused(CodeError),
    /// No reading as written; repairs may still find one.
    Unreadable(CodeError),
}

/// Reads the code without changing its content: as a tobacco pack, as a GS1 string whose
/// ambiguous spellings are data, and only if neither fits, with those spellings as separators.
fn read_as_written(layout: &Layout, wanted: Wanted) -> Verdict {
    let pack = tobacco_pack(layout.bytes(), wanted);
    // A separator-free КИ of 21 or 29 characters is a pack's: a GS1 КИ that short would have a
    // serial of 3 or 11 characters, which no product group uses.
    if wanted == Wanted::Cis
        && let Some(structure) = pack
    {
        return Verdict::Accepted(Reading {
            structure,
            repairs: Vec::new(),
        });
    }

    let literal = Search::run(layout.bytes(), &[], wanted);
    let mut exact = literal.readings;
    exact.extend(pack.map(|structure| Reading {
        structure,
        repairs: Vec::new(),
    }));
    if let Some(verdict) = decide(exact) {
        return verdict;
    }
    if layout.ambiguous_spans().is_empty() {
        return Verdict::Unreadable(literal.error);
    }

    let spelled = Search::run(layout.bytes(), layout.ambiguous_spans(), wanted);
    if spelled.exhausted {
        return Verdict::Refused(CodeError::SeparatorAmbiguous);
    }
    decide(spelled.readings).unwrap_or(Verdict::Unreadable(spelled.error))
}

fn decide(readings: Vec<Reading>) -> Option<Verdict> {
    match <[Reading; 1]>::try_from(distinct(readings)) {
        Ok([reading]) => Some(Verdict::Accepted(reading)),
        Err(readings) if readings.is_empty() => None,
        Err(_) => Some(Verdict::Refused(CodeError::SeparatorAmbiguous)),
    }
}

/// Keeps one reading per distinct structure.
fn distinct(readings: Vec<Reading>) -> Vec<Reading> {
    let mut kept: Vec<Reading> = Vec::with_capacity(readings.len());
    for reading in readings {
        if !kept.iter().any(|k| k.structure == reading.structure) {
            kept.push(reading);
        }
    }
    kept
}

/// Reads the 29-character code of a tobacco pack, or (for a КИ) its first 21 characters.
fn tobacco_pack(bytes: &[u8], wanted: Wanted) -> Option<Structure> {
    if bytes.contains(&GS) {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let (gtin, rest) = text.split_at_checked(14)?;
    let (serial, rest) = rest.split_at_checked(7)?;
    let (encoded_mrp, crypto) = match (rest.len(), wanted) {
        (8, _) => {
            let (mrp, check) = rest.split_at_checked(4)?;
            (
                Some(mrp.to_owned()),
                Some(CryptoTail::VerificationCode(check.to_owned())),
            )
        }
        (0, Wanted::Cis) => (None, None),
        _ => return None,
    };
    Some(Structure {
        kind: CodeKind::TobaccoPack,
        gtin: Gtin::new(gtin)?,
        serial: serial.to_owned(),
        crypto,
        encoded_mrp,
        elements: Vec::new(),
    })
}

/// Restores the separator a scanner lost between the serial and the crypto tail, when the input
/// has no separator at all, ends with a crypto tail of known layout (`93`+4, or `91`+4 `92`+44
/// or 88), carries no other element, and the serial left over has a length that ЧЗ uses.
fn restore_lost_separator(layout: &Layout) -> Option<Reading> {
    if layout.has_separator() {
        return None;
    }
    let text = std::str::from_utf8(layout.bytes()).ok()?;
    let rest = text.strip_prefix("01")?;
    let (gtin, rest) = rest.split_at_checked(14)?;
    let body = rest.strip_prefix("21")?;

    let mut found = Vec::new();
    for tail_len in [6, 52, 96] {
        let Some(serial_len) = body.len().checked_sub(tail_len) else {
            continue;
        };
        if !KNOWN_SERIAL_LENGTHS.contains(&serial_len) {
            continue;
        }
        let Some((serial, tail)) = body.split_at_checked(serial_len) else {
            continue;
        };
        let Some(crypto) = split_crypto_tail(tail) else {
            continue;
        };

        let mut elements = vec![Element::new("01", gtin), Element::new("21", serial)];
        elements.extend(crypto);
        if let Ok(structure) = marking_structure(elements, Wanted::MarkingCode) {
            found.push(structure);
        }
    }

    let [structure] = <[Structure; 1]>::try_from(found).ok()?;
    Some(Reading {
        structure,
        repairs: vec![Repair::LostSeparatorRestored],
    })
}

/// Splits a run-together crypto tail (`93xxxx`, or `91xxxx92…`) into its elements.
fn split_crypto_tail(tail: &str) -> Option<Vec<Element>> {
    if let Some(code) = tail.strip_prefix("93") {
        return (code.len() == 4).then(|| vec![Element::new("93", code)]);
    }
    let rest = tail.strip_prefix("91")?;
    let (key_id, rest) = rest.split_at_checked(4)?;
    let signature = rest.strip_prefix("92")?;
    Some(vec![
        Element::new("91", key_id),
        Element::new("92", signature),
    ])
}

/// Applies the rules of ЧЗ codes to GS1 elements read in scan order.
fn marking_structure(elements: Vec<Element>, wanted: Wanted) -> Result<Structure, CodeError> {
    let (gtin, serial) = match elements.as_slice() {
        [first, ..] if first.ai() == "00" => return Err(CodeError::NotAMarkingCode),
        [first] if first.ai() == "01" => return Err(CodeError::NotAMarkingCode),
        [first, second, ..] if first.ai() == "01" && second.ai() == "21" => {
            (first.value(), second.value())
        }
        _ => return Err(CodeError::Malformed),
    };
    if has_repeated_ai(&elements) {
        return Err(CodeError::Malformed);
    }

    let crypto = crypto_tail(&elements)?;
    if crypto.is_none() && wanted == Wanted::MarkingCode {
        return Err(if ends_with_verification_code(serial) {
            CodeError::SeparatorMissing
        } else {
            CodeError::CryptoTailMissing
        });
    }
    if swallowed_an_element(serial) {
        return Err(CodeError::SeparatorMissing);
    }

    Ok(Structure {
        kind: CodeKind::Gs1DataMatrix,
        gtin: Gtin::new(gtin).ok_or(CodeError::Malformed)?,
        serial: serial.to_owned(),
        crypto,
        encoded_mrp: None,
        elements,
    })
}

fn has_repeated_ai(elements: &[Element]) -> bool {
    elements.iter().enumerate().any(|(i, e)| {
        elements
            .iter()
            .skip(i + 1)
            .any(|later| later.ai() == e.ai())
    })
}

/// The crypto tail: `93` alone, or `91` and `92` together, with the lengths ЧЗ issues.
fn crypto_tail(elements: &[Element]) -> Result<Option<CryptoTail>, CodeError> {
    let value_of = |ai: &str| elements.iter().find(|e| e.ai() == ai).map(Element::value);
    match (value_of("93"), value_of("91"), value_of("92")) {
        (None, None, None) => Ok(None),
        (Some(code), None, None) if code.len() == 4 => {
            Ok(Some(CryptoTail::VerificationCode(code.to_owned())))
        }
        (None, Some(key_id), Some(signature))
            if key_id.len() == 4
                && matches!(signature.len(), 44 | 88)
                && signature.bytes().all(is_base64_byte) =>
        {
            Ok(Some(CryptoTail::Signature {
                key_id: key_id.to_owned(),
                signature: signature.to_owned(),
            }))
        }
        _ => Err(CodeError::CryptoTailMalformed),
    }
}

fn is_base64_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=')
}

/// Whether a serial that took in everything after `21` ends like a `93` verification code: the
/// sign of a lost separator rather than of a code without a tail.
fn ends_with_verification_code(serial: &str) -> bool {
    serial.len() > 6
        && serial
            .get(serial.len() - 6..)
            .is_some_and(|tail| tail.starts_with("93"))
}

/// Whether a serial of a length no product group uses is a serial of a usual length followed by
/// one complete element of fixed length (`8005` + 6 digits, `17` + date, `93` + 4 …), directly
/// or after `<GS>` written out. That is a separator lost or spelled after the serial: reading it
/// as part of the serial would record a КИ that does not exist.
fn swallowed_an_element(serial: &str) -> bool {
    if KNOWN_SERIAL_LENGTHS.contains(&serial.len()) {
        return false;
    }
    KNOWN_SERIAL_LENGTHS
        .iter()
        .filter_map(|len| serial.get(*len..))
        .map(|rest| {
            let spelled = separator::ambiguous_spelling_len(rest.as_bytes()).unwrap_or(0);
            rest.get(spelled..).unwrap_or(rest)
        })
        .any(is_one_fixed_length_element)
}

fn is_one_fixed_length_element(text: &str) -> bool {
    if let Some(code) = text.strip_prefix("93").or_else(|| text.strip_prefix("91")) {
        return code.len() == 4;
    }
    let Some((ai, spec)) = gs1::application_identifier(text.as_bytes()) else {
        return false;
    };
    let value = text.get(ai.len()..).unwrap_or_default();
    spec.length == Length::Fixed(value.len()) && fits(spec, value.as_bytes())
}

fn fits(spec: AiSpec, value: &[u8]) -> bool {
    !value.is_empty() && (!spec.numeric || value.iter().all(u8::is_ascii_digit))
}

/// The outcome of searching the ways a GS1 string can be read.
struct Search<'a> {
    bytes: &'a [u8],
    /// Ambiguous separator spellings that the search may read as separators.
    spans: &'a [Range<usize>],
    wanted: Wanted,
    readings: Vec<Reading>,
    /// The refusal of the attempt that got furthest into the input.
    error: CodeError,
    error_at: usize,
    steps_left: u32,
    exhausted: bool,
    elements: Vec<Element>,
    repairs: Vec<Repair>,
}

impl<'a> Search<'a> {
    /// Reads `bytes` as GS1 elements every way the separators allow: a certain GS always ends a
    /// variable-length value; a span in `spans` may end one, or be part of it. Stops at two
    /// distinct valid readings, since two already make the input ambiguous.
    fn run(bytes: &'a [u8], spans: &'a [Range<usize>], wanted: Wanted) -> Self {
        let mut search = Self {
            bytes,
            spans,
            wanted,
            readings: Vec::new(),
            error: CodeError::Malformed,
            error_at: 0,
            steps_left: SEARCH_STEPS,
            exhausted: false,
            elements: Vec::new(),
            repairs: Vec::new(),
        };
        search.element_at(0);
        search
    }

    fn element_at(&mut self, at: usize) {
        if self.readings.len() > 1 || self.exhausted {
            return;
        }
        let Some(steps_left) = self.steps_left.checked_sub(1) else {
            self.exhausted = true;
            return;
        };
        self.steps_left = steps_left;

        if at == self.bytes.len() {
            self.complete();
            return;
        }
        if let Some((next, spelling)) = self.separator_at(at) {
            let mut repairs = vec![Repair::ExtraSeparatorRemoved];
            repairs.extend(spelling);
            self.continue_at(next, repairs);
            return;
        }
        let rest = self.bytes.get(at..).unwrap_or_default();
        let Some((ai, spec)) = gs1::application_identifier(rest) else {
            self.fail(at, CodeError::Malformed);
            return;
        };
        let ai = ai.to_owned();
        let value_at = at + ai.len();
        match spec.length {
            Length::Fixed(len) => self.fixed_value(&ai, spec, value_at, len),
            Length::UpTo(max) => self.variable_value(&ai, spec, value_at, max),
        }
    }

    fn fixed_value(&mut self, ai: &str, spec: AiSpec, at: usize, len: usize) {
        let end = at + len;
        match self.bytes.get(at..end) {
            Some(value) if !value.contains(&GS) => self.take_value(ai, spec, at..end),
            _ => self.fail(at, CodeError::Malformed),
        }
    }

    /// Tries every place where the value may end: before each ambiguous spelling within reach,
    /// and at the next certain separator or the end of the input.
    fn variable_value(&mut self, ai: &str, spec: AiSpec, at: usize, max: usize) {
        let rest = self.bytes.get(at..).unwrap_or_default();
        let stop = at + rest.iter().position(|b| *b == GS).unwrap_or(rest.len());
        let spans = self.spans;
        for span in spans.iter().filter(|s| s.start > at && s.start < stop) {
            if span.start - at <= max {
                self.take_value(ai, spec, at..span.start);
            }
        }
        if stop > at && stop - at <= max {
            self.take_value(ai, spec, at..stop);
        } else if stop - at > max {
            self.fail(at, too_long(ai));
        } else {
            self.fail(at, CodeError::Malformed);
        }
    }

    fn take_value(&mut self, ai: &str, spec: AiSpec, value: Range<usize>) {
        let end = value.end;
        let Some(bytes) = self.bytes.get(value) else {
            return;
        };
        let Some(text) = std::str::from_utf8(bytes)
            .ok()
            .filter(|_| fits(spec, bytes))
        else {
            self.fail(end, CodeError::Malformed);
            return;
        };
        self.elements.push(Element::new(ai, text));
        self.after_value(ai, spec, end);
        self.elements.pop();
    }

    /// Moves past what ends a value: nothing at the end of the input, a separator, or (for a
    /// fixed length) the next element directly.
    fn after_value(&mut self, ai: &str, spec: AiSpec, end: usize) {
        if end == self.bytes.len() {
            self.continue_at(end, Vec::new());
            return;
        }
        let predefined = gs1::has_predefined_length(ai);
        if let Some((next, spelling)) = self.separator_at(end) {
            let mut repairs: Vec<Repair> = spelling.into_iter().collect();
            if predefined {
                repairs.push(Repair::RedundantSeparatorRemoved);
            }
            self.continue_at(next, repairs);
        } else if matches!(spec.length, Length::Fixed(_)) {
            let repairs = if predefined {
                Vec::new()
            } else {
                vec![Repair::SeparatorInserted {
                    after: ai.to_owned(),
                }]
            };
            self.continue_at(end, repairs);
        }
    }

    /// The separator at `at`, if any: where it ends, and the repair an ambiguous spelling takes.
    fn separator_at(&self, at: usize) -> Option<(usize, Option<Repair>)> {
        if self.bytes.get(at) == Some(&GS) {
            return Some((at + 1, None));
        }
        let span = self.spans.iter().find(|span| span.start == at)?;
        let spelling = self.bytes.get(span.clone()).unwrap_or_default();
        let repair = Repair::SeparatorSpellingReplaced {
            spelling: String::from_utf8_lossy(spelling).into_owned(),
        };
        Some((span.end, Some(repair)))
    }

    fn continue_at(&mut self, at: usize, repairs: Vec<Repair>) {
        let kept = self.repairs.len();
        self.repairs.extend(repairs);
        self.element_at(at);
        self.repairs.truncate(kept);
    }

    fn complete(&mut self) {
        match marking_structure(self.elements.clone(), self.wanted) {
            Ok(structure) => {
                if !self.readings.iter().any(|r| r.structure == structure) {
                    let repairs = self.repairs.clone();
                    self.readings.push(Reading { structure, repairs });
                }
            }
            // A complete reading that breaks a rule says more than any partial one.
            Err(error) => self.fail(self.bytes.len() + 1, error),
        }
    }

    fn fail(&mut self, at: usize, error: CodeError) {
        if at >= self.error_at {
            self.error_at = at;
            self.error = error;
        }
    }
}

/// The refusal for a value longer than its AI allows: a serial that runs on has lost the
/// separator after it; a crypto value that runs on is broken.
fn too_long(ai: &str) -> CodeError {
    match ai {
        "21" => CodeError::SeparatorMissing,
        "91" | "92" | "93" => CodeError::CryptoTailMalformed,
        _ => CodeError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str, wanted: Wanted) -> Result<Reading, CodeError> {
        let layout = Layout::of(text, &mut Vec::new())?;
        read(&layout, wanted)
    }

    fn full(text: &str) -> Result<String, CodeError> {
        read_text(text, Wanted::MarkingCode).map(|r| r.structure.full_text())
    }

    #[test]
    fn a_canonical_code_reads_without_repairs() {
        let reading = read_text("0104670540176099215'W9Um\u{1d}93dGVz", Wanted::MarkingCode);

        let reading = reading.unwrap();
        assert!(reading.repairs.is_empty());
        assert_eq!(reading.structure.serial, "5'W9Um");
    }

    #[test]
    fn a_separator_after_the_gtin_is_dropped() {
        assert_eq!(
            full("0104680046264732\u{1d}215l>VEUc\u{1d}93Is54"),
            Ok("0104680046264732215l>VEUc\u{1d}93Is54".to_owned())
        );
    }

    #[test]
    fn a_separator_lost_after_a_fixed_length_price_is_put_back() {
        let reading = read_text(
            "010462930887704421DzkcYt2\u{1d}800509000093dGVz",
            Wanted::MarkingCode,
        );

        let reading = reading.unwrap();
        assert_eq!(
            reading.structure.full_text(),
            "010462930887704421DzkcYt2\u{1d}8005090000\u{1d}93dGVz"
        );
        assert_eq!(
            reading.repairs,
            [Repair::SeparatorInserted {
                after: "8005".into()
            }]
        );
    }

    #[test]
    fn a_serial_that_swallowed_the_price_is_refused() {
        assert_eq!(
            full("010462930887704421DzkcYt28005090000\u{1d}93dGVz"),
            Err(CodeError::SeparatorMissing)
        );
    }

    #[test]
    fn a_lost_separator_before_a_93_tail_is_restored_for_known_serial_lengths() {
        for serial in ["5'W9Um", "DzkcYt2", "5Z7(DdTeBEIIU"] {
            let reading = read_text(
                &format!("010467054017609921{serial}93dGVz"),
                Wanted::MarkingCode,
            );

            let reading = reading.unwrap();
            assert_eq!(reading.structure.serial, serial);
            assert_eq!(reading.repairs, [Repair::LostSeparatorRestored]);
        }
    }

    #[test]
    fn a_lost_separator_with_an_unusual_serial_length_is_refused() {
        assert_eq!(
            full("0104670540176099215'W9Umxy93dGVz"),
            Err(CodeError::SeparatorMissing)
        );
    }

    #[test]
    fn a_code_without_any_tail_is_refused_as_tailless() {
        assert_eq!(
            full("0104670540176099215'W9Um"),
            Err(CodeError::CryptoTailMissing)
        );
    }

    #[test]
    fn tail_lengths_are_checked() {
        assert_eq!(
            full("0104670540176099215'W9Um\u{1d}93dGV"),
            Err(CodeError::CryptoTailMalformed)
        );
        assert_eq!(
            full("0104670540176099215'W9Um\u{1d}91EE06"),
            Err(CodeError::CryptoTailMalformed)
        );
    }

    #[test]
    fn a_cis_needs_no_tail_and_a_short_pack_cis_is_a_pack() {
        let gs1 = read_text("0104670540176099215'W9Um", Wanted::Cis).unwrap();
        let pack = read_text("00000046186195Xp4k=xy", Wanted::Cis).unwrap();

        assert_eq!(gs1.structure.cis_text(), "0104670540176099215'W9Um");
        assert_eq!(pack.structure.kind, CodeKind::TobaccoPack);
    }

    #[test]
    fn a_search_with_too_many_ways_to_read_gives_up_as_ambiguous() {
        let batches = "10a<GS>".repeat(60);
        let text = format!("0104670540176099215'W9Um<GS>{batches}93dGVz");

        assert_eq!(full(&text), Err(CodeError::SeparatorAmbiguous));
    }
}
