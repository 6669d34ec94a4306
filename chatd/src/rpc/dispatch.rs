//! JSON-RPC 2.0 dispatch for one connection: a line is a call, a notification, a batch, or an
//! error, and a call goes to jsonrpsee's `MethodCallback` with this connection's id, sink,
//! subscription limit and extensions (what jsonrpsee's `inner_call` does with a fixed
//! `ConnectionId(0)`, done here per connection).
//!
//! An unsubscription of an unknown id is answered with error 1024 `unknown_subscription`
//! rather than jsonrpsee's `false`. Synchronous callbacks answer inline; asynchronous ones, pending subscriptions and batches that
//! contain them become tasks in the connection's `JoinSet`, at most [`MAX_IN_FLIGHT`] at once. A
//! panic in a method is caught and answered with -32603, so a faulty method cannot take the
//! connection down with it.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use jsonrpsee::core::id_providers::RandomIntegerIdProvider;
use jsonrpsee::types::error::{
    ErrorCode, INVALID_REQUEST_CODE, reject_too_big_batch_response, reject_too_many_subscriptions,
};
use jsonrpsee::types::{ErrorObject, Id, InvalidRequest, Notification, Params, Request};
use jsonrpsee::{
    BoundedSubscriptions, ConnectionId, Extensions, MethodCallback, MethodResponse, MethodSink,
    SubscriptionState,
};
use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tokio::task::JoinSet;
use tracing::{error, trace};

use super::{Closed, MAX_IN_FLIGHT, Shared};

