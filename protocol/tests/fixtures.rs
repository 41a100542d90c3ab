//! Real client bytes (captured from kcat/librdkafka, see fixtures/README.md) decode as expected.

use riffle_protocol::messages::{ApiVersionsRequest, MetadataRequest};
use riffle_protocol::{decode_request, encode_request, Bytes, RequestBody};

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn re_encoded(frame: &Bytes) -> Bytes {
    let req = decode_request(frame.clone()).unwrap();
    let chunks = match &req.body {
        RequestBody::ApiVersions(b) => encode_request(&req.header, b),
        RequestBody::Metadata(b) => encode_request(&req.header, b),
        other => panic!("unexpected {other:?}"),
    }
    .unwrap();
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    Bytes::from(all).slice(4..)
}

#[test]
fn kcat_api_versions_v3_request_decodes() {
    let frame = fixture("kcat_api_versions_v3_request.bin");
    let req = decode_request(frame.clone()).unwrap();
    assert_eq!(req.header.request_api_key, 18);
    assert_eq!(req.header.request_api_version, 3);
    assert_eq!(req.header.client_id.as_deref(), Some("rdkafka"));
    let RequestBody::ApiVersions(body) = &req.body else {
        panic!("{:?}", req.body)
    };
    assert_eq!(
        body,
        &ApiVersionsRequest {
            client_software_name: "librdkafka".into(),
            client_software_version: "2.0.2".into()
        }
    );
    assert_eq!(
        re_encoded(&frame),
        frame,
        "our encoding reproduces the client's bytes"
    );
}

#[test]
fn kcat_metadata_v4_requests_decode() {
    let frame = fixture("kcat_metadata_v4_brokers_request.bin");
    let req = decode_request(frame.clone()).unwrap();
    assert_eq!(
        (req.header.request_api_key, req.header.request_api_version),
        (3, 4)
    );
    let RequestBody::Metadata(body) = &req.body else {
        panic!("{:?}", req.body)
    };
    // librdkafka's first Metadata asks for brokers only: an empty (not null) topic list.
    assert_eq!(body.topics, Some(vec![]));
    assert!(!body.allow_auto_topic_creation);
    assert_eq!(re_encoded(&frame), frame);

    let frame = fixture("kcat_metadata_v4_one_topic_request.bin");
    let req = decode_request(frame.clone()).unwrap();
    let RequestBody::Metadata(body) = &req.body else {
        panic!("{:?}", req.body)
    };
    let topics = body.topics.as_ref().expect("one topic");
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name.as_deref(), Some("riffle-fixture"));
    assert!(body.allow_auto_topic_creation);
    assert_eq!(re_encoded(&frame), frame);
    let _: &MetadataRequest = body;
}

#[test]
fn every_truncation_of_a_client_frame_is_an_error() {
    for name in [
        "kcat_api_versions_v3_request.bin",
        "kcat_metadata_v4_brokers_request.bin",
        "kcat_metadata_v4_one_topic_request.bin",
    ] {
        let frame = fixture(name);
        for len in 0..frame.len() {
            assert!(
                decode_request(frame.slice(..len)).is_err(),
                "{name} truncated to {len} decoded"
            );
        }
    }
}
