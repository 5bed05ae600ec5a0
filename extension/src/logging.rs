//! Log output through `tracing`: text for people, JSON lines for CloudWatch (`PGWARM_LOG_FORMAT`),
//! filtered by `PGWARM_LOG_LEVEL`. Nothing logs a password: settings print secrets as `***`, and
//! no code path formats a credential.
//!
//! While a Lambda invocation runs, every line carries its `requestId`, whichever task wrote it
//! (a client's session, the pool, the thaw check), so a slow query, an error or a reconnect
//! points to an invocation. An extension is told when an invocation starts (INVOKE), not when
//! it ends: the id stays until the next INVOKE, which is right for the lines written between
//! the handler's return and the freeze.

use crate::config::{ConfigError, LogFormat, Settings};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The request id of the invocation under way, if any.
static REQUEST_ID: Mutex<Option<Arc<str>>> = Mutex::new(None);

/// Lines from now on carry `request_id` (None: none).
pub(crate) fn set_request_id(request_id: Option<&str>) {
    *REQUEST_ID.lock().unwrap_or_else(|p| p.into_inner()) = request_id.map(Arc::from);
}

pub(crate) fn request_id() -> Option<Arc<str>> {
    REQUEST_ID.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Installs the global subscriber; errors name `PGWARM_LOG_LEVEL`.
pub(crate) fn init(settings: &Settings) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&settings.log_level).map_err(|e| ConfigError::Invalid {
        variable: "PGWARM_LOG_LEVEL",
        value: settings.log_level.clone(),
        reason: format!("not a tracing filter such as info or pgwarm=debug ({e})"),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match settings.log_format {
        LogFormat::Json => builder.event_format(JsonLines).init(),
        LogFormat::Text => builder
            .event_format(TextLines(Format::default().with_ansi(false)))
            .init(),
    }
    Ok(())
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's fields, and
/// `requestId` during an invocation (the key Lambda's own JSON log lines use).
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(timestamp));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        event.record(&mut JsonFields(&mut line));
        if let Some(id) = request_id() {
            line.insert("requestId".into(), Value::from(&*id));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields into the line's object, numbers and booleans as themselves.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
}

/// tracing's usual text line, with ` requestId=...` at its end during an invocation.
struct TextLines(Format<Full, SystemTime>);

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = request_id() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writeln!(writer, "{} requestId={id}", line.trim_end())
    }
}
