//! Produce: records into one RecordBatch per partition, sent to the partition's leader; and
//! Kafka's default partitioner for keyed records, so that a key lands where a Java or
//! librdkafka (`murmur2` partitioner) producer would put it.

use riffle_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use riffle_protocol::messages::produce_response::ProduceResponse;
use riffle_protocol::record_batch::{Compression, RecordBatchBuilder};
use riffle_protocol::Records;

use crate::client::{Client, PartitionInfo};
use crate::error::ClientError;

/// How long the leader may wait for replicas before answering (Kafka's `request.timeout.ms`).
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProduceRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
}

impl Client {
    /// Sends `records` to `partition` of `topic` as one batch; returns the offset of the
    /// first (None with `acks` 0, which Kafka does not answer).
    pub fn produce(
        &mut self,
        topic: &str,
        partition: &PartitionInfo,
        records: &[ProduceRecord],
        acks: i16,
    ) -> Result<Option<i64>, ClientError> {
        let Some(first) = records.first() else {
            return Ok(None);
        };
        let mut builder = RecordBatchBuilder::new(Compression::None, first.timestamp_ms);
        for r in records {
            let headers: Vec<(&[u8], Option<&[u8]>)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), Some(v.as_slice())))
                .collect();
            builder.append(
                r.timestamp_ms,
                r.key.as_deref(),
                r.value.as_deref(),
                &headers,
            );
        }
        let request = ProduceRequest {
            transactional_id: None,
            acks,
            timeout_ms: PRODUCE_TIMEOUT_MS,
            topic_data: vec![TopicProduceData {
                topic_id: Default::default(),
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition.partition,
                    records: Some(Records::from_bytes(builder.finish())),
                }],
            }],
        };
        let conn = self.broker(partition.leader)?;
        if acks == 0 {
            conn.send_only(&request)?;
            return Ok(None);
        }
        let resp: ProduceResponse = conn.call(&request)?;
        let p = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition.partition)
            .ok_or_else(|| {
                ClientError::Other(format!(
                    "Produce response left out partition {topic}-{}",
                    partition.partition
                ))
            })?;
        ClientError::check(
            p.error_code,
            || format!("partition {topic}-{}", partition.partition),
            p.error_message.as_deref(),
        )?;
        Ok(Some(p.base_offset))
    }
}

/// The partition Kafka's default partitioner gives `key`: murmur2 of the key, made
/// positive, modulo the partition count.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    let positive = murmur2(key) & 0x7fff_ffff;
    (positive % partitions as u32) as i32
}

/// Kafka's `Utils.murmur2` (MurmurHash2, 32 bits, seed 0x9747b28c).
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_where_kafkas_default_partitioner_puts_them() {
        // The vectors of Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }

    #[test]
    fn partition_for_key_is_stable_and_in_range() {
        for key in [&b"a"[..], b"key-1", b"", b"\xff\xfe"] {
            let p = partition_for_key(key, 7);
            assert!((0..7).contains(&p));
            assert_eq!(p, partition_for_key(key, 7));
        }
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }
}
