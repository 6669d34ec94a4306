//! Messages, in four parts: [`outbox`] (queue, seal, send, retry, statuses, owed receipts),
//! [`inbox`] (open, decrypt, handle by kind, dedup, store), [`history`] (stored messages, pages,
//! read marks, conversations) and [`event_log`] (the retained events behind `since`). This
//! module drives them from the core's rounds: the pump at the end of every round, relay link
//! events and the periodic tick.

pub mod event_log;
pub mod history;
pub mod inbox;
pub mod outbox;
pub mod queue;

use api::events::EventKind;
use protocol::frames::{ClientFrame, ServerFrame};

use crate::core::{CoreState, Lock, Txn};
use crate::core::{account, reach};
use crate::relay_link::LinkEvent;

use inbox::receive;
use outbox::{defer_fresh_receipts, flush_receipts, seal_ready, start_sends};

/// Reacts to the relay link.
pub fn on_link_event(state: &mut CoreState, event: LinkEvent, txn: &mut Txn) {
    match event {
        LinkEvent::State { state: new, error } => {
            if let (Some(error), Lock::Unlocked(unlocked)) = (&error, &state.lock) {
                let relay = unlocked.account.relay_url.clone();
                state.note_relay_error(&relay, error.to_string());
            }
            let Ok(unlocked) = state.unlocked() else {
                return;
            };
            unlocked.online = new == api::types::ConnectionState::Connected;
            for slot in unlocked.outbox.values_mut() {
                slot.in_flight = false;
            }
            unlocked.fetching.clear();
            let relay_url = unlocked.account.relay_url.clone();
            let online = unlocked.online;
            if new == api::types::ConnectionState::Waiting {
                // The local relay's host may have stopped: this daemon tries to take it over
                // now rather than at its supervisor's next turn.
                if let Some(local) = state.config.local_relay.as_ref()
                    && local.url == relay_url
                {
                    local.wake.notify_one();
                }
            }
            if state.connection != new {
                state.connection = new;
                state.event(
                    txn,
                    EventKind::RelayConnection {
                        state: new,
                        relay_url,
                        error: error.map(|e| e.to_string()),
                    },
                );
            }
            if online {
                if let Err(e) = account::publish_on_connect(state, txn) {
                    tracing::error!(error = %e, "could not publish prekeys");
                }
                if let Ok(unlocked) = state.unlocked() {
                    match crate::core::contacts::invite_tokens(unlocked) {
                        Ok(tokens) => reach::sync_home(unlocked, txn, tokens),
                        Err(e) => tracing::error!(error = %e, "could not read open invites"),
                    }
                }
            }
        }
        // The share is held until the frame is handled: the link reads on only while the core
        // keeps up.
        LinkEvent::Frame(frame, _share) => {
            if account::on_frame(state, txn, &frame) {
                return;
            }
            match *frame {
                ServerFrame::Deliver {
                    envelope_id,
                    payload,
                    ..
                } => receive(state, txn, envelope_id, &payload, None),
                // The answer to a request sent without waiting for it (the reachability record,
                // token updates, prekey checks).
                ServerFrame::Error { code, message, .. } => {
                    tracing::warn!(code = code.name(), %message, "the relay refused a request");
                }
                other => tracing::debug!(frame = other.name(), "ignoring a frame from the relay"),
            }
        }
    }
}

/// Reacts to an anonymous link to another relay: its state is kept (a message waiting for
/// that relay says why); it carries no mail, so other frames are only logged.
pub fn on_foreign_event(state: &mut CoreState, url: &str, event: LinkEvent) {
    if let LinkEvent::State {
        error: Some(error), ..
    } = &event
    {
        state.note_relay_error(url, error.to_string());
    }
    let Ok(unlocked) = state.unlocked() else {
        return;
    };
    match event {
        LinkEvent::State { state, error } => {
            unlocked
                .pool
                .on_state(url, state, error.map(|e| e.to_string()));
            if state == api::types::ConnectionState::Connected {
                // The relay is back: what waited for it goes now, not at its next retry.
                let waiting: std::collections::HashSet<_> = unlocked
                    .contacts
                    .iter()
                    .filter(|(id, contact)| reach::current_route(unlocked, id, contact).url == url)
                    .map(|(id, _)| *id)
                    .collect();
                outbox::send_now(unlocked, &waiting);
            }
        }
        LinkEvent::Frame(frame, _share) => {
            tracing::debug!(relay = %url, frame = frame.name(), "ignoring a frame from another relay");
        }
    }
}

