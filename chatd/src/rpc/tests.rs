//! Tests of the RPC transport over a real Unix socket in a temporary directory, with a toy
//! `RpcModule`: blocking `api::client::Client`s for well-behaved callers and raw
//! `std::os::unix::net::UnixStream`s for the abuse cases.

use std::error::Error;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use api::client::{Client, ClientError};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{ConnectionId, RpcModule};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

use super::{RpcListener, ServerLimits, serve};

type TestResult = Result<(), Box<dyn Error>>;

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(5);

/// What the toy methods share with the test.
#[derive(Debug, Default)]
struct Toy {
    /// Releases one `slow` call.
    release_slow: Notify,
    /// Subscriptions whose task is running.
    live_subscriptions: AtomicUsize,
    /// How often `bump` ran.
    bumps: AtomicUsize,
}

/// Counts a running subscription task while it lives.
struct Live<'a>(&'a AtomicUsize);

impl<'a> Live<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Live(counter)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Typed {
    name: String,
    count: u32,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
struct SubscribeParams {
    /// Milliseconds between events; 0 sends as fast as the connection takes them.
    #[serde(default = "default_interval")]
    interval_ms: u64,
}

fn default_interval() -> u64 {
    10
}

fn toy_module(toy: Arc<Toy>) -> Result<RpcModule<Arc<Toy>>, Box<dyn Error>> {
    let mut module = RpcModule::new(toy);
    module.register_method("echo", |params, _, _| params.parse::<Value>())?;
    module.register_async_method("async_echo", |params, _, _| async move {
        params.parse::<Value>()
    })?;
    module.register_method(
        "daemon.status",
        |_, _, _| json!({ "api_version": api::API_VERSION, "state": "locked" }),
    )?;
    module.register_method("typed", |params, _, _| {
        let typed: Typed = params.parse()?;
        Ok::<_, ErrorObjectOwned>(format!("{}:{}", typed.name, typed.count))
    })?;
    module.register_method("fail", |_, _, _| {
        Err::<(), _>(ErrorObjectOwned::owned(
            1010,
            "no such contact",
            Some(json!({ "kind": "not_found" })),
        ))
    })?;
    module.register_async_method("slow", |_, toy: Arc<Arc<Toy>>, _| async move {
        toy.release_slow.notified().await;
        "slow done"
    })?;
    module.register_method("conn_id", |_, _, ext| {
        ext.get::<ConnectionId>().map(|id| id.0)
    })?;
    module.register_method("bump", |_, toy: &Arc<Toy>, _| {
        toy.bumps.fetch_add(1, Ordering::SeqCst)
    })?;
    module.register_method("bumps", |_, toy: &Arc<Toy>, _| {
        toy.bumps.load(Ordering::SeqCst)
    })?;
    module.register_method("big", |params, _, _| {
        let len: usize = params.one()?;
        Ok::<_, ErrorObjectOwned>("x".repeat(len))
    })?;
    module.register_method("panic_sync", |_, _, _| -> u32 {
        panic!("a sync method panicked")
    })?;
    module.register_async_method("panic_async", |_, _, _| async move {
        // Panic in the future, once it has been polled, not while it is being created.
        tokio::task::yield_now().await;
        boom()
    })?;
    module.register_subscription(
        "test.subscribe",
        "test.event",
        "test.unsubscribe",
        |params, pending, toy: Arc<Arc<Toy>>, _| async move {
            let interval = params
                .parse::<Option<SubscribeParams>>()
                .ok()
                .flatten()
                .unwrap_or_default()
                .interval_ms;
            let sink = pending.accept().await?;
            let _live = Live::new(&toy.live_subscriptions);
            for n in 0u64.. {
                if interval > 0 {
                    tokio::select! {
                        () = sink.closed() => break,
                        () = tokio::time::sleep(Duration::from_millis(interval)) => {}
                    }
                }
                let message = serde_json::value::to_raw_value(&json!({ "n": n }))?;
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            Ok(())
        },
    )?;
    Ok(module)
}

fn boom() -> u32 {
    panic!("a method panicked on purpose")
}

/// A server on a runtime of its own, serving the toy module.
struct TestServer {
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    path: PathBuf,
    toy: Arc<Toy>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    fn start(limits: ServerLimits) -> Result<Self, Box<dyn Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("run").join("chatd.sock");
        let listener = RpcListener::bind(&path)?;
        Self::serve(dir, listener, limits)
    }

    fn serve(
        dir: tempfile::TempDir,
        listener: RpcListener,
        limits: ServerLimits,
    ) -> Result<Self, Box<dyn Error>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let toy = Arc::new(Toy::default());
        let module = toy_module(Arc::clone(&toy))?;
        let path = listener.path().to_path_buf();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = runtime.spawn(serve(listener, module.into(), limits, |_| {}, async move {
            let _ = stop.await;
        }));
        Ok(Self {
            runtime,
            _dir: dir,
            path,
            toy,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    fn client(&self) -> Result<Client, Box<dyn Error>> {
        let client = Client::connect(&self.path)?;
        client.set_read_timeout(Some(PATIENCE))?;
        Ok(client)
    }

    fn raw(&self) -> Result<Raw, Box<dyn Error>> {
        Raw::connect(&self.path)
    }

    fn live_subscriptions(&self) -> usize {
        self.toy.live_subscriptions.load(Ordering::SeqCst)
    }

    /// Shuts the server down and waits (for at most `PATIENCE`) until `serve` returns.
    fn stop(&mut self) -> TestResult {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            self.runtime
                .block_on(async { tokio::time::timeout(PATIENCE, task).await })??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A raw connection: bytes out, lines in.
struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Raw {
    fn connect(path: &Path) -> Result<Self, Box<dyn Error>> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> TestResult {
        self.writer.write_all(bytes)?;
        Ok(())
    }

    /// The next line, or `None` at end of input.
    fn line(&mut self) -> Result<Option<String>, Box<dyn Error>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line))
    }

    /// The next line as JSON; end of input is an error.
    fn message(&mut self) -> Result<Value, Box<dyn Error>> {
        let line = self.line()?.ok_or("the server closed the connection")?;
        assert!(line.ends_with('\n'), "a line ends with \\n: {line:?}");
        Ok(serde_json::from_str(&line)?)
    }

    /// Sends `line` and a `\n`, and returns the next message.
    fn ask(&mut self, line: &str) -> Result<Value, Box<dyn Error>> {
        self.send(line.as_bytes())?;
        self.send(b"\n")?;
        self.message()
    }

    /// Reads until end of input, returning how many bytes came; fails if the server keeps the
    /// connection open past `PATIENCE`.
    fn read_to_end(&mut self) -> Result<usize, Box<dyn Error>> {
        let mut total = 0;
        let mut chunk = vec![0; 64 * 1024];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(total),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn error_code(error: &ClientError) -> Option<i32> {
    match error {
        ClientError::Rpc(e) => Some(e.code),
        _ => None,
    }
}

fn call_error(client: &mut Client, method: &str, params: Value) -> Result<i32, Box<dyn Error>> {
    match client.call_value(method, params) {
        Ok(result) => Err(format!("{method} succeeded with {result}").into()),
        Err(e) => error_code(&e).ok_or_else(|| format!("{method} failed with {e}").into()),
    }
}

/// Waits until `done` holds, for at most `PATIENCE`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> TestResult {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting until {what}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn assert_works(client: &mut Client) -> TestResult {
    assert_eq!(
        client.call_value("echo", json!(["still here"]))?,
        json!(["still here"])
    );
    Ok(())
}

fn mode(path: &Path) -> Result<u32, Box<dyn Error>> {
    Ok(fs::metadata(path)?.mode() & 0o7777)
}

/// A temporary directory with mode 0700, as the listener requires of the socket's directory.
fn private_tempdir() -> Result<tempfile::TempDir, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn socket_is_0600_in_a_new_0700_directory_and_removed_on_drop() -> TestResult {
    let dir = tempfile::tempdir()?;
    let socket_dir = dir.path().join("a").join("run");
    let path = socket_dir.join("chatd.sock");
    let listener = RpcListener::bind(&path)?;
    assert_eq!(listener.path(), path);
    assert_eq!(mode(&socket_dir)?, 0o700);
    assert_eq!(mode(&path)?, 0o600);
    assert!(fs::symlink_metadata(&path)?.file_type().is_socket());
    drop(listener);
    assert!(!path.exists(), "the socket file is removed on drop");
    Ok(())
}

#[test]
fn bind_refuses_a_directory_open_to_others_and_leaves_it_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let open = dir.path().join("open");
    fs::create_dir(&open)?;
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755))?;
    let error = RpcListener::bind(&open.join("chatd.sock"))
        .err()
        .ok_or("bind accepted a directory open to others")?;
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(error.to_string().contains("chmod 700"), "{error}");
    assert_eq!(mode(&open)?, 0o755, "the directory is not changed");
    assert_eq!(fs::read_dir(&open)?.count(), 0, "nothing is created in it");
    Ok(())
}

