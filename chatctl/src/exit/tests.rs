//! The exit-code mapping, the classification of errors and the JSON error document.

use std::io;

use anyhow::Context;
use api::client::RpcError;

use super::*;

fn rpc(code: i32) -> anyhow::Error {
    ClientError::Rpc(RpcError {
        code,
        message: "refused".to_owned(),
        data: None,
    })
    .into()
}

#[test]
fn every_error_code_has_a_deliberate_exit_code() {
    let expected = |code: ErrorCode| match code.name() {
        "no_account" | "locked" => LOCKED,
        "wrong_passphrase" => WRONG_PASSPHRASE,
        "not_found" | "no_devices" => NOT_FOUND,
        "untrusted_key_change" => UNTRUSTED_KEY_CHANGE,
        "relay_unreachable" | "relay_error" => RELAY,
        "invalid_address"
        | "invalid_handle"
        | "invalid_alias"
        | "invalid_invite"
        | "invalid_message"
        | "invalid_relay_url"
        | "passphrase_required"
        | "ambiguous_contact" => USAGE,
        _ => OTHER,
    };
    for &code in ErrorCode::ALL {
        assert_eq!(for_error_code(code), expected(code), "{code}");
        let class = classify(&rpc(code.code()));
        assert_eq!(class.status, expected(code), "{code}");
        assert_eq!(class.code, Some(code.code()));
        assert_eq!(class.kind, code.name());
    }
}

#[test]
fn the_codes_are_distinct_and_documented() {
    let all = [
        (OK, "success"),
        (OTHER, "any other error"),
        (USAGE, "usage"),
        (UNREACHABLE, "chatd unavailable"),
        (LOCKED, "locked"),
        (NOT_FOUND, "not found"),
        (UNTRUSTED_KEY_CHANGE, "identity key changed"),
        (TIMEOUT, "timed out"),
        (RELAY, "relay"),
        (WRONG_PASSPHRASE, "wrong passphrase"),
    ];
    let mut seen = std::collections::HashSet::new();
    for (code, words) in all {
        assert!(seen.insert(code), "{code} twice");
        let help = help();
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{code} ")))
            .unwrap_or_else(|| panic!("help() does not list {code}"));
        assert!(line.contains(words), "{line:?} should say {words:?}");
    }
    assert_eq!(
        CODES.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
        (OK..=WRONG_PASSPHRASE).collect::<Vec<_>>(),
        "CODES lists every code once, in order"
    );
    assert_eq!(USAGE, 2, "clap exits with 2 on a usage error");
}

#[test]
fn standard_json_rpc_errors_are_other_errors() {
    for (code, kind) in [
        (api::error::PARSE_ERROR, "parse_error"),
        (api::error::INVALID_REQUEST, "invalid_request"),
        (api::error::METHOD_NOT_FOUND, "method_not_found"),
        (api::error::INVALID_PARAMS, "invalid_params"),
        (api::error::INTERNAL_ERROR, "internal_error"),
        (-32001, "rpc_error"),
    ] {
        let class = classify(&rpc(code));
        assert_eq!(
            class,
            Classified {
                status: OTHER,
                code: Some(code),
                kind
            }
        );
    }
}

#[test]
fn connection_errors_mean_unreachable() {
    let unreachable: anyhow::Error = ClientError::Unreachable {
        path: "/nowhere".to_owned(),
        source: io::Error::from(io::ErrorKind::NotFound),
    }
    .into();
    assert_eq!(classify(&unreachable).status, UNREACHABLE);
    assert_eq!(classify(&unreachable).kind, "unreachable");

    let gone: anyhow::Error = ClientError::Io(io::Error::from(io::ErrorKind::UnexpectedEof)).into();
    assert_eq!(classify(&gone).status, UNREACHABLE);

    let garbage: anyhow::Error = ClientError::Protocol("not JSON".to_owned()).into();
    assert_eq!(classify(&garbage).status, OTHER);

    let planted: anyhow::Error = ClientError::Untrusted {
        socket: "/tmp/chatd-1000/chatd.sock".to_owned(),
        problem: api::trust::Untrusted {
            path: "/tmp/chatd-1000".to_owned(),
            problem: "belongs to uid 1001, not to us (uid 1000)".to_owned(),
        },
    }
    .into();
    assert_eq!(
        classify(&planted),
        Classified {
            status: UNREACHABLE,
            code: None,
            kind: "untrusted_socket"
        }
    );
}

/// chatd's "server is busy" answer (a connection beyond its cap) means chatd is unavailable
/// for now: exit 3, kind `busy`, not "any other error".
#[test]
fn a_busy_daemon_is_unavailable() {
    assert_eq!(
        classify(&rpc(api::error::SERVER_IS_BUSY)),
        Classified {
            status: UNREACHABLE,
            code: Some(api::error::SERVER_IS_BUSY),
            kind: "busy"
        }
    );
}

#[test]
fn classification_looks_through_context() {
    let err = Err::<(), _>(rpc(ErrorCode::Locked.code()))
        .context("while sending")
        .err()
        .unwrap_or_else(|| panic!("an error"));
    assert_eq!(classify(&err).status, LOCKED);

    let err = anyhow::Error::new(Failure::new(TIMEOUT, "timeout", "too slow")).context("outer");
    assert_eq!(
        classify(&err),
        Classified {
            status: TIMEOUT,
            code: None,
            kind: "timeout"
        }
    );

    let err = anyhow::Error::new(StdoutClosed).context("writing");
    assert_eq!(classify(&err).status, OK);

    assert_eq!(classify(&anyhow::anyhow!("something")).status, OTHER);
    assert_eq!(classify(&Failure::usage("bad").into()).status, USAGE);
}

#[test]
fn the_message_is_the_chain_without_repeats() {
    let err: anyhow::Error = ClientError::Unreachable {
        path: "/nowhere".to_owned(),
        source: io::Error::other("refused"),
    }
    .into();
    assert_eq!(
        chain_message(&err),
        "cannot reach chatd at /nowhere: refused"
    );

    let err = anyhow::anyhow!("inner").context("middle").context("outer");
    assert_eq!(chain_message(&err), "outer: middle: inner");
}

#[test]
fn the_json_error_document_has_code_kind_and_message() {
    let class = classify(&rpc(ErrorCode::NotFound.code()));
    let document = error_document(&class, "no contact bob");
    assert_eq!(
        document,
        json!({"error": {"code": 1010, "kind": "not_found", "message": "no contact bob", "exit_code": 5}})
    );
    let local = classify(&Failure::new(TIMEOUT, "timeout", "slow").into());
    assert_eq!(error_document(&local, "slow")["error"]["code"], json!(null));
}

#[test]
fn a_usage_error_message_is_clap_s_first_paragraph_without_its_prefix() {
    use clap::Parser;
    let err = crate::cli::Cli::try_parse_from(["chatctl", "init"])
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    let message = usage_message(&err);
    assert!(
        message.starts_with("the following required arguments were not provided:"),
        "{message}"
    );
    assert!(message.contains("--name <NAME>"), "{message}");
    assert!(
        !message.contains("Usage:") && !message.contains('\n'),
        "{message}"
    );
}
