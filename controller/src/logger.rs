//! raft-rs logs through slog; this drain hands its records to `tracing` so the controller's
//! logs go where the broker's go, with raft-rs's key-values appended to the message.

use std::fmt::{self, Write as _};

use slog::{Drain, Level, OwnedKVList, Record, KV};

/// A stateless slog drain forwarding to tracing under the target `raft`.
struct TracingDrain;

/// Collects slog key-values as ` key=value` pairs.
struct KeyValues(String);

impl slog::Serializer for KeyValues {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments) -> slog::Result {
        // Writing to a String cannot fail.
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut kv = KeyValues(String::new());
        // A serializer that never fails makes these infallible.
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let message = record.msg();
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{message}{}", kv.0),
            Level::Warning => tracing::warn!(target: "raft", "{message}{}", kv.0),
            Level::Info => tracing::info!(target: "raft", "{message}{}", kv.0),
            Level::Debug => tracing::debug!(target: "raft", "{message}{}", kv.0),
            Level::Trace => tracing::trace!(target: "raft", "{message}{}", kv.0),
        }
        Ok(())
    }
}

/// The slog logger given to raft-rs (never its `default_logger`: a Mutex and a `static mut`).
pub(crate) fn raft_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