/// A symbolic link to a private directory of ours is refused, not followed: whoever owns the
/// link could point it elsewhere once the socket is bound.
#[test]
fn bind_refuses_a_symlinked_directory() -> TestResult {
    let dir = private_tempdir()?;
    let real = dir.path().join("real");
    fs::create_dir(&real)?;
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700))?;
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link)?;
    let error = RpcListener::bind(&link.join("chatd.sock"))
        .err()
        .ok_or("bind followed a symlinked directory")?;
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert_eq!(fs::read_dir(&real)?.count(), 0, "nothing is created in it");
    Ok(())
}

#[test]
fn bind_refuses_a_directory_of_another_user() -> TestResult {
    let dir = tempfile::tempdir()?;
    let theirs = if is_root() {
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs)?;
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700))?;
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534))?;
        theirs
    } else {
        // Not root: `/` belongs to someone else, and nothing is written there.
        PathBuf::from("/")
    };
    let error = RpcListener::bind(&theirs.join("chatd-rpc-test.sock"))
        .err()
        .ok_or("bind accepted a directory of another user")?;
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(error.to_string().contains("belongs to uid"), "{error}");
    Ok(())
}

#[test]
fn bind_refuses_to_replace_a_file_that_is_not_a_socket() -> TestResult {
    let dir = private_tempdir()?;
    let path = dir.path().join("chatd.sock");
    fs::write(&path, b"precious")?;
    let error = RpcListener::bind(&path)
        .err()
        .ok_or("bind replaced a regular file")?;
    assert_eq!(error.kind(), ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&path)?, b"precious");
    Ok(())
}

