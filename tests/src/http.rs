//! A minimal HTTP/1.1 GET for the admin listener's tests: one request per connection, bounded
//! in time, answering the status code and the body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one admin request may take, connection included.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status code, head (status line and headers) and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `request` (raw bytes) to `addr` and reads the response until the server closes.
pub fn exchange(addr: &str, request: &[u8]) -> std::io::Result<HttpResponse> {
    let socket_addr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let mut stream = TcpStream::connect_timeout(&socket_addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no status line: {head:?}"),
            )
        })?;
    Ok(HttpResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// GET `path` from `addr` (`HOST:PORT`).
pub fn get(addr: &str, path: &str) -> std::io::Result<HttpResponse> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes())
}
