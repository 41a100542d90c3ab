//! Parsing of the CLI's small languages: offset specs (`start`, `end`, `N`, `-N`),
//! `KEY=VALUE` pairs (headers, configs), acks, and the `--format` template of `consume`.

use std::fmt::Write as _;

use riffle_client::{
    Client, ClientError, ConsumedRecord, PartitionInfo, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};

/// Where to start reading a partition, or where to move a group's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Start,
    /// The log end offset (only records produced from now on).
    End,
    /// This offset, kept within the log.
    At(i64),
    /// This many records before the log end offset.
    BeforeEnd(i64),
}

impl OffsetSpec {
    /// The offset this spec names in a log from `log_start` to `log_end`.
    pub(crate) fn resolve(self, log_start: i64, log_end: i64) -> i64 {
        match self {
            OffsetSpec::Start => log_start,
            OffsetSpec::End => log_end,
            OffsetSpec::At(n) => n.clamp(log_start, log_end.max(log_start)),
            OffsetSpec::BeforeEnd(n) => log_end.saturating_sub(n).max(log_start),
        }
    }
}

/// The offset `spec` names in each of `partitions`, from their log start and end offsets.
pub(crate) fn resolve_offsets(
    client: &mut Client,
    topic: &str,
    partitions: &[PartitionInfo],
    spec: OffsetSpec,
) -> Result<Vec<(PartitionInfo, i64)>, ClientError> {
    let starts = client.list_offsets(topic, partitions, EARLIEST_TIMESTAMP)?;
    let ends = client.list_offsets(topic, partitions, LATEST_TIMESTAMP)?;
    Ok(partitions
        .iter()
        .zip(starts.iter().zip(&ends))
        .map(|(p, (s, e))| (p.clone(), spec.resolve(s.1, e.1)))
        .collect())
}

impl std::str::FromStr for OffsetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<OffsetSpec, String> {
        let bad = || format!("'{s}' is not an offset: use start, end, N or -N");
        match s {
            "start" | "beginning" | "earliest" => Ok(OffsetSpec::Start),
            "end" | "latest" => Ok(OffsetSpec::End),
            _ => match s.strip_prefix('-') {
                Some(n) => n
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(OffsetSpec::BeforeEnd)
                    .ok_or_else(bad),
                None => s
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(OffsetSpec::At)
                    .ok_or_else(bad),
            },
        }
    }
}

/// `KEY=VALUE`, split at the first `=`; the key may not be empty.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

/// Kafka's acks: `all` (or -1), 1 or 0.
pub(crate) fn acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("'{s}' is not an acks setting: use all, 1 or 0")),
    }
}

/// A piece of a `--format` template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Topic,
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Headers,
}

/// The `--format` template: text with `{key}`, `{value}`, `{partition}`, `{offset}`,
/// `{timestamp}`, `{headers}` and `{topic}`; `\n`, `\t` and `\\` escapes; `{{` and `}}`
/// for braces.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFormat {
    pieces: Vec<Piece>,
}

impl std::str::FromStr for RecordFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<RecordFormat, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek().copied()) {
                ('{', Some('{')) | ('}', Some('}')) | ('\\', Some('\\')) => {
                    chars.next();
                    text.push(c);
                }
                ('\\', Some('n')) => {
                    chars.next();
                    text.push('\n');
                }
                ('\\', Some('t')) => {
                    chars.next();
                    text.push('\t');
                }
                ('{', _) => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("format '{s}': '{{{name}' is not closed")),
                        }
                    }
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                    pieces.push(placeholder(&name)?);
                }
                ('}', _) => return Err(format!("format '{s}': a lone '}}' (write '}}}}')")),
                _ => text.push(c),
            }
        }
        pieces.push(Piece::Text(text));
        pieces.retain(|p| *p != Piece::Text(String::new()));
        Ok(RecordFormat { pieces })
    }
}

fn placeholder(name: &str) -> Result<Piece, String> {
    Ok(match name {
        "topic" => Piece::Topic,
        "key" => Piece::Key,
        "value" => Piece::Value,
        "partition" => Piece::Partition,
        "offset" => Piece::Offset,
        "timestamp" => Piece::Timestamp,
        "headers" => Piece::Headers,
        _ => {
            return Err(format!(
                "format: unknown field {{{name}}}: use {{key}}, {{value}}, {{partition}}, \
                 {{offset}}, {{timestamp}}, {{headers}} or {{topic}}"
            ))
        }
    })
}

