//! What the desktop should show, decided without touching it: the events of a burst go in
//! ([`Inbox::received`], [`Inbox::read`], [`Inbox::key_changed`], ...), and
//! [`Inbox::flush`] turns them into [`Effect`]s, given chatd's unread counts.
//!
//! Rules:
//! - One notification per conversation ([`Slot::Conversation`]), replaced as messages arrive:
//!   the sender as summary, the newest message's preview as body, and "N new messages" under
//!   it while several are unread. In privacy mode there is one content-free notification for
//!   every conversation ([`Slot::Messages`]): "New message", or "N new messages", with no
//!   sender and no text, since even which conversation is active is content.
//! - The counts are chatd's (`conversations.list`), read once per burst; so a message that was
//!   read elsewhere before the burst was handled (a replay after a restart) is not shown at all.
//! - When a conversation's unread count drops to zero (`messages.read`, here or from another
//!   client), its notification is closed; when the account locks, every message notification
//!   is closed, so no text stays on a screen whose owner walked away.
//! - A key change is a notification of its own per contact ([`Slot::KeyChange`]), critical,
//!   closed when the contact is trusted again.
//! - A message request (a stranger who wrote first) is a notification of its own per request
//!   ([`Slot::Request`]) that says "Message request from NAME" and how to accept it, replaced as
//!   its messages arrive, and closed once it is accepted, declined or blocked. Its messages
//!   are not counted as unread (chatd's counts leave requests out).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::text::one_line;

/// The longest name shown, in characters.
pub const NAME_CHARS: usize = 64;

/// One notification on screen, by what it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// The messages of one conversation (by alias).
    Conversation(String),
    /// Every message, in privacy mode.
    Messages,
    /// A contact's key change (by alias).
    KeyChange(String),
    /// A message request (by alias).
    Request(String),
    /// The menu's "Open chatctl" opened nothing (shown by the main loop, not the inbox).
    Terminal,
}

impl Slot {
    /// Whether it shows messages (rather than a warning).
    pub fn is_message(&self) -> bool {
        matches!(self, Self::Conversation(_) | Self::Messages)
    }
}

/// How urgent a notification is (the spec's `urgency` hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Messages.
    Normal,
    /// Security warnings.
    Critical,
}

/// What a notification says. The text is plain (not markup) and already sanitized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The title line.
    pub summary: String,
    /// The body; may be empty.
    pub body: String,
    /// Its urgency.
    pub urgency: Urgency,
}

/// A change to make on the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Show, or replace, the notification of this slot.
    Show(Slot, Content),
    /// Close the notification of this slot.
    Close(Slot),
}

/// The newest message of a conversation in this burst.
#[derive(Debug, Clone)]
struct Latest {
    sender: String,
    preview: String,
}

/// The notification state machine (see the module doc).
#[derive(Debug)]
pub struct Inbox {
    privacy: bool,
    preview_chars: usize,
    received: BTreeMap<String, Latest>,
    requests: BTreeMap<String, Latest>,
    closed_requests: BTreeSet<String>,
    read: BTreeSet<String>,
    key_changes: BTreeMap<String, String>,
    trusted: BTreeSet<String>,
    close_messages: bool,
    shown: BTreeSet<Slot>,
    local_unread: HashMap<String, u32>,
}

impl Inbox {
    /// An empty inbox.
    pub fn new(privacy: bool, preview_chars: usize) -> Self {
        Self {
            privacy,
            preview_chars,
            received: BTreeMap::new(),
            requests: BTreeMap::new(),
            closed_requests: BTreeSet::new(),
            read: BTreeSet::new(),
            key_changes: BTreeMap::new(),
            trusted: BTreeSet::new(),
            close_messages: false,
            shown: BTreeSet::new(),
            local_unread: HashMap::new(),
        }
    }

    /// A message arrived in `conversation` from `sender` (a display name).
    pub fn received(&mut self, conversation: &str, sender: &str, text: &str) {
        let latest = Latest {
            sender: one_line(sender, NAME_CHARS),
            preview: if self.privacy {
                String::new()
            } else {
                one_line(text, self.preview_chars)
            },
        };
        self.received.insert(conversation.to_owned(), latest);
        *self
            .local_unread
            .entry(conversation.to_owned())
            .or_insert(0) += 1;
    }