#[test]
fn stale_socket_is_replaced() -> TestResult {
    let dir = private_tempdir()?;
    let path = dir.path().join("chatd.sock");
    drop(StdUnixListener::bind(&path)?);
    assert!(
        path.exists(),
        "a dropped std listener leaves its file behind"
    );
    let server = TestServer::serve(dir, RpcListener::bind(&path)?, ServerLimits::default())?;
    assert_works(&mut server.client()?)?;
    Ok(())
}

#[test]
fn live_socket_is_refused() -> TestResult {
    // Another program listening on the path.
    let dir = private_tempdir()?;
    let path = dir.path().join("other.sock");
    let other = StdUnixListener::bind(&path)?;
    let error = RpcListener::bind(&path)
        .err()
        .ok_or("bind replaced a live socket")?;
    assert_eq!(error.kind(), ErrorKind::AddrInUse);
    assert!(path.exists());
    drop(other);

    // Another daemon on the path: refused, and the first one carries on.
    let server = TestServer::start(ServerLimits::default())?;
    let error = RpcListener::bind(&server.path)
        .err()
        .ok_or("bind replaced a running daemon's socket")?;
    assert_eq!(error.kind(), ErrorKind::AddrInUse);
    assert_works(&mut server.client()?)?;
    Ok(())
}

#[test]
fn calls_answer_with_results_and_errors() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut client = server.client()?;
    assert_eq!(
        client.call_value("echo", json!({ "a": [1, 2] }))?,
        json!({ "a": [1, 2] })
    );
    assert_eq!(client.call_value("async_echo", json!(["x"]))?, json!(["x"]));
    assert_eq!(
        client.call_value("typed", json!({ "name": "n", "count": 3 }))?,
        json!("n:3")
    );

    match client.call_value("fail", Value::Null) {
        Err(ClientError::Rpc(error)) => {
            assert_eq!(error.code, 1010);
            assert_eq!(error.message, "no such contact");
            assert_eq!(error.data, Some(json!({ "kind": "not_found" })));
        }
        other => return Err(format!("fail answered {other:?}").into()),
    }
    assert_eq!(
        call_error(&mut client, "typed", json!({ "name": 5, "count": "three" }))?,
        api::error::INVALID_PARAMS
    );
    assert_eq!(
        call_error(&mut client, "typed", json!([]))?,
        api::error::INVALID_PARAMS
    );
    assert_eq!(
        call_error(&mut client, "no.such.method", json!({}))?,
        api::error::METHOD_NOT_FOUND
    );
    assert_works(&mut client)
}

