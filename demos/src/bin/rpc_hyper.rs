//! **rpc_hyper** — the baseline of the JSON-RPC benchmark (issue 13): a bare
//! hyper HTTP/1 server doing the gateway path's JSON work in one process,
//! with no actors, directory, spool or worker process: the same parsing
//! ([`jsonrpc::parse`]), the same methods ([`calc`]), the same response
//! building ([`jsonrpc::member`], [`jsonrpc::body`]), at `POST /api/rpc`.
//!
//! ```text
//! $ cargo run --release -p layer-cake-demos --bin rpc_hyper -- --server-address=127.0.0.1:8081
//! rpc_hyper: listening on 127.0.0.1:8081
//! $ curl -s -d '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}' http://127.0.0.1:8081/api/rpc
//! {"id":1,"jsonrpc":"2.0","result":19}
//! ```
//!
//! `demos/benches/rpc.sh` loads it and the gateway with `wrk`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use layer_cake::net::http::jsonrpc::{self, Entry};
use layer_cake_demos::calc::calc;

/// The largest body taken, as the layer-cake front's default.
const MAX_BODY: usize = 256 * 1024;

/// The most calls in a batch, as the front's default.
const MAX_BATCH: usize = 100;

async fn service(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = |status: StatusCode, body: Option<serde_json::Value>| {
        let mut response = Response::new(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(response)
    };
    if request.uri().path() != "/api/rpc" || request.method() != hyper::Method::POST {
        return answer(StatusCode::NOT_FOUND, None);
    }
    let Ok(body) = Limited::new(request.into_body(), MAX_BODY).collect().await else {
        return answer(StatusCode::PAYLOAD_TOO_LARGE, None);
    };
    let parsed = match jsonrpc::parse(&body.to_bytes(), MAX_BATCH) {
        Ok(parsed) => parsed,
        Err(e) => {
            let member = jsonrpc::member(serde_json::Value::Null, Err(e));
            return answer(StatusCode::OK, Some(member));
        }
    };
    let members = parsed
        .entries
        .into_iter()
        .map(|entry| match entry {
            Entry::Call(call) => {
                let outcome = calc(&call);
                call.id.map(|id| jsonrpc::member(id, outcome))
            }
            Entry::Invalid { id, error } => Some(jsonrpc::member(id, Err(error))),
        })
        .collect();
    match jsonrpc::body(parsed.batch, members) {
        Some(body) => answer(StatusCode::OK, Some(body)),
        None => answer(StatusCode::NO_CONTENT, None),
    }
}

#[tokio::main]
async fn main() {
    layer_cake_demos::bare::serve("rpc_hyper", "127.0.0.1:8081", service).await
}
