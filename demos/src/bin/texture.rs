//! **texture** — a function that is also a command-line tool: the process
//! entry point.
//!
//! The main actor takes its arguments ([`Xy`]) from the command line and its
//! return value becomes the output — pretty-printed JSON from a shell
//! (`serde_json::to_string_pretty`: one number a line), one compact line
//! with `--child-process`. The numbers are random:
//!
//! ```text
//! $ cargo run -p layer-cake-demos --bin texture -- --x=2 --y=2
//! [
//!   [
//!     0.58,
//!     0.57
//!   ],
//!   [
//!     0.01,
//!     0.29
//!   ]
//! ]
//! $ cargo run -p layer-cake-demos --bin texture -- --x=2 --y=2 --full-output --child-process
//! {"value":["vector<vector<float8>>",[[0.58,0.57],[0.01,0.29]],[]]}
//! $ cargo run -p layer-cake-demos --bin texture -- --x=-1; echo $?
//! texture: bad dimensions (x=-1, y=1: both must be 0 or more)
//! 71
//! $ cargo run -p layer-cake-demos --bin texture -- --z=1; echo $?
//! texture: unknown flag --z (expected one of --x, --y)
//! 2
//! ```
//!
//! `--help` lists `--x`, `--y` and the standard flags.

use layer_cake::{Context, Faulted};
use layer_cake_demos::Xy;

/// Computes the table, refusing negative dimensions.
async fn texture(_cx: Context, xy: Xy) -> Result<Vec<Vec<f64>>, Faulted> {
    let Xy { x, y } = xy;
    if x < 0 || y < 0 {
        return Err(Faulted::new("bad dimensions")
            .with_explanation(format!("x={x}, y={y}: both must be 0 or more")));
    }
    tracing::info!(x, y, "Computing a texture");
    xy.table()
}

fn main() {
    layer_cake::create(texture)
}
