//! The commit log's record framing, sans-io: encode a batch into a framed record, and scan
//! a file's bytes back into records, stopping at the first one that is torn, corrupt or
//! left over from the file's previous use (an older generation).

/// `length u32 | crc32c u32 | generation u64 | kind u8 | topic_id [u8; 16] | index u32 |
/// base_offset i64 | last_offset i64`, big-endian as Kafka's own formats, then the batch
/// bytes.
pub(crate) const RECORD_HEADER_BYTES: usize = 4 + 4 + 8 + 1 + 16 + 4 + 8 + 8;
/// The CRC covers everything after the CRC field.
const CRC_FROM: usize = 8;
/// Records are written in whole blocks: a round never rewrites a block that holds
/// records of an earlier, acknowledged round (a torn rewrite could destroy them).
pub(crate) const BLOCK_BYTES: usize = 4096;
/// Where the generation field ends.
const AFTER_GENERATION: usize = 16;

/// A partition as the commit log names it: stable across renames and re-creations of a
/// topic (the topic's id, never its name) and across restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId {
    pub topic_id: [u8; 16],
    pub index: u32,
}

impl From<u32> for PartitionId {
    /// Partition `index` of the all-zero topic id (storage's own tests and benchmarks).
    fn from(index: u32) -> Self {
        PartitionId {
            topic_id: [0; 16],
            index,
        }
    }
}

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Batches of `[base_offset, last_offset]` of the partition.
    Batch = 0,
    /// The partition was cut at `base_offset`: records before this one at or past it are void.
    Truncate = 1,
    /// The first record of every use of a file, written and synced before any round,
    /// carrying the use's generation.
    Marker = 2,
    /// Fills a round's last block.
    Padding = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Batch,
            1 => Kind::Truncate,
            2 => Kind::Marker,
            3 => Kind::Padding,
            _ => return None,
        })
    }
}
/// Largest record accepted by the scan: a length beyond it is corruption, not a record
/// (a batch is at most a produce request's size, far below this).
pub(crate) const RECORD_BYTES_MAX: usize = 256 << 20;

/// One batch as the commit log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// The file's generation when the record was written: each reuse of a file takes a new,
    /// higher one.
    pub generation: u64,
    pub kind: Kind,
    /// The partition the record belongs to (zeros for markers and padding).
    pub partition: PartitionId,
    pub base_offset: i64,
    pub last_offset: i64,
    pub batch: &'a [u8],
}

/// Where records are encoded: a `Vec` (tests, the file marker) or a round's DMA buffer
/// (`RoundBuf`), which is then written as it is.
pub(crate) trait Out {
    fn len(&self) -> usize;
    fn reserve(&mut self, additional: usize);
    fn extend_from_slice(&mut self, bytes: &[u8]);
    /// The bytes encoded so far.
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl Out for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional)
    }
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes)
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// Framed length of a record holding `batch_bytes`.
pub(crate) fn framed_len(batch_bytes: usize) -> usize {
    RECORD_HEADER_BYTES + batch_bytes
}

/// Appends the framed record to `out`, with the generation and CRC left for
/// `set_generation` (the file a record goes to is known only when its round is written).
pub(crate) fn encode(record: &Record<'_>, out: &mut impl Out) {
    encode_chunks(record, &[record.batch], out);
}

/// As `encode`, with the batch bytes given in pieces (`record.batch` is not used): they are
/// copied once, into `out`.
pub(crate) fn encode_chunks(record: &Record<'_>, batch: &[&[u8]], out: &mut impl Out) {
    let batch_bytes: usize = batch.iter().map(|c| c.len()).sum();
    let len = framed_len(batch_bytes);
    assert!(len <= RECORD_BYTES_MAX, "record of {len} bytes");
    out.reserve(len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record.generation.to_be_bytes());
    out.extend_from_slice(&[record.kind as u8]);
    out.extend_from_slice(&record.partition.topic_id);
    out.extend_from_slice(&record.partition.index.to_be_bytes());
    out.extend_from_slice(&record.base_offset.to_be_bytes());
    out.extend_from_slice(&record.last_offset.to_be_bytes());
    for c in batch {
        out.extend_from_slice(c);
    }
}

/// Writes `generation` into an encoded record and computes its CRC: the one pass over
/// the batch's bytes, once the file the record goes to is known.
pub(crate) fn set_generation(record: &mut [u8], generation: u64) {
    record[8..AFTER_GENERATION].copy_from_slice(&generation.to_be_bytes());
    let crc = crc32c::crc32c(&record[CRC_FROM..]);
    record[4..8].copy_from_slice(&crc.to_be_bytes());
}

