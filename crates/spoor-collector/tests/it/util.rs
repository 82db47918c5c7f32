//! Shared fixtures: a temporary data directory and an in-process server on 127.0.0.1:0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use spoor_collector::{AppState, KeyRing, ServerConfig};
use spoor_store::{Cell, FirstRun, MessageLog, MetaStore, SqliteLog, SqliteLogConfig};
use tokio::sync::oneshot;

/// A directory removed when dropped.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!(
            "spoor-it-{name}-{}",
            spoor_store::secret::random_base62(10).unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running collector with its data directory and first-run secrets.
pub struct TestServer {
    pub dir: TestDir,
    pub url: String,
    pub first: FirstRun,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    log: Arc<dyn MessageLog>,
}

impl TestServer {
    pub async fn start(name: &str) -> TestServer {
        TestServer::start_with(name, ServerConfig::default(), Duration::from_secs(86_400)).await
    }

    pub async fn start_with(name: &str, config: ServerConfig, window: Duration) -> TestServer {
        let dir = TestDir::new(name);
        let mut meta = MetaStore::open(dir.path()).unwrap();
        let first = meta.bootstrap().unwrap().unwrap();
        let log: Arc<dyn MessageLog> =
            Arc::new(SqliteLog::open(dir.path(), SqliteLogConfig::with_window(window)).unwrap());
        let keys = KeyRing::watch(dir.path().to_path_buf()).unwrap();
        let state = AppState::new(
            Arc::clone(&log),
            meta,
            keys,
            config,
            spoor_collector::system_clock(),
        );
        let router = spoor_collector::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            spoor_collector::server::serve(listener, state, router, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            dir,
            url,
            first,
            client: reqwest::Client::builder().no_gzip().build().unwrap(),
            shutdown: Some(tx),
            task: Some(task),
            log,
        }
    }

    pub fn key(&self) -> &str {
        &self.first.write_key
    }

    pub fn basic(&self) -> String {
        basic(self.key())
    }

    /// POSTs raw bytes with Basic auth; returns the status and JSON answer.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .header("Authorization", self.basic())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// POSTs JSON with Basic auth.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(path, serde_json::to_vec(body).unwrap()).await
    }

    /// Runs read-only SQL on the data directory.
    pub fn query(&self, sql: &str) -> Vec<Vec<Cell>> {
        spoor_store::run_query(self.dir.path(), sql).unwrap().rows
    }

    /// `SELECT count(*)` helper.
    pub fn count(&self, sql: &str) -> i64 {
        match self.query(sql).first().and_then(|r| r.first()) {
            Some(Cell::Integer(n)) => *n,
            other => panic!("not a count: {other:?}"),
        }
    }

    /// Stops accepting, drains and closes the log.
    pub async fn stop(mut self) -> TestDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.log.close().await.unwrap();
        self.dir
    }
}

pub fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn text(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) => t.clone(),
        Cell::Integer(n) => n.to_string(),
        Cell::Null => "NULL".to_owned(),
        other => format!("{other:?}"),
    }
}
