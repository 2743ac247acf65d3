//! Shared pieces of the layer-cake demos: the [`Xy`] request and the
//! [`texture`] work function every server and worker demo computes.
//!
//! The binaries in `src/bin/` are the demos themselves; each one's doc
//! comment says what it shows and how to run it.

pub mod bare;
pub mod calc;
pub mod load;
pub mod prime;
pub mod steps;
pub mod tutorial;

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

/// The largest table side the demos compute: at most 1 000 × 1 000 cells
/// (about 8 MB of floats, 7 MB of JSON). Without a bound, one request for
/// `/Xy?x=100000&y=100000` would make a server compute an 80 GB table.
pub const MAX_SIDE: i64 = 1_000;

impl Xy {
    /// The table this request asks for ([`texture`]), or — when a side is
    /// over [`MAX_SIDE`] — a fault with error code 400 (an HTTP front
    /// answers 400) naming the limit.
    ///
    /// ```
    /// use layer_cake_demos::{MAX_SIDE, Xy};
    ///
    /// assert_eq!(Xy { x: 3, y: 2 }.table().unwrap().len(), 2);
    /// let fault = Xy { x: 100_000, y: 2 }.table().unwrap_err();
    /// assert_eq!(fault.error_code, Some(400));
    /// assert!(fault.to_string().contains("1000"));
    /// ```
    pub fn table(&self) -> Result<Vec<Vec<f64>>, layer_cake::Faulted> {
        if self.x > MAX_SIDE || self.y > MAX_SIDE {
            return Err(layer_cake::Faulted::new("table too large")
                .with_explanation(format!(
                    "{}×{} asked; the demos compute at most {MAX_SIDE}×{MAX_SIDE}",
                    self.x, self.y
                ))
                .with_error_code(400));
        }
        Ok(texture(self.x, self.y))
    }
}

/// Answers the request being handled with `xy`'s table, or with the fault
/// that refuses it (see [`Xy::table`]).
pub fn answer_table(cx: &layer_cake::Context, xy: Xy) {
    let _ = match xy.table() {
        Ok(table) => cx.reply(table).map_err(|_| ()),
        Err(fault) => cx.reply(fault).map_err(|_| ()),
    };
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