/// Runs one connection's requests and sends their answers to its writer.
pub(super) struct Dispatcher {
    conn_id: ConnectionId,
    shared: Arc<Shared>,
    sink: MethodSink,
    extensions: Extensions,
    subscriptions: BoundedSubscriptions,
    tasks: JoinSet<()>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("conn_id", &self.conn_id)
            .field("in_flight", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher for connection `conn_id`, answering through `sink`.
    pub(super) fn new(conn_id: ConnectionId, shared: Arc<Shared>, sink: MethodSink) -> Self {
        let mut extensions = shared.extensions.clone();
        extensions.insert(conn_id);
        let subscriptions =
            BoundedSubscriptions::new(shared.limits.max_subscriptions_per_connection);
        Self {
            conn_id,
            shared,
            sink,
            extensions,
            subscriptions,
            tasks: JoinSet::new(),
        }
    }

    /// Handles one line (without its `\n`). Fails only when the connection's writer is gone.
    pub(super) async fn handle_line(&mut self, line: &[u8]) -> Result<(), Closed> {
        // Checked once for the whole line, so that invalid UTF-8 is a parse error wherever it
        // is, even in a field serde would skip.
        let Ok(line) = std::str::from_utf8(line) else {
            let error = MethodResponse::error(Id::Null, ErrorCode::ParseError);
            return deliver(&self.sink, error).await;
        };
        match line.bytes().find(|b| !b.is_ascii_whitespace()) {
            None => Ok(()),
            Some(b'{') => self.single(line).await,
            Some(b'[') => self.batch(line).await,
            Some(_) => deliver(&self.sink, invalid_response(line)).await,
        }
    }

    /// Answers a line longer than the limit (whose rest is being skipped).
    pub(super) async fn line_too_long(&mut self) -> Result<(), Closed> {
        let max = self.shared.limits.max_line_len;
        let error = ErrorObject::owned(
            INVALID_REQUEST_CODE,
            format!("Invalid request: line longer than {max} bytes"),
            None::<()>,
        );
        deliver(&self.sink, MethodResponse::error(Id::Null, error)).await
    }

    /// Waits until every request in flight has been answered.
    pub(super) async fn finish(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    async fn single(&mut self, line: &str) -> Result<(), Closed> {
        match self.start_object(line) {
            Slot::Ready(response) => deliver(&self.sink, response).await,
            slot @ Slot::Pending { .. } => {
                let sink = self.sink.clone();
                self.spawn(async move {
                    if let Some(response) = slot.resolve().await {
                        let _ = deliver(&sink, response).await;
                    }
                })
                .await;
                Ok(())
            }
            Slot::Nothing => Ok(()),
        }
    }

    async fn batch(&mut self, line: &str) -> Result<(), Closed> {
        let limits = &self.shared.limits;
        let (max_batch_len, max_response_len) = (limits.max_batch_len, limits.max_response_len);
        let entries = match parse_batch(line, max_batch_len) {
            Ok(Batch::Entries(entries)) if entries.is_empty() => {
                let error = invalid_request("Invalid request: empty batch".to_owned());
                return deliver(&self.sink, error).await;
            }
            Ok(Batch::Entries(entries)) => entries,
            Ok(Batch::TooLong(len)) => {
                let error = invalid_request(format!(
                    "Invalid request: batch of {len} requests, at most {max_batch_len} allowed"
                ));
                return deliver(&self.sink, error).await;
            }
            Err(_) => return deliver(&self.sink, invalid_response(line)).await,
        };
        let slots: Vec<Slot> = entries
            .into_iter()
            .map(|entry| self.start_object(entry.get()))
            .collect();
        if slots
            .iter()
            .all(|slot| !matches!(slot, Slot::Pending { .. }))
        {
            let responses = slots.into_iter().filter_map(Slot::into_ready).collect();
            return send_batch(&self.sink, responses, max_response_len).await;
        }
        let sink = self.sink.clone();
        self.spawn(async move {
            let responses = join_all(slots.into_iter().map(Slot::resolve)).await;
            let responses = responses.into_iter().flatten().collect();
            let _ = send_batch(&sink, responses, max_response_len).await;
        })
        .await;
        Ok(())
    }

    /// Starts one request object: a call, to be answered, or a notification, whose answer is
    /// dropped. Anything else is answered with an error.
    fn start_object(&self, text: &str) -> Slot {
        if let Ok(request) = serde_json::from_str::<Request<'_>>(text) {
            let params = Params::new(request.params.as_deref().map(RawValue::get));
            return match self.start(request.id, &request.method, params, false) {
                Started::Ready(response) => Slot::Ready(response),
                Started::Pending(future) => Slot::Pending {
                    future,
                    reply: true,
                },
                Started::Ignored => Slot::Nothing,
            };
        }
        if let Some(notification) = as_notification(text) {
            let params = Params::new(notification.params.map(RawValue::get));
            return match self.start(Id::Null, &notification.method, params, true) {
                Started::Ready(response) => {
                    discard(response);
                    Slot::Nothing
                }
                Started::Pending(future) => Slot::Pending {
                    future,
                    reply: false,
                },
                Started::Ignored => Slot::Nothing,
            };
        }
        Slot::Ready(invalid_response(text))
    }

    /// Starts `method`: runs a synchronous callback to its answer, or returns the future of an
    /// asynchronous one (which owns its id and params).
    fn start(&self, id: Id<'_>, method: &str, params: Params<'_>, notification: bool) -> Started {
        trace!(conn = self.conn_id.0, method, notification, "call");
        let Some(callback) = self.shared.methods.method(method) else {
            return Started::Ready(MethodResponse::error(id, ErrorCode::MethodNotFound));
        };
        let max_response_len = self.shared.limits.max_response_len;
        let extensions = self.extensions.clone();
        match callback {
            MethodCallback::Sync(callback) => {
                let fallback = id.clone();
                let call = || callback(id, params, max_response_len, extensions);
                Started::Ready(self.caught(method, fallback, call))
            }
            MethodCallback::Unsubscription(callback) => {
                let fallback = id.clone();
                let answer_id = id.clone();
                let call = || callback(id, params, self.conn_id, max_response_len, extensions);
                let response = self.caught(method, fallback, call);
                Started::Ready(unknown_subscription_is_an_error(answer_id, response))
            }
            MethodCallback::Async(callback) => {
                let id = id.into_owned();
                let fallback = id.clone();
                let params = params.into_owned();
                let call = || callback(id, params, self.conn_id, max_response_len, extensions);
                self.caught_future(method, fallback, call)
            }
            MethodCallback::Subscription(callback) => {
                if notification {
                    trace!(
                        conn = self.conn_id.0,
                        method, "notification to a subscription method ignored"
                    );
                    return Started::Ignored;
                }
                let Some(permit) = self.subscriptions.acquire() else {
                    let error = reject_too_many_subscriptions(self.subscriptions.max());
                    return Started::Ready(MethodResponse::error(id, error));
                };
                let state = SubscriptionState {
                    conn_id: self.conn_id,
                    id_provider: &RandomIntegerIdProvider,
                    subscription_permit: permit,
                };
                let fallback = id.clone().into_owned();
                let sink = self.sink.clone();
                let call = || callback(id, params, sink, state, extensions);
                self.caught_future(method, fallback, call)
            }
        }
    }

    /// Runs a synchronous callback; a panic becomes an internal error.
    fn caught(
        &self,
        method: &str,
        id: Id<'_>,
        call: impl FnOnce() -> MethodResponse,
    ) -> MethodResponse {
        catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| {
            error!(conn = self.conn_id.0, method, "RPC method panicked");
            MethodResponse::error(id, ErrorCode::InternalError)
        })
    }

