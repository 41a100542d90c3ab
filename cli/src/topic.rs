//! `riffle topic create|list|describe|delete|alter-config|add-partitions`.

use clap::{Args, Subcommand};
use riffle_client::{
    find_topic, Client, NewTopic, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, READY_TIMEOUT,
};
use serde_json::json;

use crate::output::{self, Table};
use crate::parse::key_value;
use crate::{CliError, CommonArgs};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        topic: String,
        /// Number of partitions.
        #[arg(short, long, default_value_t = 1)]
        partitions: i32,
        /// Replicas per partition (-1: the broker's default).
        #[arg(short, long, default_value_t = -1)]
        replication_factor: i16,
        /// A topic config, KEY=VALUE (repeatable), e.g. retention.ms=86400000.
        #[arg(short, long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// List the cluster's topics.
    List {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Show a topic's partitions (leader, replicas, offsets) and its configs.
    Describe {
        topic: String,
        /// Show every config, defaults included.
        #[arg(long)]
        all_configs: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Set or remove topic configs, leaving the others as they are.
    AlterConfig(AlterConfigArgs),
    /// Add partitions to a topic.
    AddPartitions {
        topic: String,
        /// How many partitions to add.
        #[arg(short, long, value_name = "N")]
        num: i32,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Args, Debug)]
pub struct AlterConfigArgs {
    topic: String,
    /// Set a config, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
    /// Remove a config so the default applies again (repeatable).
    #[arg(long, value_name = "KEY")]
    delete: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(command: TopicCommand) -> Result<(), CliError> {
    match command {
        TopicCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            common,
        } => {
            let new = NewTopic {
                name: topic,
                partitions,
                replication_factor,
                configs,
            };
            create(&common, &new)
        }
        TopicCommand::List { common } => list(&common),
        TopicCommand::Describe {
            topic,
            all_configs,
            common,
        } => describe(&common, &topic, all_configs),
        TopicCommand::Delete { topics, common } => {
            crate::delete_each(&common, "topic", &topics, Client::delete_topic)
        }
        TopicCommand::AlterConfig(args) => alter_config(&args),
        TopicCommand::AddPartitions { topic, num, common } => add_partitions(&common, &topic, num),
    }
}

fn create(common: &CommonArgs, topic: &NewTopic) -> Result<(), CliError> {
    if topic.partitions < 1 {
        return Err(CliError::Usage("--partitions must be at least 1".into()));
    }
    let mut client = common.connect()?;
    client.create_topic(topic)?;
    // The topic is usable once every partition has a leader.
    let partitions = client.partition_leaders(&topic.name, READY_TIMEOUT, false)?;
    if common.json {
        return output::json(&json!({ "topic": topic.name, "partitions": partitions.len() }));
    }
    output::line(&format!(
        "created topic '{}' with {} partition{}",
        topic.name,
        partitions.len(),
        plural(partitions.len())
    ))
}

fn list(common: &CommonArgs) -> Result<(), CliError> {
    let mut client = common.connect()?;
    let metadata = client.metadata(None)?;
    let mut topics: Vec<_> = metadata
        .topics
        .iter()
        .map(|t| {
            let name = t.name.clone().unwrap_or_default();
            let replicas = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            (name, t.partitions.len(), replicas, t.is_internal)
        })
        .collect();
    topics.sort();
    if common.json {
        let list: Vec<_> = topics
            .iter()
            .map(|(name, partitions, replicas, internal)| {
                json!({ "name": name, "partitions": partitions, "replicas": replicas, "internal": internal })
            })
            .collect();
        return output::json(&json!(list));
    }
    let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS", "INTERNAL"]);
    for (name, partitions, replicas, internal) in topics {
        table.row(vec![
            name,
            partitions.to_string(),
            replicas.to_string(),
            if internal { "yes" } else { "no" }.into(),
        ]);
    }
    table.print()
}

/// One partition as `describe` shows it.
struct PartitionRow {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    log_start: i64,
    log_end: i64,
}

fn describe(common: &CommonArgs, topic: &str, all_configs: bool) -> Result<(), CliError> {
    let mut client = common.connect()?;
    let rows = partition_rows(&mut client, topic)?;
    let mut configs = client.describe_topic_configs(topic)?;
    if !all_configs {
        configs.retain(|c| !c.is_default);
    }
    if common.json {
        let partitions: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({ "partition": r.partition, "leader": r.leader, "replicas": r.replicas,
                        "isr": r.isr, "log_start_offset": r.log_start, "log_end_offset": r.log_end })
            })
            .collect();
        let configs: Vec<_> = configs
            .iter()
            .map(|c| json!({ "name": c.name, "value": c.value, "default": c.is_default }))
            .collect();
        return output::json(
            &json!({ "topic": topic, "partitions": partitions, "configs": configs }),
        );
    }
    output::line(&format!(
        "topic '{topic}': {} partition{}",
        rows.len(),
        plural(rows.len())
    ))?;
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START",
        "LOG-END",
    ]);
    for r in &rows {
        table.row(vec![
            r.partition.to_string(),
            r.leader.to_string(),
            ids(&r.replicas),
            ids(&r.isr),
            r.log_start.to_string(),
            r.log_end.to_string(),
        ]);
    }
    table.print()?;
    let what = if all_configs {
        "configs"
    } else {
        "configs set on the topic"
    };
    if configs.is_empty() {
        return output::line(&format!("\nno {what}"));
    }
    output::line(&format!("\n{what}:"))?;
    let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
    for c in configs {
        let source = if c.is_default { "default" } else { "topic" };
        table.row(vec![c.name, c.value.unwrap_or_default(), source.into()]);
    }
    table.print()
}

