//! The server's own numbers: scraping `/metrics` and the vLLM metric catalogue.

pub mod catalogue;
pub mod scrape;

pub use scrape::{GaugePeaks, MetricsClient, Scrape, ScrapeError};
