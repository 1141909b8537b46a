//! The daemon's own Prometheus metrics (being written).
