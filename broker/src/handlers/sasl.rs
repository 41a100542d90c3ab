//! SASL: not offered yet. Clients that insist on it get a clear refusal instead of a hang.

use riffle_protocol::error_code;
use riffle_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};

pub fn handshake() -> SaslHandshakeResponse {
    SaslHandshakeResponse {
        error_code: error_code::UNSUPPORTED_SASL_MECHANISM,
        mechanisms: Vec::new(),
    }
}

pub fn authenticate() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse {
        error_code: error_code::ILLEGAL_SASL_STATE,
        error_message: Some("SASL is not enabled on this listener".to_string()),
        ..Default::default()
    }
}
