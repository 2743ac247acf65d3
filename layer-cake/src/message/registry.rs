//! The registry from type signature to decoder (STUB).