#[test]
fn malformed_input_is_answered_and_the_connection_carries_on() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut raw = server.raw()?;
    let cases: &[(&[u8], i64, Value)] = &[
        (b"{not json", -32700, Value::Null),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"} trailing",
            -32700,
            Value::Null,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xff\"]}",
            -32700,
            Value::Null,
        ),
        (b"\xfe\xff{}", -32700, Value::Null),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"x\":\"\xc3\"}",
            -32700,
            Value::Null,
        ),
        (b"42", -32600, Value::Null),
        (b"\"a string\"", -32600, Value::Null),
        (b"null", -32600, Value::Null),
        (b"{}", -32600, Value::Null),
        (b"{\"foo\":1}", -32600, Value::Null),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":5}",
            -32600,
            json!(7),
        ),
        (
            b"{\"jsonrpc\":\"1.0\",\"id\":\"x\",\"method\":\"echo\"}",
            -32600,
            json!("x"),
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":-1,\"method\":\"echo\"}",
            -32600,
            Value::Null,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"echo\"}",
            -32600,
            Value::Null,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"nope\"}",
            -32601,
            json!(8),
        ),
    ];
    for (line, code, id) in cases {
        raw.send(line)?;
        raw.send(b"\n")?;
        let answer = raw.message()?;
        let shown = String::from_utf8_lossy(line);
        assert_eq!(answer["error"]["code"], json!(code), "{shown} -> {answer}");
        assert_eq!(answer["id"], *id, "{shown} -> {answer}");
        assert_eq!(answer["jsonrpc"], "2.0");
        let ok = raw.ask(r#"{"jsonrpc":"2.0","id":99,"method":"echo","params":[1]}"#)?;
        assert_eq!(
            ok,
            json!({ "jsonrpc": "2.0", "id": 99, "result": [1] }),
            "after {shown}"
        );
    }

    // Empty and blank lines are ignored; CRLF is fine.
    raw.send(b"\n\n   \n\t\r\n")?;
    let ok = raw.ask("{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"echo\",\"params\":[2]}\r")?;
    assert_eq!(ok["id"], "s");
    assert_eq!(ok["result"], json!([2]));
    Ok(())
}

#[test]
fn a_line_longer_than_the_limit_is_refused_skipped_and_not_fatal() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut raw = server.raw()?;
    // 10 MiB of a request that never ends, then a good one on the next line.
    let mut long = br#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[""#.to_vec();
    long.resize(10 * 1024 * 1024, b'a');
    long.extend_from_slice(b"\"]}\n");
    raw.send(&long)?;
    let answer = raw.message()?;
    assert_eq!(
        answer,
        json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32600,
                "message": format!("Invalid request: line longer than {} bytes", api::MAX_LINE_LEN),
            }
        })
    );
    let ok = raw.ask(r#"{"jsonrpc":"2.0","id":2,"method":"echo","params":[3]}"#)?;
    assert_eq!(ok["id"], 2);
    assert_eq!(ok["result"], json!([3]));
    Ok(())
}

#[test]
fn the_line_limit_is_exact() -> TestResult {
    let limits = ServerLimits {
        max_line_len: 64,
        ..ServerLimits::default()
    };
    let server = TestServer::start(limits)?;
    let mut raw = server.raw()?;
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}"#;
    let exact = format!("{request:<64}");
    assert_eq!(exact.len(), 64);
    assert_eq!(raw.ask(&exact)?["result"], json!([1]));
    let over = format!("{request:<65}");
    let answer = raw.ask(&over)?;
    assert_eq!(answer["error"]["code"], -32600);
    assert_eq!(
        answer["error"]["message"],
        "Invalid request: line longer than 64 bytes"
    );
    // A long line that arrives in pieces is skipped to its end, whatever the pieces.
    raw.send(&[b' '; 50])?;
    raw.send(&[b' '; 50])?;
    raw.send(b"x\n")?;
    assert_eq!(raw.message()?["error"]["code"], -32600);
    assert_eq!(raw.ask(request)?["result"], json!([1]));
    Ok(())
}

#[test]
fn notifications_run_and_are_not_answered() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut raw = server.raw()?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"bump\"}\n")?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"bump\",\"params\":null}\n")?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"async_echo\",\"params\":[1]}\n")?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"no.such.method\"}\n")?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"fail\"}\n")?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"test.subscribe\"}\n")?;
    // Were any of them answered, that answer would come before this one.
    let answer = raw.ask(r#"{"jsonrpc":"2.0","id":1,"method":"bumps"}"#)?;
    assert_eq!(answer, json!({ "jsonrpc": "2.0", "id": 1, "result": 2 }));
    assert_eq!(server.live_subscriptions(), 0);
    Ok(())
}

