// Riffle's console: polls /v1/status every second and redraws the tables in place.
"use strict";

const REFRESH_MS = 1000;

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function rate(n) { return bytes(n) + "/s"; }

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
}

function row(values, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const v of values) tr.appendChild(v instanceof Node ? v : cell(v));
  return tr;
}

function shardRows(shards) {
  const load = s => s.rates.bytes_in_per_sec + s.rates.bytes_out_per_sec;
  const busiest = Math.max(1, ...shards.map(load));
  return shards.map(s => {
    const td = document.createElement("td");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.round(120 * load(s) / busiest) + "px";
    td.appendChild(bar);
    const hot = shards.length > 1 && load(s) > 0 && load(s) === busiest;
    return row([String(s.shard), String(s.partitions.length), String(s.connections),
      rate(s.rates.bytes_in_per_sec), rate(s.rates.bytes_out_per_sec),
      s.rates.requests_per_sec.toFixed(1), bytes(s.memory_bytes), td],
      hot ? { class: "hot", "data-shard": s.shard } : { "data-shard": s.shard });
  });
}

function topicRows(status) {
  const partitions = status.shards.flatMap(s => s.partitions)
    .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  return partitions.map(p => row([p.topic, String(p.partition), String(p.shard),
    String(p.log_start_offset), String(p.high_watermark), bytes(p.size_bytes),
    rate(p.rates.bytes_in_per_sec), rate(p.rates.bytes_out_per_sec)],
    { "data-topic": p.topic, "data-partition": p.partition }));
}

function groupRows(groups) {
  const rows = [];
  for (const g of groups) {
    const members = g.members.map(m => m.client_id + " (" + m.client_host + ")").join(", ") || "none";
    const parts = g.partitions.length ? g.partitions : [null];
    for (const p of parts) {
      rows.push(row([g.group_id, g.state, members,
        p ? p.topic : "", p ? String(p.partition) : "", p ? String(p.committed_offset) : "",
        p && p.high_watermark !== null ? String(p.high_watermark) : "",
        p && p.lag !== null ? String(p.lag) : ""],
        { "data-group": g.group_id }));
    }
  }
  return rows;
}

function render(status) {
  document.getElementById("node").textContent =
    "node " + status.node_id + " · " + status.advertised + " · " + status.shards.length + " shard(s) · v" + status.version;
  const badge = document.getElementById("readiness");
  badge.textContent = status.ready ? "ready" : "not ready";
  badge.className = "badge " + (status.ready ? "ready" : "not-ready");
  fill("shards", shardRows(status.shards));
  fill("topics", topicRows(status));
  fill("groups", groupRows(status.groups));
  const d = status.disk;
  document.getElementById("disk").textContent = bytes(d.log_bytes) + " of logs in " + d.data_dir +
    "; file system " + bytes(d.filesystem_free_bytes) + " free of " + bytes(d.filesystem_bytes);
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const response = await fetch("/v1/status", { cache: "no-store" });
    const status = await response.json();
    if (!response.ok) throw new Error(status.error || response.statusText);
    render(status);
    error.hidden = true;
  } catch (e) {
    error.textContent = "cannot reach the broker: " + e.message;
    error.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
