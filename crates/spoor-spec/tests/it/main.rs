//! Integration tests of the Spec crate: one binary, one module per area.

mod batch;
mod borrowed;
mod currency;
mod custom;
mod decimal;
mod fixtures;
mod naming;
mod normalize;
mod props;
mod reserved;
mod time;
mod util;
mod validate;
