//! Strongroom: a self-hosted, multi-tenant vault for personal data that speaks the Databunker
//! Pro v2 wire API. See `shared/design.md` for the architecture.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod custody;
pub mod error;
pub mod import;
pub mod keys;
pub mod localpg;
pub mod portal;
pub mod privacy;
pub mod process;
pub mod records;
pub mod store;
pub mod telemetry;
pub mod v1;
pub mod vault;

pub use error::{Error, Result};
