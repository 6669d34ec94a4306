//! The message commands: `send` (optionally waiting for a status), `history`,
//! `conversations`, `read`.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use anyhow::Context;
use api::client::ClientError;
use api::events::{Event, EventKind, NOTIFICATION};
use api::methods;
use api::types::{
    ConversationList, Empty, History, HistoryPage, MarkRead, MarkedRead, MessageStatus, OutboxList,
    OutboxState, SendMessage, SentMessage, Subscribe,
};
use serde_json::Value;

use super::{Ctx, Rpc, decode};
use crate::cli::{HistoryArgs, SendArgs};
use crate::exit::{self, Failure};
use crate::render;

/// `send`: sends a message; with `--wait`, waits until it reaches a status.
pub(super) fn send(ctx: &Ctx, args: &SendArgs) -> anyhow::Result<()> {
    let text = if args.text == "-" {
        text_from(io::stdin().lock())?
    } else {
        args.text.clone()
    };
    // Refused here, in the daemon's words, instead of sent to it first.
    if let Some(problem) = api::input::text_problem(&text) {
        return Err(Failure::usage(problem).into());
    }
    let mut rpc = ctx.connect()?;
    // Subscribing first means no status change can slip by between the send and the
    // subscription. Without `since`, only new events arrive.
    let subscription = match args.wait {
        Some(_) => Some(rpc.call(methods::EVENTS_SUBSCRIBE, &Subscribe::default())?),
        None => None,
    };
    let params = SendMessage {
        to: args.target.clone(),
        text,
    };
    let mut value = rpc.call(methods::MESSAGES_SEND, &params)?;
    let sent: SentMessage = decode(methods::MESSAGES_SEND, value.clone())?;
    let status = match (args.wait, subscription) {
        (Some(wait), Some(subscription)) => wait_for(
            ctx,
            &mut rpc,
            &subscription,
            &sent,
            wait.status(),
            args.timeout,
        )?,
        _ => sent.status,
    };
    if ctx.out.is_json() {
        if let Some(object) = value.as_object_mut() {
            object.insert("status".to_owned(), serde_json::to_value(status)?);
        }
        return ctx.out.json(&value);
    }
    ctx.out.text(&format!(
        "{} {}",
        render::status_word(status),
        render::clean_line(&sent.message_id)
    ))
}

/// Reads a message text from `reader` (stdin for `-`): all of it, as UTF-8, without one
/// trailing line break.
pub fn text_from(mut reader: impl Read) -> anyhow::Result<String> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .context("cannot read the message text from stdin (it must be UTF-8)")?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Reads `message.status` events until the message reaches `wanted` (or a later status), and
/// returns the status reached. `failed` is an error; so is `timeout` passing first.
fn wait_for(
    ctx: &Ctx,
    rpc: &mut Rpc,
    subscription: &Value,
    sent: &SentMessage,
    wanted: MessageStatus,
    timeout: Duration,
) -> anyhow::Result<MessageStatus> {
    // A timeout too far away to represent is no timeout at all.
    let deadline = Instant::now().checked_add(timeout);
    let mut status = sent.status;
    let mut failure = None;
    loop {
        match reached(status, wanted) {
            Some(true) => return Ok(status),
            Some(false) => {}
            None => {
                let why = failure.map_or_else(String::new, |why: String| {
                    format!(": {}", render::clean_line(&why))
                });
                return Err(Failure::new(
                    exit::OTHER,
                    "message_failed",
                    format!("message {} failed{why}", sent.message_id),
                )
                .into());
            }
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let timed_out = || {
            Failure::new(
                exit::TIMEOUT,
                "timeout",
                format!(
                    "timed out after {timeout:?} waiting for message {} to be {}: {}",
                    sent.message_id,
                    render::status_word(wanted),
                    where_it_is(ctx, &sent.message_id, status, failure.as_deref())
                ),
            )
        };
        if left.is_some_and(|left| left.is_zero()) {
            return Err(timed_out().into());
        }
        rpc.client.set_read_timeout(left)?;
        let notification = match rpc.client.next_notification() {
            Ok(notification) => notification,
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out().into());
            }
            Err(e) => return Err(e.into()),
        };
        if notification.method != NOTIFICATION || notification.subscription != *subscription {
            continue;
        }
        if let Some(Event {
            kind:
                EventKind::MessageStatus {
                    message_id,
                    status: new,
                    failure: why,
                    ..
                },
            ..
        }) = notification.event()
            && message_id == sent.message_id
        {
            status = new;
            failure = why;
        }
    }
}