    /// Creates and wraps an asynchronous callback's future; a panic, in the callback or in its
    /// future, becomes an internal error.
    fn caught_future(
        &self,
        method: &str,
        id: Id<'static>,
        call: impl FnOnce() -> BoxFuture<'static, MethodResponse>,
    ) -> Started {
        let conn = self.conn_id.0;
        let future = match catch_unwind(AssertUnwindSafe(call)) {
            Ok(future) => future,
            Err(_) => {
                error!(conn, method, "RPC method panicked");
                return Started::Ready(MethodResponse::error(id, ErrorCode::InternalError));
            }
        };
        let method = method.to_owned();
        Started::Pending(Box::pin(async move {
            AssertUnwindSafe(future)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    error!(conn, method, "RPC method panicked");
                    MethodResponse::error(id, ErrorCode::InternalError)
                })
        }))
    }

    /// Spawns a request's task, first waiting for a free place if [`MAX_IN_FLIGHT`] are running.
    async fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        while self.tasks.try_join_next().is_some() {}
        if self.tasks.len() >= MAX_IN_FLIGHT {
            let _ = self.tasks.join_next().await;
        }
        self.tasks.spawn(task);
    }
}

/// A started call.
enum Started {
    /// Answered already.
    Ready(MethodResponse),
    /// Answered when the future resolves.
    Pending(BoxFuture<'static, MethodResponse>),
    /// Nothing to run or answer.
    Ignored,
}

/// A started request object.
enum Slot {
    /// Its answer.
    Ready(MethodResponse),
    /// Its answer, when the future resolves.
    Pending {
        future: BoxFuture<'static, MethodResponse>,
        /// False for a notification, whose answer is dropped.
        reply: bool,
    },
    /// Nothing to answer.
    Nothing,
}

impl Slot {
    /// The answer, if it is there already.
    fn into_ready(self) -> Option<MethodResponse> {
        match self {
            Slot::Ready(response) => Some(response),
            Slot::Pending { .. } | Slot::Nothing => None,
        }
    }

