//! Messages from a user crate's point of view: the derive, signatures, the
//! registry, the JSON and binary codecs and text-field decoding.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use layer_cake::message::codec::{CodecError, binary, json};
use layer_cake::message::registry;
use layer_cake::message::signature_of;
use layer_cake::message::text::{self, Source, TextError};
use layer_cake::{Ack, FaultKind, Faulted, Message, Payload, Returned, Stop};
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Message,
)]
struct Xy {
    x: i64,
    y: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
#[message(name = "demo.HostPort")]
struct HostPort {
    host: String,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Message)]
#[allow(clippy::upper_case_acronyms)] // the original's level names
enum Level {
    DEBUG,
    INFO,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
enum Shape {
    Circle { r: f64 },
    Empty,
}

type Table = Vec<Vec<f64>>;
layer_cake::register!(Table, BTreeMap<String, Vec<Xy>>);

fn fields(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
        .collect()
}

#[test]
fn signature_table() {
    assert_eq!(signature_of::<()>(), "null");
    assert_eq!(signature_of::<bool>(), "boolean");
    assert_eq!(signature_of::<u8>(), "byte");
    assert_eq!(signature_of::<i16>(), "integer2");
    assert_eq!(signature_of::<i32>(), "integer4");
    assert_eq!(signature_of::<i64>(), "integer8");
    assert_eq!(signature_of::<isize>(), "integer8");
    assert_eq!(signature_of::<u16>(), "unsigned2");
    assert_eq!(signature_of::<u32>(), "unsigned4");
    assert_eq!(signature_of::<u64>(), "unsigned8");
    assert_eq!(signature_of::<usize>(), "unsigned8");
    assert_eq!(signature_of::<f32>(), "float4");
    assert_eq!(signature_of::<f64>(), "float8");
    assert_eq!(signature_of::<char>(), "rune");
    assert_eq!(signature_of::<String>(), "unicode");
    assert_eq!(signature_of::<uuid::Uuid>(), "uuid");
    assert_eq!(signature_of::<chrono::DateTime<chrono::Utc>>(), "world");
    assert_eq!(signature_of::<Duration>(), "span");
    assert_eq!(signature_of::<Vec<Vec<f64>>>(), "vector<vector<float8>>");
    assert_eq!(signature_of::<VecDeque<u32>>(), "deque<unsigned4>");
    assert_eq!(signature_of::<HashSet<String>>(), "set<unicode>");
    assert_eq!(signature_of::<BTreeSet<i16>>(), "set<integer2>");
    assert_eq!(signature_of::<HashMap<String, Xy>>(), "map<unicode,Xy>");
    assert_eq!(
        signature_of::<BTreeMap<u8, Vec<bool>>>(),
        "map<byte,vector<boolean>>"
    );
    assert_eq!(signature_of::<Option<HostPort>>(), "option<demo.HostPort>");
    assert_eq!(signature_of::<[i64; 4]>(), "array<integer8,4>");
    assert_eq!(signature_of::<[u8; 32]>(), "array<byte,32>");
    assert_eq!(
        signature_of::<BTreeMap<String, Vec<Xy>>>(),
        "map<unicode,vector<Xy>>"
    );
}

#[test]
fn derived_signatures() {
    assert_eq!(signature_of::<Xy>(), "Xy");
    assert_eq!(signature_of::<HostPort>(), "demo.HostPort");
    assert_eq!(signature_of::<Level>(), "Level");
    assert_eq!(Payload::new(Shape::Empty).signature(), "Shape");
    for (sig, standard) in [
        ("Stop", signature_of::<Stop>()),
        ("Ack", signature_of::<Ack>()),
    ] {
        assert_eq!(sig, standard);
    }
}

#[test]
fn seed_envelope_is_exact() {
    let p = Payload::new(vec![vec![0.56, 0.55], vec![0.15, 0.7]]);
    assert_eq!(
        json::to_typed_string(&p, false).unwrap(),
        r#"{"value":["vector<vector<float8>>",[[0.56,0.55],[0.15,0.7]],[]]}"#
    );
    assert_eq!(
        json::to_value_string(&p, false).unwrap(),
        "[[0.56,0.55],[0.15,0.7]]"
    );
    assert_eq!(
        json::to_value_string(&p, true).unwrap(),
        "[\n  [\n    0.56,\n    0.55\n  ],\n  [\n    0.15,\n    0.7\n  ]\n]"
    );
    let pretty = json::to_typed_string(&p, true).unwrap();
    assert!(
        pretty.starts_with("{\n  \"value\": [\n    \"vector<vector<float8>>\","),
        "{pretty}"
    );
}

#[test]
fn json_round_trips() {
    let xy = Xy { x: 2, y: 3 };
    let text = json::to_typed_string(&Payload::new(xy.clone()), false).unwrap();
    assert_eq!(text, r#"{"value":["Xy",{"x":2,"y":3},[]]}"#);
    assert_eq!(
        json::from_typed_str(&text)
            .unwrap()
            .downcast::<Xy>()
            .unwrap(),
        xy
    );

    let table: Table = vec![vec![0.5, 1.5], vec![]];
    let text = json::to_typed_string(&Payload::new(table.clone()), true).unwrap();
    assert_eq!(
        json::from_typed_str(&text)
            .unwrap()
            .downcast::<Table>()
            .unwrap(),
        table
    );

    let shape = Shape::Circle { r: 1.25 };
    let text = json::to_typed_string(&Payload::new(shape.clone()), false).unwrap();
    assert_eq!(text, r#"{"value":["Shape",{"Circle":{"r":1.25}},[]]}"#);
    assert_eq!(
        json::from_typed_str(&text)
            .unwrap()
            .downcast::<Shape>()
            .unwrap(),
        shape
    );

    // String-keyed maps are JSON objects.
    let m: BTreeMap<String, Vec<Xy>> = [("a".to_owned(), vec![Xy { x: 1, y: 1 }])].into();
    let text = json::to_typed_string(&Payload::new(m.clone()), false).unwrap();
    assert_eq!(
        text,
        r#"{"value":["map<unicode,vector<Xy>>",{"a":[{"x":1,"y":1}]},[]]}"#
    );
    let back = json::from_typed_str(&text)
        .unwrap()
        .downcast::<BTreeMap<String, Vec<Xy>>>();
    assert_eq!(back.unwrap(), m);
}

#[test]
fn returned_round_trips_through_json() {
    let r = Returned::new(Payload::new(vec![vec![0.25_f64, 0.5]]));
    let text = json::to_typed_string(&Payload::new(r), false).unwrap();
    assert_eq!(
        text,
        r#"{"value":["Returned",{"value":["vector<vector<float8>>",[[0.25,0.5]],[]]},[]]}"#
    );
    let back = json::from_typed_str(&text)
        .unwrap()
        .downcast::<Returned>()
        .unwrap();
    assert_eq!(back.into_result::<Table>().unwrap(), vec![vec![0.25, 0.5]]);

    let r = Returned::new(Payload::new(Faulted::busy("slow").with_error_code(503)));
    let text = serde_json::to_string(&r).unwrap();
    let back: Returned = serde_json::from_str(&text).unwrap();
    assert!(back.is_fault());
    let fault = back.into_result::<Xy>().unwrap_err();
    assert_eq!((fault.kind, fault.error_code), (FaultKind::Busy, Some(503)));
}

#[test]
fn binary_round_trips() {
    let mut bytes = Vec::new();
    Payload::new(Xy { x: -1, y: 7 })
        .encode_binary(&mut bytes)
        .unwrap();
    let p = binary::decode_payload("Xy", &bytes).unwrap();
    assert_eq!(p.downcast::<Xy>().unwrap(), Xy { x: -1, y: 7 });

    let r = Returned::new(Payload::new(vec![vec![0.56_f64, 0.55], vec![0.15, 0.7]]));
    let mut bytes = Vec::new();
    Payload::new(r).encode_binary(&mut bytes).unwrap();
    let back = binary::decode_payload("Returned", &bytes)
        .unwrap()
        .downcast::<Returned>()
        .unwrap();
    assert_eq!(
        back.into_result::<Table>().unwrap(),
        vec![vec![0.56, 0.55], vec![0.15, 0.7]]
    );

    let r = Returned::new(Payload::new(
        Faulted::timed_out("too late").with_exit_status(3),
    ));
    let mut bytes = Vec::new();
    binary::encode(&r, &mut bytes).unwrap();
    let back: Returned = binary::decode(&bytes).unwrap();
    let fault = back.into_result::<()>().unwrap_err();
    assert_eq!(fault.kind, FaultKind::TimedOut);
    assert_eq!(fault.exit_code(), 3);

    // A payload nested in a binary value must name a registered signature.
    let mut bytes = Vec::new();
    binary::encode(&("no.Such", 1_u8), &mut bytes).unwrap();
    let e = binary::decode::<Returned>(&bytes).unwrap_err();
    assert!(
        e.to_string().contains("unknown type signature \"no.Such\""),
        "{e}"
    );
}

#[test]
fn registry_lookups() {
    let e = registry::lookup("Xy").expect("derived types register themselves");
    assert_eq!(e.type_id(), std::any::TypeId::of::<Xy>());
    assert_eq!(e.field_names(), Some(vec!["x", "y"]));
    assert!(registry::lookup("demo.HostPort").is_some());
    assert_eq!(
        registry::lookup("demo.HostPort").unwrap().type_id(),
        std::any::TypeId::of::<HostPort>()
    );

    let e = registry::lookup("vector<vector<float8>>").expect("register! submits statically");
    assert_eq!(e.type_id(), std::any::TypeId::of::<Table>());
    assert!(registry::lookup("map<unicode,vector<Xy>>").is_some());

    assert!(registry::lookup("vector<Xy>").is_none());
    registry::register::<Vec<Xy>>();
    let p = registry::lookup("vector<Xy>")
        .unwrap()
        .decode_json(r#"[{"x":1,"y":2}]"#)
        .unwrap();
    assert_eq!(p.downcast::<Vec<Xy>>().unwrap(), vec![Xy { x: 1, y: 2 }]);

    assert!(registry::conflicts().iter().all(|c| c.signature != "Xy"));
    assert!(registry::signatures().contains(&"Level"));
}

#[test]
fn unknown_signature() {
    let e = json::from_typed_str(r#"{"value":["Nope",{},[]]}"#).unwrap_err();
    assert_eq!(e, CodecError::UnknownSignature("Nope".into()));
    assert_eq!(e.to_string(), "unknown type signature \"Nope\"");
    assert!(matches!(
        binary::decode_payload("Nope", &[]),
        Err(CodecError::UnknownSignature(_))
    ));
    assert!(matches!(
        json::from_class_str_as("Nope", r#"{"value":{}}"#),
        Err(CodecError::UnknownSignature(_))
    ));
}

#[test]
fn decode_errors_name_the_field() {
    let e = json::decode_value::<Xy>(r#"{"x":"abc","y":2}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"cannot decode Xy: field "x": invalid type: string "abc", expected i64"#
    );
    let e = json::from_typed_str(r#"{"value":["Xy",{"x":1,"y":"2"},[]]}"#).unwrap_err();
    assert!(
        matches!(&e, CodecError::Decode { signature, path, .. } if signature == "Xy" && path == "y"),
        "{e}"
    );

    let e = json::from_class_str::<Xy>(r#"{"value":{"x":1}}"#).unwrap_err();
    assert_eq!(e.to_string(), "cannot decode Xy: missing field `y`");

    let e = json::decode_value::<Vec<Xy>>(r#"[{"x":1,"y":2},{"x":1,"y":true}]"#).unwrap_err();
    assert!(e.to_string().contains(r#"field "[1].y""#), "{e}");

    // Through a nested payload, the path goes on into the inner value.
    let e =
        json::from_typed_str(r#"{"value":["Returned",{"value":["Xy",{"x":"a","y":1},[]]},[]]}"#)
            .unwrap_err();
    assert!(
        matches!(&e, CodecError::Decode { signature, .. } if signature == "Returned"),
        "{e}"
    );
    assert!(e.to_string().contains(r#"field "value[1].x""#), "{e}");
    assert!(
        e.to_string()
            .contains(r#"invalid type: string "a", expected i64"#),
        "{e}"
    );

    // HTTP POST's per-class envelope.
    assert_eq!(
        json::from_class_str::<Xy>(r#"{"value":{"x":1,"y":2}}"#).unwrap(),
        Xy { x: 1, y: 2 }
    );
    let p = json::from_class_str_as("Xy", r#"{"value":{"x":1,"y":2}}"#).unwrap();
    assert_eq!(
        json::to_class_string(&p, false).unwrap(),
        r#"{"value":{"x":1,"y":2}}"#
    );
}

#[test]
fn text_rules() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct Args {
        name: String,
        initial: char,
        count: i32,
        ratio: f64,
        #[serde(default)]
        full_output: bool,
        debug_level: Option<Level>,
        id: Option<uuid::Uuid>,
        when: Option<chrono::DateTime<chrono::Utc>>,
        server_address: Option<HostPort>,
        sizes: Vec<u8>,
        limits: BTreeMap<String, u32>,
        #[serde(default)]
        wait: Duration,
    }
    let args: Args = text::from_fields(
        &fields(&[
            ("name", Some("abc")),
            ("initial", Some("é")),
            ("count", Some("-3")),
            ("ratio", Some("0.5")),
            ("full-output", None),
            ("debug-level", Some("DEBUG")),
            ("id", Some("67e55044-10b1-426f-9247-bb680e5fe0c8")),
            ("when", Some("2026-11-22T12:12:20.65624Z")),
            (
                "server-address",
                Some(r#"{"host":"127.0.0.1","port":5051}"#),
            ),
            ("sizes", Some("[1,2,3]")),
            ("limits", Some(r#"{"a":1}"#)),
            ("wait", Some("1d2h")),
        ]),
        Source::Flag,
    )
    .unwrap();
    assert_eq!(args.name, "abc");
    assert_eq!(args.initial, 'é');
    assert_eq!((args.count, args.ratio), (-3, 0.5));
    assert!(args.full_output);
    assert_eq!(args.debug_level, Some(Level::DEBUG));
    assert_eq!(
        args.id.unwrap().to_string(),
        "67e55044-10b1-426f-9247-bb680e5fe0c8"
    );
    assert_eq!(
        args.when.unwrap().to_rfc3339(),
        "2026-11-22T12:12:20.656240+00:00"
    );
    assert_eq!(
        args.server_address.unwrap(),
        HostPort {
            host: "127.0.0.1".into(),
            port: 5051
        }
    );
    assert_eq!(args.sizes, vec![1, 2, 3]);
    assert_eq!(args.limits["a"], 1);
    assert_eq!(args.wait, Duration::from_secs(26 * 3600));

    // Option: `null` is None, a missing Option is None, a missing default is the default.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Opt {
        level: Option<Level>,
        count: Option<i32>,
        #[serde(default)]
        flag: bool,
    }
    let o: Opt = text::from_fields(&fields(&[("level", Some("null"))]), Source::Flag).unwrap();
    assert_eq!(
        o,
        Opt {
            level: None,
            count: None,
            flag: false
        }
    );
    let o: Opt = text::from_fields(
        &fields(&[("count", Some("4")), ("flag", Some("false"))]),
        Source::Query,
    )
    .unwrap();
    assert_eq!(
        o,
        Opt {
            level: None,
            count: Some(4),
            flag: false
        }
    );

    // Unit: no fields.
    text::from_fields::<()>(&[], Source::Flag).unwrap();

    assert_eq!(text::field_names::<Xy>(), Some(vec!["x", "y"]));
    assert_eq!(text::field_names::<()>(), Some(vec![]));
    assert_eq!(text::field_names::<Vec<i32>>(), None);
}

#[test]
fn text_errors() {
    let e = text::from_fields::<Xy>(
        &fields(&[("x", Some("abc")), ("y", Some("2"))]),
        Source::Flag,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"--x: invalid value "abc": invalid digit found in string"#
    );
    assert!(matches!(&e, TextError::Invalid { field, .. } if field == "--x"));

    let e = text::from_fields::<Xy>(&fields(&[("x", Some("abc"))]), Source::Query).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"x: invalid value "abc": invalid digit found in string"#
    );

    let e = text::from_fields::<Xy>(&fields(&[("z", Some("1"))]), Source::Flag).unwrap_err();
    assert_eq!(e.to_string(), "unknown flag --z (expected one of --x, --y)");
    let e = text::from_fields::<Xy>(&fields(&[("z", Some("1"))]), Source::Query).unwrap_err();
    assert_eq!(e.to_string(), "unknown field z (expected one of x, y)");

    let e = text::from_fields::<Xy>(&fields(&[("y", Some("1"))]), Source::Flag).unwrap_err();
    assert_eq!(e.to_string(), "missing flag --x");
    let e = text::from_fields::<Xy>(&fields(&[("y", Some("1"))]), Source::Query).unwrap_err();
    assert_eq!(e.to_string(), "missing field x");

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Bits {
        on: bool,
        level: Option<Level>,
        address: Option<HostPort>,
    }
    let e = text::from_fields::<Bits>(&fields(&[("on", Some("yes"))]), Source::Flag).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"--on: invalid value "yes": expected true or false"#
    );
    let e = text::from_fields::<Bits>(
        &fields(&[("on", None), ("level", Some("LOUD"))]),
        Source::Flag,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"--level: invalid value "LOUD": unknown variant `LOUD`, expected `DEBUG` or `INFO`"#
    );
    let e = text::from_fields::<Bits>(
        &fields(&[("on", None), ("address", Some("{\"host\":1}"))]),
        Source::Flag,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with(r#"--address: invalid value "{\"host\":1}": invalid type: integer `1`"#),
        "{e}"
    );

    let e = text::from_fields::<()>(&fields(&[("x", None)]), Source::Flag).unwrap_err();
    assert_eq!(e.to_string(), "unknown flag --x (expected none)");
}

#[test]
fn registry_text_decoder_maps_a_query() {
    // `/Xy?x=2&y=2`
    let entry = registry::lookup("Xy").unwrap();
    let p = entry
        .decode_text(
            &fields(&[("x", Some("2")), ("y", Some("2"))]),
            Source::Query,
        )
        .unwrap();
    assert_eq!(p.downcast::<Xy>().unwrap(), Xy { x: 2, y: 2 });
    let e = entry
        .decode_text(&fields(&[("z", Some("2"))]), Source::Query)
        .unwrap_err();
    assert_eq!(e.to_string(), "unknown field z (expected one of x, y)");
}

#[test]
fn json_shapes_in_the_docs() {
    let value = |p: Payload| json::to_value_string(&p, false).unwrap();
    assert_eq!(
        json::to_typed_string(&Payload::new(Ack), false).unwrap(),
        r#"{"value":["Ack",null,[]]}"#
    );
    assert_eq!(value(Payload::new(Level::DEBUG)), r#""DEBUG""#);
    assert_eq!(
        value(Payload::new(Duration::from_millis(1500))),
        r#"{"secs":1,"nanos":500000000}"#
    );
    let when = chrono::DateTime::parse_from_rfc3339("2026-11-22T12:12:20.65624Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        value(Payload::new(when)),
        r#""2026-11-22T12:12:20.656240Z""#
    );
    let id = uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    assert_eq!(
        value(Payload::new(id)),
        r#""67e55044-10b1-426f-9247-bb680e5fe0c8""#
    );
    assert_eq!(
        value(Payload::new(BTreeMap::from([(1_u8, true)]))),
        r#"{"1":true}"#
    );
    assert_eq!(value(Payload::new(Some(3_i32))), "3");
    assert_eq!(value(Payload::new(None::<i32>)), "null");
    assert_eq!(value(Payload::new([1_i64, 2, 3, 4])), "[1,2,3,4]");
    assert_eq!(
        value(Payload::new(BTreeSet::from(['a', 'b']))),
        r#"["a","b"]"#
    );
    // A map whose keys are not strings or numbers has no JSON form.
    let e = json::to_typed_string(
        &Payload::new(BTreeMap::from([(Xy::default(), 1_u8)])),
        false,
    );
    assert!(matches!(e, Err(CodecError::Encode { .. })), "{e:?}");
}
