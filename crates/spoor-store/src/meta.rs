//! `meta.db`: the workspace, its sources with their write keys, and Public API tokens.
//!
//! Write keys are kept in clear, because the Public API returns them (`writeKeys`) and
//! connectors match keys against sources; the file is 0600. Tokens are kept only as SHA-256
//! hashes: a token is shown once, when created. Readers that check keys on every request
//! ([`KeySnapshot`]) hold hashes only and compare them in constant time.
//!
//! Every change is one SQLite transaction, so the CLI and a running server can change the
//! same file at once (`busy_timeout`); a server notices changes through `PRAGMA data_version`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StoreError;
use crate::files::{self, META_DB};
use crate::secret;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workspace (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS write_keys (
    key TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS write_keys_source ON write_keys(source_id);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
";

/// The workspace (there is one per data directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// Its id.
    pub id: String,
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub name: String,
}

/// A source: where events are sent, identified by its write keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Its id (22 base62 characters).
    pub id: String,
    /// Its unique slug, the name used on the command line.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Whether its keys are accepted.
    pub enabled: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Its write keys, oldest first.
    pub write_keys: Vec<String>,
}

/// What a Public API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Workspace Owner: read and change everything.
    Owner,
    /// Workspace Member: read only.
    Member,
}

impl Role {
    /// `"owner"` or `"member"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }

    /// Parses `"owner"` or `"member"`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A token as listed (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Its id, used to revoke it.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// Its role.
    pub role: Role,
    /// When it was created.
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// What the first start of an empty data directory created. The secrets are shown once.
#[derive(Clone, Debug)]
pub struct FirstRun {
    /// The new workspace.
    pub workspace: Workspace,
    /// The source `default`.
    pub source: Source,
    /// Its write key.
    pub write_key: String,
    /// The owner token's id.
    pub token_id: String,
    /// The owner token (the only time it is visible).
    pub token: String,
}

/// A write key's source, as the ingest path needs it.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    /// The source id.
    pub source_id: Arc<str>,
    /// Whether the source is enabled.
    pub enabled: bool,
    /// SHA-256 of the key, compared in constant time after the map lookup.
    pub key_hash: [u8; 32],
}

/// A live token, as the Public API needs it.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    /// The token id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
}

/// Everything needed to check write keys and tokens, by SHA-256 hash. Holds no secret.
#[derive(Clone, Debug, Default)]
pub struct KeySnapshot {
    /// The workspace, if the directory is initialized.
    pub workspace: Option<Workspace>,
    /// Write keys by hash.
    pub write_keys: HashMap<[u8; 32], KeyEntry>,
    /// Live (not revoked) tokens by hash.
    pub tokens: HashMap<[u8; 32], TokenEntry>,
}

impl KeySnapshot {
    /// The entry of a write key, compared in constant time.
    pub fn write_key(&self, key: &str) -> Option<&KeyEntry> {
        let hash = secret::sha256(key);
        self.write_keys
            .get(&hash)
            .filter(|entry| secret::constant_time_eq(&entry.key_hash, &hash))
    }

    /// The entry of a live token, compared in constant time.
    pub fn token(&self, token: &str) -> Option<&TokenEntry> {
        let hash = secret::sha256(token);
        self.tokens
            .get(&hash)
            .filter(|entry| secret::constant_time_eq(&entry.hash, &hash))
    }
}

/// Changes to a source (Public API `PATCH`).
#[derive(Clone, Debug, Default)]
pub struct SourceUpdate {
    /// A new slug.
    pub slug: Option<String>,
    /// A new display name.
    pub name: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// The open `meta.db`.
pub struct MetaStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Checks a source slug: 1 to 100 characters of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit.
pub fn check_slug(slug: &str) -> Result<(), StoreError> {
    let ok = !slug.is_empty()
        && slug.len() <= 100
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && slug
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "slug",
            rule: format!(
                "{slug:?} is not a valid source name: use 1 to 100 characters of a-z, 0-9, '-' \
                 and '_', starting with a letter or digit"
            ),
        })
    }
}

fn now_text() -> String {
    files::now().to_string()
}

