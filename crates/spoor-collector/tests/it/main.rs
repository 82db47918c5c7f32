//! Integration tests of the collector: a real server on a loopback port, real SQLite, real
//! HTTP.

mod api;
mod tracking;
mod util;
