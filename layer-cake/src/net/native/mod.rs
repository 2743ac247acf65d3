//! The native transport: layer-cake frames between processes (STUB: being
//! built).

use tokio::net::{TcpListener, TcpStream};

use super::{HostPort, LinkOptions};
use crate::runtime::Address;

/// Accepts native connections on `listener` for `owner`, until aborted.
pub(crate) async fn serve(
    _listener: TcpListener,
    _owner: Address,
    _listening: HostPort,
    _link: LinkOptions,
) {
}

/// Runs a native link over a connected `stream` for `owner`.
pub(crate) async fn connected(
    _stream: TcpStream,
    _owner: Address,
    _requested: HostPort,
    _link: LinkOptions,
) {
}
