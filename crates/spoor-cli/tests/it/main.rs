//! Integration tests of the spoor binary.

mod collector;
mod connector;
mod connector_e2e;
mod connector_util;