#[test]
fn batches_answer_in_one_line() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut raw = server.raw()?;
    let answer = raw.ask(
        r#"[{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},
            {"jsonrpc":"2.0","method":"bump"},
            {"jsonrpc":"2.0","id":2,"method":"async_echo","params":[2]},
            {"jsonrpc":"2.0","id":3,"method":"fail"},
            {"jsonrpc":"2.0","id":4,"method":"nope"},
            {"jsonrpc":"2.0","id":5},
            7]"#
        .replace('\n', "")
        .as_str(),
    )?;
    let answers = answer
        .as_array()
        .ok_or("a batch is answered with an array")?;
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(
        ids,
        [
            &json!(1),
            &json!(2),
            &json!(3),
            &json!(4),
            &json!(5),
            &Value::Null
        ]
    );
    assert_eq!(answers[0]["result"], json!([1]));
    assert_eq!(answers[1]["result"], json!([2]));
    assert_eq!(answers[2]["error"]["code"], 1010);
    assert_eq!(answers[3]["error"]["code"], -32601);
    assert_eq!(answers[4]["error"]["code"], -32600);
    assert_eq!(answers[5]["error"]["code"], -32600);

    let sync_only = raw.ask(r#"[{"jsonrpc":"2.0","id":"a","method":"echo","params":[1]}]"#)?;
    assert_eq!(
        sync_only,
        json!([{ "jsonrpc": "2.0", "id": "a", "result": [1] }])
    );

    let empty = raw.ask("[]")?;
    assert_eq!(empty["error"]["code"], -32600);
    assert_eq!(empty["id"], Value::Null);

    let too_long = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","id":1,"method":"echo"}"#; 101].join(",")
    );
    let answer = raw.ask(&too_long)?;
    assert_eq!(answer["error"]["code"], -32600);
    assert_eq!(
        answer["error"]["message"],
        "Invalid request: batch of 101 requests, at most 100 allowed"
    );
    let broken = raw.ask(r#"[{"jsonrpc":"2.0","id":1,"method":"echo"},"#)?;
    assert_eq!(broken["error"]["code"], -32700);

    // Only notifications: no answer at all, so the next line is the next call's.
    raw.send(br#"[{"jsonrpc":"2.0","method":"bump"},{"jsonrpc":"2.0","method":"async_echo"}]"#)?;
    raw.send(b"\n")?;
    let bumps = raw.ask(r#"{"jsonrpc":"2.0","id":9,"method":"bumps"}"#)?;
    assert_eq!(bumps, json!({ "jsonrpc": "2.0", "id": 9, "result": 2 }));
    Ok(())
}

#[test]
fn a_subscription_in_a_batch_is_answered_on_its_own_line_first() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut raw = server.raw()?;
    raw.send(
        br#"[{"jsonrpc":"2.0","id":1,"method":"test.subscribe"},{"jsonrpc":"2.0","id":2,"method":"async_echo","params":[2]}]"#,
    )?;
    raw.send(b"\n")?;
    let first = raw.message()?;
    assert_eq!(
        first["id"], 1,
        "the subscription's answer comes first: {first}"
    );
    let subscription = first["result"].clone();
    let mut batch = None;
    while batch.is_none() {
        let message = raw.message()?;
        if message["method"] == "test.event" {
            assert_eq!(message["params"]["subscription"], subscription);
        } else {
            batch = Some(message);
        }
    }
    assert_eq!(
        batch,
        Some(json!([{ "jsonrpc": "2.0", "id": 2, "result": [2] }]))
    );
    Ok(())
}

#[test]
fn a_slow_call_does_not_hold_up_the_others() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut raw = server.raw()?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"slow\"}\n")?;
    let status = raw.ask(r#"{"jsonrpc":"2.0","id":2,"method":"daemon.status"}"#)?;
    assert_eq!(status["id"], 2);
    assert_eq!(status["result"]["state"], "locked");
    let echo = raw.ask(r#"{"jsonrpc":"2.0","id":3,"method":"async_echo","params":[3]}"#)?;
    assert_eq!(echo["id"], 3);
    server.toy.release_slow.notify_one();
    let slow = raw.message()?;
    assert_eq!(
        slow,
        json!({ "jsonrpc": "2.0", "id": 1, "result": "slow done" })
    );
    Ok(())
}

#[test]
fn subscriptions_notify_unsubscribe_and_end_with_their_connection() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut client = server.client()?;
    let id = client.call_value("test.subscribe", json!({ "interval_ms": 1 }))?;
    for expected in 0..3 {
        let notification = client.next_notification()?;
        assert_eq!(notification.method, "test.event");
        assert_eq!(notification.subscription, id);
        assert_eq!(notification.result, json!({ "n": expected }));
    }
    assert_eq!(server.live_subscriptions(), 1);
    assert_eq!(
        client.call_value("test.unsubscribe", json!([id]))?,
        json!(true)
    );
    wait_until("the unsubscribed task ends", || {
        server.live_subscriptions() == 0
    })?;
    // An id that is no (longer a) subscription of this connection is error 1024, as the API
    // documents, not jsonrpsee's `false`.
    assert_unknown_subscription(&mut client, &id)?;
    assert_unknown_subscription(&mut client, &json!(12345))?;

    // Another connection cannot end this connection's subscription.
    let id = client.call_value("test.subscribe", json!({ "interval_ms": 1 }))?;
    let mut other = server.client()?;
    assert_unknown_subscription(&mut other, &id)?;
    assert_eq!(server.live_subscriptions(), 1);

    drop(client);
    wait_until("closing the connection ends its subscription", || {
        server.live_subscriptions() == 0
    })?;
    assert_works(&mut other)
}

