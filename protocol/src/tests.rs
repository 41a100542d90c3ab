//! Round trips of every message at every version the codec serves, with a non-default value
//! in every field present at that version (samples generated alongside the codec).

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};

use crate::api::for_all_apis;
use crate::messages::*;
use crate::*;

fn contiguous(chunks: Vec<Bytes>) -> Bytes {
    let mut b = BytesMut::new();
    for c in chunks {
        b.extend_from_slice(&c);
    }
    b.freeze()
}

fn round_trip_body<M: Message + Debug + PartialEq>(m: &M, version: i16) {
    let mut out = Encoder::new();
    m.encode(&mut out, version)
        .unwrap_or_else(|e| panic!("{:?} v{version}: {e}", M::API_KEY));
    let mut buf = out.into_contiguous();
    let decoded =
        M::decode(&mut buf, version).unwrap_or_else(|e| panic!("{:?} v{version}: {e}", M::API_KEY));
    assert!(
        buf.is_empty(),
        "{:?} v{version}: {} bytes left",
        M::API_KEY,
        buf.len()
    );
    assert_eq!(&decoded, m, "{:?} v{version}", M::API_KEY);
}

static ROUND_TRIPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

macro_rules! round_trip_api {
    ($api:ident, $req:ident, $resp:ident) => {{
        let key = ApiKey::$api;
        let (lo, hi) = key.versions();
        assert!(lo <= hi, "{key:?}");
        for version in lo..=hi {
            let mut seed = version as u64 + 1;
            let req = $req::sample(version, &mut seed);
            if $req::default() == req {
                // Only a message without fields at this version may equal its default.
                let mut out = Encoder::new();
                req.encode(&mut out, version).unwrap();
                assert!(
                    out.len() <= 1,
                    "{key:?} v{version}: sample must differ from default"
                );
            }
            round_trip_body(&req, version);
            // Through the framing entry points.
            let header = RequestHeader {
                request_api_key: key as i16,
                request_api_version: version,
                correlation_id: 7 + i32::from(version),
                client_id: Some("riffle-test".into()),
            };
            let frame = contiguous(encode_request(&header, &req).unwrap());
            assert_eq!(
                frame_size(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap(),
                Some(frame.len() - 4)
            );
            let decoded = decode_request(frame.slice(4..))
                .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
            assert_eq!(decoded.header, header);
            assert_eq!(decoded.body, RequestBody::$api(req));

            let resp = $resp::sample(version, &mut seed);
            round_trip_body(&resp, version);
            let frame = contiguous(encode_response(99, version, &resp).unwrap());
            assert_eq!(
                frame_size(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap(),
                Some(frame.len() - 4)
            );
            let (corr, decoded) = decode_response::<$resp>(frame.slice(4..), version).unwrap();
            assert_eq!(corr, 99);
            assert_eq!(decoded, resp);
        }
        ROUND_TRIPPED.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
    }};
}

#[test]
fn every_message_round_trips_at_every_served_version() {
    for_all_apis!(round_trip_api);
    assert_eq!(ROUND_TRIPPED.load(std::sync::atomic::Ordering::Relaxed), 74);
}

macro_rules! defaults_round_trip {
    ($api:ident, $req:ident, $resp:ident) => {{
        let (lo, hi) = ApiKey::$api.versions();
        for version in lo..=hi {
            round_trip_body(&$req::default(), version);
            round_trip_body(&$resp::default(), version);
        }
    }};
}

#[test]
fn default_messages_round_trip_at_every_served_version() {
    for_all_apis!(defaults_round_trip);
}

#[test]
fn api_versions_table_matches_the_brief() {
    assert_eq!(ApiKey::Produce.versions(), (3, 13));
    assert_eq!(ApiKey::Fetch.versions(), (4, 18));
    assert_eq!(ApiKey::ListOffsets.versions(), (1, 10));
    assert_eq!(ApiKey::Metadata.versions(), (0, 13));
    assert_eq!(ApiKey::ApiVersions.versions(), (0, 4));
    assert_eq!(ApiKey::DescribeCluster.versions(), (0, 2));
    assert_eq!(ApiKey::DescribeGroups.versions(), (0, 6));
    assert_eq!(ApiKey::DescribeTopicPartitions.versions(), (0, 0));
    assert_eq!(ApiKey::ListConfigResources.versions(), (0, 1));
    assert_eq!(ApiKey::DescribeClientQuotas.versions(), (0, 1));
    assert_eq!(ApiKey::DescribeLogDirs.versions(), (1, 4));
    assert_eq!(ApiKey::DescribeProducers.versions(), (0, 0));
    assert_eq!(ApiKey::DescribeQuorum.versions(), (0, 2));
    assert_eq!(ApiKey::ConsumerGroupHeartbeat.versions(), (0, 1));
    assert_eq!(ApiKey::ConsumerGroupDescribe.versions(), (0, 1));
    assert_eq!(ApiKey::ALL.len(), 37);
    assert_eq!(ApiKey::OffsetDelete.versions(), (0, 0));
    assert_eq!(ApiKey::from_i16(18), Some(ApiKey::ApiVersions));
    assert_eq!(ApiKey::from_i16(4), None);
    assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
    assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
    assert_eq!(ApiKey::Produce.request_header_version(8), 1);
    assert_eq!(ApiKey::Produce.response_header_version(9), 1);
    assert_eq!(ApiKey::Fetch.request_header_version(12), 2);
}

#[test]
fn non_ignorable_field_absent_in_version_fails_to_encode() {
    let req = JoinGroupRequest {
        group_instance_id: Some("static-1".into()),
        ..Default::default()
    };
    let mut out = Encoder::new();
    assert!(matches!(
        req.encode(&mut out, 4),
        Err(EncodeError::FieldNotInVersion { .. })
    ));
    assert!(req.encode(&mut Encoder::new(), 5).is_ok());
}

#[test]
fn ignorable_field_absent_in_version_is_dropped() {
    let req = FetchRequest {
        session_id: 5,
        ..Default::default()
    };
    assert!(req.encode(&mut Encoder::new(), 6).is_ok());
}

#[test]
fn null_in_non_nullable_version_fails_to_encode() {
    // Metadata topics are nullable from v1 only.
    let req = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    assert!(matches!(
        req.encode(&mut Encoder::new(), 0),
        Err(EncodeError::NullNotAllowed { .. })
    ));
    assert!(req.encode(&mut Encoder::new(), 1).is_ok());
}

#[test]
fn defaults_follow_the_json() {
    let p = fetch_request::FetchPartition::default();
    assert_eq!(p.current_leader_epoch, -1);
    assert_eq!(FetchRequest::default().max_bytes, 0x7fff_ffff);
    assert_eq!(ProduceRequest::default().transactional_id, None);
}

#[test]
fn unknown_tagged_fields_are_skipped() {
    let resp = ApiVersionsResponse {
        error_code: 0,
        throttle_time_ms: 5,
        ..Default::default()
    };
    let mut out = Encoder::new();
    resp.encode(&mut out, 3).unwrap();
    let mut raw = out.into_contiguous().to_vec();
    // Replace the final (empty) tagged field section with one unknown tag 42 of 3 bytes.
    assert_eq!(raw.pop(), Some(0));
    raw.extend_from_slice(&[1, 42, 3, 9, 9, 9]);
    let mut buf = Bytes::from(raw);
    let decoded = ApiVersionsResponse::decode(&mut buf, 3).unwrap();
    assert_eq!(decoded, resp);
    assert!(buf.is_empty());
}

#[test]
fn tagged_fields_round_trip_when_set() {
    let resp = ApiVersionsResponse {
        supported_features: vec![api_versions_response::SupportedFeatureKey {
            name: "metadata.version".into(),
            min_version: 1,
            max_version: 20,
        }],
        finalized_features_epoch: 3,
        zk_migration_ready: true,
        ..Default::default()
    };
    round_trip_body(&resp, 3);
}

macro_rules! truncations_fail {
    ($api:ident, $req:ident, $resp:ident) => {{
        let (lo, hi) = ApiKey::$api.versions();
        for version in [lo, hi] {
            let mut seed = 3;
            let mut out = Encoder::new();
            $req::sample(version, &mut seed)
                .encode(&mut out, version)
                .unwrap();
            let full = out.into_contiguous();
            for len in 0..full.len() {
                assert!(
                    $req::decode(&mut full.slice(..len), version).is_err(),
                    "{} v{version} len {len}",
                    stringify!($req)
                );
            }
            let mut out = Encoder::new();
            $resp::sample(version, &mut seed)
                .encode(&mut out, version)
                .unwrap();
            let full = out.into_contiguous();
            for len in 0..full.len() {
                assert!(
                    $resp::decode(&mut full.slice(..len), version).is_err(),
                    "{} v{version} len {len}",
                    stringify!($resp)
                );
            }
        }
    }};
}

#[test]
fn every_truncation_of_every_message_is_an_error() {
    for_all_apis!(truncations_fail);
}

macro_rules! mutations_do_not_panic {
    ($api:ident, $req:ident, $resp:ident) => {{
        let (lo, hi) = ApiKey::$api.versions();
        for version in lo..=hi {
            let mut seed = 11 + version as u64;
            let mut out = Encoder::new();
            $req::sample(version, &mut seed)
                .encode(&mut out, version)
                .unwrap();
            let full = out.into_contiguous().to_vec();
            for i in 0..full.len() {
                for byte in [0x00, 0x7f, 0x80, 0xff, full[i] ^ 0x01] {
                    let mut m = full.clone();
                    m[i] = byte;
                    let _ = $req::decode(&mut Bytes::from(m), version);
                }
            }
        }
    }};
}

#[test]
fn single_byte_mutations_of_every_request_do_not_panic() {
    for_all_apis!(mutations_do_not_panic);
}

#[test]
fn describe_topic_partitions_fuzz_seed_decodes_with_its_cursor() {
    let frame = include_bytes!("../fuzz/seeds/request/describe_topic_partitions_v0");
    let request = decode_request(Bytes::from_static(frame)).expect("the seed decodes");
    let RequestBody::DescribeTopicPartitions(body) = request.body else {
        panic!("decoded as {:?}", request.header.request_api_key);
    };
    assert_eq!(body.topics.len(), 1);
    assert_eq!(body.response_partition_limit, 2000);
    let cursor = body.cursor.expect("the seed carries a cursor");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("t", 0)
    );
}
