//! Where the LAN directory is expected (being built).
