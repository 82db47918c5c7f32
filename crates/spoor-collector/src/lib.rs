//! spoor-collector (skeleton).
