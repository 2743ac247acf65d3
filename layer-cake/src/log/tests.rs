//! Formatting and filtering, through a captured writer under a thread-local
//! subscriber so tests don't share the global one.

use chrono::TimeZone;
use regex::Regex;
use tracing::dispatcher::{self, Dispatch};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// Runs `f` with a [`LogLayer`] at `level` (no pid prefix) and returns the lines.
fn lines(level: Option<DebugLevel>, f: impl FnOnce()) -> Vec<String> {
    lines_with_pid(level, false, f)
}

fn lines_with_pid(level: Option<DebugLevel>, pid: bool, f: impl FnOnce()) -> Vec<String> {
    let capture = LogCapture::new();
    let layer = LogLayer::new(level, capture.clone()).with_pid(pid);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    capture.lines()
}

/// The part after the timestamp (no pid prefix): `^ <0000000e>server - text`.
fn rest(line: &str) -> &str {
    assert!(line.len() > 24, "short line {line:?}");
    &line[24..]
}

fn rests(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| rest(l)).collect()
}

/// One event of every kind, in level order DEBUG..FAULT.
fn one_of_each() {
    tracing::trace!("t");
    tracing::debug!("d");
    tracing::debug!(target: "layer_cake::object", "o");
    tracing::info!("i");
    tracing::warn!("w");
    tracing::error!("e");
}

const ALL_LINES: [&str; 6] = ["_ - t", "~ - d", "< - o", "^ - i", "? - w", "! - e"];

#[test]
fn each_level_shows_itself_and_above() {
    for (i, level) in DebugLevel::ALL.into_iter().enumerate() {
        let got = lines(Some(level), one_of_each);
        assert_eq!(rests(&got), ALL_LINES[i..].to_vec(), "at {level}");
    }
}

#[test]
fn no_level_shows_nothing() {
    let got = lines(None, || {
        one_of_each();
        tracing::error!(actor = 1u64, name = "x", "fault");
    });
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn object_shows_object_console_warning_fault_only() {
    let got = lines(Some(DebugLevel::OBJECT), one_of_each);
    assert_eq!(rests(&got), ["< - o", "^ - i", "? - w", "! - e"]);
}

#[test]
fn object_target_is_matched_by_module_path() {
    let got = lines(Some(DebugLevel::OBJECT), || {
        tracing::debug!(target: "layer_cake::object::spool", "below");
        tracing::debug!(target: "layer_cake::objects", "sibling");
        tracing::debug!(target: "layer_cake", "parent");
    });
    assert_eq!(rests(&got), ["< - below"]);
    let got = lines(Some(DebugLevel::TRACE), || {
        tracing::debug!(target: "layer_cake::objects", "sibling");
    });
    assert_eq!(rests(&got), ["~ - sibling"]);
}

#[test]
fn object_tags_come_from_the_tag_field() {
    let got = lines(Some(DebugLevel::OBJECT), || {
        for t in [
            tag::CREATED,
            tag::DESTROYED,
            tag::SENT,
            tag::RECEIVED,
            tag::STARTED,
            tag::ENDED,
        ] {
            tracing::debug!(target: OBJECT_TARGET, tag = t, "x");
        }
        tracing::debug!(target: OBJECT_TARGET, "default");
    });
    assert_eq!(
        rests(&got),
        [
            "+ - x",
            "X - x",
            "> - x",
            "< - x",
            "( - x",
            ") - x",
            "< - default"
        ]
    );
}

#[test]
fn a_tag_field_overrides_the_tag_but_not_the_level() {
    let got = lines(Some(DebugLevel::WARNING), || {
        tracing::warn!(tag = tag::CHECK, "check failed");
        tracing::debug!(tag = tag::SAMPLE, "sample at TRACE, hidden");
        tracing::error!(tag = ?'!', "char tag");
    });
    assert_eq!(rests(&got), ["= - check failed", "! - char tag"]);

    let got = lines(Some(DebugLevel::TRACE), || {
        tracing::debug!(tag = tag::SAMPLE, "sample");
    });
    assert_eq!(rests(&got), ["& - sample"]);
}

#[test]
fn identity_from_the_actor_span() {
    let got = lines(Some(DebugLevel::CONSOLE), || {
        let span = tracing::info_span!(
            target: "layer_cake::actor",
            "actor",
            id = 14u64,
            name = "server",
            state = tracing::field::Empty
        );
        span.in_scope(|| tracing::info!("no state yet"));
        span.record("state", "READY");
        span.in_scope(|| {
            // A span of another name in between does not hide the actor.
            tracing::info_span!("inner", id = 99u64).in_scope(|| tracing::info!("ready"));
        });
        span.record("state", "CLEARING");
        span.in_scope(|| tracing::info!("clearing"));
    });
    assert_eq!(
        rests(&got),
        [
            "^ <0000000e>server - no state yet",
            "^ <0000000e>server[READY] - ready",
            "^ <0000000e>server[CLEARING] - clearing",
        ]
    );
}

#[test]
fn nearest_actor_span_wins() {
    let got = lines(Some(DebugLevel::CONSOLE), || {
        let outer = tracing::info_span!("actor", id = 1u64, name = "outer");
        let _o = outer.enter();
        let inner = tracing::info_span!("actor", id = 2u64, name = "inner");
        inner.in_scope(|| tracing::info!("in inner"));
        tracing::info!("in outer");
    });
    assert_eq!(
        rests(&got),
        [
            "^ <00000002>inner - in inner",
            "^ <00000001>outer - in outer"
        ]
    );
}

#[test]
fn actor_spans_work_with_instrumented_futures() {
    use tracing::Instrument;

    let got = lines(Some(DebugLevel::CONSOLE), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(
            async {
                tokio::task::yield_now().await;
                tracing::info!("polled");
            }
            .instrument(tracing::info_span!("actor", id = 20u64, name = "task")),
        );
    });
    assert_eq!(rests(&got), ["^ <00000014>task - polled"]);
}

