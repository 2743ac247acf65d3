//! **prime_hyper** — the baseline of the prime benchmark (issue 13): a bare
//! hyper HTTP/1 server doing the prime demo's work in one process, with no
//! actors, spools or stages: the same parsing ([`prime::parse`]) and the
//! same trial division ([`prime::is_prime`], run inline on the runtime's
//! threads), the same plain-text answers.
//!
//! ```text
//! $ cargo run --release -p layer-cake-demos --bin prime_hyper -- --server-address=127.0.0.1:8003
//! prime_hyper: listening on 127.0.0.1:8003
//! $ curl -s 'http://127.0.0.1:8003/is_prime?possible_prime=32416190071'
//! 32416190071
//! ```
//!
//! `demos/benches/prime.sh` loads it and `prime_server` with `ab`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use layer_cake::net::HttpRequest;
use layer_cake_demos::prime;

/// The largest body taken, as the layer-cake front's default.
const MAX_BODY: usize = 256 * 1024;

async fn service(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes().to_vec(),
        Err(_) => return Ok(text(413, "the body is too large".into())),
    };
    let request = HttpRequest {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: Vec::new(),
        content_type: None,
        body,
    };
    Ok(match prime::parse(&request) {
        Ok(n) => text(
            200,
            if prime::is_prime(n) {
                n
            } else {
                prime::NOT_PRIME
            }
            .to_string(),
        ),
        Err(usage) => text(400, usage.into()),
    })
}

fn text(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
        .headers_mut()
        .insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
    response
}

#[tokio::main]
async fn main() {
    layer_cake_demos::bare::serve("prime_hyper", "127.0.0.1:8003", service).await
}