impl MetaStore {
    /// Opens (creating when missing) `DIR/meta.db`, creating `DIR` (0700) and the file (0600).
    pub fn open(dir: &Path) -> Result<MetaStore, StoreError> {
        files::ensure_data_dir(dir)?;
        let path = files::ensure_private_file(&dir.join(META_DB))?;
        let conn = Connection::open(&path)?;
        let store = MetaStore { conn, path };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing `DIR/meta.db`; `NotFound` when the directory was never initialized.
    pub fn open_existing(dir: &Path) -> Result<MetaStore, StoreError> {
        let path = dir.join(META_DB);
        if !path.is_file() {
            return Err(StoreError::NotFound {
                what: "spoor data directory (meta.db) at",
                name: dir.display().to_string(),
            });
        }
        MetaStore::open(dir)
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.conn.busy_timeout(Duration::from_secs(10))?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .or_else(|_| self.conn.pragma_update(None, "journal_mode", "WAL"))?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            self.conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
        }
        Ok(())
    }

    /// `PRAGMA data_version`: changes whenever another connection commits to the file.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |row| row.get(0))?)
    }

    /// On an empty directory, creates the workspace, the source `default` with a write key,
    /// and an owner token, in one transaction. `None` when already initialized.
    pub fn bootstrap(&mut self) -> Result<Option<FirstRun>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool =
            tx.query_row("SELECT EXISTS (SELECT 1 FROM workspace)", [], |r| r.get(0))?;
        if exists {
            return Ok(None);
        }
        let now = now_text();
        let workspace = Workspace {
            id: secret::new_id()?,
            slug: "spoor".to_owned(),
            name: "spoor".to_owned(),
        };
        tx.execute(
            "INSERT INTO workspace (id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![workspace.id, workspace.slug, workspace.name, now],
        )?;
        let source_id = secret::new_id()?;
        let write_key = secret::new_write_key()?;
        tx.execute(
            "INSERT INTO sources (id, slug, name, enabled, created_at) VALUES (?1, 'default', 'default', 1, ?2)",
            params![source_id, now],
        )?;
        tx.execute(
            "INSERT INTO write_keys (key, source_id, created_at) VALUES (?1, ?2, ?3)",
            params![write_key, source_id, now],
        )?;
        let token_id = secret::new_id()?;
        let token = secret::new_token()?;
        tx.execute(
            "INSERT INTO tokens (id, description, role, hash, created_at) VALUES (?1, ?2, 'owner', ?3, ?4)",
            params![token_id, "created by the first start", secret::sha256_hex(&token), now],
        )?;
        tx.commit()?;
        let source = Source {
            id: source_id,
            slug: "default".to_owned(),
            name: "default".to_owned(),
            enabled: true,
            created_at: now,
            write_keys: vec![write_key.clone()],
        };
        Ok(Some(FirstRun {
            workspace,
            source,
            write_key,
            token_id,
            token,
        }))
    }

    /// The workspace; `NotFound` before the first start.
    pub fn workspace(&self) -> Result<Workspace, StoreError> {
        self.conn
            .query_row("SELECT id, slug, name FROM workspace LIMIT 1", [], |row| {
                Ok(Workspace {
                    id: row.get(0)?,
                    slug: row.get(1)?,
                    name: row.get(2)?,
                })
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "workspace",
                name: self.path.display().to_string(),
            })
    }

    fn keys_of(&self, source_id: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key FROM write_keys WHERE source_id = ?1 ORDER BY created_at, rowid",
        )?;
        let keys = stmt
            .query_map([source_id], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(keys)
    }

    fn source_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Source> {
        Ok(Source {
            id: row.get(0)?,
            slug: row.get(1)?,
            name: row.get(2)?,
            enabled: row.get(3)?,
            created_at: row.get(4)?,
            write_keys: Vec::new(),
        })
    }

    /// All sources, in creation order, with their keys.
    pub fn list_sources(&self) -> Result<Vec<Source>, StoreError> {
        let (sources, _) = self.list_sources_page(0, usize::MAX)?;
        Ok(sources)
    }

    /// One page of sources in creation order, and the total count.
    pub fn list_sources_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Source>, usize), StoreError> {
        let total: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sources", [], |r| r.get(0))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, slug, name, enabled, created_at FROM sources ORDER BY rowid LIMIT ?1 OFFSET ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let mut sources = stmt
            .query_map(params![limit, offset], MetaStore::source_row)?
            .collect::<Result<Vec<_>, _>>()?;
        for source in &mut sources {
            source.write_keys = self.keys_of(&source.id)?;
        }
        Ok((sources, usize::try_from(total).unwrap_or(0)))
    }

    /// A source by id or slug.
    pub fn source(&self, id_or_slug: &str) -> Result<Source, StoreError> {
        let mut source = self
            .conn
            .query_row(
                "SELECT id, slug, name, enabled, created_at FROM sources WHERE id = ?1 OR slug = ?1 \
                 ORDER BY id = ?1 DESC LIMIT 1",
                [id_or_slug],
                MetaStore::source_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "source",
                name: id_or_slug.to_owned(),
            })?;
        source.write_keys = self.keys_of(&source.id)?;
        Ok(source)
    }

    /// Creates a source with one new write key.
    pub fn create_source(&mut self, slug: &str, name: Option<&str>) -> Result<Source, StoreError> {
        check_slug(slug)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sources WHERE slug = ?1)",
            [slug],
            |r| r.get(0),
        )?;
        if taken {
            return Err(StoreError::Conflict {
                what: "source",
                name: slug.to_owned(),
            });
        }
        let id = secret::new_id()?;
        let key = secret::new_write_key()?;
        let now = now_text();
        tx.execute(
            "INSERT INTO sources (id, slug, name, enabled, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
            params![id, slug, name.unwrap_or(slug), now],
        )?;
        tx.execute(
            "INSERT INTO write_keys (key, source_id, created_at) VALUES (?1, ?2, ?3)",
            params![key, id, now],
        )?;
        tx.commit()?;
        self.source(&id)
    }

    /// Changes a source's slug, name or enabled flag.
    pub fn update_source(
        &mut self,
        id_or_slug: &str,
        update: &SourceUpdate,
    ) -> Result<Source, StoreError> {
        let source = self.source(id_or_slug)?;
        if let Some(slug) = &update.slug {
            check_slug(slug)?;
            if *slug != source.slug {
                let taken: bool = self.conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM sources WHERE slug = ?1)",
                    [slug],
                    |r| r.get(0),
                )?;
                if taken {
                    return Err(StoreError::Conflict {
                        what: "source",
                        name: slug.clone(),
                    });
                }
            }
        }
        self.conn.execute(
            "UPDATE sources SET slug = coalesce(?2, slug), name = coalesce(?3, name), \
             enabled = coalesce(?4, enabled) WHERE id = ?1",
            params![source.id, update.slug, update.name, update.enabled],
        )?;
        self.source(&source.id)
    }

    /// Enables or disables a source.
    pub fn set_enabled(&mut self, id_or_slug: &str, enabled: bool) -> Result<Source, StoreError> {
        self.update_source(
            id_or_slug,
            &SourceUpdate {
                enabled: Some(enabled),
                ..SourceUpdate::default()
            },
        )
    }

    /// Deletes a source and its keys. Its messages stay in the log.
    pub fn delete_source(&mut self, id_or_slug: &str) -> Result<Source, StoreError> {
        let source = self.source(id_or_slug)?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM write_keys WHERE source_id = ?1", [&source.id])?;
        tx.execute("DELETE FROM sources WHERE id = ?1", [&source.id])?;
        tx.commit()?;
        Ok(source)
    }

    /// Replaces all of a source's write keys with one new key, returned.
    pub fn rotate_key(&mut self, id_or_slug: &str) -> Result<(Source, String), StoreError> {
        let source = self.source(id_or_slug)?;
        let key = secret::new_write_key()?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM write_keys WHERE source_id = ?1", [&source.id])?;
        tx.execute(
            "INSERT INTO write_keys (key, source_id, created_at) VALUES (?1, ?2, ?3)",
            params![key, source.id, now_text()],
        )?;
        tx.commit()?;
        Ok((self.source(&source.id)?, key))
    }

    /// Adds a new write key to a source (its other keys keep working).
    pub fn add_write_key(&mut self, id_or_slug: &str) -> Result<(Source, String), StoreError> {
        let source = self.source(id_or_slug)?;
        let key = secret::new_write_key()?;
        self.conn.execute(
            "INSERT INTO write_keys (key, source_id, created_at) VALUES (?1, ?2, ?3)",
            params![key, source.id, now_text()],
        )?;
        Ok((self.source(&source.id)?, key))
    }

    /// Removes one write key from a source.
    pub fn remove_write_key(&mut self, id_or_slug: &str, key: &str) -> Result<Source, StoreError> {
        let source = self.source(id_or_slug)?;
        let removed = self.conn.execute(
            "DELETE FROM write_keys WHERE source_id = ?1 AND key = ?2",
            params![source.id, key],
        )?;
        if removed == 0 {
            return Err(StoreError::NotFound {
                what: "write key of source",
                name: source.slug,
            });
        }
        self.source(&source.id)
    }

    /// Creates a token; returns it with its secret, which is stored only as a hash.
    pub fn create_token(
        &mut self,
        description: &str,
        role: Role,
    ) -> Result<(Token, String), StoreError> {
        let id = secret::new_id()?;
        let secret_text = secret::new_token()?;
        let now = now_text();
        self.conn.execute(
            "INSERT INTO tokens (id, description, role, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, description, role.as_str(), secret::sha256_hex(&secret_text), now],
        )?;
        Ok((
            Token {
                id,
                description: description.to_owned(),
                role,
                created_at: now,
                revoked_at: None,
            },
            secret_text,
        ))
    }

    /// All tokens, revoked ones included, oldest first.
    pub fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, description, role, created_at, revoked_at FROM tokens ORDER BY rowid",
        )?;
        let tokens = stmt
            .query_map([], |row| {
                let role: String = row.get(2)?;
                Ok(Token {
                    id: row.get(0)?,
                    description: row.get(1)?,
                    role: Role::parse(&role).unwrap_or(Role::Member),
                    created_at: row.get(3)?,
                    revoked_at: row.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tokens)
    }

    /// Revokes a token by id. Revoking twice is not an error.
    pub fn revoke_token(&mut self, id: &str) -> Result<Token, StoreError> {
        let changed = self.conn.execute(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            params![id, now_text()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "token",
                name: id.to_owned(),
            });
        }
        self.list_tokens()?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| StoreError::NotFound {
                what: "token",
                name: id.to_owned(),
            })
    }

    /// Everything the request path checks, by hash.
    pub fn snapshot(&self) -> Result<KeySnapshot, StoreError> {
        let workspace = self.workspace().ok();
        let mut write_keys = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT k.key, s.id, s.enabled FROM write_keys k JOIN sources s ON s.id = k.source_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let source_id: String = row.get(1)?;
            let hash = secret::sha256(&key);
            write_keys.insert(
                hash,
                KeyEntry {
                    source_id: Arc::from(source_id),
                    enabled: row.get(2)?,
                    key_hash: hash,
                },
            );
        }
        let mut tokens = HashMap::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, role, hash FROM tokens WHERE revoked_at IS NULL")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let hex: String = row.get(2)?;
            let role: String = row.get(1)?;
            let Some(hash) = parse_hex32(&hex) else {
                continue;
            };
            tokens.insert(
                hash,
                TokenEntry {
                    id: row.get(0)?,
                    role: Role::parse(&role).unwrap_or(Role::Member),
                    hash,
                },
            );
        }
        Ok(KeySnapshot {
            workspace,
            write_keys,
            tokens,
        })
    }
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        crate::files::test_dir("meta", name)
    }

    #[test]
    fn bootstrap_once_then_manage_sources_and_tokens() {
        let dir = temp_dir("boot");
        let mut meta = MetaStore::open(&dir).unwrap();
        let first = meta.bootstrap().unwrap().expect("first run");
        assert!(meta.bootstrap().unwrap().is_none());
        let snapshot = meta.snapshot().unwrap();
        let entry = snapshot.write_key(&first.write_key).unwrap();
        assert_eq!(&*entry.source_id, first.source.id);
        assert_eq!(snapshot.token(&first.token).unwrap().role, Role::Owner);
        assert!(snapshot.write_key("nope").is_none());

        let web = meta.create_source("web", None).unwrap();
        assert!(matches!(
            meta.create_source("web", None),
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            meta.create_source("Bad Name", None),
            Err(StoreError::Invalid { .. })
        ));
        let (rotated, key) = meta.rotate_key("web").unwrap();
        assert_eq!(rotated.write_keys, vec![key.clone()]);
        assert_ne!(web.write_keys, rotated.write_keys);
        assert!(!meta.set_enabled("web", false).unwrap().enabled);
        assert!(!meta.snapshot().unwrap().write_key(&key).unwrap().enabled);

        let (token, secret_text) = meta.create_token("ci", Role::Member).unwrap();
        assert_eq!(
            meta.snapshot().unwrap().token(&secret_text).unwrap().role,
            Role::Member
        );
        meta.revoke_token(&token.id).unwrap();
        assert!(meta.snapshot().unwrap().token(&secret_text).is_none());
        std::fs::remove_dir_all(dir).ok();
    }
}
