//! Human output: pure functions from API results to text, each tested on its own.
//!
//! Text a peer controls (message text, display names, invite-given aliases, failure reasons)
//! goes through [`clean_line`] or [`clean_text`] first, so a message cannot send escape
//! sequences to the terminal or reorder the line with bidirectional controls. Times are UTC.

use std::borrow::Cow;
use std::fmt::Write as _;

use api::events::{Event, EventKind};
use api::types::{
    AccountInfo, ConnectionState, Contact, ContactDetails, Conversation, DaemonStatus, Direction,
    LocalRelayStatus, LockState, Message, MessageRequest, MessageStatus, RelayKind, Trust,
};
use serde_json::Value;

/// The longest preview of a message in `conversations`, in characters.
const PREVIEW_CHARS: usize = 48;

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM` (UTC).
pub fn time(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in milliseconds, coarsely: `45s`, `3m 05s`, `2h 07m`, `4d 03h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Whether `c` must not reach the terminal as it is: control characters (escape sequences
/// start with one) and the bidirectional embeddings, overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` for one line: every control character, line breaks included, escaped as `\u{..}`.
pub fn clean_line(text: &str) -> Cow<'_, str> {
    clean(text, |_| false)
}

/// `text` that may span lines: as [`clean_line`], but keeping `\n` and tabs.
pub fn clean_text(text: &str) -> Cow<'_, str> {
    clean(text, |c| c == '\n' || c == '\t')
}

fn clean(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) && !keep(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The mark after an outgoing message.
pub fn status_mark(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Pending => "…",
        MessageStatus::Sent => "✓",
        MessageStatus::Delivered => "✓✓",
        MessageStatus::Read => "✓✓ read",
        MessageStatus::Failed => "✗ failed",
    }
}

/// The word for a status (`send` prints it before the message id).
pub fn status_word(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Pending => "queued",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Read => "read",
        MessageStatus::Failed => "failed",
    }
}

/// The word for a trust level.
pub fn trust(trust: Trust) -> &'static str {
    match trust {
        Trust::Unverified => "unverified",
        Trust::Verified => "verified",
        Trust::KeyChanged => "KEY CHANGED",
    }
}

fn connection(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::Offline => "offline",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Connected => "connected",
        ConnectionState::Waiting => "waiting to retry",
    }
}

/// One message: `[time] who: text` and, for outgoing messages, its status mark. Lines after
/// the first are indented under the text.
pub fn message_line(message: &Message) -> String {
    let who = match message.direction {
        Direction::Incoming => clean_line(&message.conversation),
        Direction::Outgoing => Cow::Borrowed("me"),
    };
    let prefix = format!("[{}] {who}: ", time(message.timestamp_ms));
    let indent = " ".repeat(prefix.chars().count());
    let mut out = prefix;
    let text = clean_text(&message.text);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&indent);
        }
        out.push_str(line);
    }
    if let (Direction::Outgoing, Some(status)) = (message.direction, message.status) {
        out.push(' ');
        out.push_str(status_mark(status));
        if let (MessageStatus::Failed, Some(why)) = (status, &message.failure) {
            let _ = write!(out, ": {}", clean_line(why));
        }
    }
    out
}

/// A page of history, oldest first, one [`message_line`] per message.
pub fn history(messages: &[Message]) -> String {
    if messages.is_empty() {
        return "(no messages)".to_owned();
    }
    let lines: Vec<String> = messages.iter().map(message_line).collect();
    lines.join("\n")
}

