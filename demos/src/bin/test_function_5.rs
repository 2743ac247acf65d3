//! **test_function_5** — a function that is a command-line tool and, run
//! by a server, a child process.
//!
//! The main actor takes its arguments ([`Xy`]) from the command line and
//! returns the table. From a shell it prints the table; as a child process
//! (started with `spawn_process`, as `test_server_5` and `test_server_6` do)
//! it gets `--child-process --full-output` and the parent decodes the typed
//! result. From a shell the JSON is pretty-printed
//! (`serde_json::to_string_pretty`: one number a line); the numbers are
//! random.
//!
//! ```text
//! $ cargo build -p layer-cake-demos
//! $ target/debug/test_function_5 --x=2 --y=2
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
//! $ target/debug/test_function_5 --x=2 --y=2 --full-output --child-process
//! {"value":["vector<vector<float8>>",[[0.58,0.57],[0.01,0.29]],[]]}
//! $ target/debug/test_function_5 --x=-1; echo $?
//! test_function_5: bad dimensions (x=-1, y=1: both must be 0 or more)
//! 71
//! ```

use layer_cake::{Context, Faulted};
use layer_cake_demos::Xy;

/// Computes the table, refusing negative dimensions.
async fn test_function_5(_cx: Context, xy: Xy) -> Result<Vec<Vec<f64>>, Faulted> {
    let Xy { x, y } = xy;
    if x < 0 || y < 0 {
        return Err(Faulted::new("bad dimensions")
            .with_explanation(format!("x={x}, y={y}: both must be 0 or more")));
    }
    tracing::info!(x, y, "Computing a texture");
    xy.table()
}

fn main() {
    layer_cake::create(test_function_5)
}
