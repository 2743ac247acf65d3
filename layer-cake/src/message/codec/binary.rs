//! The binary codec (STUB).
use super::CodecError;

/// Appends `value` in the binary codec to `out`.
pub fn encode<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| CodecError(e.to_string()))?;
    out.extend_from_slice(&bytes);
    Ok(())
}