/// Unsubscribing `id` fails with error 1024 `unknown_subscription`.
fn assert_unknown_subscription(client: &mut Client, id: &Value) -> TestResult {
    match client.call_value("test.unsubscribe", json!([id])) {
        Err(ClientError::Rpc(error)) => {
            assert_eq!(error.code, 1024, "{error}");
            assert_eq!(
                error.data,
                Some(json!({ "kind": "unknown_subscription" })),
                "{error}"
            );
            Ok(())
        }
        other => Err(format!("unsubscribing {id} gave {other:?}").into()),
    }
}

#[test]
fn subscriptions_per_connection_are_limited() -> TestResult {
    let limits = ServerLimits {
        max_subscriptions_per_connection: 2,
        ..ServerLimits::default()
    };
    let server = TestServer::start(limits)?;
    let mut client = server.client()?;
    let first = client.call_value("test.subscribe", json!({ "interval_ms": 1000 }))?;
    client.call_value("test.subscribe", json!({ "interval_ms": 1000 }))?;
    assert_eq!(
        call_error(&mut client, "test.subscribe", Value::Null)?,
        -32006
    );
    // Another connection has its own allowance.
    server.client()?.call_value("test.subscribe", Value::Null)?;
    assert_eq!(
        client.call_value("test.unsubscribe", json!([first]))?,
        json!(true)
    );
    wait_until("the subscription ends", || server.live_subscriptions() == 1)?;
    client.call_value("test.subscribe", json!({ "interval_ms": 1000 }))?;
    Ok(())
}

#[test]
fn a_client_that_never_reads_is_cut_off_and_others_are_served() -> TestResult {
    let limits = ServerLimits {
        write_timeout: Duration::from_millis(200),
        outgoing_buffer: 8,
        ..ServerLimits::default()
    };
    let server = TestServer::start(limits)?;
    let mut good = server.client()?;

    // A chatty subscription nobody reads.
    let mut mute = server.raw()?;
    mute.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"test.subscribe\",\"params\":{\"interval_ms\":0}}\n")?;
    // Requests whose answers nobody reads; the writing blocks once the daemon stops reading,
    // so it has a thread of its own.
    let mut deaf = server.raw()?;
    let mut deaf_writer = deaf.writer.try_clone()?;
    let request = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"{}\"]}}\n",
        "x".repeat(64 * 1024)
    );
    let flood = std::thread::spawn(move || {
        for _ in 0..400 {
            if deaf_writer.write_all(request.as_bytes()).is_err() {
                return;
            }
        }
    });

    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(400) {
        assert_works(&mut good)?;
    }
    wait_until("the chatty subscription ends", || {
        server.live_subscriptions() == 0
    })?;
    mute.read_to_end()?;
    deaf.read_to_end()?;
    flood.join().map_err(|_| "the flooding thread panicked")?;
    assert_works(&mut good)
}

#[test]
fn connections_beyond_the_cap_get_a_busy_line_and_are_closed() -> TestResult {
    let limits = ServerLimits {
        max_connections: 2,
        ..ServerLimits::default()
    };
    let server = TestServer::start(limits)?;
    let mut first = server.client()?;
    let mut second = server.client()?;
    // Subscribed, so neither is idle and neither can be closed to make room.
    first.call_value("test.subscribe", json!({ "interval_ms": 1000 }))?;
    second.call_value("test.subscribe", json!({ "interval_ms": 1000 }))?;

    let mut third = server.raw()?;
    let busy = third.message()?;
    assert_eq!(busy["error"]["code"], -32009);
    assert_eq!(busy["id"], Value::Null);
    assert_eq!(third.line()?, None, "then the connection is closed");

    drop(first);
    wait_until("a place is free again", || {
        server
            .client()
            .and_then(|mut c| Ok(c.call_value("echo", json!([]))?))
            .is_ok()
    })?;
    assert_works(&mut second)
}

