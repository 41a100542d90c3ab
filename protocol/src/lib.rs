//! Kafka wire protocol codec (sans-io): framing, headers and every message of the APIs Riffle
//! serves, generated from Kafka's JSON message definitions (`schema/`) by `riffle-protocol-codegen`.
//! Decoders treat input as hostile: no panics, no allocation beyond the bytes received.

mod api;
mod codec;
mod error;
pub mod error_code;
mod frame;
pub mod messages;
pub mod record_batch;
mod types;

pub use api::{ApiKey, RequestBody};
pub use bytes::{Bytes, BytesMut};
pub use codec::{Encoder, ZERO_COPY_MIN_BYTES};
pub use error::{DecodeError, EncodeError, FrameError};
pub use frame::{
    decode_request, decode_response, encode_request, encode_response, frame_size, Request,
    RequestError, RequestHeader, DEFAULT_MAX_FRAME_BYTES,
};
pub use types::{Records, Uuid};

/// A Kafka request or response body, decodable and encodable at any version Kafka defines for it.
pub trait Message: Sized + Default {
    const API_KEY: ApiKey;
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
    fn encode(&self, out: &mut Encoder, version: i16) -> Result<(), EncodeError>;
}

#[cfg(test)]
mod crosscheck;
#[cfg(test)]
mod tests;
