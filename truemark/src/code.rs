//! Marking codes (КМ) and identification codes (КИ), read from whatever a till delivers.
//!
//! This is the only place in iMark that handles raw scanned text (PROTOCOL.md §8).
//! [`MarkingCode::parse`] turns every form a till sends into one canonical full code, the one
//! `codes/check` needs: real GS (0x1D) separators where GS1 requires them and nowhere else,
//! crypto tail untouched. It keeps the original input and the list of [`Repair`]s beside it, or
//! refuses with a [`CodeError`] that tells the cashier what to do. [`Cis`] is the КИ that our
//! records use.
//!
//! # Repaired
//! A repair is made only when the result cannot be another code than the one scanned.
//!
//! - **Separator spellings** that cannot be data, because they contain a character outside
//!   GS1's set: `\u001d` / `\u001D` (also double-escaped), the broken `\u1d`, `\x1d`, `&#29;`,
//!   `&#x1D;` and other numeric references to 29, `{FNC1}`, `{GS}`, the caret notation `^]`, and
//!   `~1` (an FNC1 escape of barcode software). Some of these have not been seen from tills yet;
//!   they are read anyway because a character no code has can only be a separator.
//! - **`<GS>` and `<FNC1>` as text**: these are made of characters that real serials contain
//!   (`<`, `>`, letters, digits), so they are read as a separator only when the code has no
//!   other separator, and only where the structure of the code puts a separator. Every such
//!   reading is tried; exactly one valid reading is needed, two are refused as
//!   [`CodeError::SeparatorAmbiguous`]. When the code also has a real GS (or a certain spelling),
//!   `<GS>` is taken as the serial's own text.
//! - **Leading separator or FNC1**, **symbology identifiers** (`]d2`, `]C1`, `]Q3`, `]d1` …),
//!   **whitespace, CR/LF, NUL or BOM around the code**, a **trailing separator**.
//! - **A trailing full stop**, only when the code is invalid with it and valid without it (a
//!   tail of `93` + 5 characters, a 30-character pack code): `.` is a legal character of serials
//!   and tails.
//! - **Base64** of the whole code, as some fiscal drivers pass it: tried only when the text does
//!   not read as a code as it is, and only if it decodes to printable text.
//! - **A separator after an element of predefined length** (the GTIN, `17`, `3103` …) is dropped,
//!   and a **missing separator after a fixed-length element** that needs one (`8005`) is put back:
//!   in both cases the element's length fixes the boundary.
//! - **A lost separator between serial and crypto tail**, only when the input has no separator
//!   at all, no element besides GTIN, serial and tail, ends with a tail of known layout (`93`+4,
//!   or `91`+4 `92`+44/88) and the serial left over has a length ЧЗ uses (6, 7, 13).
//!
//! # Refused
//! - Empty input; a plain EAN-8/UPC/EAN-13/GTIN-14 or SSCC ([`CodeError::NotAMarkingCode`]).
//! - The printed `(01)…(21)…` text: it never carries the crypto tail.
//! - Cyrillic letters (a keyboard-wedge scanner in the Russian layout): letters map back to
//!   QWERTY one to one, but punctuation does not (`.` and `?` may be themselves or `/` and `&`),
//!   and serials use all of it; a guess would send a different code.
//! - Caps Lock, recognised from the symbology identifier (`]D2` for `]d2`). Elsewhere it cannot be
//!   seen, and the code goes to ЧЗ, which refuses the inverted crypto tail; iMark never changes
//!   the case of a code.
//! - Any other lost separator: a serial that ran on into a price or date
//!   (`…21DzkcYt28005090000␝93…`) is refused rather than recorded as a КИ that does not exist.
//! - A missing or malformed crypto tail, unknown application identifiers, characters outside
//!   GS1's set.
//!
//! Characters such as `' " < > % ; ( ) * ! / = &` are part of real serials and pass through
//! byte for byte. The canonical form is a fixed point: parsing [`MarkingCode::full`] gives the
//! same code with no repairs.

