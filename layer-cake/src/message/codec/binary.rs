//! The binary codec used between processes: bincode 2 through its serde API.
//!
//! This is the only module that names bincode, so the wire format can be
//! swapped without touching the rest of the crate. Values use bincode's
//! `standard()` configuration (little-endian, variable-length integers) and
//! carry no type information: the signature travels beside the bytes (in the
//! envelope, or inside a [`Payload`]'s own encoding) and
//! [`decode_payload`] picks the decoder from the registry.
//!
//! Decoding is bounded: a value may not claim more than
//! [`MAX_DECODE_BYTES`], so a hostile length prefix inside a frame cannot make
//! the decoder allocate gigabytes, nor nest deeper than [`MAX_DECODE_DEPTH`]
//! levels, so a recursive message type cannot be made to recurse until the
//! reading thread's stack overflows. Encoding refuses a value the decoder
//! would refuse.
//!
//! ```
//! use layer_cake::message::codec::binary;
//!
//! let mut bytes = Vec::new();
//! binary::encode(&vec![vec![0.5_f64, 1.5]], &mut bytes).unwrap();
//! let back: Vec<Vec<f64>> = binary::decode(&bytes).unwrap();
//! assert_eq!(back, vec![vec![0.5, 1.5]]);
//!
//! // Constructed types are decoded by signature once registered.
//! layer_cake::message::registry::register::<Vec<Vec<f64>>>();
//! let p = binary::decode_payload("vector<vector<float8>>", &bytes).unwrap();
//! assert_eq!(p.downcast::<Vec<Vec<f64>>>().unwrap(), vec![vec![0.5, 1.5]]);
//! ```

use bincode::config::{self, Configuration, LittleEndian, Varint};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CodecError;
use super::depth::{self, BoundedSeed, Limited, TooDeep};
use crate::Payload;
use crate::message::registry;

/// The most bytes one decoded value may claim (64 MiB).
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// How deeply a value may nest, in the binary codec, before it is refused
/// ([`CodecError::TooDeep`]): "nested deeper than 128 levels".
///
/// bincode decodes by recursion and keeps no count, so a message type that
/// contains itself (`struct Tree { children: Vec<Tree> }`) would let a peer
/// send tens of thousands of levels in a few kilobytes and overflow the
/// reading thread's stack, aborting the process. A level is a sequence, a
/// tuple, a struct, a map, an `Option` holding a value, a newtype struct, an
/// enum variant, and the fields of a tuple or struct variant (one more); so
/// `Tree` uses two levels per generation, `Vec<Vec<u8>>` two in all. The
/// bound is serde_json's own default (128), so a value that travels as JSON
/// travels in the binary codec too, and 128 levels stay well inside a 2 MiB
/// tokio worker stack even in a debug build. The encoder counts the same
/// way and refuses to write what no peer would read.
pub const MAX_DECODE_DEPTH: usize = 128;

type Config = Configuration<LittleEndian, Varint, config::Limit<MAX_DECODE_BYTES>>;

const CONFIG: Config = config::standard().with_limit::<MAX_DECODE_BYTES>();

/// Appends `value` in the binary codec to `out`.
///
/// A value nested deeper than [`MAX_DECODE_DEPTH`] is refused (no peer
/// would decode it), with an error saying so.
pub fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    depth::clear_refused();
    bincode::serde::encode_into_std_write(Limited::new(value), out, CONFIG)
        .map(|_| ())
        .map_err(|e| {
            let reason = if depth::take_refused() {
                format!("{TooDeep}, more than a peer decodes")
            } else {
                describe_encode(e)
            };
            CodecError::encode(std::any::type_name::<T>(), reason)
        })
}

fn describe_encode(e: bincode::error::EncodeError) -> String {
    use bincode::error::EncodeError;
    match e {
        EncodeError::OtherString(s) => s,
        EncodeError::Other(s) => s.to_owned(),
        other => format!("{other:?}"),
    }
}

fn describe_decode(e: bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError;
    match e {
        DecodeError::OtherString(s) => s,
        DecodeError::Other(s) => s.to_owned(),
        DecodeError::UnexpectedEnd { additional } => {
            format!("unexpected end of input ({additional} more bytes needed)")
        }
        DecodeError::LimitExceeded => {
            format!("a length exceeds the decode limit of {MAX_DECODE_BYTES} bytes")
        }
        other => format!("{other:?}"),
    }
}

