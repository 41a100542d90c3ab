//! Framing and headers: the size prefix, request/response headers, and the entry points
//! the broker (decode_request/encode_response) and clients (encode_request/decode_response) use.

use bytes::{Buf, Bytes};

use crate::api::{ApiKey, RequestBody};
use crate::codec::{read_i16, read_i32, read_nullable_string, skip_tagged_fields, Encoder};
use crate::error::{DecodeError, EncodeError, FrameError};
use crate::Message;

/// Largest frame accepted by default (Kafka's socket.request.max.bytes is 100 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Reads the 4-byte big-endian size prefix. `Ok(None)` if fewer than 4 bytes are available.
/// Err if the size is negative or larger than `max_frame_bytes`.
pub fn frame_size(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max_frame_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_frame_bytes,
        });
    }
    Ok(Some(size))
}

/// Kafka's request header (v1 and v2; v2 adds a tagged field section, client_id stays a
/// classic nullable string in both).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestHeader {
    pub request_api_key: i16,
    pub request_api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

impl RequestHeader {
    fn encode(&self, out: &mut Encoder, header_version: i16) -> Result<(), EncodeError> {
        out.put_i16(self.request_api_key);
        out.put_i16(self.request_api_version);
        out.put_i32(self.correlation_id);
        if header_version >= 1 {
            out.put_nullable_string(self.client_id.as_deref(), false, "RequestHeader.ClientId")?;
        }
        if header_version >= 2 {
            out.put_uvarint(0);
        }
        Ok(())
    }
}

/// A decoded request: header and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub header: RequestHeader,
    pub body: RequestBody,
}

/// Why a request frame could not be decoded, and what the broker should do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The header itself cannot be read: close the connection.
    #[error("malformed request header: {0}")]
    MalformedHeader(DecodeError),
    /// Unknown API key: the broker closes the connection (as Kafka does) after logging.
    #[error("unknown api key {}", header.request_api_key)]
    UnknownApiKey { header: RequestHeader },
    /// Known API, version outside `ApiKey::versions()`: the broker answers UNSUPPORTED_VERSION
    /// (ApiVersions: a v0 ApiVersions response listing the table).
    #[error("unsupported version {} of api {}", header.request_api_version, header.request_api_key)]
    UnsupportedVersion { header: RequestHeader },
    /// Header fine, body malformed: close the connection, log with the header.
    #[error("malformed body of api {} v{}: {error}", header.request_api_key, header.request_api_version)]
    MalformedBody {
        header: RequestHeader,
        error: DecodeError,
    },
}

/// Decodes a request; `frame` is the request without its 4-byte size prefix. Record data in the
/// body stays a slice of `frame`.
pub fn decode_request(frame: Bytes) -> Result<Request, RequestError> {
    let mut buf = frame;
    let header = (|| {
        Ok(RequestHeader {
            request_api_key: read_i16(&mut buf, "RequestHeader.RequestApiKey")?,
            request_api_version: read_i16(&mut buf, "RequestHeader.RequestApiVersion")?,
            correlation_id: read_i32(&mut buf, "RequestHeader.CorrelationId")?,
            // Header v1 and v2 both carry a classic (non-compact) nullable string here.
            client_id: read_nullable_string(&mut buf, false, "RequestHeader.ClientId")?,
        })
    })()
    .map_err(RequestError::MalformedHeader)?;
    let Some(key) = ApiKey::from_i16(header.request_api_key) else {
        return Err(RequestError::UnknownApiKey { header });
    };
    let version = header.request_api_version;
    let (min, max) = key.versions();
    if version < min || version > max {
        // For a future ApiVersions version (header v2 by KIP-511's rule), the tagged fields
        // that follow do not matter: the header fields we need are already read, as v1 would.
        return Err(RequestError::UnsupportedVersion { header });
    }
    if key.request_header_version(version) >= 2 {
        if let Err(e) = skip_tagged_fields(&mut buf, "RequestHeader.<tagged fields>") {
            return Err(RequestError::MalformedHeader(e));
        }
    }
    // Bytes after a well-formed body are ignored, as Kafka's broker does: librdkafka 2.16 sends
    // three extra bytes after some Metadata v12 bodies, and Kafka serves it.
    match RequestBody::decode(key, &mut buf, version) {
        Ok(body) => Ok(Request { header, body }),
        Err(error) => Err(RequestError::MalformedBody { header, error }),
    }
}

/// Encodes size prefix + response header (v0 or v1 by `ApiKey::response_header_version`,
/// ApiVersions always v0) + body. The returned chunks are written to the socket in order.
/// Any version Kafka defines for the message is accepted (e.g. a Produce v0 error answer).
pub fn encode_response<M: Message>(
    correlation_id: i32,
    api_version: i16,
    body: &M,
) -> Result<Vec<Bytes>, EncodeError> {
    // Lenient: fields the version lacks are left out (a broker answers every version from one body).
    let mut out = Encoder::lenient();
    out.put_i32(0); // size, patched by finish_with_size_prefix
    out.put_i32(correlation_id);
    if M::API_KEY.response_header_version(api_version) >= 1 {
        out.put_uvarint(0);
    }
    body.encode(&mut out, api_version)?;
    out.finish_with_size_prefix()
}

/// Encodes a request with its size prefix (client side: loadgen, tests).
/// `header.request_api_key` must equal `M::API_KEY`; the version is `header.request_api_version`.
pub fn encode_request<M: Message>(
    header: &RequestHeader,
    body: &M,
) -> Result<Vec<Bytes>, EncodeError> {
    let key = M::API_KEY;
    if header.request_api_key != key as i16 {
        return Err(EncodeError::ApiKeyMismatch {
            header: header.request_api_key,
            message: key as i16,
        });
    }
    let version = header.request_api_version;
    let mut out = Encoder::new();
    out.put_i32(0);
    header.encode(&mut out, key.request_header_version(version))?;
    body.encode(&mut out, version)?;
    out.finish_with_size_prefix()
}

/// Decodes a response; `frame` is without the size prefix. Returns (correlation_id, body).
pub fn decode_response<M: Message>(
    frame: Bytes,
    api_version: i16,
) -> Result<(i32, M), DecodeError> {
    let mut buf = frame;
    let correlation_id = read_i32(&mut buf, "ResponseHeader.CorrelationId")?;
    if M::API_KEY.response_header_version(api_version) >= 1 {
        skip_tagged_fields(&mut buf, "ResponseHeader.<tagged fields>")?;
    }
    let body = M::decode(&mut buf, api_version)?;
    if buf.has_remaining() {
        return Err(DecodeError::TrailingBytes {
            message: M::API_KEY.name(),
            remaining: buf.remaining(),
        });
    }
    Ok((correlation_id, body))
}
