//! Integration tests of the spoor binary.

mod browser;
mod collector;
mod connector;
mod connector_e2e;
mod connector_util;
mod crash;
mod official_libs;
mod tidy;
mod util;
mod warehouse;
