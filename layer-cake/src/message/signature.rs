//! Layer-cake type signatures for the standard Rust types (STUB: being filled in).

use super::Message;

/// The layer-cake type signature of `M`, e.g. `vector<vector<float8>>`.
pub fn signature_of<M: Message>() -> String {
    let mut out = String::new();
    M::write_signature(&mut out);
    out
}

macro_rules! primitive {
    ($($t:ty => $sig:literal),* $(,)?) => {$(
        impl Message for $t {
            fn write_signature(out: &mut String) { out.push_str($sig) }
        }
    )*};
}

primitive! {
    () => "null", bool => "boolean", i64 => "integer8", f64 => "float8", String => "unicode",
}

impl<T: Message> Message for Vec<T> {
    fn write_signature(out: &mut String) {
        out.push_str("vector<");
        T::write_signature(out);
        out.push('>');
    }
}
