//! A small blocking JSON-RPC client over the daemon's socket: one connection, one request at a
//! time, notifications buffered while a response is awaited. `chatctl`, `chat-tray` and the
//! tests use it; on Unix it starts fast because it needs no async runtime.
//!
//! The transport is a Unix domain socket on Unix and a named pipe on Windows (`Conn`, one per
//! platform). Windows named pipes have no read timeout, so there the connection is driven by a
//! current-thread tokio runtime of its own, which gives [`Client::set_read_timeout`] the same
//! meaning as on Unix without a helper thread (a read that times out there fails with
//! `TimedOut`, on Unix with `WouldBlock`). The Windows transport is compiled and linted in
//! CI (`x86_64-pc-windows-gnu`) but has not been run: nothing here runs Windows binaries.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

/// The longest line the client reads from chatd. The largest answer is a history page of 500
/// messages of 64 KiB each, JSON-escaped; a peer that sends more (a broken daemon, or on
/// Windows a program posing as one) gets a protocol error instead of the client's memory.
pub const MAX_ANSWER_LEN: u64 = 256 * 1024 * 1024;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ErrorCode;
use crate::events::{Event, NOTIFICATION};

/// A JSON-RPC error object from the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The code: a standard JSON-RPC code or an [`ErrorCode`].
    pub code: i32,
    /// The human message.
    pub message: String,
    /// Extra data (`{"kind": ...}` for domain errors).
    pub data: Option<Value>,
}

impl RpcError {
    /// The domain error, if the code is one of ours.
    pub fn app_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached: the daemon is not running, or not there.
    #[error("cannot reach chatd at {path}")]
    Unreachable {
        /// The socket path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The socket failed the checks of [`crate::trust`]: it may belong to another user, so
    /// nothing was sent to it.
    #[error("refusing to talk to chatd's socket at {socket}: {problem}; nothing was sent")]
    Untrusted {
        /// The socket path.
        socket: String,
        /// What failed: the path concerned and what is wrong with it.
        problem: crate::trust::Untrusted,
    },
    /// The connection failed after it was made (the daemon went away, or a timeout).
    #[error("connection to chatd failed: {0}")]
    Io(#[from] io::Error),
    /// The daemon sent something that is not a JSON-RPC response.
    #[error("chatd sent an invalid response: {0}")]
    Protocol(String),
    /// The daemon answered with an error.
    #[error("{0}")]
    Rpc(RpcError),
}

impl ClientError {
    /// The domain error code, if the daemon answered with one.
    pub fn app_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Rpc(e) => e.app_code(),
            _ => None,
        }
    }
}

/// A notification the daemon pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The notification method (`events.event`).
    pub method: String,
    /// The subscription it belongs to.
    pub subscription: Value,
    /// The payload.
    pub result: Value,
}

impl Notification {
    /// The payload as an event, if this is an `events.event` notification.
    pub fn event(&self) -> Option<Event> {
        if self.method != NOTIFICATION {
            return None;
        }
        serde_json::from_value(self.result.clone()).ok()
    }
}

/// One connection to the daemon.
#[derive(Debug)]
pub struct Client {
    conn: Conn,
    next_id: u64,
    notifications: VecDeque<Notification>,
    line: String,
}