/// Reacts to the link to a relay the account moved away from: the mail it still delivers is
/// received like the home relay's (and acknowledged to it); each time it connects it is told
/// the account's current record, so a lookup there finds the new home.
pub fn on_draining_event(state: &mut CoreState, url: &str, event: LinkEvent, txn: &mut Txn) {
    match event {
        LinkEvent::State { state: new, error } => {
            if let Some(error) = &error {
                tracing::info!(relay = %url, %error, "the relay being drained cannot be reached");
                state.note_relay_error(url, error.to_string());
            }
            if new != api::types::ConnectionState::Connected {
                return;
            }
            let Ok(unlocked) = state.unlocked() else {
                return;
            };
            let Some((link, _)) = unlocked.draining.get(url) else {
                return;
            };
            let requester = link.requester();
            match reach::own_record(unlocked) {
                Ok(record) => {
                    let frame = ClientFrame::PublishReachability {
                        request_id: requester.request_id(),
                        record,
                    };
                    txn.after(move || requester.send(frame));
                }
                Err(e) => tracing::error!(error = %e, "cannot sign the reachability record"),
            }
        }
        LinkEvent::Frame(frame, _share) => match *frame {
            ServerFrame::Deliver {
                envelope_id,
                payload,
                ..
            } => {
                if let Ok(unlocked) = state.unlocked()
                    && let Some((_, last)) = unlocked.draining.get_mut(url)
                {
                    *last = tokio::time::Instant::now();
                }
                receive(state, txn, envelope_id, &payload, Some(url));
            }
            ServerFrame::Error { code, message, .. } => {
                tracing::warn!(relay = %url, code = code.name(), %message, "the relay being drained refused a request");
            }
            other => tracing::debug!(relay = %url, frame = other.name(), "ignoring a frame"),
        },
    }
}

/// Periodic work: close idle links to other relays, stop draining relays that are done, rotate
/// the signed prekey when it is due.
pub fn on_tick(state: &mut CoreState, txn: &mut Txn) {
    if let Err(e) = account::finish_draining(state, txn) {
        tracing::warn!(error = %e, "could not stop draining a relay");
    }
    let Ok(unlocked) = state.unlocked() else {
        return;
    };
    unlocked.pool.close_idle();
    if unlocked.online
        && unlocked.account.signed_prekey_created_ms + account::SIGNED_PREKEY_LIFETIME_MS
            <= unlocked.clock.now_ms()
        && let Err(e) = account::publish_on_connect(state, txn)
    {
        tracing::warn!(error = %e, "signed prekey rotation failed");
    }
}

/// The end of every round: turn pending receipts into outbox entries, seal what can be
/// sealed, and start sends (which wait for the round's flush before going out).
pub fn pump(state: &mut CoreState, txn: &mut Txn) {
    let dialer = state.dialer();
    let inputs = dialer.inputs();
    let Ok(unlocked) = state.unlocked() else {
        return;
    };
    if let Err(e) = flush_receipts(unlocked, txn) {
        tracing::error!(error = %e, "could not queue receipts");
        txn.fail(&e.message);
    }
    defer_fresh_receipts(unlocked, &inputs);
    account::check_prekeys_if_used(unlocked, txn);
    for ids in std::mem::take(&mut unlocked.pending_acks).chunks(protocol::frames::MAX_ACK_IDS) {
        txn.frame(ClientFrame::Ack {
            envelope_ids: ids.to_vec(),
        });
    }
    for (relay, acks) in std::mem::take(&mut unlocked.pending_drain_acks) {
        let Some((link, _)) = unlocked.draining.get(&relay) else {
            continue;
        };
        let requester = link.requester();
        let frames: Vec<ClientFrame> = acks
            .chunks(protocol::frames::MAX_ACK_IDS)
            .map(|ids| ClientFrame::Ack {
                envelope_ids: ids.to_vec(),
            })
            .collect();
        txn.after(move || {
            for frame in frames {
                requester.send(frame);
            }
        });
    }
    let mut sealed_now = std::collections::HashSet::new();
    if let Err(e) = seal_ready(unlocked, txn, &dialer, &mut sealed_now) {
        // Sessions advanced and entries marked sealed in memory must not outlive the round.
        tracing::error!(error = %e, "sealing the outbox failed");
        txn.fail(&e.message);
    }
    start_sends(unlocked, txn, &dialer, &sealed_now);
    if let Err(e) = outbox::announce_held(state, txn) {
        tracing::error!(error = %e, "could not record why messages wait");
        txn.fail(&e.message);
    }
}

#[cfg(test)]
mod tests;