/// Pads `out` (a round, from a block boundary) to whole blocks with a padding record,
/// one block longer when the rest of the last block cannot hold a header: records stay
/// contiguous, so a scan needs no rule of its own for a round's end.
pub(crate) fn pad_to_block(out: &mut impl Out, generation: u64) {
    let mut rest = out.len().next_multiple_of(BLOCK_BYTES) - out.len();
    if rest == 0 {
        return;
    }
    if rest < RECORD_HEADER_BYTES {
        rest += BLOCK_BYTES;
    }
    let zeros = vec![0; rest - RECORD_HEADER_BYTES];
    let padding = Record {
        generation,
        kind: Kind::Padding,
        partition: PartitionId::default(),
        base_offset: 0,
        last_offset: 0,
        batch: &zeros,
    };
    encode_with_generation(&padding, out);
}

/// Encodes a complete record of `generation` (tests and the file marker).
pub(crate) fn encode_with_generation(record: &Record<'_>, out: &mut impl Out) {
    let start = out.len();
    encode(record, out);
    set_generation(&mut out.bytes_mut()[start..], record.generation);
}

/// Why a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Zeros or fewer bytes than a header: never written (or written and padded).
    Clean,
    /// A length that cannot be a record, or a CRC mismatch: a torn or corrupt write.
    Corrupt,
    /// A whole record of another generation: left from the file's previous use.
    Stale,
    /// A header whose record runs past the bytes given.
    Truncated,
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}
fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Decodes the record at the start of `bytes`; Err says why there is none.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>, ScanEnd> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(ScanEnd::Clean);
    }
    let len = be_u32(bytes) as usize;
    if len == 0 {
        return Err(ScanEnd::Clean);
    }
    if !(RECORD_HEADER_BYTES..=RECORD_BYTES_MAX).contains(&len) {
        return Err(ScanEnd::Corrupt);
    }
    if len > bytes.len() {
        return Err(ScanEnd::Truncated);
    }
    if crc32c::crc32c(&bytes[CRC_FROM..len]) != be_u32(&bytes[4..]) {
        return Err(ScanEnd::Corrupt);
    }
    let Some(kind) = Kind::from_byte(bytes[16]) else {
        return Err(ScanEnd::Corrupt);
    };
    let record = Record {
        generation: be_u64(&bytes[8..]),
        kind,
        partition: PartitionId {
            topic_id: bytes[17..33].try_into().expect("16 bytes"),
            index: be_u32(&bytes[33..]),
        },
        base_offset: be_u64(&bytes[37..]) as i64,
        last_offset: be_u64(&bytes[45..]) as i64,
        batch: &bytes[RECORD_HEADER_BYTES..len],
    };
    if record.base_offset < 0 || record.last_offset < record.base_offset {
        return Err(ScanEnd::Corrupt);
    }
    Ok(record)
}

