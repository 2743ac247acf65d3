//! Decoding typed values from text fields (STUB).