impl Client {
    /// Connects to the socket at `path` (on Windows, the named pipe at `path`, such as
    /// `\\.\pipe\chatd-alice`).
    ///
    /// When nobody serves `path`, the error is [`ClientError::Unreachable`] with an
    /// [`io::ErrorKind::NotFound`] or [`io::ErrorKind::ConnectionRefused`] source, on every
    /// platform.
    ///
    /// On Unix the socket's directory, the socket file and (on Linux) the serving process's
    /// uid are checked first, and before anything is sent ([`crate::trust`]); a socket that
    /// fails is [`ClientError::Untrusted`] and gets nothing.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let conn = Conn::connect(path)?;
        Ok(Self {
            conn,
            next_id: 1,
            notifications: VecDeque::new(),
            line: String::new(),
        })
    }

    /// Limits how long a read may block (`None`: forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.conn.set_read_timeout(timeout)?;
        Ok(())
    }

    /// Calls `method` with `params` and decodes the result.
    pub fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let params = serde_json::to_value(params)
            .map_err(|e| ClientError::Protocol(format!("params do not serialize: {e}")))?;
        let result = self.call_value(method, params)?;
        serde_json::from_value(result)
            .map_err(|e| ClientError::Protocol(format!("unexpected result of {method}: {e}")))
    }

    /// Calls `method` with raw JSON params and returns the raw result.
    pub fn call_value(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let mut line = request.to_string();
        line.push('\n');
        // A daemon at its connection cap writes "server is busy" and closes at once, so the
        // write can fail (a broken pipe) with that answer already waiting to be read: read it
        // before reporting the write's error.
        let written = self.conn.write_all(line.as_bytes());
        loop {
            let message = match (self.read_message(), written.as_ref()) {
                (Ok(message), _) => message,
                (Err(_), Err(e)) => {
                    return Err(ClientError::Io(io::Error::new(e.kind(), e.to_string())));
                }
                (Err(e), Ok(())) => return Err(e),
            };
            if let Err(e) = &written
                && !(message.get("id") == Some(&Value::Null) && message.get("error").is_some())
            {
                return Err(ClientError::Io(io::Error::new(e.kind(), e.to_string())));
            }
            if message.get("method").is_some() {
                self.buffer_notification(message);
                continue;
            }
            // An error with a null id answers a request the daemon could not attribute: with
            // one request outstanding, ours (the "server is busy" line a connection beyond the
            // cap gets is one).
            let unattributed_error =
                message.get("id") == Some(&Value::Null) && message.get("error").is_some();
            if message.get("id") != Some(&Value::from(id)) && !unattributed_error {
                return Err(ClientError::Protocol(format!(
                    "response for another request: {message}"
                )));
            }
            if let Some(error) = message.get("error") {
                return Err(ClientError::Rpc(RpcError {
                    code: error
                        .get("code")
                        .and_then(Value::as_i64)
                        .and_then(|c| i32::try_from(c).ok())
                        .unwrap_or(0),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)")
                        .to_owned(),
                    data: error.get("data").cloned(),
                }));
            }
            return message
                .get("result")
                .cloned()
                .ok_or_else(|| ClientError::Protocol(format!("no result: {message}")));
        }
    }

    /// Waits for the next notification (buffered ones first).
    pub fn next_notification(&mut self) -> Result<Notification, ClientError> {
        loop {
            if let Some(n) = self.notifications.pop_front() {
                return Ok(n);
            }
            let message = self.read_message()?;
            if message.get("method").is_some() {
                self.buffer_notification(message);
            }
        }
    }

    /// Sends a raw line as it is (tests use it for malformed input) and returns the next
    /// message the daemon sends that is not a notification.
    pub fn send_raw_line(&mut self, line: &str) -> Result<Value, ClientError> {
        self.conn.write_all(line.as_bytes())?;
        self.conn.write_all(b"\n")?;
        loop {
            let message = self.read_message()?;
            if message.get("method").is_some() && message.get("id").is_none() {
                self.buffer_notification(message);
                continue;
            }
            return Ok(message);
        }
    }

    fn buffer_notification(&mut self, message: Value) {
        let method = message["method"].as_str().unwrap_or_default().to_owned();
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        self.notifications.push_back(Notification {
            method,
            subscription: params.get("subscription").cloned().unwrap_or(Value::Null),
            result: params.get("result").cloned().unwrap_or(Value::Null),
        });
    }

    fn read_message(&mut self) -> Result<Value, ClientError> {
        self.line.clear();
        let n = self.conn.read_line(&mut self.line)?;
        if n == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chatd closed the connection",
            )));
        }
        if !self.line.ends_with('\n') && n as u64 >= MAX_ANSWER_LEN {
            return Err(ClientError::Protocol(format!(
                "an answer longer than {} MiB",
                MAX_ANSWER_LEN / (1024 * 1024)
            )));
        }
        serde_json::from_str(self.line.trim_end())
            .map_err(|e| ClientError::Protocol(format!("not JSON ({e}): {}", self.line.trim_end())))
    }
}

/// The Unix transport: a Unix domain socket, read through a buffer and written directly.
#[cfg(unix)]
#[derive(Debug)]
struct Conn {
    reader: io::BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
}

#[cfg(unix)]
impl Conn {
    /// Checks the path, connects, and checks the peer, in that order.
    fn connect(path: &Path) -> Result<Self, ClientError> {
        let untrusted = |problem| ClientError::Untrusted {
            socket: path.display().to_string(),
            problem,
        };
        let unreachable = |source| ClientError::Unreachable {
            path: path.display().to_string(),
            source,
        };
        if crate::trust::check_path(path).map_err(untrusted)? == crate::trust::PathState::Missing {
            return Err(unreachable(rustix::io::Errno::NOENT.into()));
        }
        let stream = std::os::unix::net::UnixStream::connect(path).map_err(unreachable)?;
        crate::trust::check_peer(&stream, path).map_err(untrusted)?;
        let writer = stream.try_clone()?;
        Ok(Self {
            reader: io::BufReader::new(stream),
            writer,
        })
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.writer.set_read_timeout(timeout)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.writer, bytes)
    }

    fn read_line(&mut self, line: &mut String) -> io::Result<usize> {
        io::BufRead::read_line(&mut io::Read::take(&mut self.reader, MAX_ANSWER_LEN), line)
    }
}

