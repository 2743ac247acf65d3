//! [`LogLayer`]: the `tracing_subscriber` layer that filters events by
//! [`DebugLevel`] and writes them as layer-cake log lines.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;

use chrono::{Datelike, Timelike};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::level::{ACTOR_SPAN, DebugLevel};

/// A [`Layer`] that shows the events at or above a [`DebugLevel`] as
/// layer-cake log lines, one `write_all` per line:
///
/// ```text
/// [00010778] 2026-11-22T12:22:57.057 ^ <0000000e>server[READY] - Published "x"
/// ```
///
/// The layer is also the filter: events below the level are disabled at
/// their callsite (`Interest::never`), and [`Layer::max_level_hint`] lets
/// `tracing` reject most of them with a static check. Only spans named
/// [`ACTOR_SPAN`](super::ACTOR_SPAN) are enabled; they provide the identity
/// of the events inside them. With no level, everything is disabled.
///
/// [`init`](super::init) installs one writing to stderr; build one yourself
/// to write elsewhere (a [`LogCapture`](super::LogCapture) in tests, a file):
///
/// ```
/// use layer_cake::log::{DebugLevel, LogCapture, LogLayer};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let capture = LogCapture::new();
/// let layer = LogLayer::new(Some(DebugLevel::CONSOLE), capture.clone()).with_pid(false);
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(number = 10, ratio = 0.25, "Upper left");
///     tracing::debug!("not shown at CONSOLE");
/// });
/// let lines = capture.lines();
/// assert_eq!(lines.len(), 1);
/// assert!(lines[0].ends_with(" ^ - Upper left (number=10,ratio=0.25)"));
/// ```
pub struct LogLayer<W> {
    level: Option<DebugLevel>,
    make_writer: W,
    pid_prefix: String,
}

impl LogLayer<fn() -> std::io::Stderr> {
    /// A layer writing to the process's stderr, with the pid prefix.
    pub fn stderr(level: Option<DebugLevel>) -> Self {
        LogLayer::new(level, std::io::stderr as fn() -> std::io::Stderr)
    }
}

impl<W> LogLayer<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    /// A layer showing `level` and above (nothing if `None`), writing each
    /// line with one `write_all` to a writer from `make_writer`. Lines start
    /// with this process's pid, `[%08d] `.
    pub fn new(level: Option<DebugLevel>, make_writer: W) -> Self {
        LogLayer {
            level,
            make_writer,
            pid_prefix: format!("[{:08}] ", std::process::id()),
        }
    }
}

impl<W> LogLayer<W> {
    /// Whether lines start with the `[%08d] ` pid prefix (the default). Files
    /// holding one process's lines leave it out, which puts the tag character
    /// at column 24.
    pub fn with_pid(mut self, pid: bool) -> Self {
        self.pid_prefix = if pid {
            format!("[{:08}] ", std::process::id())
        } else {
            String::new()
        };
        self
    }

    /// The level this layer shows (and above).
    pub fn level(&self) -> Option<DebugLevel> {
        self.level
    }

    /// The `tracing` filter equivalent to the level: the most verbose
    /// `tracing` level this layer can enable. With a level it is at least
    /// `INFO`, so the runtime's `info_span!` actor spans exist for the
    /// events inside them.
    pub fn level_filter(&self) -> LevelFilter {
        match self.level {
            None => LevelFilter::OFF,
            Some(level) => LevelFilter::from_level(level.tracing_level()).max(LevelFilter::INFO),
        }
    }

    /// Whether a callsite produces output (events) or identity (actor spans).
    fn accepts(&self, metadata: &Metadata<'_>) -> bool {
        let Some(min) = self.level else {
            return false;
        };
        if metadata.is_span() {
            metadata.name() == ACTOR_SPAN
        } else {
            DebugLevel::of(metadata.level(), metadata.target()) >= min
        }
    }
}

impl<W> fmt::Debug for LogLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("level", &self.level)
            .field("pid", &!self.pid_prefix.is_empty())
            .finish_non_exhaustive()
    }
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.accepts(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.accepts(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.level_filter())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != ACTOR_SPAN {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut identity = SpanIdentity::default();
        attrs.record(&mut Visitor(&mut identity));
        span.extensions_mut().insert(identity);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(identity) = extensions.get_mut::<SpanIdentity>() {
            values.record(&mut Visitor(identity));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Normally already filtered; this guards compositions in which
        // another layer enabled the event.
        if !self.accepts(event.metadata()) {
            return;
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.write_event(&mut scratch, event, &ctx),
            // A field's Debug impl logged while we were formatting.
            Err(_) => self.write_event(&mut Scratch::default(), event, &ctx),
        });
    }
}

impl<W> LogLayer<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn write_event<S>(&self, scratch: &mut Scratch, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let metadata = event.metadata();
        scratch.clear();
        event.record(&mut Visitor(&mut scratch.fields));
        let Scratch { line, fields } = scratch;

        line.push_str(&self.pid_prefix);
        push_time(line, chrono::Utc::now());
        line.push(' ');
        let tag = fields
            .tag
            .unwrap_or_else(|| DebugLevel::of(metadata.level(), metadata.target()).default_tag());
        line.push(tag);
        line.push(' ');

        if fields.actor.is_some() {
            // The event names its own actor: use its fields only.
            push_identity(
                line,
                fields.actor.as_deref(),
                fields.name.as_deref(),
                fields.state.as_deref(),
            );
        } else {
            let span_identity = ctx.event_scope(event).and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|span| span.extensions().get::<SpanIdentity>().cloned())
            });
            match span_identity {
                Some(span) => push_identity(
                    line,
                    span.id.as_deref(),
                    fields.name.as_deref().or(span.name.as_deref()),
                    fields.state.as_deref().or(span.state.as_deref()),
                ),
                None => push_identity(line, None, fields.name.as_deref(), fields.state.as_deref()),
            }
        }

        line.push('-');
        if !fields.message.is_empty() || !fields.extras.is_empty() {
            line.push(' ');
            push_escaped(line, &fields.message);
            if !fields.extras.is_empty() {
                if !fields.message.is_empty() {
                    line.push(' ');
                }
                line.push('(');
                push_escaped(line, &fields.extras);
                line.push(')');
            }
        }
        line.push('\n');

        let mut writer = self.make_writer.make_writer_for(metadata);
        // Nowhere to report a failure to write a log line.
        let _ = writer.write_all(line.as_bytes());
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Per-thread buffers reused from one event to the next.
#[derive(Default)]
struct Scratch {
    line: String,
    fields: Fields,
}

