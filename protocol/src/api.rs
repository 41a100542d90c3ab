//! API keys, the versions we serve and the request body dispatch, generated from the schema.

use bytes::Bytes;

use crate::codec::Encoder;
use crate::error::{DecodeError, EncodeError};
use crate::messages::*;
use crate::Message;

include!(concat!(env!("OUT_DIR"), "/api.rs"));
