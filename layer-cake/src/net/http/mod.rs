//! The HTTP front (a listen in HTTP mode) and the HTTP client mode (STUB:
//! being built).

use tokio::net::{TcpListener, TcpStream};

use super::{HostPort, HttpClient, HttpServer};
use crate::runtime::Address;

/// Serves HTTP on `listener` for the actor at `owner`, until aborted.
pub(crate) async fn serve(
    _listener: TcpListener,
    _owner: Address,
    _listening: HostPort,
    _front: HttpServer,
) {
}

/// Runs an HTTP client session on `stream` for the actor at `owner`.
pub(crate) async fn client(
    _stream: TcpStream,
    _owner: Address,
    _requested: HostPort,
    _client: HttpClient,
) {
}
