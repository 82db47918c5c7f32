//! Integration tests of the spoor binary.
