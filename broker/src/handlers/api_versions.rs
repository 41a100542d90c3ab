//! ApiVersions: the table of what this broker really serves. Two client traps are handled here:
//! Produce is advertised from v0 (librdkafka turns compression off when the minimum is above 0;
//! v0–2 are then refused), and the response header is always v0 (KIP-511).

use riffle_protocol::messages::api_versions_response::ApiVersion;
use riffle_protocol::messages::ApiVersionsResponse;
use riffle_protocol::{error_code, ApiKey, RequestHeader};

/// (api key, min, max) as advertised: every API the codec is generated for (the dispatcher's
/// `match` over `RequestBody` is exhaustive, so each is served), each from the codec's lowest
/// version. That keeps the two librdkafka traps open: before 2.11 it enables its group consumer
/// only when JoinGroup v0 is advertised, and LZ4 only when FindCoordinator is.
pub fn advertised_versions() -> Vec<(ApiKey, i16, i16)> {
    ApiKey::ALL
        .iter()
        .map(|&key| {
            let (min, max) = key.versions();
            let min = if key == ApiKey::Produce { 0 } else { min };
            (key, min, max)
        })
        .collect()
}

pub fn handle(_header: &RequestHeader) -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: error_code::NONE,
        api_keys: advertised_versions()
            .into_iter()
            .map(|(key, min, max)| ApiVersion {
                api_key: key as i16,
                min_version: min,
                max_version: max,
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_is_advertised_from_version_zero() {
        let table = advertised_versions();
        let produce = table
            .iter()
            .find(|(k, _, _)| *k == ApiKey::Produce)
            .unwrap();
        assert_eq!(produce.1, 0);
        assert!(produce.2 >= 9);
    }

    #[test]
    fn join_group_from_v0_and_find_coordinator_are_advertised_for_librdkafka() {
        let table = advertised_versions();
        let min_of = |key| table.iter().find(|(k, _, _)| *k == key).map(|e| e.1);
        assert_eq!(min_of(ApiKey::JoinGroup), Some(0));
        assert!(min_of(ApiKey::FindCoordinator).is_some());
        assert_eq!(table.len(), ApiKey::ALL.len());
    }

    #[test]
    fn every_advertised_version_is_one_the_codec_decodes() {
        for (key, min, max) in advertised_versions() {
            let (codec_min, codec_max) = key.versions();
            assert!(max <= codec_max, "{key:?}");
            assert!(key == ApiKey::Produce || min >= codec_min, "{key:?}");
        }
    }
}
