//! [`BlockingClient`]: the [`Client`] for code without an async runtime (scripts, threads).
//! It owns a small runtime of its own; calling it from inside an async runtime is refused.

use spoor_spec::Message;

use crate::{Client, ClientError, Config, Stats};

/// A blocking façade over [`Client`].
#[derive(Debug)]
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
}

impl BlockingClient {
    /// Starts a runtime and a [`Client`] on it.
    pub fn new(config: Config) -> Result<BlockingClient, ClientError> {
        outside_runtime()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spoor-client")
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        let client = {
            let _guard = runtime.enter();
            Client::new(config)?
        };
        Ok(BlockingClient {
            runtime,
            client: Some(client),
        })
    }

    fn client(&self) -> Result<&Client, ClientError> {
        outside_runtime()?;
        self.client.as_ref().ok_or(ClientError::Closed)
    }

    /// See [`Client::enqueue`].
    pub fn enqueue(&self, message: Message) -> Result<String, ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.enqueue(message))
    }

    /// See [`Client::enqueue_tagged`].
    pub fn enqueue_tagged(&self, message: Message, tag: u64) -> Result<String, ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.enqueue_tagged(message, tag))
    }

    /// See [`Client::flush`].
    pub fn flush(&self) -> Result<(), ClientError> {
        let client = self.client()?;
        self.runtime.block_on(client.flush());
        Ok(())
    }

    /// See [`Client::close`]; returns the final counters.
    pub fn close(mut self) -> Result<Stats, ClientError> {
        outside_runtime()?;
        let client = self.client.take().ok_or(ClientError::Closed)?;
        self.runtime.block_on(client.close());
        Ok(client.stats())
    }

    /// See [`Client::stats`].
    pub fn stats(&self) -> Stats {
        self.client.as_ref().map(Client::stats).unwrap_or_default()
    }
}

impl Drop for BlockingClient {
    /// Closes (flushes) the client when it was not closed, unless dropped inside a runtime.
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && outside_runtime().is_ok()
        {
            self.runtime.block_on(client.close());
        }
    }
}

fn outside_runtime() -> Result<(), ClientError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(ClientError::InsideRuntime),
        Err(_) => Ok(()),
    }
}
