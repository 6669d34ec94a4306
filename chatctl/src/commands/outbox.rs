//! The outbox commands: `outbox` (list), `outbox cancel`, `outbox retry`, and `resend`.

use std::borrow::Cow;
use std::fmt::Write as _;

use api::methods;
use api::types::{
    Cancelled, Empty, MessageRef, OutboxList, OutboxState, Retried, RetryOutbox, SentMessage,
};

use super::Ctx;
use crate::cli::OutboxCommand;
use crate::render;

/// `outbox [list|cancel|retry]`.
pub(super) fn run(ctx: &Ctx, command: Option<&OutboxCommand>) -> anyhow::Result<()> {
    match command {
        None | Some(OutboxCommand::List) => {
            ctx.call_and_show(methods::OUTBOX_LIST, &Empty {}, |list: OutboxList| {
                Ok(list_text(&list))
            })
        }
        Some(OutboxCommand::Cancel { message_id }) => {
            let params = MessageRef {
                message_id: message_id.clone(),
            };
            ctx.call_and_show(methods::OUTBOX_CANCEL, &params, |done: Cancelled| {
                Ok(format!(
                    "cancelled {} to {}: it will not be sent (it shows as failed)",
                    render::clean_line(&done.message_id),
                    render::clean_line(&done.conversation)
                ))
            })
        }
        Some(OutboxCommand::Retry { message_id }) => {
            let params = RetryOutbox {
                message_id: message_id.clone(),
            };
            ctx.call_and_show(methods::OUTBOX_RETRY, &params, |done: Retried| {
                Ok(match done.messages {
                    0 => "nothing to retry: the outbox holds no message".to_owned(),
                    1 => {
                        "trying 1 message again now (`chatctl outbox` shows how it goes)".to_owned()
                    }
                    n => format!(
                        "trying {n} messages again now (`chatctl outbox` shows how they go)"
                    ),
                })
            })
        }
    }
}

/// `resend ID`.
pub(super) fn resend(ctx: &Ctx, message_id: &str) -> anyhow::Result<()> {
    let params = MessageRef {
        message_id: message_id.to_owned(),
    };
    ctx.call_and_show(methods::MESSAGES_RESEND, &params, |sent: SentMessage| {
        Ok(format!(
            "{} {} (resent to {} as a new message)",
            render::status_word(sent.status),
            render::clean_line(&sent.message_id),
            render::clean_line(&sent.conversation)
        ))
    })
}

/// The outbox as text: one block per message, oldest first.
pub fn list_text(list: &OutboxList) -> String {
    let mut out = String::new();
    if list.messages.is_empty() {
        out.push_str("the outbox is empty: every message was handed to its relay\n");
    }
    for message in &list.messages {
        let attempts = match message.attempts {
            0 => Cow::Borrowed("no failed attempt"),
            1 => Cow::Borrowed("1 failed attempt"),
            n => Cow::Owned(format!("{n} failed attempts")),
        };
        let _ = writeln!(
            out,
            "{}  to {}  queued {} ago, {attempts}",
            render::clean_line(&message.message_id),
            render::clean_line(&message.conversation),
            render::duration(message.age_ms),
        );
        let state = match message.state {
            OutboxState::Sending => format!(
                "being handed to the relay {}",
                render::clean_line(&message.relay)
            ),
            OutboxState::Ready => "about to be sent".to_owned(),
            OutboxState::Waiting => {
                let reason = message.reason.as_deref().unwrap_or("waiting");
                let mut text = format!("waiting: {}", render::clean_line(reason));
                if let Some(ms) = message.retry_in_ms {
                    let _ = write!(text, " (next try in {})", render::duration(ms.max(1000)));
                }
                text
            }
        };
        let _ = writeln!(out, "    {state}");
    }
    if list.control_messages > 0 {
        let _ = writeln!(
            out,
            "(and {} receipt{} or introduction{} queued)",
            list.control_messages,
            if list.control_messages == 1 { "" } else { "s" },
            if list.control_messages == 1 { "" } else { "s" },
        );
    }
    out.pop();
    out
}
