//! Cross-checks against an independent implementation, the `kafka-protocol` crate (test only:
//! it aborts on hostile input). For every message at every version both codecs know: ours
//! encodes a sample with every field set, theirs must decode all of it and re-encode the very
//! same bytes, and ours must decode their bytes back to the sample.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable, Message as TheirMessage};

use crate::api::for_all_apis;
use crate::messages::*;
use crate::{Encoder, Message};

fn cross_check<Ours, Theirs>(sample: impl Fn(i16, &mut u64) -> Ours, lo: i16, hi: i16) -> usize
where
    Ours: Message + std::fmt::Debug + PartialEq,
    Theirs: TheirMessage + Encodable + Decodable + Default + std::fmt::Debug,
{
    let name = std::any::type_name::<Ours>();
    let lo = lo.max(Theirs::VERSIONS.min);
    let hi = hi.min(Theirs::VERSIONS.max);
    let mut checked = 0;
    for version in lo..=hi {
        let mut seed = 1000 + version as u64;
        let ours = sample(version, &mut seed);
        let mut out = Encoder::new();
        ours.encode(&mut out, version).unwrap();
        let our_bytes = out.into_contiguous();

        let mut buf = our_bytes.clone();
        let theirs = Theirs::decode(&mut buf, version).unwrap_or_else(|e| {
            panic!("{name} v{version}: kafka-protocol cannot decode ours: {e}")
        });
        assert!(
            buf.is_empty(),
            "{name} v{version}: kafka-protocol left {} bytes",
            buf.len()
        );
        let mut their_bytes = BytesMut::new();
        theirs
            .encode(&mut their_bytes, version)
            .unwrap_or_else(|e| {
                panic!("{name} v{version}: kafka-protocol cannot re-encode: {e} {theirs:?}")
            });
        assert_eq!(
            their_bytes.as_ref(),
            our_bytes.as_ref(),
            "{name} v{version}: bytes differ"
        );

        let mut buf = Bytes::from(their_bytes);
        let back = Ours::decode(&mut buf, version).unwrap();
        assert!(buf.is_empty());
        assert_eq!(back, ours, "{name} v{version}");

        // Both codecs take their defaults from the JSON: the default messages agree too.
        let mut their_default = BytesMut::new();
        Theirs::default()
            .encode(&mut their_default, version)
            .unwrap();
        let mut buf = Bytes::from(their_default);
        let ours_from_theirs = Ours::decode(&mut buf, version).unwrap();
        assert_eq!(
            ours_from_theirs,
            Ours::default(),
            "{name} v{version}: defaults differ"
        );
        checked += 1;
    }
    checked
}

static CHECKED: AtomicUsize = AtomicUsize::new(0);

macro_rules! cross_check_api {
    ($api:ident, $req:ident, $resp:ident) => {{
        let (lo, hi) = crate::ApiKey::$api.versions();
        let n = cross_check::<$req, kafka_protocol::messages::$req>($req::sample, lo, hi);
        assert!(n > 0, "{}: no common version", stringify!($req));
        CHECKED.fetch_add(n, Ordering::Relaxed);
        let n = cross_check::<$resp, kafka_protocol::messages::$resp>($resp::sample, lo, hi);
        assert!(n > 0, "{}: no common version", stringify!($resp));
        CHECKED.fetch_add(n, Ordering::Relaxed);
    }};
}

#[test]
fn every_message_matches_kafka_protocol_byte_for_byte() {
    for_all_apis!(cross_check_api);
    // 35 APIs, request and response, at each version both codecs serve.
    let checked = CHECKED.load(Ordering::Relaxed);
    assert!(
        checked >= 300,
        "only {checked} message versions cross-checked"
    );
}

macro_rules! same_maximum {
    ($api:ident, $req:ident, $resp:ident) => {{
        let (_, ours) = crate::ApiKey::$api.versions();
        let theirs = <kafka_protocol::messages::$req as TheirMessage>::VERSIONS.max;
        assert_eq!(ours, theirs, "{}: served up to v{ours}", stringify!($api));
    }};
}

/// `kafka-protocol` 0.18 is generated from Kafka 4.1.0's definitions (its stable versions): every
/// API we serve goes up to the same version, so clients that infer the broker's version from
/// ApiVersions see Kafka 4.1.
#[test]
fn every_served_api_goes_up_to_kafka_4_1s_maximum() {
    for_all_apis!(same_maximum);
}
