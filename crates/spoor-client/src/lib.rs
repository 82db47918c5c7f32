//! spoor-client (skeleton).
