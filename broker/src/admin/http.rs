//! The admin listener's HTTP side: accepts under `ADMIN_CONNECTIONS_MAX`, bounds each request's
//! head and each connection's life, and routes GET requests to health, readiness, status,
//! metrics and the console's files. Anything else is answered 404 or 405, never a panic.

use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::{prometheus, Admin};

/// Admin connections open at once; one more is closed at once (a scraper, a load balancer and
/// a few browsers need far fewer).
pub(crate) const ADMIN_CONNECTIONS_MAX: usize = 64;
/// Largest request head (request line and headers); a bigger one is answered 431.
pub(crate) const ADMIN_REQUEST_HEAD_MAX_BYTES: usize = 16 * 1024;
/// A request head must arrive within this long.
const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, however busy (the console's browser reconnects).
const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// First pause of the accept loop after a failed accept (out of descriptors, ...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

const CONSOLE_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

type Body = Full<Bytes>;

/// Accepts admin connections for the life of the process.
pub(super) async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the admin listener cannot start");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(ADMIN_CONNECTIONS_MAX));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin connection refused: {ADMIN_CONNECTIONS_MAX} open");
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_READ_TIMEOUT)
                .max_buf_size(ADMIN_REQUEST_HEAD_MAX_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let served = tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, connection).await;
            if let Ok(Err(e)) = served {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
            drop(slot);
        });
    }
}

async fn route(admin: &Admin, request: Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    // Nothing here takes a body: one is refused rather than left unread.
    let has_body = request
        .headers()
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || request
            .headers()
            .contains_key(hyper::header::TRANSFER_ENCODING);
    if has_body {
        let mut response = text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "admin requests take no body\n",
        );
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    match request.uri().path() {
        "/v1/health" => json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        "/v1/ready" => match admin.readiness() {
            Ok(()) => json(StatusCode::OK, &serde_json::json!({ "ready": true })),
            Err(reason) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "ready": false, "reason": reason }),
            ),
        },
        "/v1/status" => match admin.status().await {
            Ok((status, _)) => json(StatusCode::OK, &status),
            Err(e) => unavailable(e),
        },
        "/v1/cluster" => json(StatusCode::OK, &admin.cluster()),
        "/metrics" => match admin.status().await {
            Ok((status, reports)) => {
                let body = prometheus::render(&status, &reports);
                respond(StatusCode::OK, prometheus::CONTENT_TYPE, body)
            }
            Err(e) => unavailable(e),
        },
        "/" | "/index.html" => respond(StatusCode::OK, "text/html; charset=utf-8", CONSOLE_HTML),
        "/console.js" => respond(StatusCode::OK, "text/javascript; charset=utf-8", CONSOLE_JS),
        "/console.css" => respond(StatusCode::OK, "text/css; charset=utf-8", CONSOLE_CSS),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /, /metrics, /v1/health, /v1/ready, /v1/status or /v1/cluster\n",
        ),
    }
}

fn unavailable(e: super::AdminError) -> Response<Body> {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({ "error": e.to_string() }),
    )
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => respond(status, "application/json", body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