/// What is true of a message a wait gave up on: handed on and waiting for the recipient (and
/// nothing is retried), or still queued and why (the outbox's own words, asked afresh,
/// else the last reason an event gave).
fn where_it_is(
    ctx: &Ctx,
    message_id: &str,
    status: MessageStatus,
    failure: Option<&str>,
) -> String {
    match status {
        MessageStatus::Sent => "it is sent: the recipient's relay holds it, and it is delivered \
            when the recipient's daemon next connects (nothing is being retried)"
            .to_owned(),
        MessageStatus::Delivered => "it is delivered: the recipient's daemon has it, and it \
            is read when the recipient reads it (nothing is being retried)"
            .to_owned(),
        MessageStatus::Read | MessageStatus::Failed => {
            format!("it is {}", render::status_word(status))
        }
        MessageStatus::Pending => {
            let queued = ctx
                .connect_running()
                .ok()
                .and_then(|mut rpc| rpc.call(methods::OUTBOX_LIST, &Empty {}).ok())
                .and_then(|value| serde_json::from_value::<OutboxList>(value).ok())
                .and_then(|list| {
                    list.messages
                        .into_iter()
                        .find(|m| m.message_id == message_id)
                });
            let why = match &queued {
                Some(entry) => match entry.state {
                    OutboxState::Sending => Some(format!(
                        "being handed to the relay {}",
                        render::clean_line(&entry.relay)
                    )),
                    OutboxState::Ready => None,
                    OutboxState::Waiting => entry
                        .reason
                        .as_deref()
                        .map(|r| render::clean_line(r).into_owned()),
                },
                None => failure.map(|r| render::clean_line(r).into_owned()),
            };
            match why {
                Some(why) => format!(
                    "it is still queued, and chatd keeps trying: {why} (`chatctl outbox` \
                     shows the queue)"
                ),
                None => "it is still queued, and chatd keeps trying (`chatctl outbox` shows \
                    the queue)"
                    .to_owned(),
            }
        }
    }
}

/// Whether `status` satisfies a wait for `wanted`; `None` when it never will (`failed`).
pub fn reached(status: MessageStatus, wanted: MessageStatus) -> Option<bool> {
    match status {
        MessageStatus::Failed => None,
        _ => Some(status >= wanted),
    }
}

/// `history`: a page of a conversation, oldest first.
pub(super) fn history(ctx: &Ctx, args: &HistoryArgs) -> anyhow::Result<()> {
    let params = History {
        conversation: args.target.clone(),
        limit: args.limit,
        before: args.before.clone(),
    };
    ctx.call_and_show(methods::MESSAGES_HISTORY, &params, |page: HistoryPage| {
        if let Some(cursor) = &page.next_before {
            ctx.out.note(&format!(
                "(older messages: chatctl history {} --before {})",
                render::clean_line(&args.target),
                render::clean_line(cursor)
            ));
        }
        Ok(render::history(&page.messages))
    })
}

/// `conversations`: every conversation with its unread count.
pub(super) fn conversations(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.call_and_show(
        methods::CONVERSATIONS_LIST,
        &api::types::Empty {},
        |list: ConversationList| Ok(render::conversations(&list.conversations)),
    )
}

/// `read`: marks received messages read.
pub(super) fn read(ctx: &Ctx, target: &str, up_to: Option<&str>) -> anyhow::Result<()> {
    let params = MarkRead {
        conversation: target.to_owned(),
        up_to: up_to.map(str::to_owned),
    };
    ctx.call_and_show(methods::MESSAGES_MARK_READ, &params, |done: MarkedRead| {
        Ok(format!(
            "marked {} message{} read",
            done.marked,
            if done.marked == 1 { "" } else { "s" }
        ))
    })
}

#[cfg(test)]
mod tests;