    /// The answer to send, once there is one: none for a notification, nor for a
    /// subscription, whose answer went out through the sink already.
    async fn resolve(self) -> Option<MethodResponse> {
        match self {
            Slot::Ready(response) => Some(response),
            Slot::Pending { future, reply } => {
                let response = future.await;
                if reply && !response.is_subscription() {
                    Some(response)
                } else {
                    discard(response);
                    None
                }
            }
            Slot::Nothing => None,
        }
    }
}

/// jsonrpsee answers an unsubscription of an id that is not a subscription of this connection
/// with `false`; the API documents error 1024 `unknown_subscription` for it, so that a client
/// cannot mistake a typo for a subscription that ended (docs/API.md, `events.unsubscribe`).
fn unknown_subscription_is_an_error(id: Id<'_>, response: MethodResponse) -> MethodResponse {
    #[derive(serde::Deserialize)]
    struct Answer {
        result: Option<bool>,
    }
    let unknown = response.is_success()
        && serde_json::from_str::<Answer>(response.as_json().get())
            .is_ok_and(|answer| answer.result == Some(false));
    if !unknown {
        return response;
    }
    discard(response);
    let code = api::ErrorCode::UnknownSubscription;
    let error = ErrorObject::owned(
        code.code(),
        "unknown subscription: no subscription of this connection has that id",
        Some(serde_json::json!({ "kind": code.name() })),
    );
    MethodResponse::error(id, error)
}

/// Sends a response and tells the method it went out (`ResponsePayload::notify_on_completion`).
async fn deliver(sink: &MethodSink, response: MethodResponse) -> Result<(), Closed> {
    let success = response.is_success();
    let (json, on_sent, _) = response.into_parts();
    sink.send(json).await.map_err(|_| Closed)?;
    if let Some(on_sent) = on_sent {
        on_sent.notify(success);
    }
    Ok(())
}

/// Drops the response to a notification, telling the method it was handled.
fn discard(response: MethodResponse) {
    let success = response.is_success();
    let (_, on_sent, _) = response.into_parts();
    if let Some(on_sent) = on_sent {
        on_sent.notify(success);
    }
}

/// Sends a batch's answers as one array (nothing if there are none), or a single -32011 error
/// if the array would be longer than `max_len`.
async fn send_batch(
    sink: &MethodSink,
    responses: Vec<MethodResponse>,
    max_len: usize,
) -> Result<(), Closed> {
    if responses.is_empty() {
        return Ok(());
    }
    let mut array = String::with_capacity(
        responses
            .iter()
            .map(|r| r.as_json().get().len() + 1)
            .sum::<usize>()
            + 1,
    );
    let mut on_sent = Vec::new();
    for response in responses {
        let success = response.is_success();
        let (json, notify, _) = response.into_parts();
        // The `,` or `]` after this entry counts too.
        if array.len() + 1 + json.get().len() + 1 > max_len {
            let error = MethodResponse::error(Id::Null, reject_too_big_batch_response(max_len));
            return deliver(sink, error).await;
        }
        array.push(if array.is_empty() { '[' } else { ',' });
        array.push_str(json.get());
        on_sent.extend(notify.map(|notify| (notify, success)));
    }
    array.push(']');
    let json = match RawValue::from_string(array) {
        Ok(json) => json,
        Err(e) => {
            // Each entry is valid JSON, so the array is; this is a bug if it happens.
            error!(error = %e, "built an invalid batch response");
            let error = MethodResponse::error(Id::Null, ErrorCode::InternalError);
            return deliver(sink, error).await;
        }
    };
    sink.send(json).await.map_err(|_| Closed)?;
    for (notify, success) in on_sent {
        notify.notify(success);
    }
    Ok(())
}

/// The error for something that is not a request: -32700 if it is not JSON, else -32600 with
/// its id if it has a usable one.
fn invalid_response(text: &str) -> MethodResponse {
    if serde_json::from_str::<IgnoredAny>(text).is_err() {
        return MethodResponse::error(Id::Null, ErrorCode::ParseError);
    }
    let id = serde_json::from_str::<InvalidRequest<'_>>(text).map_or(Id::Null, |r| r.id);
    MethodResponse::error(id, ErrorCode::InvalidRequest)
}

/// A -32600 error with its own message and a null id.
fn invalid_request(message: String) -> MethodResponse {
    let error = ErrorObject::owned(INVALID_REQUEST_CODE, message, None::<()>);
    MethodResponse::error(Id::Null, error)
}

/// The request as a notification, if it is one: a valid request object without an `id`.
fn as_notification(text: &str) -> Option<Notification<'_, Option<&RawValue>>> {
    #[derive(serde::Deserialize)]
    struct IdProbe<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    let notification = serde_json::from_str(text).ok()?;
    // An object with an id that is not valid is an invalid request, not a notification.
    match serde_json::from_str::<IdProbe<'_>>(text) {
        Ok(IdProbe { id: None }) => Some(notification),
        _ => None,
    }
}

/// A batch line, parsed without materialising more than `max` entries.
enum Batch<'a> {
    Entries(Vec<&'a RawValue>),
    /// More than the limit: how many entries there are.
    TooLong(usize),
}

fn parse_batch(line: &str, max: usize) -> serde_json::Result<Batch<'_>> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let batch = BatchSeed { max }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(batch)
}

struct BatchSeed {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for BatchSeed {
    type Value = Batch<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Batch<'de>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed {
    type Value = Batch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element::<&'de RawValue>()? {
            if entries.len() == self.max {
                let mut len = self.max + 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    len += 1;
                }
                return Ok(Batch::TooLong(len));
            }
            entries.push(entry);
        }
        Ok(Batch::Entries(entries))
    }
}
