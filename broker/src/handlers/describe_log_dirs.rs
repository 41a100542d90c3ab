//! DescribeLogDirs: the one log directory (the data dir) with the size of each partition asked
//! for (every partition when the request names none), its volume's total and usable bytes. As
//! Kafka does, partitions this broker does not hold are left out of the answer: the admin client
//! reports them missing. A single node is every partition's only replica, so the offset lag is 0
//! and no log is a future one.

use std::path::PathBuf;
use std::rc::Rc;

use riffle_protocol::error_code;
use riffle_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use riffle_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use crate::admin::status::filesystem_size;
use crate::partition::request;
use crate::shard::Shard;

pub async fn handle(shard: &Rc<Shard>, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let image = shard.image();
    let asked: Vec<(String, Vec<i32>)> = match request.topics {
        None => image
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic, t.partitions))
            .collect(),
    };
    let mut topics = Vec::new();
    for (name, indexes) in asked {
        let Some(topic) = image.topic(&name) else {
            continue;
        };
        let mut partitions = Vec::new();
        for index in dedup(indexes) {
            // A partition that is not there (index out of range) or whose shard cannot answer
            // is left out, as Kafka leaves out a log it does not hold.
            if let Ok(d) = request::describe(shard, topic, index).await {
                partitions.push(DescribeLogDirsPartition {
                    partition_index: index,
                    partition_size: i64::try_from(d.size_bytes).unwrap_or(i64::MAX),
                    offset_lag: 0,
                    is_future_key: false,
                });
            }
        }
        if !partitions.is_empty() {
            topics.push(DescribeLogDirsTopic { name, partitions });
        }
    }
    let (log_dir, total_bytes, usable_bytes) = log_dir(shard.config().data_dir.clone()).await;
    DescribeLogDirsResponse {
        error_code: error_code::NONE,
        results: vec![DescribeLogDirsResult {
            error_code: error_code::NONE,
            log_dir,
            topics,
            total_bytes,
            usable_bytes,
        }],
        ..Default::default()
    }
}

/// The partition indexes in the order asked, each once.
fn dedup(mut indexes: Vec<i32>) -> Vec<i32> {
    let mut seen = std::collections::HashSet::with_capacity(indexes.len());
    indexes.retain(|i| seen.insert(*i));
    indexes
}

/// The data dir's absolute path and its volume's (total, usable) bytes, -1 when unknown. Both
/// are file-system calls that io_uring lacks, so they run on the blocking pool.
async fn log_dir(data_dir: PathBuf) -> (String, i64, i64) {
    glommio::executor()
        .spawn_blocking(move || {
            let path = std::path::absolute(&data_dir).unwrap_or(data_dir);
            let (total, usable) = filesystem_size(&path).map_or((-1, -1), |(t, u)| {
                (
                    i64::try_from(t).unwrap_or(i64::MAX),
                    i64::try_from(u).unwrap_or(i64::MAX),
                )
            });
            (path.display().to_string(), total, usable)
        })
        .await
}
