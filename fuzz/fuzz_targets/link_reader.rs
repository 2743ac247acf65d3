//! A native link's reader never panics or hangs: the input is the byte
//! stream a peer sends after connecting (a hello, then frames), read by a
//! real link with its writer and owner running. Bad frames close the link;
//! bad bodies fault one message.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|stream: &[u8]| {
    layer_cake::message::registry::register::<Vec<Vec<f64>>>();
    layer_cake::net::native::read_stream_for_fuzzing(stream);
});
