//! spoor-warehouse (skeleton).
