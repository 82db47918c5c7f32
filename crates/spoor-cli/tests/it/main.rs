//! Integration tests of the spoor binary.

mod connector;
mod connector_util;