/// When every place is taken, a new connection is served all the same: the connection idle
/// the longest (no subscription, nothing in flight) is closed to make room. Subscribed
/// connections are never closed for it; only when every connection is subscribed does a new
/// one get the busy line.
#[test]
fn a_full_server_closes_the_longest_idle_connection_for_a_new_one() -> TestResult {
    let limits = ServerLimits {
        max_connections: 3,
        ..ServerLimits::default()
    };
    let server = TestServer::start(limits)?;
    let mut subscribed = server.client()?;
    subscribed.call_value("test.subscribe", json!({ "interval_ms": 1000 }))?;
    let mut oldest = server.raw()?;
    assert_eq!(
        oldest.ask(r#"{"jsonrpc":"2.0","id":1,"method":"bumps"}"#)?["result"],
        0
    );
    let mut newer = server.raw()?;
    assert_eq!(
        newer.ask(r#"{"jsonrpc":"2.0","id":1,"method":"bumps"}"#)?["result"],
        0
    );

    // Full: the fourth connection is served, and the idle one that asked longest ago is gone.
    let mut fourth = server.client()?;
    assert_works(&mut fourth)?;
    assert_eq!(
        oldest.line()?,
        None,
        "the longest-idle connection is closed"
    );
    assert_eq!(
        newer.ask(r#"{"jsonrpc":"2.0","id":2,"method":"bumps"}"#)?["result"],
        0,
        "the other idle connection is still served"
    );
    assert_works(&mut subscribed)?;

    // With every connection subscribed, there is nothing to close: busy.
    drop(newer);
    drop(fourth);
    let mut kept = Vec::new();
    wait_until("two more connections hold a subscription", || {
        // A connection may be closed to make room before it subscribes; then take another.
        if let Ok(mut client) = server.client()
            && client
                .call_value("test.subscribe", json!({ "interval_ms": 1000 }))
                .is_ok()
        {
            kept.push(client);
        }
        kept.len() == 2
    })?;
    let mut refused = server.raw()?;
    let busy = refused.message()?;
    assert_eq!(busy["error"]["code"], -32009);
    assert_eq!(refused.line()?, None);
    assert_works(&mut subscribed)
}

/// A connection that sends nothing for the idle timeout is closed; one with a subscription is
/// not, however long it stays silent. (The timeout is short; the test waits for the close
/// itself, not for a time.)
#[test]
fn an_idle_connection_is_closed_and_a_subscribed_one_is_not() -> TestResult {
    let limits = ServerLimits {
        idle_timeout: Duration::from_millis(50),
        ..ServerLimits::default()
    };
    let server = TestServer::start(limits)?;
    let mut subscribed = server.client()?;
    let id = subscribed.call_value("test.subscribe", json!({ "interval_ms": 60_000 }))?;
    for _ in 0..2 {
        // Each idle connection opened after the subscribed one's last request is closed, so
        // by then the subscribed one has been silent past the timeout at least as long.
        let mut idle = server.raw()?;
        assert_eq!(idle.read_to_end()?, 0, "closed without a word");
    }
    let mut asked_once = server.raw()?;
    assert_eq!(
        asked_once.ask(r#"{"jsonrpc":"2.0","id":1,"method":"bumps"}"#)?["result"],
        0
    );
    assert_eq!(
        asked_once.line()?,
        None,
        "closed after its answer, once idle"
    );
    assert_works(&mut subscribed)?;
    assert_eq!(
        subscribed.call_value("test.unsubscribe", json!([id]))?,
        json!(true)
    );
    Ok(())
}

#[test]
fn each_connection_has_its_own_id_in_the_extensions() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut a = server.client()?;
    let mut b = server.client()?;
    let id_a = a.call_value("conn_id", Value::Null)?;
    let id_b = b.call_value("conn_id", Value::Null)?;
    assert!(id_a.as_u64().is_some_and(|id| id > 0), "{id_a}");
    assert!(id_b.as_u64().is_some_and(|id| id > 0), "{id_b}");
    assert_ne!(id_a, id_b);
    assert_eq!(a.call_value("conn_id", Value::Null)?, id_a);
    Ok(())
}

#[test]
fn a_panicking_method_is_an_internal_error() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut client = server.client()?;
    assert_eq!(call_error(&mut client, "panic_sync", Value::Null)?, -32603);
    assert_eq!(call_error(&mut client, "panic_async", Value::Null)?, -32603);
    assert_works(&mut client)
}

#[test]
fn a_response_over_the_limit_is_replaced_by_an_error() -> TestResult {
    let limits = ServerLimits {
        max_response_len: 1024,
        ..ServerLimits::default()
    };
    let server = TestServer::start(limits)?;
    let mut client = server.client()?;
    assert_eq!(
        client.call_value("big", json!([100]))?,
        json!("x".repeat(100))
    );
    assert_eq!(call_error(&mut client, "big", json!([2000]))?, -32008);
    let mut raw = server.raw()?;
    let batch = raw.ask(
        r#"[{"jsonrpc":"2.0","id":1,"method":"big","params":[600]},{"jsonrpc":"2.0","id":2,"method":"big","params":[600]}]"#,
    )?;
    assert_eq!(batch["error"]["code"], -32011);
    assert_works(&mut client)
}

#[test]
fn a_half_closed_connection_gets_its_answers() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut raw = server.raw()?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"async_echo\",\"params\":[1]}\n")?;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[2]}")?;
    raw.writer.shutdown(std::net::Shutdown::Write)?;
    let mut ids = vec![raw.message()?["id"].clone(), raw.message()?["id"].clone()];
    ids.sort_by_key(|id| id.as_u64());
    assert_eq!(ids, [json!(1), json!(2)]);
    assert_eq!(raw.line()?, None);
    Ok(())
}