/// The Windows transport: a named pipe, driven by a current-thread runtime that only runs
/// while a call of this client blocks (compiled, never run here: see the module documentation).
///
/// The pipe is opened with tokio's `ClientOptions`, whose default security quality of service
/// is `SECURITY_IDENTIFICATION`: a program that took the pipe's name before chatd started can
/// learn who connected but cannot impersonate the user (interprocess's client leaves the
/// Windows default, full impersonation, which is why it is not used here).
#[cfg(windows)]
#[derive(Debug)]
struct Conn {
    runtime: tokio::runtime::Runtime,
    stream: tokio::io::BufReader<tokio::net::windows::named_pipe::NamedPipeClient>,
    /// What [`Client::set_read_timeout`] set; a lock because that method takes `&self`.
    read_timeout: std::sync::Mutex<Option<Duration>>,
}

#[cfg(windows)]
impl Conn {
    /// How long a connect waits for a free pipe instance when the daemon is between two
    /// accepts; a pipe that does not exist fails at once with `NotFound`.
    const BUSY_WAIT: Duration = Duration::from_secs(5);

    /// `ERROR_PIPE_BUSY`: the pipe exists but no instance is waiting for a client.
    const ERROR_PIPE_BUSY: i32 = 231;

    fn connect(path: &Path) -> Result<Self, ClientError> {
        Self::open(path).map_err(|source| ClientError::Unreachable {
            path: path.display().to_string(),
            source,
        })
    }

    fn open(path: &Path) -> io::Result<Self> {
        use tokio::net::windows::named_pipe::ClientOptions;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let deadline = std::time::Instant::now() + Self::BUSY_WAIT;
        let client = runtime.block_on(async {
            loop {
                match ClientOptions::new().open(path) {
                    Err(e) if e.raw_os_error() == Some(Self::ERROR_PIPE_BUSY) => {
                        if std::time::Instant::now() >= deadline {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "chatd's pipe stayed busy",
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    opened => return opened,
                }
            }
        })?;
        Ok(Self {
            runtime,
            stream: tokio::io::BufReader::new(client),
            read_timeout: std::sync::Mutex::new(None),
        })
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        *self
            .read_timeout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = timeout;
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        let stream = self.stream.get_mut();
        self.runtime.block_on(stream.write_all(bytes))
    }

    /// Reads a line like `BufRead::read_line`; past the read timeout it fails with
    /// `TimedOut`, as a socket with `SO_RCVTIMEO` fails with `WouldBlock` on Unix.
    fn read_line(&mut self, line: &mut String) -> io::Result<usize> {
        use tokio::io::AsyncBufReadExt as _;
        let timeout = *self
            .read_timeout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut stream = tokio::io::AsyncReadExt::take(&mut self.stream, MAX_ANSWER_LEN);
        self.runtime.block_on(async {
            match timeout {
                None => stream.read_line(line).await,
                Some(timeout) => tokio::time::timeout(timeout, stream.read_line(line))
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "timed out waiting for chatd",
                        ))
                    }),
            }
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A server that answers with a line longer than [`MAX_ANSWER_LEN`] gets a protocol error
    /// once the client has read that much, not the client's memory without end.
    #[test]
    fn an_endless_answer_is_cut_off_at_the_cap() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // The client talks only to a socket in a directory closed to other users.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap_or_else(|e| panic!("chmod: {e}"));
        let path = dir.path().join("fake.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
            let chunk = vec![b'x'; 1024 * 1024];
            let mut sent = 0u64;
            // One chunk past the cap, then stop: the client must not wait for a newline.
            while sent <= MAX_ANSWER_LEN {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
                sent += chunk.len() as u64;
            }
        });
        let mut client = Client::connect(&path).unwrap_or_else(|e| panic!("connect: {e}"));
        let result = client.call_value("daemon.status", serde_json::json!({}));
        assert!(
            matches!(&result, Err(ClientError::Protocol(m)) if m.contains("longer than")),
            "{result:?}"
        );
        drop(client);
        let _ = server.join();
    }
}
