//! The broker's log filter, changeable at run time: the BROKER_LOGGER resource of DescribeConfigs
//! and IncrementalAlterConfigs lists Riffle's loggers (tracing targets) and sets their levels,
//! as Kafka's log4j loggers are set. Changes last until the process exits, as in Kafka.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogFormat;

/// The loggers a client may list and set: `root` (every target) and Riffle's modules.
pub const LOGGERS: &[&str] = &[
    "root",
    "riffle",
    "riffle::connection",
    "riffle::groups",
    "riffle::handlers",
    "riffle::metadata",
    "riffle::partition",
    "riffle::server",
    "riffle::shard",
    "riffle_protocol",
    "riffle_storage",
];

/// Kafka's log4j levels and the tracing level each becomes.
const LEVELS: &[(&str, &str)] = &[
    ("OFF", "off"),
    ("FATAL", "error"),
    ("ERROR", "error"),
    ("WARN", "warn"),
    ("INFO", "info"),
    ("DEBUG", "debug"),
    ("TRACE", "trace"),
    ("ALL", "trace"),
];

struct LogState {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The filter the broker started with (`--log-level` or RUST_LOG).
    base: String,
    /// Levels set since, by logger, in Kafka's spelling.
    levels: BTreeMap<String, String>,
}

static STATE: OnceLock<Mutex<LogState>> = OnceLock::new();

/// Installs the subscriber with a reloadable filter (`RUST_LOG` wins over `level`), writing text
/// or one JSON object per line (with the spans, connection, peer, client id, each event is in).
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    // An unreadable RUST_LOG falls back to `level`, as before the filter became reloadable.
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| level.to_string());
    let filter =
        EnvFilter::try_new(&base).map_err(|e| anyhow::anyhow!("bad log level '{base}': {e}"))?;
    let (layer, handle) = reload::Layer::new(filter);
    // Colours only on a terminal: a log file or shipper gets plain text.
    let colours = std::io::stderr().is_terminal();
    let text = matches!(format, LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(colours)
            .with_writer(std::io::stderr)
    });
    let json = matches!(format, LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(layer)
        .with(text)
        .with(json)
        .init();
    // glommio reports ring and memory-lock problems through the `log` crate.
    tracing_log::LogTracer::init().ok();
    let state = LogState {
        handle,
        base,
        levels: BTreeMap::new(),
    };
    STATE.set(Mutex::new(state)).ok();
    Ok(())
}

/// The level a logger runs at, in Kafka's spelling: set at run time, else the start-up filter's.
fn level_of(state: &LogState, logger: &str) -> String {
    if let Some(level) = state.levels.get(logger) {
        return level.clone();
    }
    if let Some(root) = state.levels.get("root") {
        return root.clone();
    }
    let start = state
        .base
        .split(',')
        .find(|d| !d.contains('='))
        .unwrap_or("info");
    LEVELS
        .iter()
        .find(|(_, t)| t.eq_ignore_ascii_case(start.trim()))
        .map_or_else(|| start.to_ascii_uppercase(), |(k, _)| k.to_string())
}

/// Every logger with its level (empty before `init`, as in handler tests).
pub fn loggers() -> Vec<(String, String)> {
    let Some(state) = STATE.get() else {
        return Vec::new();
    };
    let state = state.lock().unwrap_or_else(|e| e.into_inner());
    LOGGERS
        .iter()
        .map(|l| (l.to_string(), level_of(&state, l)))
        .collect()
}

/// Checks a logger and level; the message is Kafka's.
pub fn validate(logger: &str, level: Option<&str>) -> Result<(), String> {
    if !LOGGERS.contains(&logger) {
        return Err(format!("Logger {logger} does not exist!"));
    }
    match level {
        Some(l) if !LEVELS.iter().any(|(k, _)| *k == l) => Err(format!(
            "Cannot set the log level of {logger} to {l} as it is not a supported log level. \
             Valid log levels are OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE, ALL"
        )),
        Some(_) if logger == "root" => Ok(()),
        None if logger == "root" => {
            Err("Removing the log level of the root logger is not allowed".into())
        }
        _ => Ok(()),
    }
}

/// Sets (`Some`) or resets (`None`) loggers' levels, after `validate`.
pub fn apply(changes: &[(String, Option<String>)]) -> Result<(), String> {
    let state = STATE.get().ok_or("logging is not initialised")?;
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    for (logger, level) in changes {
        match level {
            Some(l) => state.levels.insert(logger.clone(), l.clone()),
            None => state.levels.remove(logger),
        };
    }
    let mut directives = match state.levels.get("root") {
        Some(root) => vec![tracing_level(root).to_string()],
        None => vec![state.base.clone()],
    };
    for (logger, level) in state.levels.iter().filter(|(l, _)| *l != "root") {
        directives.push(format!("{logger}={}", tracing_level(level)));
    }
    let filter = EnvFilter::try_new(directives.join(",")).map_err(|e| e.to_string())?;
    state.handle.reload(filter).map_err(|e| e.to_string())
}

fn tracing_level(kafka: &str) -> &'static str {
    LEVELS
        .iter()
        .find(|(k, _)| *k == kafka)
        .map_or("info", |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggers_and_levels_are_checked_as_kafka_checks_them() {
        assert_eq!(validate("riffle::groups", Some("DEBUG")), Ok(()));
        assert_eq!(validate("riffle::groups", None), Ok(()));
        assert!(validate("kafka.server", Some("DEBUG"))
            .unwrap_err()
            .contains("does not exist"));
        assert!(validate("root", Some("LOUD"))
            .unwrap_err()
            .contains("supported log level"));
        assert!(validate("root", None).is_err());
        assert_eq!(tracing_level("FATAL"), "error");
    }
}