#[test]
fn identity_from_the_event_fields() {
    let got = lines(Some(DebugLevel::OBJECT), || {
        tracing::debug!(target: OBJECT_TARGET, tag = tag::CREATED, actor = 0x13u64, name = "worker", "Created by <0000000e>");
        tracing::info!(actor = 5, name = "signed", state = "IDLE", "i32 id");
        let span = tracing::info_span!("actor", id = 14u64, name = "server", state = "READY");
        span.in_scope(|| {
            // An `actor` field replaces the whole span identity, state included.
            tracing::info!(actor = 0x13u64, name = "other", "event actor");
            // Without one, `name` and `state` fields override the span's.
            tracing::info!(state = "CLEARING", "event state");
        });
    });
    assert_eq!(
        rests(&got),
        [
            "+ <00000013>worker - Created by <0000000e>",
            "^ <00000005>signed[IDLE] - i32 id",
            "^ <00000013>other - event actor",
            "^ <0000000e>server[CLEARING] - event state",
        ]
    );
}

#[test]
fn text_ids_are_kept() {
    let got = lines(Some(DebugLevel::CONSOLE), || {
        tracing::info!(actor = "<0000000e:2>", name = "remote", "a");
        tracing::info!(actor = %"1f", name = "display", "b");
    });
    assert_eq!(
        rests(&got),
        ["^ <0000000e:2>remote - a", "^ <1f>display - b"]
    );
}

#[test]
fn no_actor_omits_the_part() {
    let got = lines(Some(DebugLevel::CONSOLE), || tracing::info!("plain"));
    assert_eq!(rests(&got), ["^ - plain"]);
}

