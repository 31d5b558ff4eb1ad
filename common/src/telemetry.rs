//! Logging: `tracing` with JSON lines (or a human format on a terminal), one
//! root span per request carrying a request id, and the `x-request-id`
//! response header.
//!
//! What is never recorded: query strings (authorization requests carry
//! `state`, error redirects and probes may carry codes), request or response
//! bodies, cookies and the `Authorization` header. The root span holds the
//! path and the matched route only.
//!
//! Every request pays for its root span even when nothing is logged, so the
//! span is kept cheap (measured in `docs/performance.md`): its fields are
//! written straight into JSON text (`SpanFields`) and never re-recorded; the
//! status goes on the closing event instead.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::io::IsTerminal as _;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _};
use tracing::Span;
use tracing::field::{Field, Visit};
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON unless standard output is a terminal.
    Auto,
    Json,
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            other => Err(format!("expected auto, json or pretty, got {other:?}")),
        }
    }
}

/// Installs the global subscriber writing to standard output. The filter
/// comes from `RUST_LOG` (default `info`, with actix's start-up chatter at
/// `warn`).
pub fn init(format: LogFormat) {
    init_with_writer(format, std::io::stdout);
}

/// Installs the global subscriber with a custom writer.
pub fn init_with_writer<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    // A second init (tests) is harmless: the first subscriber stays.
    if json {
        let _ = json_subscriber(filter, writer).try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_target(true)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init();
    }
}

/// JSON lines: the event's fields flattened, its span and the span list.
fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .fmt_fields(SpanFields)
        .finish()
}

/// The matched route pattern of a request, found once by the root span.
/// Shared, not copied: the metrics middleware keeps it across the call.
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub Rc<str>);

/// The per-request root span: method, matched route, path (never the query
/// string), peer address and request id. The status is on the closing
/// event, not recorded into the span: re-recording a span field makes the
/// JSON formatter re-parse and re-write all of them, on every request.
pub struct RootSpan;

/// Displays an optional value as itself or as nothing.
struct OrEmpty<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for OrEmpty<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().copied();
        let route: Rc<str> = request
            .match_pattern()
            .map_or_else(|| Rc::from("unmatched"), Rc::from);
        // The metrics middleware needs the same; matching once is enough.
        request.extensions_mut().insert(MatchedRoute(Rc::clone(&route)));
        tracing::info_span!(
            "request",
            method = request.method().as_str(),
            route = &*route,
            path = request.path(),
            peer = %OrEmpty(request.peer_addr().map(|a| a.ip())),
            request_id = %OrEmpty(request_id),
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        let _entered = span.enter();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), "request finished");
        }
    }
}

/// Middleware that echoes the request id (set by `TracingLogger`, which must
/// wrap outside this one) in the `x-request-id` response header.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(id) = id {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = id.hyphenated().encode_lower(&mut text);
        if let Ok(value) = HeaderValue::from_str(text) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
    }
    Ok(res)
}

/// Span fields as a JSON object, written straight into the span's text.
/// `tracing-subscriber`'s `JsonFields` builds a map of `serde_json` values
/// and serializes it, and re-parses the text whenever a field is recorded
/// later; this writes each field once. The JSON event formatter reads the
/// text back only when an event is logged inside the span.
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        // Written into a buffer the thread reuses, then copied once: the
        // span's own text is then one allocation of the right size instead
        // of a string grown by doubling.
        let mut buffer = SCRATCH.try_with(Cell::take).unwrap_or_default();
        buffer.clear();
        buffer.push('{');
        let result = write_fields(&mut buffer, true, fields)
            .and_then(|()| buffer.write_char('}'))
            .and_then(|()| writer.write_str(&buffer));
        if buffer.capacity() <= SCRATCH_LIMIT {
            let _ = SCRATCH.try_with(|scratch| scratch.set(buffer));
        }
        result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Reopen the object: drop its closing brace, append, close again.
        let empty = matches!(current.fields.as_str(), "" | "{}");
        if empty {
            current.fields.clear();
            current.fields.push('{');
        } else if current.fields.ends_with('}') {
            current.fields.pop();
        }
        write_fields(&mut current.fields, empty, fields)?;
        current.fields.write_char('}')
    }
}

/// Longest scratch buffer a thread keeps (a span with a long path).
const SCRATCH_LIMIT: usize = 4096;

thread_local! {
    static SCRATCH: Cell<String> = const { Cell::new(String::new()) };
}