/// Decodes a `T` that fills all of `bytes`.
///
/// Trailing bytes are an error: a frame holds exactly one value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_named(bytes, std::any::type_name::<T>())
}

/// Decodes a `T` from the start of `bytes`, returning it and how many bytes it
/// used.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    let signature = std::any::type_name::<T>();
    depth::clear_refused();
    decode_bounded(bytes).map_err(|e| {
        if depth::take_refused() {
            CodecError::too_deep(signature)
        } else {
            CodecError::decode(signature, describe_decode(e))
        }
    })
}

/// bincode's decode from a slice, through the depth bound.
#[inline]
fn decode_bounded<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::seed_decode_from_slice(BoundedSeed::<T>::new(), bytes, CONFIG)
}

/// Decodes a `T` that fills all of `bytes`, naming it `signature` in errors.
pub(crate) fn decode_named<T: DeserializeOwned>(
    bytes: &[u8],
    signature: &str,
) -> Result<T, CodecError> {
    // A payload nested inside leaves the clean text of its failure here
    // (bincode's own would be escaped again at every level).
    let _ = crate::message::take_payload_error();
    depth::clear_refused();
    let (value, used) = decode_bounded(bytes).map_err(|e| {
        let reason = crate::message::take_payload_error().unwrap_or_else(|| describe_decode(e));
        if depth::take_refused() {
            CodecError::too_deep(signature)
        } else {
            CodecError::decode(signature, reason)
        }
    })?;
    if used != bytes.len() {
        return Err(CodecError::decode(
            signature,
            format_args!("{} trailing bytes after the value", bytes.len() - used),
        ));
    }
    Ok(value)
}