impl Scratch {
    fn clear(&mut self) {
        self.line.clear();
        let f = &mut self.fields;
        f.message.clear();
        f.extras.clear();
        f.actor = None;
        f.name = None;
        f.state = None;
        f.tag = None;
    }
}

/// What an event's fields say.
#[derive(Default)]
struct Fields {
    message: String,
    /// `k=v,k2=v2`
    extras: String,
    /// Formatted, `<0000000e>`.
    actor: Option<String>,
    name: Option<String>,
    state: Option<String>,
    tag: Option<char>,
}

/// The identity an actor span carries, kept in the span's extensions.
#[derive(Debug, Default, Clone)]
struct SpanIdentity {
    /// Formatted, `<0000000e>`.
    id: Option<String>,
    name: Option<String>,
    state: Option<String>,
}

/// A field value, whatever `tracing` recorded it as.
enum Value<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    F64(f64),
    Bool(bool),
    Error(&'a (dyn std::error::Error + 'static)),
    Debug(&'a dyn fmt::Debug),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::U64(n) => write!(f, "{n}"),
            Value::I64(n) => write!(f, "{n}"),
            Value::U128(n) => write!(f, "{n}"),
            Value::I128(n) => write!(f, "{n}"),
            // Debug keeps the point: 1.0 rather than 1, as the original prints.
            Value::F64(n) => write!(f, "{n:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Error(e) => write!(f, "{e}"),
            Value::Debug(d) => write!(f, "{d:?}"),
        }
    }
}

/// `<0000000e>` for an integer id; text ids are used as they are, inside
/// angle brackets.
fn format_id(value: &Value<'_>) -> String {
    match *value {
        Value::U64(n) => format!("<{n:08x}>"),
        Value::I64(n) if n >= 0 => format!("<{n:08x}>"),
        _ => {
            let text = value.to_string();
            if text.starts_with('<') {
                text
            } else {
                format!("<{text}>")
            }
        }
    }
}

/// A text field's value, or `None` if it is empty.
fn text(value: &Value<'_>) -> Option<String> {
    let text = value.to_string();
    (!text.is_empty()).then_some(text)
}

impl Put for Fields {
    fn put(&mut self, field: &Field, value: Value<'_>) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value}");
            }
            "actor" => self.actor = Some(format_id(&value)),
            "name" => self.name = text(&value),
            "state" => self.state = text(&value),
            "tag" => {
                let text = value.to_string();
                self.tag = text.trim_matches(['\'', '"']).chars().next();
            }
            key => {
                if !self.extras.is_empty() {
                    self.extras.push(',');
                }
                let _ = write!(self.extras, "{key}={value}");
            }
        }
    }
}

impl Put for SpanIdentity {
    fn put(&mut self, field: &Field, value: Value<'_>) {
        match field.name() {
            "id" => self.id = Some(format_id(&value)),
            "name" => self.name = text(&value),
            "state" => self.state = text(&value),
            _ => {}
        }
    }
}

/// Where a visitor puts the values it sees.
trait Put {
    fn put(&mut self, field: &Field, value: Value<'_>);
}

/// Visits fields into a [`Put`].
struct Visitor<'a, T>(&'a mut T);

impl<T: Put> Visit for Visitor<'_, T> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field, Value::Str(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field, Value::U64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field, Value::I64(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.put(field, Value::U128(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.put(field, Value::I128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field, Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.put(field, Value::Error(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.put(field, Value::Debug(value));
    }
}

/// `<0000000e>Name[STATE] `, or `Name ` with no id, or nothing.
fn push_identity(line: &mut String, id: Option<&str>, name: Option<&str>, state: Option<&str>) {
    if id.is_none() && name.is_none() {
        return;
    }
    line.push_str(id.unwrap_or(""));
    line.push_str(name.unwrap_or(""));
    if let Some(state) = state {
        line.push('[');
        line.push_str(state);
        line.push(']');
    }
    line.push(' ');
}

/// `YYYY-MM-DDTHH:MM:SS.mmm`, formatted by hand: cheaper than parsing a
/// chrono format string for every line.
fn push_time(line: &mut String, now: chrono::DateTime<chrono::Utc>) {
    // A leap second shows as nanoseconds past 1e9; keep three digits.
    let millis = (now.nanosecond() / 1_000_000).min(999);
    let _ = write!(
        line,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        millis
    );
}

/// Keeps a log line one line: newlines and carriage returns inside the text
/// are written as `\n` and `\r`.
fn push_escaped(line: &mut String, text: &str) {
    if !text.contains(['\n', '\r']) {
        line.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
}

#[cfg(test)]
pub(super) fn format_time_for_test(now: chrono::DateTime<chrono::Utc>) -> String {
    let mut s = String::new();
    push_time(&mut s, now);
    s
}
