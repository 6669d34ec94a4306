//! The account lifecycle through real processes: no account -> locked -> unlocked, wrong
//! passphrases, lock dropping the relay connection, restart locked, `--passphrase-file`.

use api::client::ClientError;
use serde_json::json;
use tests::{DaemonProcess, RelayProcess, wait_for};

fn code_of(result: Result<serde_json::Value, ClientError>) -> Option<i32> {
    match result {
        Err(ClientError::Rpc(e)) => Some(e.code),
        _ => None,
    }
}

#[test]
fn lock_unlock_and_restart_follow_the_state_machine() {
    let relay = RelayProcess::start();
    let mut daemon = DaemonProcess::start(&relay.url());
    let mut client = daemon.client();
    let status = daemon.call("daemon.status", json!({}));
    assert_eq!(status["state"], "no_account");
    assert_eq!(
        code_of(client.call_value("account.info", json!({}))),
        Some(1001),
        "no account yet"
    );
    assert_eq!(
        code_of(client.call_value("account.create", json!({ "name": "Eve" }))),
        Some(1006),
        "a passphrase or an explicit no_passphrase is required"
    );
    daemon.call(
        "account.create",
        json!({ "name": "Eve", "passphrase": "correct horse" }),
    );
    daemon.wait_connected();
    assert_eq!(
        code_of(client.call_value(
            "account.create",
            json!({ "name": "Eve", "no_passphrase": true })
        )),
        Some(1003),
        "one account per data directory"
    );

    daemon.call("account.lock", json!({}));
    let status = daemon.call("daemon.status", json!({}));
    assert_eq!(status["state"], "locked");
    assert_eq!(
        status["connection"], "offline",
        "lock drops the relay connection"
    );
    assert_eq!(
        status["address"],
        serde_json::Value::Null,
        "nothing secret-derived is shown"
    );
    assert_eq!(
        code_of(client.call_value("contacts.list", json!({}))),
        Some(1002)
    );
    assert_eq!(
        code_of(client.call_value("account.unlock", json!({ "passphrase": "wrong" }))),
        Some(1004)
    );
    daemon.call("account.unlock", json!({ "passphrase": "correct horse" }));
    daemon.wait_connected();
    assert_eq!(
        code_of(client.call_value("account.unlock", json!({ "passphrase": "correct horse" }))),
        Some(1005)
    );

    // A protected account starts locked after a restart.
    daemon.restart();
    assert_eq!(daemon.call("daemon.status", json!({}))["state"], "locked");
}

#[test]
fn a_passphrase_file_unlocks_at_start() {
    let relay = RelayProcess::start();
    let secret_dir = tests::private_dir();
    let file = secret_dir.path().join("passphrase");
    std::fs::write(&file, "hunter2 hunter2\n").unwrap_or_else(|e| panic!("{e}"));
    let file_arg = file.display().to_string();
    let mut daemon = DaemonProcess::start_with(&relay.url(), &["--passphrase-file", &file_arg]);
    // No account yet: the file is read, the unlock fails quietly, the daemon serves.
    daemon.call(
        "account.create",
        json!({ "name": "Fay", "passphrase": "hunter2 hunter2" }),
    );
    daemon.restart();
    wait_for("the daemon to unlock from the file", || {
        let status = daemon.call("daemon.status", json!({}));
        (status["state"] == "unlocked").then_some(())
    });
    daemon.wait_connected();
}
