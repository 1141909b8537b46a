//! The server's own numbers: scraping `/metrics` and the vLLM metric catalogue.

pub mod catalogue;
pub mod fleet;
pub mod scrape;

pub use fleet::MetricsSource;
pub use scrape::{GaugePeaks, MetricsClient, Scrape, ScrapeError};