/// Decodes a message whose type is named by `signature`, looking the type up
/// in the registry.
pub fn decode_payload(signature: &str, bytes: &[u8]) -> Result<Payload, CodecError> {
    let entry = registry::lookup(signature)
        .ok_or_else(|| CodecError::UnknownSignature(signature.to_owned()))?;
    entry.decode_binary(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let mut bytes = Vec::new();
        encode(&(7_i64, String::from("hi")), &mut bytes).unwrap();
        let back: (i64, String) = decode(&bytes).unwrap();
        assert_eq!(back, (7, "hi".into()));
        bytes.push(0);
        let e = decode::<(i64, String)>(&bytes).unwrap_err();
        assert!(e.to_string().contains("1 trailing bytes"), "{e}");
        let (_, used) = decode_prefix::<(i64, String)>(&bytes).unwrap();
        assert_eq!(used, bytes.len() - 1);
    }

    #[test]
    fn hostile_length_is_refused() {
        // A string claiming u64::MAX / 2 bytes: varint marker 253 then a u64.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let e = decode::<String>(&bytes).unwrap_err();
        assert!(e.to_string().contains("decode limit"), "{e}");
    }

    /// The body of a `Returned` holding `levels - 1` more `Returned`s around
    /// an integer: the depth bomb of issue 11, built byte by byte as an
    /// attacker would (a payload is its signature, then its value).
    pub(crate) fn nested_returned(levels: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 1..levels {
            encode("Returned", &mut bytes).unwrap();
        }
        encode("integer8", &mut bytes).unwrap();
        encode(&7_i64, &mut bytes).unwrap();
        bytes
    }

    /// Runs `f` on a thread with a tokio worker's default 2 MiB stack, as
    /// the link reader does.
    pub(crate) fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .expect("decoding within a 2 MiB stack")
    }

    /// An error deep inside nested payloads reads once, plainly, at the
    /// top: bincode renders errors handed back to it in their escaped
    /// `Debug` form, which used to grow sixteenfold per level (eight levels
    /// made half a gigabyte of text).
    #[test]
    fn nested_errors_stay_small() {
        for levels in 1..=crate::message::MAX_PAYLOAD_DEPTH {
            let mut bytes = Vec::new();
            for _ in 1..levels {
                encode("Returned", &mut bytes).unwrap();
            }
            encode("nope", &mut bytes).unwrap();
            let e = decode_payload("Returned", &bytes).unwrap_err().to_string();
            assert!(e.ends_with("unknown type signature \"nope\""), "{e}");
            assert!(!e.contains("OtherString"), "{e}");
            assert_eq!(e.matches("cannot decode Returned").count(), levels, "{e}");
        }
    }

    #[test]
    fn nested_payloads_are_bounded() {
        use crate::message::{MAX_PAYLOAD_DEPTH, Returned};
        on_worker_stack(|| {
            // As deep as allowed: decodes.
            let fine = decode_payload("Returned", &nested_returned(MAX_PAYLOAD_DEPTH)).unwrap();
            let mut value = fine.downcast::<Returned>().unwrap().value;
            for _ in 1..MAX_PAYLOAD_DEPTH {
                value = value.downcast::<Returned>().unwrap().value;
            }
            assert_eq!(value.downcast::<i64>().unwrap(), 7);
            // One more, the 592-byte bomb of 64 levels, and 10 000 levels:
            // one refused message each, naming the limit.
            for levels in [MAX_PAYLOAD_DEPTH + 1, 64, 10_000] {
                let bytes = nested_returned(levels);
                let e = decode_payload("Returned", &bytes).unwrap_err();
                let text = e.to_string();
                assert!(
                    text.starts_with("cannot decode Returned: ")
                        && text.contains(&format!("nested more than {MAX_PAYLOAD_DEPTH} levels")),
                    "{levels} levels: {text}"
                );
                // The refusal does not depend on how deep the rest goes.
                assert!(text.len() < 1024, "{levels} levels: {} bytes", text.len());
            }
            // The counter is back at zero after a refusal: a fine message
            // still decodes on the same thread.
            assert!(decode_payload("Returned", &nested_returned(MAX_PAYLOAD_DEPTH)).is_ok());
        });
    }

    /// A message type that contains itself: two levels per generation (the
    /// struct, then its vector).
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, crate::Message)]
    #[message(name = "test.Tree")]
    pub(crate) struct Tree {
        pub(crate) children: Vec<Tree>,
    }

    /// Another: one level per element (the variant; a `Box` is transparent).
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, crate::Message)]
    #[message(name = "test.List")]
    pub(crate) enum List {
        Cons(Box<List>),
        Nil,
    }

    /// Two levels per link: the newtype struct, then the `Some`.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, crate::Message)]
    #[message(name = "test.Chain")]
    struct Chain(Option<Box<Chain>>);

    /// Two levels per node: the variant, then its fields.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, crate::Message)]
    #[message(name = "test.Pairs")]
    enum Pairs {
        Node(u8, Box<Pairs>),
        End,
    }

    /// The body of a `Tree` of `generations` (one child each), written byte
    /// by byte as an attacker would: a struct adds no bytes, each vector its
    /// length, so the bomb costs one byte per generation.
    pub(crate) fn tree_bomb(generations: usize) -> Vec<u8> {
        let mut bytes = vec![1u8; generations - 1];
        bytes.push(0);
        bytes
    }

    /// The body of a `List` of `cons` elements: one variant index each.
    pub(crate) fn list_bomb(cons: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; cons];
        bytes.push(1);
        bytes
    }

    fn tree(generations: usize) -> Tree {
        let mut t = Tree { children: vec![] };
        for _ in 1..generations {
            t = Tree { children: vec![t] };
        }
        t
    }

    fn list(cons: usize) -> List {
        (0..cons).fold(List::Nil, |l, _| List::Cons(Box::new(l)))
    }

    fn chain(links: usize) -> Chain {
        (1..links).fold(Chain(None), |c, _| Chain(Some(Box::new(c))))
    }

    fn pairs(nodes: usize) -> Pairs {
        (0..nodes).fold(Pairs::End, |p, _| Pairs::Node(7, Box::new(p)))
    }

    fn is_too_deep(e: &CodecError, signature: &str) -> bool {
        matches!(e, CodecError::TooDeep { signature: s, limit } if s == signature && *limit == MAX_DECODE_DEPTH)
            && e.to_string()
                == format!(
                    "cannot decode {signature}: nested deeper than {MAX_DECODE_DEPTH} levels"
                )
    }

    /// The bomb of issue 11 in a user's recursive type: 100 000 levels in
    /// 100 000 bytes, which used to overflow the reader's stack, is one
    /// refused value naming the bound — by signature, as a link decodes,
    /// and by type.
    #[test]
    fn a_recursive_bomb_is_refused_not_a_crash() {
        on_worker_stack(|| {
            let e = decode_payload("test.Tree", &tree_bomb(100_000)).unwrap_err();
            assert!(is_too_deep(&e, "test.Tree"), "{e:?}");
            let e = decode_payload("test.List", &list_bomb(100_000)).unwrap_err();
            assert!(is_too_deep(&e, "test.List"), "{e:?}");
            let e = decode::<List>(&list_bomb(100_000)).unwrap_err();
            assert!(is_too_deep(&e, std::any::type_name::<List>()), "{e:?}");
            // A frame's header is bounded too.
            let e = decode_prefix::<Tree>(&tree_bomb(100_000)).unwrap_err();
            assert!(is_too_deep(&e, std::any::type_name::<Tree>()), "{e:?}");
            // Inside a payload, the outermost type is named.
            let mut inside = Vec::new();
            encode("test.Tree", &mut inside).unwrap();
            inside.extend(tree_bomb(100_000));
            let e = decode_payload("Returned", &inside).unwrap_err();
            assert!(is_too_deep(&e, "Returned"), "{e:?}");
            // The thread is fine afterwards, and so is a good value.
            let fine = decode_payload("test.Tree", &tree_bomb(3)).unwrap();
            assert_eq!(fine.downcast::<Tree>().unwrap(), tree(3));
        });
    }

    /// A hundred levels is ordinary: it decodes, and encodes to the bytes
    /// the bombs above are made of.
    #[test]
    fn a_hundred_levels_decode() {
        on_worker_stack(|| {
            // 99 elements and the end: 100 levels.
            let mut bytes = Vec::new();
            encode(&list(99), &mut bytes).unwrap();
            assert_eq!(bytes, list_bomb(99));
            let back = decode_payload("test.List", &bytes).unwrap();
            assert_eq!(back.downcast::<List>().unwrap(), list(99));
            // 50 generations: 100 levels.
            let mut bytes = Vec::new();
            encode(&tree(50), &mut bytes).unwrap();
            assert_eq!(bytes, tree_bomb(50));
            assert_eq!(decode::<Tree>(&bytes).unwrap(), tree(50));
        });
    }

    /// The bound is exact, and the encoder agrees with the decoder on it:
    /// what is encoded decodes; one level more is refused at both ends.
    #[test]
    fn the_bound_is_exact_at_both_ends() {
        fn at_the_bound<T>(signature: &str, fine: T, over: T)
        where
            T: crate::Message + PartialEq + std::fmt::Debug,
        {
            let mut bytes = Vec::new();
            encode(&fine, &mut bytes).unwrap();
            let back = decode_payload(signature, &bytes).unwrap();
            assert_eq!(back.downcast::<T>().unwrap(), fine, "{signature}");
            let e = Payload::new(over)
                .encode_binary(&mut Vec::new())
                .unwrap_err();
            assert!(
                matches!(&e, CodecError::Encode { signature: s, reason }
                    if s == signature
                        && reason.contains(&format!("nested deeper than {MAX_DECODE_DEPTH} levels"))),
                "{e:?}"
            );
        }
        on_worker_stack(|| {
            let half = MAX_DECODE_DEPTH / 2;
            at_the_bound(
                "test.List",
                list(MAX_DECODE_DEPTH - 1),
                list(MAX_DECODE_DEPTH),
            );
            at_the_bound("test.Tree", tree(half), tree(half + 1));
            at_the_bound("test.Chain", chain(half), chain(half + 1));
            at_the_bound("test.Pairs", pairs(half - 1), pairs(half));
            // One level more, written by hand, is refused by the decoder.
            let e = decode_payload("test.List", &list_bomb(MAX_DECODE_DEPTH)).unwrap_err();
            assert!(is_too_deep(&e, "test.List"), "{e:?}");
            let e = decode_payload("test.Tree", &tree_bomb(half + 1)).unwrap_err();
            assert!(is_too_deep(&e, "test.Tree"), "{e:?}");
            // Collections count as the types they are: vectors in a vector
            // in a struct in an option is four.
            let mut bytes = Vec::new();
            let v: Option<(Vec<Vec<u8>>,)> = Some((vec![vec![1]],));
            encode(&v, &mut bytes).unwrap();
            assert_eq!(decode::<Option<(Vec<Vec<u8>>,)>>(&bytes).unwrap(), v);
        });
    }

    /// The deepest value the two bounds together allow — payloads nested
    /// [`MAX_PAYLOAD_DEPTH`](crate::message::MAX_PAYLOAD_DEPTH) deep around a
    /// recursive value filling the rest of the levels — decodes within a
    /// tokio worker's 2 MiB stack in a debug build (about 0.3 MiB measured
    /// while writing this), and one more level inside is refused.
    #[test]
    fn the_deepest_value_allowed_fits_a_worker_stack() {
        use crate::message::{MAX_PAYLOAD_DEPTH, Returned};
        // The outer `Returned`, then per payload its pair and (but the
        // last) the `Returned` it holds.
        let payload_levels = 1 + MAX_PAYLOAD_DEPTH + (MAX_PAYLOAD_DEPTH - 1);
        let generations = (MAX_DECODE_DEPTH - payload_levels) / 2;
        let deepest = |generations: usize| {
            let mut bytes = Vec::new();
            for _ in 1..MAX_PAYLOAD_DEPTH {
                encode("Returned", &mut bytes).unwrap();
            }
            encode("test.Tree", &mut bytes).unwrap();
            bytes.extend(tree_bomb(generations));
            bytes
        };
        on_worker_stack(move || {
            let fine = decode_payload("Returned", &deepest(generations)).unwrap();
            let mut value = fine.downcast::<Returned>().unwrap().value;
            for _ in 1..MAX_PAYLOAD_DEPTH {
                value = value.downcast::<Returned>().unwrap().value;
            }
            assert_eq!(value.downcast::<Tree>().unwrap(), tree(generations));
            let e = decode_payload("Returned", &deepest(generations + 1)).unwrap_err();
            assert!(is_too_deep(&e, "Returned"), "{e:?}");
        });
    }

    /// Errors deep inside a recursive value inside payloads stay short and
    /// come back at once: each level is read through `erased_serde`, and
    /// bincode's `Debug`-rendered errors used to double in length at every
    /// one of them (a truncated 60-level tree never finished failing).
    #[test]
    fn errors_deep_inside_payloads_stay_small() {
        use crate::message::Returned;
        on_worker_stack(|| {
            for generations in [1, 10, 60] {
                let mut bytes = Vec::new();
                encode("Returned", &mut bytes).unwrap();
                encode("test.Tree", &mut bytes).unwrap();
                bytes.extend(tree_bomb(generations));
                bytes.pop(); // the last length is missing
                let e = decode_payload("Returned", &bytes).unwrap_err().to_string();
                assert!(e.starts_with("cannot decode Returned: "), "{e}");
                assert!(
                    e.contains("test.Tree") && e.len() < 2048,
                    "{generations}: {e}"
                );
                assert!(!e.contains("OtherString"), "{e}");
            }
            // The encoder refuses too deep a value inside a payload, plainly.
            let inner = Returned::new(Payload::new(tree(MAX_DECODE_DEPTH)));
            let e = Payload::new(Returned::new(Payload::new(inner)))
                .encode_binary(&mut Vec::new())
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("cannot encode Returned: nested deeper than 128 levels"),
                "{e}"
            );
        });
    }

    #[test]
    fn payload_by_signature() {
        let mut bytes = Vec::new();
        encode(&42_i64, &mut bytes).unwrap();
        let p = decode_payload("integer8", &bytes).unwrap();
        assert_eq!(p.downcast::<i64>().unwrap(), 42);
        assert!(matches!(
            decode_payload("no-such-type", &bytes),
            Err(CodecError::UnknownSignature(s)) if s == "no-such-type"
        ));
    }
}
