//! The bare hyper servers the benchmarks compare layer-cake with
//! (`prime_hyper`, `rpc_hyper`): one function serving a service on every
//! connection of a listen, with no actors in the way.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Listens at `--server-address=HOST:PORT` (else `default_at`), says
/// `NAME: listening on HOST:PORT` on stderr (the line tests and scripts
/// read), and serves `service` on each connection, keep-alive, until the
/// process is stopped. A listen that fails ends the process with status 1.
pub async fn serve<F, Fut>(name: &str, default_at: &str, service: F) -> !
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let at = std::env::args()
        .find_map(|a| a.strip_prefix("--server-address=").map(str::to_owned))
        .unwrap_or_else(|| default_at.to_owned());
    let listener = match tokio::net::TcpListener::bind(&at).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("{name}: cannot listen at {at}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().map_or(at, |a| a.to_string());
    eprintln!("{name}: listening on {local}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(service))
                .await;
        });
    }
}