mod cis;
mod error;
mod gs1;
mod input;
mod parts;
mod repair;
mod separator;
mod structure;

use std::str::FromStr;

pub use cis::Cis;
pub use error::CodeError;
pub use parts::{CodeKind, CryptoTail, Element, Gtin};
pub use repair::Repair;

use structure::Wanted;

/// The GS1 application identifier of the price a tobacco block carries, in kopecks.
const PRICE_AI: &str = "8005";

/// A marking code (КМ) read from scanned text: the canonical full code and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkingCode {
    original: String,
    full: String,
    cis: Cis,
    gtin: Gtin,
    serial: String,
    crypto: CryptoTail,
    additional_elements: Vec<Element>,
    encoded_mrp: Option<String>,
    kind: CodeKind,
    repairs: Vec<Repair>,
}

impl MarkingCode {
    /// Reads a full marking code from scanned text in any of the forms listed in the module
    /// documentation.
    ///
    /// # Errors
    /// A [`CodeError`] naming why the text cannot be taken as a marking code; show its
    /// [`cashier_message`](CodeError::cashier_message) at the till.
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        let reading = input::read(raw, Wanted::MarkingCode)?;
        let structure = reading.structure;
        let Some(crypto) = structure.crypto.clone() else {
            return Err(CodeError::CryptoTailMissing);
        };

        Ok(Self {
            original: raw.to_owned(),
            full: structure.full_text(),
            cis: Cis::of(&structure),
            additional_elements: structure.additional_elements(),
            gtin: structure.gtin,
            serial: structure.serial,
            crypto,
            encoded_mrp: structure.encoded_mrp,
            kind: structure.kind,
            repairs: reading.repairs,
        })
    }

    /// The canonical full code for `codes/check`: real GS (0x1D) separators, crypto tail intact.
    pub fn full(&self) -> &str {
        &self.full
    }

    /// The identification code (КИ): the code without its crypto tail.
    pub fn cis(&self) -> &Cis {
        &self.cis
    }

    /// The product's GTIN.
    pub fn gtin(&self) -> &Gtin {
        &self.gtin
    }

    /// The serial number, case and punctuation exactly as printed.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The crypto tail.
    pub fn crypto(&self) -> &CryptoTail {
        &self.crypto
    }

    /// The GS1 elements besides GTIN, serial and crypto tail (`8005`, `17`, `240`, `3103` …), in
    /// scan order. Empty for a tobacco pack.
    pub fn additional_elements(&self) -> &[Element] {
        &self.additional_elements
    }

    /// The price the code itself carries, in kopecks: the value of AI `8005` (a tobacco block's
    /// price). `None` when the code has no such element.
    ///
    /// Always `None` for a 29-character tobacco pack: its price is encoded in four characters
    /// (see [`Self::encoded_mrp`]) by a scheme CRPT has not published, and the public decoders
    /// disagree with each other and with CRPT's test codes. The pack's maximum retail price is
    /// the `mrp` of the `codes/check` answer.
    pub fn price_kopecks(&self) -> Option<u64> {
        let price = self
            .additional_elements
            .iter()
            .find(|e| e.ai() == PRICE_AI)?;
        price.value().parse().ok()
    }

    /// For a 29-character tobacco pack, the four characters (positions 22–25) in which it
    /// encodes its maximum retail price, as scanned and not decoded; see
    /// [`Self::price_kopecks`].
    pub fn encoded_mrp(&self) -> Option<&str> {
        self.encoded_mrp.as_deref()
    }

    /// The layout of the code.
    pub fn kind(&self) -> CodeKind {
        self.kind
    }

    /// The input exactly as it was given to [`Self::parse`].
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The repairs that turned the original into the canonical code, in the order made; empty
    /// when the input was canonical.
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }
}

impl FromStr for MarkingCode {
    type Err = CodeError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}
