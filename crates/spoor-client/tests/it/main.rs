//! Integration tests of spoor-client against a local fault-injecting Tracking API.

mod delivery;
mod fault_server;
