//! Script bytes → the compiler the server uses (`filter::compiler_for`, sievegate's limits):
//! personal scripts are user input, compiled inside the delivery agent. Checked: no panic
//! (libFuzzer's own limits catch runaway time and memory).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sievegate::filter::{compiler_for, ScriptSettings};

fuzz_target!(|data: &[u8]| {
    static COMPILER: OnceLock<sieve::Compiler> = OnceLock::new();
    let compiler = COMPILER.get_or_init(|| compiler_for(&ScriptSettings::default()));
    let _ = compiler.compile(data);
});
