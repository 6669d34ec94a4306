//! Unit tests of autostart's decisions (the spawn itself is tested end to end in tests/it).

use super::*;

#[test]
fn extra_args_split_on_any_whitespace() {
    assert_eq!(
        split_args("  --data-dir /tmp/x\t--relay  ws://a:1/v1\n"),
        ["--data-dir", "/tmp/x", "--relay", "ws://a:1/v1"].map(OsString::from)
    );
    assert!(split_args("   ").is_empty());
}

#[test]
fn only_an_absent_or_refusing_socket_starts_chatd() {
    let unreachable = |kind| ClientError::Unreachable {
        path: "/x".into(),
        source: io::Error::from(kind),
    };
    assert!(nobody_listening(&unreachable(io::ErrorKind::NotFound)));
    assert!(nobody_listening(&unreachable(
        io::ErrorKind::ConnectionRefused
    )));
    assert!(!nobody_listening(&unreachable(
        io::ErrorKind::PermissionDenied
    )));
    assert!(!nobody_listening(&ClientError::Protocol("x".into())));
    let planted = ClientError::Untrusted {
        socket: "/x".into(),
        problem: api::trust::Untrusted {
            path: "/".into(),
            problem: "is open to other users".into(),
        },
    };
    assert!(
        !nobody_listening(&planted),
        "never start chatd over a planted socket"
    );
}
