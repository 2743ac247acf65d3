//! Recursive message types decode within the depth bound, whatever the
//! bytes: a `Tree` (two levels a generation) and a `List` (one a link),
//! decoded by signature as a frame's body would be, alone and inside a
//! `Returned` payload. Nothing panics or overflows the stack (a bomb is one
//! `TooDeep` error), and the encoder agrees with the decoder: whatever
//! decoded encodes again (so it is within the bound) and decodes to the same
//! value.

#![no_main]

use layer_cake::message::codec::{CodecError, binary};
use layer_cake::message::registry;
use layer_cake::{Message, Payload, Returned};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize, Message)]
#[message(name = "fuzz.Tree")]
struct Tree {
    label: u8,
    children: Vec<Tree>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Message)]
#[message(name = "fuzz.List")]
enum List {
    Cons(Option<Box<List>>, u8),
    Nil,
}

fn check<T: Message + PartialEq + std::fmt::Debug>(signature: &str, body: &[u8]) {
    match registry::lookup(signature).unwrap().decode_binary(body) {
        Ok(payload) => {
            let value = payload.downcast::<T>().unwrap();
            let mut again = Vec::new();
            binary::encode(&value, &mut again).expect("what decoded encodes");
            let back: T = binary::decode(&again).expect("what was encoded decodes");
            assert_eq!(back, value);
        }
        Err(CodecError::TooDeep { limit, .. }) => assert_eq!(limit, binary::MAX_DECODE_DEPTH),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let signature = if pick % 2 == 0 {
        "fuzz.Tree"
    } else {
        "fuzz.List"
    };
    if pick % 2 == 0 {
        check::<Tree>(signature, body);
    } else {
        check::<List>(signature, body);
    }
    // The same body as a payload inside a `Returned`.
    let mut nested = Vec::new();
    binary::encode(signature, &mut nested).unwrap();
    nested.extend_from_slice(body);
    if let Ok(payload) = registry::lookup("Returned").unwrap().decode_binary(&nested) {
        let mut again = Vec::new();
        Payload::new(payload.downcast::<Returned>().unwrap())
            .encode_binary(&mut again)
            .expect("what decoded encodes");
    }
});
