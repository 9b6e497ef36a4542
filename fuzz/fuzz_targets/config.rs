//! config.rs - fuzz the YAML config loader: any text is rejected with an error or
//! yields a config that validates, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persephone::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(text) {
        cfg.validate().unwrap();
        let _ = cfg.polling_threads();
    }
});