/// The records of one file's current use, in order (padding included): the generation is
/// the first record's, and the scan stops at the first record that does not decode or is
/// of another generation. Returns the records, the end of the last one, and why it stopped.
pub(crate) fn scan(bytes: &[u8]) -> (Vec<Record<'_>>, usize, ScanEnd) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    loop {
        match decode(&bytes[pos..]) {
            Ok(r)
                if records
                    .first()
                    .is_some_and(|f: &Record| f.generation != r.generation) =>
            {
                return (records, pos, ScanEnd::Stale);
            }
            Ok(r) => {
                pos += framed_len(r.batch.len());
                records.push(r);
            }
            Err(end) => return (records, pos, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generation: u64, partition: u32, base: i64, batch: &[u8]) -> Record<'_> {
        Record {
            generation,
            kind: Kind::Batch,
            partition: partition.into(),
            base_offset: base,
            last_offset: base + 9,
            batch,
        }
    }

    #[test]
    fn records_round_trip_in_order() {
        let mut out = Vec::new();
        let batches: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100 + i as usize]).collect();
        for (i, b) in batches.iter().enumerate() {
            encode_with_generation(&record(3, i as u32, i as i64 * 10, b), &mut out);
        }
        out.extend_from_slice(&[0; 4096]);
        let (records, end, why) = scan(&out);
        assert_eq!(why, ScanEnd::Clean);
        assert_eq!(end, out.len() - 4096);
        assert_eq!(records.len(), 5);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r, &record(3, i as u32, i as i64 * 10, &batches[i]));
        }
    }

    #[test]
    fn scan_stops_at_a_torn_record_at_every_truncation() {
        let mut out = Vec::new();
        encode_with_generation(&record(1, 0, 0, &[7; 300]), &mut out);
        let first = out.len();
        encode_with_generation(&record(1, 0, 10, &[8; 300]), &mut out);
        for cut in first..out.len() {
            let (records, end, why) = scan(&out[..cut]);
            assert_eq!(records.len(), 1, "cut at {cut}");
            assert_eq!(end, first);
            assert_ne!(why, ScanEnd::Stale);
        }
    }

    #[test]
    fn scan_stops_at_any_flipped_byte_of_the_last_record() {
        let mut out = Vec::new();
        encode_with_generation(&record(1, 2, 0, &[7; 64]), &mut out);
        let first = out.len();
        encode_with_generation(&record(1, 2, 10, &[8; 64]), &mut out);
        for i in first..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            let (records, end, _) = scan(&bad);
            assert_eq!((records.len(), end), (1, first), "byte {i} flipped");
        }
    }

    #[test]
    fn records_of_a_previous_use_of_the_file_are_not_replayed() {
        // The file's first lap left generation 4; the new lap (5) overwrote the start only.
        let mut old = Vec::new();
        for i in 0..4 {
            encode_with_generation(&record(4, 1, i * 10, &[1; 200]), &mut old);
        }
        let mut new = Vec::new();
        encode_with_generation(&record(5, 2, 100, &[2; 200]), &mut new);
        let new_len = new.len();
        let mut file = old.clone();
        file[..new_len].copy_from_slice(&new);
        // The old lap's second record starts at the same place here (equal sizes).
        let (records, end, why) = scan(&file);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].generation, 5);
        assert_eq!((end, why), (new_len, ScanEnd::Stale));
    }

    #[test]
    fn a_generation_set_later_gives_the_same_bytes_as_one_set_at_once() {
        let r = record(77, 3, 5, &[9; 1000]);
        let mut at_once = Vec::new();
        encode_with_generation(&r, &mut at_once);
        let mut later = Vec::new();
        encode(
            &Record {
                generation: 0,
                ..r.clone()
            },
            &mut later,
        );
        set_generation(&mut later, 77);
        assert_eq!(at_once, later);
        assert_eq!(decode(&later), Ok(r));
    }

    #[test]
    fn rounds_padded_to_blocks_scan_through_every_padding_size() {
        for batch_bytes in (3900..4100).chain([0, 1, 100]) {
            let mut out = Vec::new();
            for i in 0..3 {
                encode_with_generation(&record(2, 1, i * 10, &vec![5; batch_bytes]), &mut out);
                pad_to_block(&mut out, 2);
                assert_eq!(out.len() % BLOCK_BYTES, 0);
            }
            let (records, end, why) = scan(&out);
            let data: Vec<_> = records.iter().filter(|r| r.kind != Kind::Padding).collect();
            assert_eq!(data.len(), 3, "batch of {batch_bytes}");
            assert_eq!((end, why), (out.len(), ScanEnd::Clean));
        }
    }

    #[test]
    fn a_partition_id_and_kind_round_trip_and_an_unknown_kind_is_corruption() {
        let partition = PartitionId {
            topic_id: *b"0123456789abcdef",
            index: 7,
        };
        let r = Record {
            generation: 9,
            kind: Kind::Truncate,
            partition,
            base_offset: 40,
            last_offset: 40,
            batch: &[],
        };
        let mut out = Vec::new();
        encode_with_generation(&r, &mut out);
        assert_eq!(decode(&out), Ok(r));
        out[16] = 9;
        set_generation(&mut out, 9);
        assert_eq!(decode(&out), Err(ScanEnd::Corrupt));
    }

    #[test]
    fn a_record_encoded_from_pieces_equals_one_encoded_whole() {
        let whole: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let r = record(3, 1, 0, &whole);
        let mut at_once = Vec::new();
        encode(&r, &mut at_once);
        let mut pieces = Vec::new();
        encode_chunks(
            &r,
            &[&whole[..10], &whole[10..4097], &whole[4097..]],
            &mut pieces,
        );
        assert_eq!(at_once, pieces);
    }

    #[test]
    fn an_impossible_length_is_corruption_not_an_allocation() {
        let mut out = Vec::new();
        encode_with_generation(&record(1, 0, 0, &[7; 10]), &mut out);
        out[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&out), Err(ScanEnd::Corrupt));
        out[..4].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(decode(&out), Err(ScanEnd::Corrupt));
    }
}
