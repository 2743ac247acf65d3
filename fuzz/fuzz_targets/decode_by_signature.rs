//! Decoding never panics, whatever the type: the first byte picks one of the
//! registered signatures (every message type linked into this binary, the
//! library's own included), the rest is its body — decoded in the binary
//! codec as a frame's body would be, and as JSON when it is text. A value
//! that decodes is encoded again (which must not panic either).

#![no_main]

use layer_cake::message::registry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    registry::register::<Vec<Vec<f64>>>();
    let signatures = registry::signatures();
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Some(entry) = registry::lookup(signatures[pick as usize % signatures.len()]) else {
        return;
    };
    if let Ok(payload) = entry.decode_binary(body) {
        let mut again = Vec::new();
        let _ = payload.encode_binary(&mut again);
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = entry.decode_json(text);
    }
});
