//! `riffle group list|describe|delete|seek`: consumer groups, their members and assignment,
//! committed offsets and lag per partition.

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use riffle_client::{
    error_code, Client, ClientError, GroupDescription, LATEST_TIMESTAMP, READY_TIMEOUT,
};
use serde_json::json;

use crate::output::{self, Table};
use crate::parse::{resolve_offsets, OffsetSpec};
use crate::{CliError, CommonArgs};

/// The state DescribeGroups gives a group without members or offsets.
const DEAD: &str = "Dead";

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List the cluster's consumer groups.
    List {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Show a group's members, their assignment, and committed offset and lag per partition.
    Describe {
        group: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Delete groups (they must have no members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Move a group's committed offsets on a topic (the group must have no members).
    Seek {
        group: String,
        /// The topic whose offsets move.
        #[arg(short, long)]
        topic: String,
        /// Where to: start, end, an offset N, or -N (N records before the end).
        #[arg(long, allow_hyphen_values = true)]
        to: OffsetSpec,
        #[command(flatten)]
        common: CommonArgs,
    },
}

pub(crate) fn run(command: GroupCommand) -> Result<(), CliError> {
    match command {
        GroupCommand::List { common } => list(&common),
        GroupCommand::Describe { group, common } => describe(&common, &group),
        GroupCommand::Delete { groups, common } => {
            crate::delete_each(&common, "group", &groups, Client::delete_group)
        }
        GroupCommand::Seek {
            group,
            topic,
            to,
            common,
        } => seek(&common, &group, &topic, to),
    }
}

fn list(common: &CommonArgs) -> Result<(), CliError> {
    let groups = common.connect()?.list_groups()?;
    if common.json {
        let list: Vec<_> = groups
            .iter()
            .map(|g| json!({ "group": g.group_id, "state": g.state, "protocol_type": g.protocol_type }))
            .collect();
        return output::json(&json!(list));
    }
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
    for g in groups {
        table.row(vec![g.group_id, g.state, g.protocol_type]);
    }
    table.print()
}

/// One partition of `describe`'s offsets table.
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: i64,
    member: Option<(String, String, String)>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        self.committed.map(|c| (self.log_end - c).max(0))
    }
}

fn describe(common: &CommonArgs, group: &str) -> Result<(), CliError> {
    let mut client = common.connect()?;
    let description = client.describe_group(group)?;
    let rows = offset_rows(&mut client, group, &description)?;
    // Kafka answers "Dead" for a group it has never heard of.
    if description.state == DEAD && description.members.is_empty() && rows.is_empty() {
        return Err(ClientError::Kafka {
            code: error_code::GROUP_ID_NOT_FOUND,
            context: format!("group '{group}'"),
            message: Some(format!("group '{group}' does not exist")),
        }
        .into());
    }
    if common.json {
        return output::json(&describe_json(&description, &rows));
    }
    output::line(&format!(
        "group '{group}': state {}, protocol {}, {} member{}",
        description.state,
        if description.protocol.is_empty() {
            "-"
        } else {
            &description.protocol
        },
        description.members.len(),
        if description.members.len() == 1 {
            ""
        } else {
            "s"
        }
    ))?;
    if rows.is_empty() {
        return output::line("no committed offsets and no assigned partitions");
    }
    let total_lag: i64 = rows.iter().filter_map(OffsetRow::lag).sum();
    output::line(&format!("total lag {total_lag}\n"))?;
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
        "CLIENT-ID",
        "HOST",
    ]);
    let dash = || "-".to_string();
    for r in &rows {
        let (member, client_id, host) =
            r.member.clone().unwrap_or_else(|| (dash(), dash(), dash()));
        table.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            r.committed.map_or_else(dash, |c| c.to_string()),
            r.log_end.to_string(),
            r.lag().map_or_else(dash, |l| l.to_string()),
            member,
            client_id,
            host,
        ]);
    }
    table.print()
}

/// Every partition the group has an offset for or a member is assigned, with its log end.
fn offset_rows(
    client: &mut Client,
    group: &str,
    description: &GroupDescription,
) -> Result<Vec<OffsetRow>, CliError> {
    let committed = client.committed_offsets(group)?;
    let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &description.members {
        for tp in &m.assignment {
            let who = (
                m.member_id.clone(),
                m.client_id.clone(),
                m.client_host.clone(),
            );
            owners.insert(tp.clone(), who);
        }
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owners.keys()).cloned().collect();
    let topics: BTreeSet<&String> = keys.iter().map(|(t, _)| t).collect();
    let mut log_ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in topics {
        let leaders = client.partition_leaders(topic, READY_TIMEOUT, false)?;
        for (p, end) in client.list_offsets(topic, &leaders, LATEST_TIMESTAMP)? {
            log_ends.insert((topic.clone(), p), end);
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| OffsetRow {
            committed: committed.get(&key).copied(),
            log_end: log_ends.get(&key).copied().unwrap_or(-1),
            member: owners.get(&key).cloned(),
            topic: key.0,
            partition: key.1,
        })
        .collect())
}

fn describe_json(d: &GroupDescription, rows: &[OffsetRow]) -> serde_json::Value {
    let members: Vec<_> = d
        .members
        .iter()
        .map(|m| {
            let assignment: Vec<_> = m
                .assignment
                .iter()
                .map(|(t, p)| json!({ "topic": t, "partition": p }))
                .collect();
            json!({ "member_id": m.member_id, "client_id": m.client_id, "host": m.client_host,
                    "assignment": assignment })
        })
        .collect();
    let offsets: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({ "topic": r.topic, "partition": r.partition, "committed_offset": r.committed,
                    "log_end_offset": r.log_end, "lag": r.lag(),
                    "member_id": r.member.as_ref().map(|m| &m.0) })
        })
        .collect();
    json!({ "group": d.group_id, "state": d.state, "protocol_type": d.protocol_type,
            "protocol": d.protocol, "members": members, "offsets": offsets })
}

fn seek(common: &CommonArgs, group: &str, topic: &str, to: OffsetSpec) -> Result<(), CliError> {
    let mut client = common.connect()?;
    let leaders = client.partition_leaders(topic, READY_TIMEOUT, false)?;
    let offsets: Vec<(i32, i64)> = resolve_offsets(&mut client, topic, &leaders, to)?
        .into_iter()
        .map(|(p, o)| (p.partition, o))
        .collect();
    client.commit_offsets(group, topic, &offsets)?;
    if common.json {
        let list: Vec<_> = offsets
            .iter()
            .map(|(p, o)| json!({ "topic": topic, "partition": p, "offset": o }))
            .collect();
        return output::json(&json!({ "group": group, "offsets": list }));
    }
    output::line(&format!("group '{group}' now starts '{topic}' at:"))?;
    let mut table = Table::new(&["PARTITION", "OFFSET"]);
    for (p, o) in offsets {
        table.row(vec![p.to_string(), o.to_string()]);
    }
    table.print()
}
