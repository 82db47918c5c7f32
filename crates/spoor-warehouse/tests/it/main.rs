//! Integration tests of spoor-warehouse: the fixture stream loaded into real SQLite and
//! PostgreSQL, checked against expected files.

mod golden;
mod util;