#[test]
fn extra_fields_follow_the_message() {
    let got = lines(Some(DebugLevel::CONSOLE), || {
        tracing::info!(number = 10, ratio = 0.25, "Upper left");
        tracing::info!(text = "no quotes", flag = true, whole = 1.0, list = ?vec![1, 2], shown = %"display", "kinds");
        tracing::info!(only = 1u8);
        tracing::info!(big = u128::MAX, neg = -3i64, "ints");
        let err = std::io::Error::other("disk full");
        tracing::error!(error = &err as &(dyn std::error::Error + 'static), "failed");
        tracing::info!(message = "as a field", k = "v");
        tracing::info!("");
    });
    assert_eq!(
        rests(&got),
        [
            "^ - Upper left (number=10,ratio=0.25)",
            "^ - kinds (text=no quotes,flag=true,whole=1.0,list=[1, 2],shown=display)",
            "^ - (only=1)",
            "^ - ints (big=340282366920938463463374607431768211455,neg=-3)",
            "! - failed (error=disk full)",
            "^ - as a field (k=v)",
            "^ -",
        ]
    );
}

#[test]
fn message_formatting_and_newlines() {
    let got = lines(Some(DebugLevel::CONSOLE), || {
        let who = "Xy";
        tracing::info!("Received {who} from <{:08x}>", 19);
        tracing::info!(note = "a\nb", "two\r\nlines");
    });
    assert_eq!(
        rests(&got),
        [
            "^ - Received Xy from <00000013>",
            "^ - two\\r\\nlines (note=a\\nb)"
        ]
    );
}

#[test]
fn line_shape_with_pid() {
    let got = lines_with_pid(Some(DebugLevel::CONSOLE), true, || {
        let span = tracing::info_span!("actor", id = 14u64, name = "server", state = "READY");
        span.in_scope(|| tracing::info!("Published \"x\""));
    });
    assert_eq!(got.len(), 1);
    let shape = Regex::new(
        r#"^\[(\d{8})\] \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3} \^ <0000000e>server\[READY\] - Published "x"$"#,
    )
    .unwrap();
    let caps = shape
        .captures(&got[0])
        .unwrap_or_else(|| panic!("bad line {:?}", got[0]));
    assert_eq!(caps[1].parse::<u32>().unwrap(), std::process::id());
}

#[test]
fn line_shape_without_pid_puts_the_tag_at_column_24() {
    let got = lines(Some(DebugLevel::DEBUG), one_of_each);
    let shape = Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3} . - .$").unwrap();
    for (line, expected) in got.iter().zip(ALL_LINES) {
        assert!(shape.is_match(line), "bad line {line:?}");
        assert_eq!(line.chars().nth(24), expected.chars().next());
    }
    assert_eq!(got.len(), 6);
}

#[test]
fn time_is_utc_with_milliseconds() {
    let t = chrono::Utc.with_ymd_and_hms(2026, 11, 2, 3, 4, 5).unwrap()
        + chrono::Duration::milliseconds(57);
    assert_eq!(layer::format_time_for_test(t), "2026-11-02T03:04:05.057");
    let early = chrono::Utc.with_ymd_and_hms(999, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(
        layer::format_time_for_test(early),
        "0999-01-01T00:00:00.000"
    );

    let before = chrono::Utc::now();
    let got = lines(Some(DebugLevel::CONSOLE), || tracing::info!("now"));
    let after = chrono::Utc::now();
    let stamp = chrono::NaiveDateTime::parse_from_str(&got[0][..23], "%Y-%m-%dT%H:%M:%S%.3f")
        .unwrap()
        .and_utc();
    assert!(
        stamp >= before - chrono::Duration::milliseconds(1) && stamp <= after,
        "{stamp}"
    );
}

#[test]
fn lines_from_many_threads_stay_whole() {
    let capture = LogCapture::new();
    let layer = LogLayer::new(Some(DebugLevel::CONSOLE), capture.clone());
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let long = "x".repeat(300);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let dispatch = dispatch.clone();
            let long = &long;
            s.spawn(move || {
                dispatcher::with_default(&dispatch, || {
                    let span = tracing::info_span!("actor", id = t, name = "writer");
                    let _e = span.enter();
                    for i in 0..200 {
                        tracing::info!(i, "{long}");
                    }
                });
            });
        }
    });
    let got = capture.lines();
    assert_eq!(got.len(), 8 * 200);
    let shape = Regex::new(r"^\[\d{8}\] \S+ \^ <0000000[0-7]>writer - x{300} \(i=\d+\)$").unwrap();
    for line in &got {
        assert!(shape.is_match(line), "torn line {line:?}");
    }
}

#[test]
fn object_enabled_follows_the_level() {
    for (level, expected) in [
        (None, false),
        (Some(DebugLevel::FAULT), false),
        (Some(DebugLevel::CONSOLE), false),
        (Some(DebugLevel::OBJECT), true),
        (Some(DebugLevel::TRACE), true),
        (Some(DebugLevel::DEBUG), true),
    ] {
        let layer = LogLayer::new(level, LogCapture::new());
        let enabled = tracing::subscriber::with_default(
            tracing_subscriber::registry().with(layer),
            object_enabled,
        );
        assert_eq!(enabled, expected, "at {level:?}");
    }
}

