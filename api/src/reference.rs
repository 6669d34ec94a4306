//! The human API reference (`docs/API.md`), rendered from the OpenRPC document so the two can
//! never disagree: a test renders it and compares it with the committed file
//! (`CHATD_REGENERATE_DOCS=1 cargo test -p api` rewrites the file).

use std::fmt::Write as _;

use serde_json::Value;

fn schema_text(schema: &Value) -> String {
    serde_json::to_string_pretty(schema).unwrap_or_default()
}

/// Renders the reference from an OpenRPC document made by [`crate::openrpc::document`].
pub fn markdown(doc: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# chatd local API reference\n");
    let _ = writeln!(
        out,
        "<!-- Generated from `rpc.discover` by `api/src/reference.rs`; do not edit. Regenerate with \
         `CHATD_REGENERATE_DOCS=1 cargo test -p api`. -->\n"
    );
    let _ = writeln!(
        out,
        "API version {}. {}\n",
        doc["info"]["version"].as_str().unwrap_or_default(),
        doc["info"]["description"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "Transport: the daemon's Unix socket (default `$XDG_RUNTIME_DIR/chatd/chatd.sock`, env \
         `CHATD_SOCKET`), one JSON-RPC 2.0 message per line. Before sending anything, a client \
         checks that the socket is its user's alone: the socket's directory (looked at with \
         `lstat`, so not a symbolic link) belongs to the user and has mode 0700 or stricter, \
         the socket belongs to the user, and, where the system can tell (`SO_PEERCRED` on \
         Linux), the process serving it runs as the user; otherwise another local user may \
         have planted it. Connections: chatd serves 64 at once. One without a subscription or \
         a call in flight that sends no request for 5 minutes is closed. When all 64 are \
         open, a new connection closes the idle one that sent its last request longest ago \
         and takes its place; only when none is idle is it answered with error -32009 \
         (\"server is busy\", id null) and closed. Example:\n\n```\n\
         {{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\",\"params\":{{}}}}\n```\n"
    );
    let _ = writeln!(out, "## Methods\n");
    let methods = doc["methods"].as_array().cloned().unwrap_or_default();
    for method in &methods {
        let _ = writeln!(
            out,
            "- [`{0}`](#{1})",
            method["name"].as_str().unwrap_or_default(),
            method["name"]
                .as_str()
                .unwrap_or_default()
                .replace(['.', '_'], "")
        );
    }
    out.push('\n');
    for method in &methods {
        let name = method["name"].as_str().unwrap_or_default();
        let _ = writeln!(out, "### {name}\n");
        let _ = writeln!(out, "{}\n", method["summary"].as_str().unwrap_or_default());
        if let Some(description) = method["description"].as_str() {
            let _ = writeln!(out, "{description}\n");
        }
        let _ = writeln!(
            out,
            "Params:\n\n```json\n{}\n```\n",
            schema_text(&method["params"][0]["schema"])
        );
        let _ = writeln!(
            out,
            "Result:\n\n```json\n{}\n```\n",
            schema_text(&method["result"]["schema"])
        );
        let errors = method["errors"].as_array().cloned().unwrap_or_default();
        if errors.is_empty() {
            let _ = writeln!(out, "Errors: only the standard JSON-RPC ones.\n");
        } else {
            let list: Vec<String> = errors
                .iter()
                .map(|e| {
                    format!(
                        "`{}` {}",
                        e["code"],
                        e["message"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let _ = writeln!(out, "Errors: {}.\n", list.join(", "));
        }
    }
    let _ = writeln!(out, "## Events\n");
    let notification = &doc["x-notifications"][0];
    let _ = writeln!(
        out,
        "Notification `{}`: {}\n",
        notification["name"].as_str().unwrap_or_default(),
        notification["description"].as_str().unwrap_or_default()
    );
    let kinds: Vec<String> = notification["x-event-kinds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|k| format!("`{}`", k.as_str().unwrap_or_default()))
        .collect();
    let _ = writeln!(out, "Event kinds: {}.\n", kinds.join(", "));
    let _ = writeln!(
        out,
        "Event schema:\n\n```json\n{}\n```\n",
        schema_text(&notification["params"]["result"])
    );
    let _ = writeln!(out, "## Error codes\n");
    let _ = writeln!(out, "| code | kind | meaning |\n|---|---|---|");
    for code in doc["x-error-codes"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} |",
            code["code"],
            code["name"].as_str().unwrap_or_default(),
            code["description"]
                .as_str()
                .unwrap_or_default()
                .replace('\n', " ")
        );
    }
    for code in doc["x-standard-errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "| {} | (standard) | {} |",
            code["code"],
            code["message"].as_str().unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\n## Schemas\n");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = writeln!(out, "### {name}\n\n```json\n{}\n```\n", schema_text(schema));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/API.md` is exactly what the OpenRPC document renders to.
    #[test]
    fn api_reference_matches_the_openrpc_document() {
        let doc = crate::openrpc::document("reference");
        let rendered = markdown(&doc);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/API.md");
        if std::env::var_os("CHATD_REGENERATE_DOCS").is_some() {
            std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "docs/API.md is out of date: run CHATD_REGENERATE_DOCS=1 cargo test -p api"
        );
    }
}