    /// A message request from `alias` (shown as `name`) arrived, or wrote again (`text`).
    pub fn request(&mut self, alias: &str, name: &str, text: Option<&str>) {
        let preview = match (text, self.privacy) {
            (Some(text), false) => one_line(text, self.preview_chars),
            _ => self
                .requests
                .get(alias)
                .map(|held| held.preview.clone())
                .unwrap_or_default(),
        };
        self.closed_requests.remove(alias);
        self.requests.insert(
            alias.to_owned(),
            Latest {
                sender: one_line(name, NAME_CHARS),
                preview,
            },
        );
    }

    /// The request `alias` was accepted (it is a contact now), declined or blocked: its
    /// notification closes.
    pub fn request_closed(&mut self, alias: &str) {
        self.requests.remove(alias);
        self.closed_requests.insert(alias.to_owned());
    }

    /// Messages of `conversation` were marked read.
    pub fn read(&mut self, conversation: &str) {
        self.read.insert(conversation.to_owned());
        self.local_unread.remove(conversation);
    }

    /// The key of the contact `alias`, shown as `name`, changed.
    pub fn key_changed(&mut self, alias: &str, name: &str) {
        self.trusted.remove(alias);
        self.key_changes
            .insert(alias.to_owned(), one_line(name, NAME_CHARS));
    }

    /// The contact `alias` is trusted again (or verified).
    pub fn trusted(&mut self, alias: &str) {
        self.key_changes.remove(alias);
        self.trusted.insert(alias.to_owned());
    }

    /// The contact `alias` was removed: its notifications close.
    pub fn removed(&mut self, alias: &str) {
        self.request_closed(alias);
        self.received.remove(alias);
        self.local_unread.remove(alias);
        self.key_changes.remove(alias);
        self.read.insert(alias.to_owned());
        self.trusted.insert(alias.to_owned());
    }

    /// The contact `old` is now called `new` (shown as `name`): what was shown under the old
    /// alias closes, a warning about its key moves to the new one, and its unread messages
    /// count under the new alias.
    pub fn renamed(&mut self, old: &str, new: &str, name: &str) {
        let warned = self.key_changes.contains_key(old)
            || self.shown.contains(&Slot::KeyChange(old.to_owned()));
        let unread = self.local_unread.remove(old);
        let latest = self.received.remove(old);
        self.removed(old);
        if warned {
            self.trusted.remove(new);
            self.key_changes
                .insert(new.to_owned(), one_line(name, NAME_CHARS));
        }
        if let Some(unread) = unread {
            self.local_unread.insert(new.to_owned(), unread);
        }
        if let Some(latest) = latest {
            self.received.insert(new.to_owned(), latest);
        }
    }

    /// The account locked: message notifications go away.
    pub fn locked(&mut self) {
        self.received.clear();
        self.read.clear();
        self.local_unread.clear();
        self.close_messages = true;
    }

    /// Whether the next [`Self::flush`] would use unread counts.
    pub fn wants_counts(&self) -> bool {
        !self.received.is_empty() || !self.read.is_empty()
    }

    /// Whether anything is waiting for [`Self::flush`].
    pub fn is_dirty(&self) -> bool {
        self.wants_counts()
            || !self.key_changes.is_empty()
            || !self.trusted.is_empty()
            || self.close_messages
    }

    /// The slots currently shown.
    pub fn shown(&self) -> impl Iterator<Item = &Slot> {
        self.shown.iter()
    }

    /// Turns what happened since the last flush into effects. `counts` are chatd's unread
    /// counts per conversation (a conversation missing from them has none); without them
    /// (chatd could not say), the inbox counts the messages it saw since each was last read.
    pub fn flush(&mut self, counts: Option<&HashMap<String, u32>>) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(counts) = counts {
            self.local_unread = counts.clone();
        }
        if std::mem::take(&mut self.close_messages) {
            let slots: Vec<Slot> = self
                .shown
                .iter()
                .filter(|s| s.is_message())
                .cloned()
                .collect();
            effects.extend(slots.into_iter().map(Effect::Close));
        }

