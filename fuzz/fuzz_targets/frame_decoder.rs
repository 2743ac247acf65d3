//! The native frame decoder never panics: any bytes after the length prefix
//! are a frame whose header and body decode, or an error (which closes that
//! one connection).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    // Give the decoder a constructed type to find by signature, as a real
    // process would have.
    layer_cake::message::registry::register::<Vec<Vec<f64>>>();
    let _ = layer_cake::net::native::decode_frame_for_fuzzing(frame);
});
