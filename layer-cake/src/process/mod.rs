//! The process entry point (PLACEHOLDER).
