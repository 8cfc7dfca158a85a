//! Money::parse never panics, and what it accepts prints back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medassist::domain::Money;

fuzz_target!(|text: &str| {
    if let Ok(money) = Money::parse(text) {
        assert!(money <= Money::MAX);
        let printed = money.to_string();
        assert_eq!(Money::parse(&printed).unwrap(), money);
        assert_eq!(printed.split_once('.').map(|(_, fen)| fen.len()), Some(2));
        assert_eq!(Money::from_fen(money.fen()), Some(money));
    }
});
