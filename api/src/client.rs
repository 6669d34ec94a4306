//! A small blocking JSON-RPC client over the daemon's socket: one connection, one request at a
//! time, notifications buffered while a response is awaited. `chatctl`, `chat-tray` and the
//! tests use it; it starts fast because it needs no async runtime.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ErrorCode;
use crate::events::{Event, NOTIFICATION};

#[cfg(unix)]
type Stream = std::os::unix::net::UnixStream;

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
    reader: BufReader<Stream>,
    writer: Stream,
    next_id: u64,
    notifications: VecDeque<Notification>,
    line: String,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = Stream::connect(path).map_err(|source| ClientError::Unreachable {
            path: path.display().to_string(),
            source,
        })?;
        let writer = stream.try_clone()?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            notifications: VecDeque::new(),
            line: String::new(),
        })
    }

    /// Limits how long a read may block (`None`: forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer.set_read_timeout(timeout)?;
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
        self.writer.write_all(line.as_bytes())?;
        loop {
            let message = self.read_message()?;
            if message.get("method").is_some() {
                self.buffer_notification(message);
                continue;
            }
            if message.get("id") != Some(&Value::from(id)) {
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
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")?;
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
        let n = self.reader.read_line(&mut self.line)?;
        if n == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chatd closed the connection",
            )));
        }
        serde_json::from_str(self.line.trim_end())
            .map_err(|e| ClientError::Protocol(format!("not JSON ({e}): {}", self.line.trim_end())))
    }
}
