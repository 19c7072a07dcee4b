//! Any bytes as a client query: parsing never panics, and an accepted query
//! is a trimmed hostname within the limits, with its lookup key.
#![no_main]

use dnslb::wire::{self, MAX_NAME_LEN, QueryError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match wire::parse_query(data) {
        Ok(query) => {
            assert!(query.name.len() <= MAX_NAME_LEN);
            assert!(wire::is_hostname(&query.name));
            assert_eq!(query.name, query.name.trim());
            assert_eq!(query.key, wire::name_key(&query.name));
        }
        Err(e) => {
            // Every error has its one reply line, free of control characters.
            let reply = e.reply();
            assert!(!reply.chars().any(char::is_control), "{reply:?}");
            if let QueryError::Invalid(text) = e {
                assert!(!text.is_empty());
            }
        }
    }
});