/// Conversations with unread counts and a preview of the newest message.
pub fn conversations(list: &[Conversation]) -> String {
    if list.is_empty() {
        return "(no conversations)".to_owned();
    }
    let names: Vec<Cow<'_, str>> = list.iter().map(|c| clean_line(&c.conversation)).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (conversation, name) in list.iter().zip(&names) {
        let unread = match conversation.unread {
            0 => String::new(),
            n => format!("{n} unread"),
        };
        let last = conversation
            .last_message
            .as_ref()
            .map(preview)
            .unwrap_or_else(|| "(no messages)".to_owned());
        let line = format!("{name:<width$}  {unread:<9}  {last}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}

/// The first line of a message, shortened, as `[time] who: text`.
fn preview(message: &Message) -> String {
    let first = message.text.split('\n').next().unwrap_or_default();
    let mut text: String = first.chars().take(PREVIEW_CHARS).collect();
    if text.len() < message.text.len() {
        text.push('…');
    }
    message_line(&Message {
        text,
        ..message.clone()
    })
}

/// The daemon's state.
pub fn status(status: &DaemonStatus) -> String {
    let mut out = format!(
        "chatd {} (API {}), pid {}, up {}\n",
        clean_line(&status.version),
        clean_line(&status.api_version),
        status.pid,
        duration(status.uptime_ms)
    );
    let account = match (status.state, &status.address) {
        (LockState::NoAccount, _) => "none (create one with `chatctl init --name NAME`)".into(),
        (LockState::Locked, _) => "locked (`chatctl unlock`)".into(),
        (LockState::Unlocked, Some(address)) => format!("unlocked, {}", clean_line(address)),
        (LockState::Unlocked, None) => "unlocked".into(),
    };
    let _ = writeln!(out, "account:  {account}");
    let state = connection(status.connection);
    let relay = match (&status.relay_url, relay_kind(status)) {
        (Some(url), Some(kind)) => format!("{} ({state}; {kind})", clean_line(url)),
        (Some(url), None) => format!("{} ({state})", clean_line(url)),
        (None, _) => state.to_owned(),
    };
    let _ = writeln!(out, "relay:    {relay}");
    if let Some(error) = status.local_relay.as_ref().and_then(|l| l.error.as_ref()) {
        let _ = writeln!(out, "local relay error: {}", clean_line(error));
    }
    if let Some(outbox) = status.outbox {
        let _ = writeln!(out, "outbox:   {outbox} waiting");
    }
    for other in &status.other_relays {
        let _ = writeln!(
            out,
            "contacts' relay: {} ({})",
            clean_line(&other.url),
            connection(other.connection)
        );
    }
    if let Some(hosted) = &status.hosted_relay {
        let _ = writeln!(out, "hosting:  {}", clean_line(hosted));
    }
    if status.ephemeral {
        out.push_str("storage:  ephemeral (nothing is written to disk)\n");
    }
    if let Some(error) = &status.last_relay_error {
        let _ = writeln!(
            out,
            "last relay error: {} ({}, {})",
            clean_line(&error.error),
            clean_line(&error.relay),
            time(error.at_ms)
        );
    }
    if let Some(log) = &status.log_file {
        let _ = writeln!(out, "log:      {}", clean_line(log));
    }
    out.pop();
    out
}

/// What kind of relay the account is on and who hosts it, for `status`: "local relay,
/// hosted by this daemon", "local relay, hosted by chatd pid 4242", "hosted by this daemon
/// (--host-relay)", "remote relay".
fn relay_kind(status: &DaemonStatus) -> Option<String> {
    Some(match status.relay_kind? {
        RelayKind::Local => match &status.local_relay {
            Some(local) if local.hosted_here => "local relay, hosted by this daemon".to_owned(),
            Some(local) if local.error.is_some() => "local relay, not usable".to_owned(),
            Some(LocalRelayStatus {
                host_pid: Some(pid),
                ..
            }) => format!("local relay, hosted by chatd pid {pid}"),
            Some(local) if local.can_host => {
                "local relay, hosted by another process; this daemon takes over when it stops"
                    .to_owned()
            }
            _ => "local relay, hosted by another process".to_owned(),
        },
        RelayKind::Hosted => "hosted by this daemon (--host-relay)".to_owned(),
        RelayKind::Remote => "remote relay".to_owned(),
    })
}

/// This account.
pub fn account(info: &AccountInfo) -> String {
    let handles = if info.handles.is_empty() {
        "(none)".to_owned()
    } else {
        let handles: Vec<String> = info
            .handles
            .iter()
            .map(|h| format!("@{}", clean_line(h)))
            .collect();
        handles.join(", ")
    };
    let mut out = format!(
        "name:     {}\naddress:  {}\ndevice:   {}\nrelay:    {}\nhandles:  {handles}\ncreated:  {}",
        clean_line(&info.name),
        clean_line(&info.address),
        info.device_id,
        clean_line(&info.relay_url),
        time(info.created_at_ms),
    );
    if info.unprotected {
        out.push_str("\nWARNING:  no passphrase: the keys are stored unprotected");
    }
    out
}

/// Contacts as a table: alias, trust, address, handle.
pub fn contact_list(contacts: &[Contact]) -> String {
    if contacts.is_empty() {
        return "(no contacts)".to_owned();
    }
    let aliases: Vec<Cow<'_, str>> = contacts.iter().map(|c| clean_line(&c.alias)).collect();
    let width = aliases.iter().map(|a| a.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (contact, alias) in contacts.iter().zip(&aliases) {
        let handle = match &contact.handle {
            Some(handle) => format!("  @{}", clean_line(handle)),
            None => String::new(),
        };
        let blocked = if contact.blocked { "  (blocked)" } else { "" };
        let _ = writeln!(
            out,
            "{alias:<width$}  {:<11}  {}{handle}{blocked}",
            trust(contact.trust),
            clean_line(&contact.address)
        );
    }
    out.pop();
    out
}

/// One contact with its safety number (the QR code is drawn separately).
pub fn contact_details(details: &ContactDetails) -> Result<String, String> {
    let contact = &details.contact;
    let mut out = format!(
        "alias:    {}\naddress:  {}\n",
        clean_line(&contact.alias),
        clean_line(&contact.address)
    );
    if let Some(handle) = &contact.handle {
        let _ = writeln!(out, "handle:   @{}", clean_line(handle));
    }
    if let Some(name) = &contact.display_name {
        let _ = writeln!(out, "name:     {}", clean_line(name));
    }
    let _ = writeln!(out, "trust:    {}", trust(contact.trust));
    if contact.request {
        out.push_str("state:    message request (`chatctl requests accept` to add it)\n");
    }
    if let Some(reason) = &contact.invite_refused {
        let _ = writeln!(
            out,
            "state:    refused the invite you accepted ({}): ask for a new invite",
            clean_line(reason)
        );
    }
    if !details.devices.is_empty() {
        let devices: Vec<String> = details.devices.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "devices:  {}", devices.join(", "));
    }
    let _ = writeln!(out, "added:    {}", time(contact.added_at_ms));
    match &details.key_change {
        None => out.push_str("\nsafety number:\n"),
        Some(change) => {
            let _ = write!(
                out,
                "\nKEY CHANGED\n  old key:  {}\n  new key:  {}\n\n{}\n\n\
                 safety number of the NEW key:\n",
                clean_line(&change.old_address),
                clean_line(&change.new_address),
                clean_line(&change.advice)
            );
        }
    }
    for row in safety_number(details)?.lines() {
        let _ = writeln!(out, "  {row}");
    }
    out.pop();
    Ok(out)
}

/// The safety number as 12 groups of 5 digits in 3 rows of 4: chatd's groups when they have
/// that shape, else the number itself cut into groups.
pub fn safety_number(details: &ContactDetails) -> Result<String, String> {
    let is_group = |g: &str| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit());
    let groups: Vec<String> = if details.safety_number_groups.len() == 12
        && details.safety_number_groups.iter().all(|g| is_group(g))
    {
        details.safety_number_groups.clone()
    } else {
        let digits: Vec<char> = details
            .safety_number
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if digits.len() != 60 || !digits.iter().all(char::is_ascii_digit) {
            return Err("chatd sent a safety number that is not 60 digits".to_owned());
        }
        digits.chunks(5).map(|g| g.iter().collect()).collect()
    };
    let rows: Vec<String> = groups.chunks(4).map(|row| row.join(" ")).collect();
    Ok(rows.join("\n"))
}

/// One event, as a line (or a few, for a multi-line message).
pub fn event(event: &Event) -> String {
    let at = time(event.time_ms);
    match &event.kind {
        EventKind::MessageReceived {
            message,
            sender_name,
            from_changed_key,
            from_request,
        } => {
            let mut line = message_line(message);
            if *from_changed_key {
                line.push_str("  [from a changed key, not accepted yet]");
            }
            if *from_request {
                line.push_str("  [message request: `chatctl requests`]");
            }
            match sender_name {
                Some(name) if *name != message.conversation => {
                    format!("{line}  ({})", clean_line(name))
                }
                _ => line,
            }
        }
        EventKind::MessageStatus {
            message_id,
            conversation,
            status,
            failure,
        } => {
            let mut line = format!(
                "[{at}] message {} to {}: {}",
                clean_line(message_id),
                clean_line(conversation),
                status_word(*status)
            );
            if let Some(why) = failure {
                let _ = write!(line, " ({})", clean_line(why));
            }
            line
        }
        EventKind::MessagesRead {
            conversation,
            marked,
        } => format!(
            "[{at}] {}: {marked} message{} marked read",
            clean_line(conversation),
            if *marked == 1 { "" } else { "s" }
        ),
        EventKind::ContactAdded { contact } => format!(
            "[{at}] contact added: {} ({}, {})",
            clean_line(&contact.alias),
            clean_line(&contact.address),
            trust(contact.trust)
        ),
        EventKind::ContactKeyChanged {
            alias,
            old_address,
            new_address,
        } => {
            let alias = clean_line(alias);
            format!(
                "[{at}] WARNING: {alias}'s identity key changed ({} -> {}); sending is refused \
                 until you compare the new safety number (`chatctl contact show {alias}`) and \
                 accept it (`chatctl contact verify {alias}`)",
                clean_line(old_address),
                clean_line(new_address)
            )
        }
        EventKind::ContactTrust { contact } => format!(
            "[{at}] {} is now {}",
            clean_line(&contact.alias),
            trust(contact.trust)
        ),
        EventKind::RelayConnection {
            state,
            relay_url,
            error,
        } => {
            let mut line = format!(
                "[{at}] relay {}: {}",
                clean_line(relay_url),
                connection(*state)
            );
            if let Some(error) = error {
                let _ = write!(line, " ({})", clean_line(error));
            }
            line
        }
        EventKind::Unlocked {} => format!("[{at}] account unlocked"),
        EventKind::Locked {} => format!("[{at}] account locked"),
        EventKind::ContactRemoved { alias, address } => format!(
            "[{at}] contact removed: {} ({})",
            clean_line(alias),
            clean_line(address)
        ),
        EventKind::ContactRenamed { old_alias, contact } => format!(
            "[{at}] contact renamed: {} is now {}",
            clean_line(old_alias),
            clean_line(&contact.alias)
        ),
        EventKind::RequestReceived { contact } => {
            let alias = clean_line(&contact.alias);
            let name = match &contact.display_name {
                Some(name) if *name != contact.alias => format!(" ({})", clean_line(name)),
                _ => String::new(),
            };
            format!(
                "[{at}] message request from {alias}{name}, {}: `chatctl requests accept \
                 {alias}`, `decline` or `block`",
                clean_line(&contact.address)
            )
        }
        EventKind::ContactBlockChanged { contact } => format!(
            "[{at}] {} {}",
            clean_line(&contact.alias),
            if contact.blocked {
                "blocked: what it sends is dropped"
            } else {
                "unblocked"
            }
        ),
        EventKind::InviteRefused { alias, reason } => {
            let alias = clean_line(alias);
            format!(
                "[{at}] WARNING: {alias} refused the invite you accepted ({}): {alias} has not \
                 added you; ask {alias} for a new invite",
                clean_line(reason)
            )
        }
    }
}

/// Message requests as a table: alias, name, address, message count and the newest message.
pub fn requests(list: &[MessageRequest]) -> String {
    if list.is_empty() {
        return "(no message requests)".to_owned();
    }
    let aliases: Vec<Cow<'_, str>> = list.iter().map(|r| clean_line(&r.contact.alias)).collect();
    let width = aliases.iter().map(|a| a.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (request, alias) in list.iter().zip(&aliases) {
        let contact = &request.contact;
        let name = match &contact.display_name {
            Some(name) if *name != contact.alias => format!("  \"{}\"", clean_line(name)),
            _ => String::new(),
        };
        let count = match (request.messages, request.unread) {
            (1, _) => "1 message".to_owned(),
            (n, 0) => format!("{n} messages"),
            (n, unread) => format!("{n} messages, {unread} unread"),
        };
        let _ = writeln!(
            out,
            "{alias:<width$}  {}{name}  ({count})",
            clean_line(&contact.address)
        );
        if let Some(last) = &request.last_message {
            let _ = writeln!(out, "    {}", preview(last));
        }
    }
    out.pop();
    out
}

/// An event this chatctl does not know (from a newer chatd): its kind and cursor.
pub fn unknown_event(value: &Value) -> String {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
    let at = value
        .get("time_ms")
        .and_then(Value::as_u64)
        .map(time)
        .unwrap_or_else(|| "?".to_owned());
    format!(
        "[{at}] {} (an event this chatctl does not know)",
        clean_line(kind)
    )
}

#[cfg(test)]
mod tests;
