//! One module per group of subcommands.

pub mod admin;
pub mod connect;
pub mod query;
pub mod send;
pub mod serve;
pub mod warehouse;