#[test]
fn shutdown_closes_connections_ends_subscriptions_and_removes_the_socket() -> TestResult {
    let mut server = TestServer::start(ServerLimits::default())?;
    let mut subscriber = server.client()?;
    subscriber.call_value("test.subscribe", json!({ "interval_ms": 1 }))?;
    let mut waiting = server.raw()?;
    waiting.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"slow\"}\n")?;
    let mut idle = server.raw()?;
    assert_eq!(
        idle.ask(r#"{"jsonrpc":"2.0","id":1,"method":"bumps"}"#)?["result"],
        0
    );

    server.stop()?;
    assert!(!server.path.exists(), "the socket file is removed");
    assert_eq!(idle.line()?, None);
    waiting.read_to_end()?;
    subscriber.set_read_timeout(Some(PATIENCE))?;
    while subscriber.next_notification().is_ok() {}
    wait_until("the subscription ends", || server.live_subscriptions() == 0)?;
    Ok(())
}

#[test]
fn dropping_the_serve_future_closes_connections_and_removes_the_socket() -> TestResult {
    let mut server = TestServer::start(ServerLimits::default())?;
    let mut subscriber = server.client()?;
    subscriber.call_value("test.subscribe", json!({ "interval_ms": 1 }))?;
    let mut idle = server.raw()?;
    assert_eq!(
        idle.ask(r#"{"jsonrpc":"2.0","id":1,"method":"bumps"}"#)?["result"],
        0
    );

    let task = server.task.take().ok_or("the server runs")?;
    task.abort();
    let _ = server.runtime.block_on(task);
    assert!(!server.path.exists(), "the socket file is removed");
    assert_eq!(idle.line()?, None);
    wait_until("the subscription ends", || server.live_subscriptions() == 0)?;
    Ok(())
}

/// A peer running as another uid is dropped without an answer. The peer is a python3 process
/// started with another uid and gid (`CommandExt::uid`, so the test needs root); without root
/// or python3 the test fails under `CHATD_REQUIRE_SYSTEM_TOOLS` and is skipped (with a message)
/// otherwise.
#[test]
fn another_user_is_refused() -> TestResult {
    use std::os::unix::process::CommandExt as _;

    let test = "another_user_is_refused";
    if !is_root() {
        return prerequisite_missing(test, "needs root to connect as another uid");
    }
    let python_works = std::process::Command::new("python3")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !python_works {
        return prerequisite_missing(test, "python3 does not run");
    }
    // The socket must be reachable by uid 65534 so that the peer check itself is what refuses
    // it: open the directories and the socket up after binding.
    let dir = tempfile::tempdir()?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
    let run = dir.path().join("run");
    let path = run.join("chatd.sock");
    let listener = RpcListener::bind(&path)?;
    fs::set_permissions(&run, fs::Permissions::from_mode(0o777))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
    let server = TestServer::serve(dir, listener, ServerLimits::default())?;

    let script = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
print("uid %d" % os.getuid())
s.connect(sys.argv[1])
try:
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["hello"]}\n')
except OSError:
    pass
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print("eof %r" % data)
except socket.timeout:
    print("timeout %r" % data)
except ConnectionResetError:
    print("reset %r" % data)
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&server.path)
        .uid(65534)
        .gid(65534)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python3 failed: {stderr}");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("uid 65534"),
        "the peer runs as another uid"
    );
    let outcome = lines.next().unwrap_or_default();
    assert!(
        outcome == "eof b''" || outcome == "reset b''",
        "uid 65534 got {stdout:?} ({stderr})"
    );
    // Our own client is still served (once the directory is private again, as it requires).
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700))?;
    assert_works(&mut server.client()?)
}

/// A test whose prerequisite is missing: an error under `CHATD_REQUIRE_SYSTEM_TOOLS` (as CI
/// sets it), else a message saying the test was skipped.
fn prerequisite_missing(test: &str, why: &str) -> TestResult {
    if std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_some() {
        return Err(format!("{test}: {why}, and CHATD_REQUIRE_SYSTEM_TOOLS is set").into());
    }
    eprintln!("{test}: SKIPPED: {why}");
    Ok(())
}

#[test]
fn round_trip_of_daemon_status() -> TestResult {
    let server = TestServer::start(ServerLimits::default())?;
    let mut client = server.client()?;
    for _ in 0..1000 {
        client.call_value("daemon.status", Value::Null)?;
    }
    let mut times = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let started = Instant::now();
        client.call_value("daemon.status", Value::Null)?;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "daemon.status round trip over 10,000 calls: p50 {:?}, p99 {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    );
    Ok(())
}
