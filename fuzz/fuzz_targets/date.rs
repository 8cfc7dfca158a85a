//! Date::parse never panics; what it accepts prints back to the same text,
//! and date arithmetic on it stays total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medassist::domain::{Date, Year};

fuzz_target!(|input: (&str, u8, i32)| {
    let (text, months, year) = input;
    if let Ok(date) = Date::parse(text) {
        assert_eq!(date.to_string(), text);
        assert!(date.plus_months(u32::from(months)) >= date.naive());
        let _ = date.full_years_until(date);
    }
    let _ = Year::parse(year);
});
