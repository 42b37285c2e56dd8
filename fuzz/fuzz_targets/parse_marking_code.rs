//! Feeds arbitrary bytes, read as lossy UTF-8 like a till's text would be, to marking-code
//! parsing. Besides not panicking, whatever is accepted must be canonical: read again, its full
//! code gives the same code with no repairs, and the same КИ.

#![no_main]

use libfuzzer_sys::fuzz_target;
use truemark::code::{Cis, MarkingCode};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Cis::parse(&text);
    let Ok(code) = MarkingCode::parse(&text) else {
        return;
    };

    let again = MarkingCode::parse(code.full()).expect("a canonical code reads again");
    assert_eq!(again.full(), code.full());
    assert_eq!(again.cis(), code.cis());
    assert!(again.repairs().is_empty(), "{:?}", again.repairs());
    assert_eq!(Cis::parse(code.full()).as_ref(), Ok(code.cis()));
});
