//! **show_secret** — a role whose setting `--api-key` is stored encrypted in
//! its home (`docs/secrets.md`): it sees the plaintext, as any typed
//! argument, and returns its length and a fingerprint, never the value.
//!
//! ```text
//! $ layer-cake secret-key key                    # mode 600
//! $ layer-cake add show_secret show --api-key=
//! $ printf %s hunter2 | layer-cake secret show --name=api-key --secret-key-file=key
//! stored a secret in show --api-key
//! $ layer-cake list -l show
//! show  stopped               3/4/174  /…/show_secret --api-key=<secret>
//! $ layer-cake run --main-role=show --secret-key-file=key
//! "api-key: 7 bytes, fnv1a64 4db147a54908e973"
//! ```
//!
//! Without the key (or with a wrong one) it does not start: one line on
//! stderr, exit status 78.

use layer_cake::{Context, Faulted};

/// The role's settings.
#[derive(serde::Deserialize)]
struct Args {
    /// Stored as a secret; plaintext here.
    api_key: String,
}

/// 64-bit FNV-1a: a fingerprint that shows the value arrived, not what it
/// is (it is no protection for a guessable value).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

async fn show_secret(_cx: Context, args: Args) -> Result<String, Faulted> {
    let shown = format!(
        "api-key: {} bytes, fnv1a64 {:016x}",
        args.api_key.len(),
        fnv1a64(args.api_key.as_bytes())
    );
    tracing::info!("{shown}");
    Ok(shown)
}

fn main() {
    layer_cake::create(show_secret)
}
