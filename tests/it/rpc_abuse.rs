//! Abuse of the RPC socket against a real daemon: malformed lines, wrong params, unknown
//! methods, a 10 MiB line, a client that never reads, and a peer of another uid. After each the
//! daemon serves other clients, and the connection itself carries on wherever the wire rules
//! say it does (chatd/src/rpc/mod.rs).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use api::client::Client;
use serde_json::{Value, json};
use tests::{DaemonProcess, PATIENCE, shared_relay, wait_for};

/// Checks that a fresh connection is served.
fn serves_others(daemon: &DaemonProcess) {
    let status = daemon.call("daemon.status", json!({}));
    assert!(status["pid"].is_u64(), "{status}");
}

/// Checks that this connection is still served.
fn still_works(client: &mut Client) {
    let status = client
        .call_value("daemon.status", json!({}))
        .unwrap_or_else(|e| panic!("the connection stopped working: {e}"));
    assert!(status["pid"].is_u64(), "{status}");
}

fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error response: {response}"))
}

#[test]
fn malformed_requests_get_standard_errors_and_the_connection_carries_on() {
    let relay = shared_relay();
    let daemon = DaemonProcess::start(&relay.url());
    let mut client = daemon.client();
    let cases: &[(&str, i64)] = &[
        ("{not json", -32700),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":", -32700),
        ("42", -32600),
        ("{\"jsonrpc\":\"2.0\",\"id\":2}", -32600),
        (
            "{\"jsonrpc\":\"1.0\",\"id\":3,\"method\":\"daemon.status\"}",
            -32600,
        ),
        ("[]", -32600),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"no.such_method\"}",
            -32601,
        ),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"messages.history\",\"params\":{\"conversation\":5}}",
            -32602,
        ),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"messages.send\",\"params\":{\"to\":\"a\",\"text\":\"b\",\"txet\":1}}",
            -32602,
        ),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"account.create\",\"params\":{\"name\":[]}}",
            -32602,
        ),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"events.subscribe\",\"params\":{\"since\":\"yesterday\"}}",
            -32602,
        ),
    ];
    for (line, code) in cases {
        let response = client
            .send_raw_line(line)
            .unwrap_or_else(|e| panic!("no answer to {line}: {e}"));
        assert_eq!(error_code(&response), *code, "{line} -> {response}");
        still_works(&mut client);
        serves_others(&daemon);
    }

    // Bytes that are not UTF-8 at all, on a raw connection.
    let mut raw =
        UnixStream::connect(daemon.socket()).unwrap_or_else(|e| panic!("connecting: {e}"));
    raw.set_read_timeout(Some(PATIENCE))
        .unwrap_or_else(|e| panic!("read timeout: {e}"));
    raw.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}\n")
        .unwrap_or_else(|e| panic!("writing: {e}"));
    raw.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"daemon.status\"}\n")
        .unwrap_or_else(|e| panic!("writing: {e}"));
    let mut reader = BufReader::new(raw);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading: {e}"));
        answers.push(
            serde_json::from_str::<Value>(&line)
                .unwrap_or_else(|e| panic!("the daemon wrote {line:?}: {e}")),
        );
    }
    assert_eq!(error_code(&answers[0]), -32700, "{answers:?}");
    assert_eq!(answers[1]["id"], 2, "then the next request is answered");
    assert!(answers[1]["result"]["pid"].is_u64(), "{answers:?}");
    serves_others(&daemon);
}

#[test]
fn a_ten_mib_line_is_refused_and_the_connection_carries_on() {
    let relay = shared_relay();
    let daemon = DaemonProcess::start(&relay.url());
    let mut client = daemon.client();
    let padding = "a".repeat(10 * 1024 * 1024);
    let line = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\",\"params\":{{\"pad\":\"{padding}\"}}}}"
    );
    let response = client
        .send_raw_line(&line)
        .unwrap_or_else(|e| panic!("no answer to a 10 MiB line: {e}"));
    assert_eq!(error_code(&response), -32600, "{response}");
    assert!(response["id"].is_null(), "{response}");
    still_works(&mut client);
    serves_others(&daemon);
}

#[test]
fn a_client_that_never_reads_is_cut_off_without_holding_up_others() {
    let relay = shared_relay();
    let daemon = DaemonProcess::start(&relay.url());
    let mut greedy =
        UnixStream::connect(daemon.socket()).unwrap_or_else(|e| panic!("connecting: {e}"));
    greedy
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap_or_else(|e| panic!("write timeout: {e}"));
    // Ask for large answers and never read one, until the socket buffers are full both ways.
    let request =
        |id: u64| format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"rpc.discover\"}}\n");
    // As fast as possible (no polling pause), so the buffers are full long before the
    // daemon's write timeout.
    let mut id = 0;
    let start = Instant::now();
    loop {
        id += 1;
        match greedy.write_all(request(id).as_bytes()) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("writing to the daemon after {id} requests: {e}"),
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the daemon took {id} requests without ever pushing back"
        );
    }
    for _ in 0..5 {
        serves_others(&daemon);
    }
    // The daemon gives up on it once a write has waited its write timeout (10 s).
    wait_for("the daemon to cut the greedy client off", || {
        id += 1;
        match greedy.write_all(request(id).as_bytes()) {
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                Some(())
            }
            _ => None,
        }
    });
    serves_others(&daemon);
}

#[test]
fn a_connection_from_another_uid_is_refused() {
    if api::paths::current_uid() != 0 {
        println!("not run: only root can connect as another uid");
        return;
    }
    let relay = shared_relay();
    let daemon = DaemonProcess::start(&relay.url());
    // chatd only creates its socket in a private directory; open the way for uid 65534 now.
    let socket = daemon.socket();
    let run_dir = socket
        .parent()
        .unwrap_or_else(|| panic!("the socket has a directory"));
    for (path, mode) in [(daemon.dir(), 0o711), (run_dir, 0o711), (&*socket, 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
    assert_eq!(
        tests::connect_as_peer(&socket, false),
        "answered",
        "a control: our own uid is served"
    );
    assert_eq!(tests::connect_as_peer(&socket, true), "refused");
    // Our own clients refuse a socket directory others can enter: close it again.
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", run_dir.display()));
    serves_others(&daemon);
}