fn write_fields(out: &mut String, empty: bool, fields: impl RecordFields) -> fmt::Result {
    let mut visitor = JsonObject {
        out,
        empty,
        result: Ok(()),
    };
    fields.record(&mut visitor);
    visitor.result
}

/// Writes visited fields as `"name":value` pairs.
struct JsonObject<'a, W: fmt::Write> {
    out: &'a mut W,
    empty: bool,
    result: fmt::Result,
}

impl<W: fmt::Write> JsonObject<'_, W> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let separator = if std::mem::replace(&mut self.empty, false) {
            ""
        } else {
            ","
        };
        self.result = self
            .out
            .write_str(separator)
            .and_then(|()| json_string(self.out, format_args!("{name}")))
            .and_then(|()| self.out.write_char(':'))
            .and_then(|()| value(self.out));
    }
}

impl<W: fmt::Write> Visit for JsonObject<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| json_string(out, format_args!("{value}")));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |out| json_string(out, format_args!("{value:?}")));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinities; serde_json writes them as null.
        self.field(field, |out| {
            if value.is_finite() {
                write!(out, "{value}")
            } else {
                out.write_str("null")
            }
        });
    }
}

/// Writes `value` as a JSON string, quoted and escaped as RFC 8259 section 7
/// requires (quote, backslash, U+0000 to U+001F; nothing else).
fn json_string(out: &mut impl fmt::Write, value: fmt::Arguments<'_>) -> fmt::Result {
    struct Escaping<'a, W: fmt::Write>(&'a mut W);

    impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let mut rest = s;
            // Every byte to escape is ASCII, so `at` is a char boundary.
            while let Some(at) = rest.bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20) {
                self.0.write_str(&rest[..at])?;
                match rest.as_bytes()[at] {
                    b'"' => self.0.write_str("\\\"")?,
                    b'\\' => self.0.write_str("\\\\")?,
                    b'\n' => self.0.write_str("\\n")?,
                    b'\r' => self.0.write_str("\\r")?,
                    b'\t' => self.0.write_str("\\t")?,
                    control => write!(self.0, "\\u{control:04x}")?,
                }
                rest = &rest[at + 1..];
            }
            self.0.write_str(rest)
        }
    }

    out.write_char('"')?;
    fmt::write(&mut Escaping(out), value)?;
    out.write_char('"')
}

/// For one-shot commands whose standard output is data: warnings and errors
/// only, on standard error, human-readable.
pub fn init_quiet_stderr() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,audit=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn log_lines(emit: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let subscriber = json_subscriber(EnvFilter::new("info"), buffer.clone());
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn span_fields_reach_each_event_as_json_of_the_right_types() {
        let awkward = "/a\"b\\c\nd\te\u{1}\u{7f}é";
        let lines = log_lines(|| {
            let span = tracing::info_span!(
                "request",
                path = awkward,
                method = %"GET",
                count = 3u64,
                delta = -2i64,
                cached = true,
                ratio = 1.5f64,
                broken = f64::NAN,
                r#type = ?"debugged",
                late = tracing::field::Empty,
            );
            span.record("late", "recorded later");
            let _entered = span.enter();
            tracing::warn!(status = 500, "request failed");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["status"], 500);
        for span in [&line["span"], &line["spans"][0]] {
            assert_eq!(span["name"], "request");
            assert_eq!(span["path"], awkward);
            assert_eq!(span["method"], "GET");
            assert_eq!(span["count"], 3);
            assert_eq!(span["delta"], -2);
            assert_eq!(span["cached"], true);
            assert_eq!(span["ratio"], 1.5);
            assert_eq!(span["broken"], Value::Null);
            assert_eq!(span["type"], "\"debugged\"");
            assert_eq!(span["late"], "recorded later");
        }
    }

    #[test]
    fn a_span_without_fields_can_record_one_later() {
        let lines = log_lines(|| {
            let span = tracing::info_span!("outer", late = tracing::field::Empty);
            let _outer = span.enter();
            tracing::info_span!("inner").in_scope(|| tracing::info!("inside"));
            span.record("late", 7u64);
            tracing::info!("after");
        });
        assert_eq!(lines[0]["spans"][0]["name"], "outer");
        assert_eq!(lines[0]["spans"][1]["name"], "inner");
        assert_eq!(lines[0]["span"]["name"], "inner");
        assert_eq!(lines[1]["span"]["late"], 7);
    }

    #[test]
    fn json_strings_round_trip_every_control_character() {
        let all: String = (0u32..0x100).filter_map(char::from_u32).collect();
        let mut out = String::new();
        json_string(&mut out, format_args!("{all}")).unwrap();
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), all);
    }
}
