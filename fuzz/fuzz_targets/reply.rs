//! Any bytes as a TS reply: parsing never panics, and an accepted answer
//! formats back into a line that parses to the same answer.
#![no_main]

use dnslb::wire::{self, Dialect, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match wire::parse_reply(data) {
        Ok(Reply::Found(answer)) => {
            for dialect in [Dialect::Y2020, Dialect::Y2022] {
                let line = answer.line(dialect);
                assert_eq!(wire::parse_reply(line.as_bytes()), Ok(Reply::Found(answer.clone())));
            }
        }
        Ok(Reply::NotFound(name)) => {
            assert!(wire::is_hostname(&name));
            let line = wire::not_found_line(&name);
            assert_eq!(wire::parse_reply(line.as_bytes()), Ok(Reply::NotFound(name)));
        }
        Err(_) => {}
    }
});
