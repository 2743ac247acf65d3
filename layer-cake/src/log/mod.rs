//! Logging (PLACEHOLDER).