        let received = std::mem::take(&mut self.received);
        let read = std::mem::take(&mut self.read);
        // chatd's counts when it gave them, else the inbox's own (reset by each read).
        let unread = counts.unwrap_or(&self.local_unread);
        let mut messages = Vec::new();
        if self.privacy {
            if !received.is_empty() || !read.is_empty() {
                let total = total(unread);
                if total > 0 && !received.is_empty() {
                    messages.push(Effect::Show(Slot::Messages, privacy_content(total)));
                } else if total == 0 {
                    messages.push(Effect::Close(Slot::Messages));
                }
            }
        } else {
            for (conversation, latest) in &received {
                let n = unread.get(conversation).copied().unwrap_or(0);
                let slot = Slot::Conversation(conversation.clone());
                if n == 0 {
                    messages.push(Effect::Close(slot));
                } else {
                    messages.push(Effect::Show(slot, message_content(latest, n)));
                }
            }
            for conversation in read.iter().filter(|c| !received.contains_key(*c)) {
                if unread.get(conversation).copied().unwrap_or(0) == 0 {
                    messages.push(Effect::Close(Slot::Conversation(conversation.clone())));
                }
            }
        }
        effects.extend(messages);

        for (alias, name) in std::mem::take(&mut self.key_changes) {
            let content = key_change_content(&alias, &name, self.privacy);
            effects.push(Effect::Show(Slot::KeyChange(alias), content));
        }
        for alias in std::mem::take(&mut self.trusted) {
            effects.push(Effect::Close(Slot::KeyChange(alias)));
        }
        for (alias, latest) in std::mem::take(&mut self.requests) {
            let content = request_content(&alias, &latest, self.privacy);
            effects.push(Effect::Show(Slot::Request(alias), content));
        }
        for alias in std::mem::take(&mut self.closed_requests) {
            effects.push(Effect::Close(Slot::Request(alias)));
        }

        // Closing what is not shown is a no-op, so it is dropped here.
        effects.retain(|effect| match effect {
            Effect::Close(slot) => self.shown.contains(slot),
            Effect::Show(..) => true,
        });
        for effect in &effects {
            match effect {
                Effect::Show(slot, _) => {
                    self.shown.insert(slot.clone());
                }
                Effect::Close(slot) => {
                    self.shown.remove(slot);
                }
            }
        }
        effects
    }
}

/// The sum of unread counts (saturating: the counts come from outside).
pub fn total(counts: &HashMap<String, u32>) -> u32 {
    counts.values().fold(0u32, |sum, n| sum.saturating_add(*n))
}

fn message_content(latest: &Latest, unread: u32) -> Content {
    let body = if unread > 1 {
        format!("{}\n{unread} new messages", latest.preview)
    } else {
        latest.preview.clone()
    };
    Content {
        summary: latest.sender.clone(),
        body,
        urgency: Urgency::Normal,
    }
}

fn privacy_content(unread: u32) -> Content {
    Content {
        summary: if unread > 1 {
            format!("{unread} new messages")
        } else {
            "New message".to_owned()
        },
        body: String::new(),
        urgency: Urgency::Normal,
    }
}

fn request_content(alias: &str, latest: &Latest, privacy: bool) -> Content {
    if privacy {
        return Content {
            summary: "New message request".to_owned(),
            body: "Someone who is not your contact wrote to you (chatctl requests).".to_owned(),
            urgency: Urgency::Normal,
        };
    }
    let alias = one_line(alias, NAME_CHARS);
    let how = format!("chatctl requests accept {alias} (or decline, block)");
    Content {
        summary: format!("Message request from {}", latest.sender),
        body: if latest.preview.is_empty() {
            how
        } else {
            format!("{}\n{how}", latest.preview)
        },
        urgency: Urgency::Normal,
    }
}

fn key_change_content(alias: &str, name: &str, privacy: bool) -> Content {
    if privacy {
        return Content {
            summary: "A contact's safety number changed".to_owned(),
            body: "Sending to them is paused until you compare safety numbers \
                   (chatctl contact list)."
                .to_owned(),
            urgency: Urgency::Critical,
        };
    }
    let alias = one_line(alias, NAME_CHARS);
    Content {
        summary: format!("Safety number changed: {name}"),
        body: format!(
            "{name}'s identity key changed. Sending is paused until you compare safety numbers \
             and accept the new key: chatctl contact trust {alias}"
        ),
        urgency: Urgency::Critical,
    }
}

#[cfg(test)]
mod tests;
