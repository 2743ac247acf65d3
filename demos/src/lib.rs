//! Shared pieces of the layer-cake demos: the [`Xy`] request and the
//! [`texture`] work function every server and worker demo computes.
//!
//! The binaries in `src/bin/` are the demos themselves; each one's doc
//! comment says what it shows and how to run it.

pub mod load;

use layer_cake::Message;
use serde::{Deserialize, Serialize};

/// The demos' request: the dimensions of a table. Both default to 1, so
/// `--x=2` alone asks for a 2×1 table.
///
/// As a process argument it is the flags `--x=2 --y=3`; over HTTP it will
/// be `/Xy?x=2&y=3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Message)]
#[serde(default)]
pub struct Xy {
    /// Columns.
    pub x: i64,
    /// Rows.
    pub y: i64,
}

impl Default for Xy {
    fn default() -> Self {
        Xy { x: 1, y: 1 }
    }
}

/// The demos' work: a table of `y` rows of `x` random floats in `[0, 1)`,
/// rounded to two places so the output stays readable. A negative dimension
/// counts as 0.
///
/// ```
/// let table = layer_cake_demos::texture(3, 2);
/// assert_eq!(table.len(), 2);
/// assert!(table.iter().all(|row| row.len() == 3));
/// assert!(table.iter().flatten().all(|v| (0.0..1.0).contains(v)));
/// assert!(layer_cake_demos::texture(-1, 5).iter().all(Vec::is_empty));
/// ```
pub fn texture(x: i64, y: i64) -> Vec<Vec<f64>> {
    let (x, y) = (x.max(0) as usize, y.max(0) as usize);
    (0..y)
        .map(|_| {
            (0..x)
                .map(|_| (rand::random::<f64>() * 100.0).floor() / 100.0)
                .collect()
        })
        .collect()
}

/// The arguments of the HTTP server demos: where to listen
/// (`--server-address=127.0.0.1:5050`, the default; port 0 for any free
/// port).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerArgs {
    /// Where to listen.
    pub server_address: layer_cake::HostPort,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            server_address: layer_cake::HostPort::new("127.0.0.1", 5050),
        }
    }
}

/// Says on stderr where a server listens (`NAME: listening on HOST:PORT`),
/// the line tests read to learn a port-0 server's real port.
pub fn announce(name: &str, listening: &layer_cake::net::Listening) {
    eprintln!("{name}: listening on {}", listening.listening);
}
