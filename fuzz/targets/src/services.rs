//! Targets for the decoders of the daemon and the relay: invite codes, the relay's HTTP request
//! head, and chatd's RPC params and connection (line reader and dispatcher). They reach
//! crate-private code through the hidden `fuzzing` modules of `chatd` and `chat-relay`.

use std::sync::OnceLock;

use serde_json::Value;

/// The line limit the RPC connection target serves with: small, so that fuzzer-sized inputs
/// reach the long-line path.
pub const RPC_MAX_LINE_LEN: usize = 256;

/// Invite codes (`invites.accept`): a code that parses writes out to a code that parses to the
/// same text again.
pub fn invite_code(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some(written) = chatd::fuzzing::invite_code(&text) else {
        return;
    };
    let again = chatd::fuzzing::invite_code(&written);
    assert_eq!(
        again.as_deref(),
        Some(written.as_str()),
        "an invite code changed through its text"
    );
}

/// The relay's HTTP request-head reader. The first byte sets how many bytes each read
/// delivers; the head must route the same whether the request arrives in one piece, in
/// those reads, or byte by byte, and the bytes it hands on must be the start of the input.
pub fn http_head(data: &[u8]) {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let chunked = chat_relay::fuzzing::read_head(input, usize::from(chunk));
    let whole = chat_relay::fuzzing::read_head(input, usize::MAX);
    let bytewise = chat_relay::fuzzing::read_head(input, 1);
    for head in [&chunked, &whole, &bytewise].into_iter().flatten() {
        assert!(
            input.starts_with(&head.read),
            "the head reader handed on bytes that were not read"
        );
        assert_eq!(
            head.route,
            bytewise.as_ref().map_or(head.route, |b| b.route),
            "the route depends on how the request arrived"
        );
    }
}

/// RPC params: the first byte picks a documented method, the rest is its `params` as JSON
/// text, parsed as the daemon parses them (with the address, handle and invite fields run
/// through the daemon's parsers).
pub fn rpc_params(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let methods = api::methods::ALL;
    let Some(doc) = methods.get(usize::from(pick) % methods.len()) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let params = (!text.is_empty()).then_some(text);
    let _ = chatd::fuzzing::params(doc.name, params);
}

/// The RPC connection: the input is what a client sends on the socket (lines of JSON-RPC, or
/// anything else) before it closes its sending side. Every line the daemon answers with must be
/// a JSON-RPC 2.0 response, a batch of them, or a notification.
pub fn rpc_connection(data: &[u8]) {
    static METHODS: OnceLock<chatd::fuzzing::Methods> = OnceLock::new();
    let methods = METHODS.get_or_init(chatd::fuzzing::params_methods).clone();
    let output = chatd::fuzzing::rpc_connection(methods, RPC_MAX_LINE_LEN, data)
        .unwrap_or_else(|e| panic!("the RPC connection failed: {e}"));
    let output = std::str::from_utf8(&output)
        .unwrap_or_else(|e| panic!("the daemon wrote something that is not UTF-8: {e}"));
    assert!(
        output.is_empty() || output.ends_with('\n'),
        "the daemon's last line is not terminated"
    );
    for line in output.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the daemon wrote a line that is not JSON ({e}): {line}"));
        let entries = match &value {
            Value::Array(entries) if !entries.is_empty() => entries.iter().collect(),
            Value::Array(_) => panic!("the daemon answered with an empty batch"),
            _ => vec![&value],
        };
        for entry in entries {
            assert_eq!(
                entry.get("jsonrpc"),
                Some(&Value::from("2.0")),
                "not a JSON-RPC 2.0 message: {line}"
            );
            let is_response = entry.get("id").is_some()
                && (entry.get("result").is_some() != entry.get("error").is_some());
            let is_notification = entry.get("method").is_some() && entry.get("id").is_none();
            assert!(
                is_response || is_notification,
                "neither a response nor a notification: {line}"
            );
        }
    }
}
