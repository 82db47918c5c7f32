//! [`KeyRing`]: the write keys and tokens the request path checks, kept in memory as SHA-256
//! hashes and refreshed from `meta.db` when another process (the CLI) changes it.
//!
//! A background thread polls `PRAGMA data_version` on its own connection every 250 ms, so a
//! key created, rotated or disabled with the CLI is honoured within a second. Lookups are
//! lock-free in practice: readers clone an `Arc` of the current snapshot.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use spoor_store::{KeySnapshot, MetaStore, StoreError};

/// How often `meta.db` is checked for changes.
pub const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// The current [`KeySnapshot`], shared by all handlers.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: Arc<RwLock<Arc<KeySnapshot>>>,
}

impl KeyRing {
    /// A ring holding `snapshot`, without refresh.
    pub fn fixed(snapshot: KeySnapshot) -> KeyRing {
        KeyRing {
            current: Arc::new(RwLock::new(Arc::new(snapshot))),
        }
    }

    /// Loads the keys of the data directory `dir` and starts the refresh thread, which stops
    /// when the last clone of the ring is dropped.
    pub fn watch(dir: PathBuf) -> Result<KeyRing, StoreError> {
        let meta = MetaStore::open(&dir)?;
        let ring = KeyRing::fixed(meta.snapshot()?);
        let weak = Arc::downgrade(&ring.current);
        let mut version = meta.data_version()?;
        std::thread::Builder::new()
            .name("spoor-key-refresh".to_owned())
            .spawn(move || refresh_loop(meta, weak, &mut version))
            .map_err(|source| StoreError::Io {
                action: "start the key refresh thread for",
                path: dir,
                source,
            })?;
        Ok(ring)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the snapshot (after a change made through this process).
    pub fn replace(&self, snapshot: KeySnapshot) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }
}

fn refresh_loop(meta: MetaStore, ring: Weak<RwLock<Arc<KeySnapshot>>>, version: &mut i64) {
    loop {
        std::thread::sleep(REFRESH_EVERY);
        let Some(current) = ring.upgrade() else {
            return;
        };
        match meta.data_version() {
            Ok(now) if now != *version => match meta.snapshot() {
                Ok(snapshot) => {
                    *version = now;
                    *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
                    tracing::info!("write keys and tokens reloaded from meta.db");
                }
                Err(err) => tracing::warn!(error = %err, "cannot reload keys from meta.db"),
            },
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cannot check meta.db for changes"),
        }
    }
}
