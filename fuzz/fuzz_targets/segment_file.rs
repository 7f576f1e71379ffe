//! Index segment files from outside (a disk, a backup, an attacker): `cargo fuzz run segment_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tributary_index::fuzzing::segment_file(data));
