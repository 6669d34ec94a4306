//! The OpenRPC document (<https://spec.open-rpc.org>) of the whole API, built from
//! [`crate::methods::ALL`] and the types' JSON Schemas. `rpc.discover` returns it and
//! `docs/API.md` is checked against it.
//!
//! OpenRPC has no notion of subscriptions, so the notification is described in an
//! `x-notifications` extension: its method name, params schema and the event kinds.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::ErrorCode;
use crate::error::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
};
use crate::events::{self, Event, EventKind};
use crate::methods::ALL;

/// The standard JSON-RPC errors every method can return.
pub const STANDARD_ERRORS: &[(i32, &str)] = &[
    (PARSE_ERROR, "Parse error: the line is not JSON."),
    (
        INVALID_REQUEST,
        "Invalid request: not a JSON-RPC 2.0 request object, or the line is too long.",
    ),
    (METHOD_NOT_FOUND, "Method not found."),
    (INVALID_PARAMS, "Invalid params: wrong shape or type."),
    (INTERNAL_ERROR, "Internal error."),
];

/// Builds the document.
pub fn document(daemon_version: &str) -> Value {
    let settings = SchemaSettings::draft07().with(|s| {
        s.definitions_path = "#/components/schemas/".into();
    });
    let mut generator = SchemaGenerator::new(settings);
    let mut methods = Vec::new();
    for method in ALL {
        let params = (method.params)(&mut generator);
        let result = (method.result)(&mut generator);
        let errors: Vec<Value> = method
            .errors
            .iter()
            .map(|code| {
                json!({
                    "code": code.code(),
                    "message": code.name(),
                    "data": { "kind": code.name(), "description": code.description() },
                })
            })
            .collect();
        let mut entry = json!({
            "name": method.name,
            "summary": method.summary,
            "paramStructure": "by-name",
            "params": [{
                "name": "params",
                "description": "The params object.",
                "required": false,
                "schema": params,
            }],
            "result": { "name": "result", "schema": result },
            "errors": errors,
        });
        if !method.description.is_empty() {
            entry["description"] = Value::from(method.description);
        }
        methods.push(entry);
    }
    let event_schema = generator.subschema_for::<Event>();
    let schemas = generator.take_definitions(true);
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "chatd local API",
            "version": crate::API_VERSION,
            "description": "JSON-RPC 2.0 over chatd's local socket, one JSON message per line. \
                Params are objects. Domain errors use the codes in x-error-codes; malformed \
                input gets the standard JSON-RPC codes.",
            "x-daemon-version": daemon_version,
        },
        "methods": methods,
        "components": { "schemas": schemas },
        "x-notifications": [{
            "name": events::NOTIFICATION,
            "description": "Sent to a connection after events.subscribe: params are \
                {\"subscription\": id, \"result\": Event}.",
            "params": { "subscription": "the id events.subscribe returned", "result": event_schema },
            "x-event-kinds": EventKind::KINDS,
        }],
        "x-error-codes": ErrorCode::ALL.iter().map(|c| json!({
            "code": c.code(), "name": c.name(), "description": c.description(),
        })).collect::<Vec<_>>(),
        "x-standard-errors": STANDARD_ERRORS.iter().map(|(code, message)| json!({
            "code": code, "message": message,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_method_with_resolvable_refs() {
        let doc = document("test");
        let methods = doc["methods"].as_array().cloned().unwrap_or_default();
        assert_eq!(methods.len(), ALL.len());
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(schemas.contains_key("Message"), "{schemas:?}");
        // Every $ref points at a schema that exists.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
        let kinds = doc["x-notifications"][0]["x-event-kinds"]
            .as_array()
            .cloned();
        assert_eq!(kinds.map(|k| k.len()), Some(EventKind::KINDS.len()));
    }
}