#[test]
fn level_filter_is_tight() {
    let filter = |level| LogLayer::new(level, LogCapture::new()).level_filter();
    assert_eq!(filter(None), LevelFilter::OFF);
    assert_eq!(filter(Some(DebugLevel::DEBUG)), LevelFilter::TRACE);
    assert_eq!(filter(Some(DebugLevel::TRACE)), LevelFilter::DEBUG);
    assert_eq!(filter(Some(DebugLevel::OBJECT)), LevelFilter::DEBUG);
    // Actor spans are INFO, and must exist for the identity of fault lines.
    assert_eq!(filter(Some(DebugLevel::CONSOLE)), LevelFilter::INFO);
    assert_eq!(filter(Some(DebugLevel::WARNING)), LevelFilter::INFO);
    assert_eq!(filter(Some(DebugLevel::FAULT)), LevelFilter::INFO);
}

#[test]
fn fault_lines_keep_the_actor_identity() {
    let got = lines(Some(DebugLevel::FAULT), || {
        let span = tracing::info_span!("actor", id = 3u64, name = "db");
        span.in_scope(|| {
            tracing::info!("hidden");
            tracing::error!("broken");
        });
    });
    assert_eq!(rests(&got), ["! <00000003>db - broken"]);
}

#[test]
fn reentrant_logging_does_not_panic() {
    struct Noisy;
    impl std::fmt::Debug for Noisy {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            tracing::info!("from inside Debug");
            f.write_str("noisy")
        }
    }
    let got = lines(
        Some(DebugLevel::CONSOLE),
        || tracing::info!(value = ?Noisy, "outer"),
    );
    // tracing itself drops an event dispatched from inside another one's
    // handling; what matters is that the outer line is written whole.
    assert_eq!(rests(&got), ["^ - outer (value=noisy)"]);
}

#[test]
fn debug_level_parse_display_serde() {
    for (i, level) in DebugLevel::ALL.into_iter().enumerate() {
        assert_eq!(level.value() as usize, i + 1);
        assert_eq!(level.to_string().parse::<DebugLevel>().unwrap(), level);
        let json = serde_json::to_string(&level).unwrap();
        assert_eq!(json, format!("\"{}\"", level.name()));
        assert_eq!(serde_json::from_str::<DebugLevel>(&json).unwrap(), level);
    }
    assert_eq!(
        "console".parse::<DebugLevel>().unwrap(),
        DebugLevel::CONSOLE
    );
    let err = "LOUD".parse::<DebugLevel>().unwrap_err();
    assert_eq!(err, ParseDebugLevelError("LOUD".into()));
    let text = err.to_string();
    for level in DebugLevel::ALL {
        assert!(text.contains(level.name()), "{text}");
    }
    assert!(text.contains("LOUD"));
    assert!(DebugLevel::DEBUG < DebugLevel::TRACE && DebugLevel::WARNING < DebugLevel::FAULT);
    assert_eq!(u8::from(DebugLevel::OBJECT), 3);
}

#[test]
fn mapping_table() {
    use tracing::Level;
    let cases = [
        (Level::ERROR, "app", DebugLevel::FAULT, '!'),
        (Level::WARN, "app", DebugLevel::WARNING, '?'),
        (Level::INFO, "app", DebugLevel::CONSOLE, '^'),
        (Level::DEBUG, "layer_cake::object", DebugLevel::OBJECT, '<'),
        (Level::DEBUG, "layer_cake::runtime", DebugLevel::TRACE, '~'),
        (Level::TRACE, "layer_cake::object", DebugLevel::DEBUG, '_'),
    ];
    for (tracing_level, target, level, tag) in cases {
        assert_eq!(DebugLevel::of(&tracing_level, target), level);
        assert_eq!(level.default_tag(), tag);
    }
}

#[test]
fn capture_clear_and_sharing() {
    let capture = LogCapture::new();
    let clone = capture.clone();
    let layer = LogLayer::new(Some(DebugLevel::CONSOLE), clone).with_pid(false);
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    dispatcher::with_default(&dispatch, || tracing::info!("one"));
    assert_eq!(capture.lines().len(), 1);
    capture.clear();
    assert!(capture.contents().is_empty());
    dispatcher::with_default(&dispatch, || tracing::info!("two"));
    assert_eq!(rests(&capture.lines()), ["^ - two"]);
}
