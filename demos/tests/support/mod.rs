//! Helpers shared by integration tests (`mod support;`). Each test binary
//! uses only part of them.

#![allow(dead_code)]

pub(crate) mod netns;
