//! Errors of the codec. Decode errors name the field (`Struct.Field`) where reading failed,
//! so a malformed frame can be logged with a useful reason.

use thiserror::Error;

/// Why bytes could not be decoded. Input is untrusted: every malformed input maps to one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("unexpected end of input reading {field}")]
    UnexpectedEof { field: &'static str },
    #[error("invalid length {len} for {field} ({remaining} bytes remain)")]
    InvalidLength {
        field: &'static str,
        len: i64,
        remaining: usize,
    },
    #[error("null value for non-nullable {field}")]
    UnexpectedNull { field: &'static str },
    #[error("invalid UTF-8 in {field}")]
    InvalidUtf8 { field: &'static str },
    #[error("malformed varint in {field}")]
    InvalidVarint { field: &'static str },
    #[error("{remaining} trailing bytes after {message}")]
    TrailingBytes {
        message: &'static str,
        remaining: usize,
    },
    #[error("{message} has no version {version}")]
    UnsupportedVersion { message: &'static str, version: i16 },
}

/// Why a message could not be encoded at the requested version.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("{field} has a non-default value but does not exist in version {version}")]
    FieldNotInVersion { field: &'static str, version: i16 },
    #[error("{field} is null but not nullable in version {version}")]
    NullNotAllowed { field: &'static str, version: i16 },
    #[error("{field} is too long to encode ({len})")]
    LengthOverflow { field: &'static str, len: usize },
    #[error("{message} has no version {version}")]
    UnsupportedVersion { message: &'static str, version: i16 },
    #[error("header api key {header} does not match message api key {message}")]
    ApiKeyMismatch { header: i16, message: i16 },
}

/// Why a frame's size prefix is unacceptable. The connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    #[error("frame size {size} exceeds the maximum {max}")]
    TooLarge { size: usize, max: usize },
}
