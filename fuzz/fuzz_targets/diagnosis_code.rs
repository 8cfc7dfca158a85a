//! Diagnosis codes and catalogue patterns never panic when parsed or matched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medassist::domain::{CodePattern, DiagnosisCode};

fuzz_target!(|input: (&str, &str)| {
    let (code, pattern) = input;
    let code = DiagnosisCode::parse(code);
    let pattern = CodePattern::parse(pattern);
    if let (Ok(code), Ok(pattern)) = (&code, &pattern) {
        let _ = pattern.matches(code);
        assert_eq!(CodePattern::parse(&pattern.to_string()).as_ref(), Ok(pattern));
    }
    if let Ok(code) = code {
        assert_eq!(DiagnosisCode::parse(code.as_str()), Ok(code));
    }
});
