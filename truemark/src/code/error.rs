//! Why a scanned code was refused, for logs, for API clients and for the cashier.

/// A refusal of scanned text as a marking code.
///
/// Every variant is a fault of the input (the scanner, its settings, or what the cashier
/// scanned), never of iMark, so callers log it at debug/warn and answer 422. [`Self::code`] is
/// the stable machine name and [`Self::cashier_message`] the Russian text for the till screen;
/// `Display` is an English one-liner for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Nothing but whitespace arrived: the mark could not be read.
    #[error("the scanned code is empty")]
    EmptyCode,

    /// A plain product barcode (EAN-8, EAN-13, UPC, GTIN-14, SSCC) instead of a marking code.
    #[error("a product barcode was scanned instead of a marking code")]
    NotAMarkingCode,

    /// The human-readable `(01)…(21)…` line printed under the symbol. It never carries the
    /// crypto tail, so the sale cannot be checked with it.
    #[error("the printed text under the symbol was entered instead of the DataMatrix")]
    PrintedTextNotDataMatrix,

    /// Cyrillic letters: a keyboard-wedge scanner typed through the Russian layout. Not repaired,
    /// see the module documentation.
    #[error("the code arrived through a Russian keyboard layout")]
    WrongKeyboardLayout,

    /// The letter case of the code is inverted (detected from the symbology identifier). Not
    /// repaired: the crypto tail is case-sensitive.
    #[error("the code arrived with Caps Lock on")]
    CapsLockOn,

    /// Characters that no marking code contains: control characters, non-Latin letters, or
    /// ASCII outside the GS1 character set (`#`, `$`, `@`, `\`, space …).
    #[error("the code contains characters that no marking code has")]
    InvalidCharacters,

    /// The GS separator between the serial and what follows was lost and cannot be restored
    /// with certainty.
    #[error("a GS separator is missing")]
    SeparatorMissing,

    /// The separator arrived as text that may also be part of a serial (`<GS>`, `<FNC1>`), and
    /// more than one reading of the code fits.
    #[error("a separator written as text can be read in more than one way")]
    SeparatorAmbiguous,

    /// The code has no crypto tail (`93`, or `91` + `92`): an identification code or a code
    /// typed by hand.
    #[error("the code has no crypto tail")]
    CryptoTailMissing,

    /// The crypto tail has the wrong length or characters: usually a truncated read.
    #[error("the crypto tail is malformed")]
    CryptoTailMalformed,

    /// Anything else that is not a marking code: unknown application identifiers, a GTIN that is
    /// not 14 digits, no serial, repeated elements, an input far too long.
    #[error("the input is not a well-formed marking code")]
    Malformed,
}

impl CodeError {
    /// The stable snake_case name of the refusal, for API bodies, metrics and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyCode => "empty_code",
            Self::NotAMarkingCode => "not_a_marking_code",
            Self::PrintedTextNotDataMatrix => "printed_text_not_datamatrix",
            Self::WrongKeyboardLayout => "wrong_keyboard_layout",
            Self::CapsLockOn => "caps_lock_on",
            Self::InvalidCharacters => "invalid_characters",
            Self::SeparatorMissing => "separator_missing",
            Self::SeparatorAmbiguous => "separator_ambiguous",
            Self::CryptoTailMissing => "crypto_tail_missing",
            Self::CryptoTailMalformed => "crypto_tail_malformed",
            Self::Malformed => "malformed_code",
        }
    }

    /// A short Russian sentence for the till screen that says what the cashier should do.
    pub fn cashier_message(&self) -> &'static str {
        match self {
            Self::EmptyCode => "Код маркировки не считан. Отсканируйте его ещё раз.",
            Self::NotAMarkingCode => {
                "Это штрихкод товара, а не код маркировки. \
                 Отсканируйте квадратный код DataMatrix на упаковке."
            }
            Self::PrintedTextNotDataMatrix => {
                "Введён текст, напечатанный под кодом. \
                 Отсканируйте сам квадратный код DataMatrix."
            }
            Self::WrongKeyboardLayout => {
                "Код пришёл в русской раскладке. Включите английскую раскладку \
                 или настройте сканер и повторите."
            }
            Self::CapsLockOn => "Включён Caps Lock. Выключите его и отсканируйте код снова.",
            Self::InvalidCharacters => {
                "В коде недопустимые символы. Проверьте настройки сканера и отсканируйте снова."
            }
            Self::SeparatorMissing => {
                "Сканер не передал разделитель GS. Включите передачу GS (FNC1) \
                 в настройках сканера и отсканируйте снова."
            }
            Self::SeparatorAmbiguous => {
                "Сканер передаёт разделитель текстом. Настройте передачу символа GS \
                 и отсканируйте снова."
            }
            Self::CryptoTailMissing => {
                "В коде нет криптохвоста. Отсканируйте код DataMatrix на упаковке, \
                 не вводите его вручную."
            }
            Self::CryptoTailMalformed => "Код считан не полностью. Отсканируйте его ещё раз.",
            Self::Malformed => {
                "Код не распознан как код маркировки. Отсканируйте DataMatrix на упаковке ещё раз."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CodeError;

    const ALL: [CodeError; 11] = [
        CodeError::EmptyCode,
        CodeError::NotAMarkingCode,
        CodeError::PrintedTextNotDataMatrix,
        CodeError::WrongKeyboardLayout,
        CodeError::CapsLockOn,
        CodeError::InvalidCharacters,
        CodeError::SeparatorMissing,
        CodeError::SeparatorAmbiguous,
        CodeError::CryptoTailMissing,
        CodeError::CryptoTailMalformed,
        CodeError::Malformed,
    ];

    #[test]
    fn machine_codes_are_unique_snake_case() {
        let mut codes: Vec<_> = ALL.iter().map(CodeError::code).collect();
        codes.sort_unstable();
        codes.dedup();

        assert_eq!(codes.len(), ALL.len());
        for code in codes {
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
    }

    #[test]
    fn every_cashier_message_is_russian_and_short() {
        for error in ALL {
            let message = error.cashier_message();

            assert!(
                message.chars().any(|c| ('а'..='я').contains(&c)),
                "{message}"
            );
            assert!(message.chars().count() <= 120, "{message}");
        }
    }
}
