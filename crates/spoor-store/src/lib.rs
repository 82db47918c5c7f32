//! spoor-store (skeleton).
