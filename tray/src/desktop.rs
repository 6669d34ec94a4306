//! The desktop's notification server, through `notify-rust` (the freedesktop Desktop
//! Notifications spec over D-Bus, in pure Rust with zbus). Keeps the handle of every
//! notification on screen by [`Slot`], so a conversation's next message replaces its
//! notification (`replaces_id`) and reading it closes it (`CloseNotification`).
//!
//! Bodies are plain text from [`crate::inbox`]; they are escaped when the server announces
//! `body-markup`, since such a server would otherwise render a message's `<b>` or `<a>`.

use std::collections::HashMap;

use notify_rust::{Hint, Notification, NotificationHandle};

use crate::inbox::{Content, Effect, Slot, Urgency};
use crate::text::escape_markup;

/// The application name every notification carries.
pub const APP_NAME: &str = "chat-tray";

/// The notifications on screen.
#[derive(Debug, Default)]
pub struct Desktop {
    handles: HashMap<Slot, NotificationHandle>,
    body_markup: Option<bool>,
}

impl Desktop {
    /// No notification shown yet; the server is asked for its capabilities on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one effect. A failure (no notification server on the bus) is logged, not
    /// fatal: messages are still in chatd.
    pub fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Show(slot, content) => {
                if let Err(e) = self.show(&slot, &content) {
                    tracing::warn!(error = %e, "cannot show a notification");
                }
            }
            Effect::Close(slot) => {
                if let Some(handle) = self.handles.remove(&slot) {
                    tracing::debug!(id = handle.id(), "closing a notification");
                    handle.close();
                }
            }
        }
    }

    /// Closes every notification on screen (chat-tray is stopping).
    pub fn close_all(&mut self) {
        for (_, handle) in self.handles.drain() {
            tracing::debug!(id = handle.id(), "closing a notification");
            handle.close();
        }
    }

    fn show(&mut self, slot: &Slot, content: &Content) -> Result<(), notify_rust::error::Error> {
        let notification = self.build(slot, content);
        if let Some(handle) = self.handles.get_mut(slot) {
            **handle = notification;
            handle.update()?;
            tracing::debug!(id = handle.id(), "replaced a notification");
            return Ok(());
        }
        let handle = notification.show()?;
        tracing::debug!(id = handle.id(), "showed a notification");
        self.handles.insert(slot.clone(), handle);
        Ok(())
    }

    fn build(&mut self, slot: &Slot, content: &Content) -> Notification {
        let body = if self.body_markup() {
            escape_markup(&content.body)
        } else {
            content.body.clone()
        };
        let mut notification = Notification::new();
        notification
            .appname(APP_NAME)
            .summary(&content.summary)
            .body(&body)
            .urgency(match content.urgency {
                Urgency::Normal => notify_rust::Urgency::Normal,
                Urgency::Critical => notify_rust::Urgency::Critical,
            });
        match slot {
            Slot::Conversation(_) | Slot::Messages | Slot::Request(_) => {
                notification
                    .icon("mail-message-new")
                    .hint(Hint::Category("im.received".into()));
            }
            Slot::KeyChange(_) => {
                notification
                    .icon("dialog-warning")
                    .hint(Hint::Category("im.error".into()));
            }
            Slot::Terminal => {
                notification.icon("utilities-terminal");
            }
        }
        notification
    }

    fn body_markup(&mut self) -> bool {
        if let Some(known) = self.body_markup {
            return known;
        }
        match notify_rust::get_capabilities() {
            Ok(capabilities) => {
                let markup = capabilities.iter().any(|c| c == "body-markup");
                self.body_markup = Some(markup);
                markup
            }
            // Asked again next time; escaping meanwhile is the safe side.
            Err(_) => true,
        }
    }
}