impl RecordFormat {
    /// `record` rendered by the template (bytes shown as UTF-8, invalid sequences replaced).
    pub(crate) fn render(&self, topic: &str, record: &ConsumedRecord) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Topic => out.push_str(topic),
                Piece::Key => out.push_str(&text(record.key.as_deref())),
                Piece::Value => out.push_str(&text(record.value.as_deref())),
                Piece::Partition => out.push_str(&record.partition.to_string()),
                Piece::Offset => out.push_str(&record.offset.to_string()),
                Piece::Timestamp => out.push_str(&record.timestamp_ms.to_string()),
                Piece::Headers => {
                    for (i, (k, v)) in record.headers.iter().enumerate() {
                        let sep = if i == 0 { "" } else { "," };
                        let _ = write!(out, "{sep}{k}={}", text(v.as_deref()));
                    }
                }
            }
        }
        out
    }
}

/// Bytes as text for output; a null key or value is empty.
pub(crate) fn text(bytes: Option<&[u8]>) -> String {
    bytes
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumedRecord {
        ConsumedRecord {
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"k1".to_vec()),
            value: Some(b"hello".to_vec()),
            headers: vec![("a".into(), Some(b"1".to_vec())), ("b".into(), None)],
        }
    }

    #[test]
    fn offset_specs_parse_as_rpk_writes_them() {
        assert_eq!("start".parse(), Ok(OffsetSpec::Start));
        assert_eq!("end".parse(), Ok(OffsetSpec::End));
        assert_eq!("42".parse(), Ok(OffsetSpec::At(42)));
        assert_eq!("-3".parse(), Ok(OffsetSpec::BeforeEnd(3)));
        for bad in ["", "x", "--1", "1.5", "-", "start2"] {
            assert!(bad.parse::<OffsetSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn offset_specs_resolve_within_the_log() {
        assert_eq!(OffsetSpec::Start.resolve(5, 20), 5);
        assert_eq!(OffsetSpec::End.resolve(5, 20), 20);
        assert_eq!(OffsetSpec::At(10).resolve(5, 20), 10);
        assert_eq!(OffsetSpec::At(2).resolve(5, 20), 5);
        assert_eq!(OffsetSpec::At(99).resolve(5, 20), 20);
        assert_eq!(OffsetSpec::BeforeEnd(3).resolve(5, 20), 17);
        assert_eq!(OffsetSpec::BeforeEnd(100).resolve(5, 20), 5);
        assert_eq!(OffsetSpec::BeforeEnd(1).resolve(0, 0), 0);
    }

    #[test]
    fn headers_and_configs_split_at_the_first_equals_sign() {
        assert_eq!(key_value("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(key_value("a="), Ok(("a".into(), String::new())));
        assert!(key_value("=b").is_err());
        assert!(key_value("ab").is_err());
    }

    #[test]
    fn acks_take_kafkas_values() {
        assert_eq!(acks("all"), Ok(-1));
        assert_eq!(acks("-1"), Ok(-1));
        assert_eq!(acks("1"), Ok(1));
        assert_eq!(acks("0"), Ok(0));
        assert!(acks("2").is_err());
    }

    #[test]
    fn formats_render_every_field() {
        let f: RecordFormat = "{topic}/{partition}@{offset} {timestamp} {key}={value} [{headers}]"
            .parse()
            .unwrap();
        assert_eq!(
            f.render("t", &record()),
            "t/2@41 1700000000000 k1=hello [a=1,b=]"
        );
    }

    #[test]
    fn formats_know_escapes_and_literal_braces() {
        let f: RecordFormat = r"{key}\t{value}\n{{x}}\\".parse().unwrap();
        assert_eq!(f.render("t", &record()), "k1\thello\n{x}\\");
    }

    #[test]
    fn formats_reject_unknown_fields_and_lone_braces() {
        assert!("{nope}"
            .parse::<RecordFormat>()
            .unwrap_err()
            .contains("{nope}"));
        assert!("a}b".parse::<RecordFormat>().is_err());
        assert!("{key".parse::<RecordFormat>().is_err());
    }

    #[test]
    fn null_keys_and_invalid_utf8_still_print() {
        let mut r = record();
        r.key = None;
        r.value = Some(vec![b'a', 0xff]);
        let f: RecordFormat = "[{key}] {value}".parse().unwrap();
        assert_eq!(f.render("t", &r), "[] a\u{fffd}");
    }
}
