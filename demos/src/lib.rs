//! Shared pieces of the layer-cake demos.