fn partition_rows(client: &mut Client, topic: &str) -> Result<Vec<PartitionRow>, CliError> {
    let metadata = client.metadata(Some(&[topic]))?;
    let t = find_topic(&metadata, topic)?;
    riffle_client::ClientError::check(t.error_code, || format!("topic '{topic}'"), None)?;
    let leaders = client.partition_leaders(topic, READY_TIMEOUT, false)?;
    let starts = client.list_offsets(topic, &leaders, EARLIEST_TIMESTAMP)?;
    let ends = client.list_offsets(topic, &leaders, LATEST_TIMESTAMP)?;
    let offset_of =
        |list: &[(i32, i64)], p: i32| list.iter().find(|o| o.0 == p).map_or(-1, |o| o.1);
    let mut rows: Vec<PartitionRow> = t
        .partitions
        .iter()
        .map(|p| PartitionRow {
            partition: p.partition_index,
            leader: p.leader_id,
            replicas: p.replica_nodes.clone(),
            isr: p.isr_nodes.clone(),
            log_start: offset_of(&starts, p.partition_index),
            log_end: offset_of(&ends, p.partition_index),
        })
        .collect();
    rows.sort_by_key(|r| r.partition);
    Ok(rows)
}

fn alter_config(args: &AlterConfigArgs) -> Result<(), CliError> {
    if args.set.is_empty() && args.delete.is_empty() {
        return Err(CliError::Usage(
            "nothing to alter: give --set KEY=VALUE or --delete KEY".into(),
        ));
    }
    let mut client = args.common.connect()?;
    client.alter_topic_configs(&args.topic, &args.set, &args.delete)?;
    if args.common.json {
        let set: serde_json::Map<_, _> = args
            .set
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        return output::json(&json!({ "topic": args.topic, "set": set, "deleted": args.delete }));
    }
    let mut changes: Vec<String> = args.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    changes.extend(args.delete.iter().map(|k| format!("{k} removed")));
    output::line(&format!(
        "altered topic '{}': {}",
        args.topic,
        changes.join(", ")
    ))
}

fn add_partitions(common: &CommonArgs, topic: &str, num: i32) -> Result<(), CliError> {
    if num < 1 {
        return Err(CliError::Usage("--num must be at least 1".into()));
    }
    let mut client = common.connect()?;
    let metadata = client.metadata(Some(&[topic]))?;
    let t = find_topic(&metadata, topic)?;
    riffle_client::ClientError::check(t.error_code, || format!("topic '{topic}'"), None)?;
    let total = t.partitions.len() as i32 + num;
    client.create_partitions(topic, total)?;
    if common.json {
        return output::json(&json!({ "topic": topic, "added": num, "partitions": total }));
    }
    output::line(&format!(
        "topic '{topic}' now has {total} partitions ({num} added)"
    ))
}

fn ids(nodes: &[i32]) -> String {
    let ids: Vec<String> = nodes.iter().map(i32::to_string).collect();
    ids.join(",")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
