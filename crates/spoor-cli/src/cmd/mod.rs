//! One module per group of subcommands.

pub mod admin;
pub mod connect;
pub mod connection_store;
pub mod query;
pub mod send;
pub mod send_api;
pub mod send_batch;
pub mod serve;
pub mod warehouse;
