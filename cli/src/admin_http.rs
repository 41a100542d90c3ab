//! A GET against a broker's admin HTTP listener (`/v1/cluster`), for what the Kafka protocol
//! does not carry yet (the Raft quorum). hyper's HTTP/1 client on a current-thread tokio
//! runtime, bounded by the command's timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HOST;
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::CliError;

/// Largest admin response read (a cluster document is a few KiB).
const RESPONSE_MAX_BYTES: usize = 1024 * 1024;

/// GETs `path` from `addr` (HOST:PORT) and parses the JSON body of a 200 answer.
pub(crate) fn get_json(
    addr: &str,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, CliError> {
    let fail = |what: String| CliError::Admin(format!("GET http://{addr}{path}: {what}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, addr)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), RESPONSE_MAX_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
    };
    runtime
        .block_on(async { tokio::time::timeout(timeout, exchange).await })
        .map_err(|_| fail(format!("no answer within {} ms", timeout.as_millis())))?
        .map_err(fail)
}
