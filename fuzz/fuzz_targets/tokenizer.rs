//! Contributed and queried text: `cargo fuzz run tokenizer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tributary_index::fuzzing::tokenizer(data));
