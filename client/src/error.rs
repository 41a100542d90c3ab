//! The client's errors: each says which broker and which request, and a Kafka error carries
//! its code, named as Kafka names it, with what the request was about.

use std::fmt;
use std::io;

include!(concat!(env!("OUT_DIR"), "/error_names.rs"));

/// Kafka's name of an error code (`TOPIC_ALREADY_EXISTS`), or `UNKNOWN_ERROR_CODE_<n>`.
pub fn error_name(code: i16) -> String {
    match ERROR_NAMES.iter().find(|e| e.0 == code) {
        Some(e) => e.1.to_string(),
        None => format!("UNKNOWN_ERROR_CODE_{code}"),
    }
}

/// Kafka's one-line description of an error code ("" for a code it does not know).
pub fn error_description(code: i16) -> &'static str {
    ERROR_NAMES.iter().find(|e| e.0 == code).map_or("", |e| e.2)
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve broker address '{broker}': {reason}")]
    Resolve { broker: String, reason: String },
    #[error("cannot connect to broker {broker}: {reason}")]
    Connect { broker: String, reason: String },
    #[error("broker {broker} did not answer {api} within {timeout_ms} ms")]
    Timeout {
        broker: String,
        api: &'static str,
        timeout_ms: u128,
    },
    #[error("connection to broker {broker} failed during {api}: {source}")]
    Io {
        broker: String,
        api: &'static str,
        source: io::Error,
    },
    #[error("broker {broker} sent a bad {api} response: {reason}")]
    Protocol {
        broker: String,
        api: &'static str,
        reason: String,
    },
    #[error("broker {broker} supports no version of {api} that this client speaks")]
    Unsupported { broker: String, api: &'static str },
    /// The broker answered with a Kafka error code.
    #[error("{}", KafkaErrorDisplay { code: *code, context, message: message.as_deref() })]
    Kafka {
        code: i16,
        /// What the request was about: "topic 'x'", "group 'g'".
        context: String,
        /// The broker's error message, when it sent one.
        message: Option<String>,
    },
    /// Anything else that stops a request: a missing topic in the answer, a wait run out.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// A Kafka error for `context`, or Ok for `NONE`.
    pub fn check(
        code: i16,
        context: impl FnOnce() -> String,
        message: Option<&str>,
    ) -> Result<(), ClientError> {
        if code == riffle_protocol::error_code::NONE {
            return Ok(());
        }
        Err(ClientError::Kafka {
            code,
            context: context(),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// The Kafka error code, if the broker answered with one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `NAME: context: message` (Kafka's own description when the broker sent no message); a
/// message that already names what the request was about replaces the context.
struct KafkaErrorDisplay<'a> {
    code: i16,
    context: &'a str,
    message: Option<&'a str>,
}

impl fmt::Display for KafkaErrorDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = self.message.unwrap_or_else(|| error_description(self.code));
        let detail = detail.trim_end_matches('.');
        let mut chars = detail.chars();
        let first = chars.next().map(|c| c.to_ascii_lowercase());
        let detail = format!(
            "{}{}",
            first.map(String::from).unwrap_or_default(),
            chars.as_str()
        );
        write!(f, "{}: ", error_name(self.code))?;
        if detail.is_empty() {
            write!(f, "{}", self.context)
        } else if detail.to_lowercase().contains(&self.context.to_lowercase()) {
            write!(f, "{detail}")
        } else {
            write!(f, "{}: {detail}", self.context)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_protocol::error_code;

    #[test]
    fn codes_are_named_as_kafka_names_them() {
        assert_eq!(
            error_name(error_code::TOPIC_ALREADY_EXISTS),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            error_name(error_code::UNKNOWN_TOPIC_OR_PARTITION),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_name(error_code::UNKNOWN_SERVER_ERROR),
            "UNKNOWN_SERVER_ERROR"
        );
        assert_eq!(error_name(32_000), "UNKNOWN_ERROR_CODE_32000");
    }

    #[test]
    fn a_kafka_error_is_one_line_with_name_context_and_reason() {
        let e = ClientError::check(
            error_code::TOPIC_ALREADY_EXISTS,
            || "topic 'x'".into(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "TOPIC_ALREADY_EXISTS: topic 'x': topic with this name already exists"
        );
        let e = ClientError::check(36, || "topic 'x'".into(), Some("Topic 'x' already exists."))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "TOPIC_ALREADY_EXISTS: topic 'x' already exists"
        );
        let e = ClientError::check(7, || "topic 'y'".into(), Some("Took too long.")).unwrap_err();
        assert_eq!(e.to_string(), "REQUEST_TIMED_OUT: topic 'y': took too long");
        assert_eq!(e.kafka_code(), Some(7));
        assert!(ClientError::check(error_code::NONE, || unreachable!(), None).is_ok());
    }
}
