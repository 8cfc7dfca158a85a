//! ResidentId::parse never panics; what it accepts is 18 characters, has a
//! real birth date, masks itself, and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medassist::domain::ResidentId;

fuzz_target!(|text: &str| {
    if let Ok(id) = ResidentId::parse(text) {
        assert_eq!(id.as_str().len(), 18);
        assert_eq!(ResidentId::parse(id.as_str()).unwrap(), id);
        assert!(!id.masked().contains(&id.as_str()[6..14]));
        let _ = id.birth_date();
    }
});
