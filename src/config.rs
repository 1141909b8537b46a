//! Daemon configuration (being written).
