//! The main loop: one thread, one channel of [`Input`]s, one session with chatd at a time.
//!
//! - Not connected: try [`Session::open`] with `since` = the last cursor handled; on failure,
//!   wait with [`Backoff`] (menu choices still answered meanwhile) and try again.
//! - Connected: read the inputs in bursts (everything that arrives within [`BURST_GAP`] of the
//!   previous one, for at most [`BURST_MAX`]), feed them to the [`Inbox`], then *flush*: ask
//!   chatd for the unread counts once, show or close notifications, update the icon, and only
//!   then store the cursor. So a crash repeats at most the last burst's notifications and
//!   never loses one, and a replay of many events becomes one notification per conversation.
//! - Locked: the subscription stays; chatd replays the retained message events once it is
//!   unlocked, and `account.unlocked` says when.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use api::ErrorCode;
use api::events::{Event, EventKind};
use api::methods as m;
use api::types::{
    ContactDetails, ContactRef, ConversationList, DaemonStatus, Direction, Empty, LockState,
    MarkRead, MarkedRead, Trust,
};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::daemon::{Delivery, Session, is_disconnect};
use crate::desktop::Desktop;
use crate::icon::{Icon, Status};
use crate::inbox::{Content, Effect, Inbox, Slot, Urgency};
use crate::names::Names;
use crate::state::{StateFile, cursor_now};
use crate::{Input, MenuAction, terminal};

/// How long after an input the loop waits for more before it flushes.
pub const BURST_GAP: Duration = Duration::from_millis(30);
/// The longest a burst is gathered before it is flushed anyway.
pub const BURST_MAX: Duration = Duration::from_millis(300);

/// Runs chat-tray until the menu's Quit or a signal ([`crate::signals`]); then closes the
/// notifications it has open and takes the icon off the panel.
pub fn run(config: Config) -> anyhow::Result<()> {
    let mut state = StateFile::open(&config.state_file)?;
    let cursor = match state.cursor() {
        Some(cursor) => {
            tracing::info!(cursor, state_file = %state.path().display(), "resuming after the last event handled");
            cursor
        }
        None => {
            let now = cursor_now();
            state.save(now)?;
            tracing::info!(
                state_file = %state.path().display(),
                "first run: notifying of what arrives from now on, not of the history"
            );
            now
        }
    };
    let (inputs, receiver) = channel();
    crate::signals::catch(inputs.clone());
    let icon = Icon::spawn(config.tray_icon, inputs.clone());
    let mut app = App {
        inbox: Inbox::new(config.privacy, config.preview_chars),
        config,
        state,
        cursor,
        names: Names::new(),
        desktop: Desktop::new(),
        icon,
        session: None,
        locked: true,
    };
    app.icon.set(Status::Offline);
    app.run(&inputs, &receiver);
    app.desktop.close_all();
    app.icon.remove();
    tracing::info!("stopped");
    Ok(())
}

/// Why a session ended.
#[derive(Debug)]
enum Exit {
    /// The user quit.
    Quit,
    /// The connection to chatd was lost.
    Lost(String),
}

/// The loop's state.
#[derive(Debug)]
struct App {
    config: Config,
    state: StateFile,
    cursor: u64,
    inbox: Inbox,
    names: Names,
    desktop: Desktop,
    icon: Icon,
    session: Option<Session>,
    locked: bool,
}

impl App {
    fn run(&mut self, inputs: &Sender<Input>, receiver: &Receiver<Input>) {
        let mut backoff = Backoff::new();
        let mut session_id = 0;
        let mut failures = 0u32;
        loop {
            session_id += 1;
            match Session::open(&self.config.socket, self.cursor, session_id, inputs.clone()) {
                Ok(session) => {
                    tracing::info!(
                        socket = %self.config.socket.display(),
                        since = self.cursor,
                        "connected to chatd, subscribed to events"
                    );
                    failures = 0;
                    backoff.reset();
                    self.session = Some(session);
                    let exit = self.connected().and_then(|()| self.serve(receiver));
                    self.session = None;
                    self.icon.set(Status::Offline);
                    match exit {
                        Err(Exit::Quit) | Ok(()) => return,
                        Err(Exit::Lost(why)) => {
                            tracing::warn!(reason = %why, "lost the connection to chatd; reconnecting");
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(
                            socket = %self.config.socket.display(),
                            error = %e,
                            "chatd is not reachable; retrying with backoff"
                        );
                    } else {
                        tracing::debug!(error = %e, attempt = failures, "chatd still not reachable");
                    }
                }
            }
            if let Err(Exit::Quit) = self.idle(receiver, backoff.next_wait()) {
                return;
            }
        }
    }

    /// Waits `wait` while disconnected, answering menu choices.
    fn idle(&mut self, receiver: &Receiver<Input>, wait: Duration) -> Result<(), Exit> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(Input::Menu(action)) => self.menu(action)?,
                Ok(Input::Stop(_)) => return Err(Exit::Quit),
                // A previous session's reader; its session is over.
                Ok(Input::Daemon(..)) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Reads the daemon's state after connecting.
    fn connected(&mut self) -> Result<(), Exit> {
        self.names.clear();
        let status: Option<DaemonStatus> = self.call(m::DAEMON_STATUS, &Empty {})?;
        let state = status.map(|s| s.state);
        self.locked = state != Some(LockState::Unlocked);
        tracing::debug!(?state, "daemon status");
        if self.locked {
            tracing::info!(?state, "chatd is locked; waiting for account.unlocked");
            self.icon.set(Status::Locked);
        } else {
            self.refresh_icon()?;
        }
        Ok(())
    }

    /// Serves the session until it ends.
    fn serve(&mut self, receiver: &Receiver<Input>) -> Result<(), Exit> {
        loop {
            let Ok(first) = receiver.recv() else {
                return Err(Exit::Quit);
            };
            let result = self.burst(first, receiver);
            // What was handled is shown and recorded even when the session just ended.
            let flushed = self.flush();
            result?;
            flushed?;
        }
    }

    /// Handles `first` and whatever follows it closely.
    fn burst(&mut self, first: Input, receiver: &Receiver<Input>) -> Result<(), Exit> {
        self.handle(first)?;
        let deadline = Instant::now() + BURST_MAX;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match receiver.recv_timeout(left.min(BURST_GAP)) {
                Ok(input) => self.handle(input)?,
                Err(_) => return Ok(()),
            }
        }
    }

    fn handle(&mut self, input: Input) -> Result<(), Exit> {
        match input {
            Input::Menu(action) => self.menu(action),
            Input::Stop(_) => Err(Exit::Quit),
            Input::Daemon(id, _) if Some(id) != self.session.as_ref().map(Session::id) => Ok(()),
            Input::Daemon(_, Delivery::Closed(why)) => Err(Exit::Lost(why)),
            Input::Daemon(_, Delivery::Event { cursor, event }) => {
                if let Some(cursor) = cursor {
                    if cursor <= self.cursor {
                        tracing::debug!(cursor, "skipping an event already handled");
                        return Ok(());
                    }
                    self.cursor = cursor;
                }
                match event {
                    Some(event) => self.event(*event),
                    None => {
                        tracing::debug!(?cursor, "skipping an event of an unknown kind");
                        Ok(())
                    }
                }
            }
        }
    }

    fn event(&mut self, event: Event) -> Result<(), Exit> {
        tracing::debug!(cursor = event.cursor, kind = event.kind.name(), "event");
        match event.kind {
            EventKind::MessageReceived {
                message,
                sender_name,
                from_request,
                ..
            } => {
                if message.direction == Direction::Incoming {
                    let sender = self.name(&message.conversation, sender_name.as_deref());
                    if from_request {
                        self.inbox
                            .request(&message.conversation, &sender, Some(&message.text));
                    } else {
                        self.inbox
                            .received(&message.conversation, &sender, &message.text);
                    }
                }
            }
            EventKind::MessagesRead { conversation, .. } => self.inbox.read(&conversation),
            EventKind::ContactAdded { contact } => {
                self.names.learn(&contact);
                // An accepted request is a contact now: its request notification closes.
                self.inbox.request_closed(&contact.alias);
            }
            EventKind::RequestReceived { contact } => {
                self.names.learn(&contact);
                let name = self.name(&contact.alias, contact.display_name.as_deref());
                self.inbox.request(&contact.alias, &name, None);
            }
            EventKind::ContactBlockChanged { contact } => {
                // A blocked request is not waiting for the user any more.
                if contact.blocked {
                    self.inbox.request_closed(&contact.alias);
                }
            }
            EventKind::InviteRefused { .. } => {
                // chatctl says so where the user acts on it (`send`, `contact show`, `watch`).
                tracing::warn!("a contact refused the invite this account accepted");
            }
            EventKind::ContactTrust { contact } => {
                self.names.learn(&contact);
                if contact.trust != Trust::KeyChanged {
                    self.inbox.trusted(&contact.alias);
                }
            }
            EventKind::ContactKeyChanged { alias, .. } => {
                tracing::warn!("a contact's identity key changed");
                let name = self.name(&alias, None);
                self.inbox.key_changed(&alias, &name);
            }
            EventKind::Unlocked {} => {
                tracing::info!("chatd unlocked");
                self.locked = false;
                self.refresh_icon()?;
            }
            EventKind::Locked {} => {
                tracing::info!("chatd locked; waiting for account.unlocked");
                self.locked = true;
                self.inbox.locked();
                self.icon.set(Status::Locked);
            }
            EventKind::MessageStatus { .. } | EventKind::RelayConnection { .. } => {}
            EventKind::ContactRemoved { alias, .. } => {
                self.names.forget(&alias);
                self.inbox.removed(&alias);
            }
            EventKind::ContactRenamed { old_alias, contact } => {
                self.names.forget(&old_alias);
                self.names.learn(&contact);
                let name = self.name(&contact.alias, None);
                self.inbox.renamed(&old_alias, &contact.alias, &name);
            }
        }
        Ok(())
    }

    /// Shows what the burst changed, then records its cursor.
    fn flush(&mut self) -> Result<(), Exit> {
        let mut result = Ok(());
        if self.inbox.is_dirty() {
            tracing::debug!("showing what the burst changed");
            let counts = if self.inbox.wants_counts() && !self.locked {
                self.unread_counts().unwrap_or_else(|e| {
                    result = Err(e);
                    None
                })
            } else {
                None
            };
            if let Some(counts) = &counts {
                self.icon.set(Status::Unlocked {
                    unread: crate::inbox::total(counts),
                });
            }
            for effect in self.inbox.flush(counts.as_ref()) {
                self.desktop.apply(effect);
            }
        }
        if let Err(e) = self.state.save(self.cursor) {
            // Not fatal: at worst the next start repeats these notifications.
            tracing::error!(error = format!("{e:#}"), "cannot store the resume cursor");
        }
        result
    }

    fn menu(&mut self, action: MenuAction) -> Result<(), Exit> {
        tracing::info!(?action, "menu");
        match action {
            MenuAction::Quit => return Err(Exit::Quit),
            MenuAction::OpenTerminal => {
                match terminal::open(&self.config.terminal, &self.config.socket) {
                    Ok(()) => self.desktop.apply(Effect::Close(Slot::Terminal)),
                    Err(e) => {
                        tracing::warn!(command = ?self.config.terminal, error = %e, "cannot open a terminal");
                        let content = terminal_content(&e, &self.config.socket);
                        self.desktop.apply(Effect::Show(Slot::Terminal, content));
                    }
                }
            }
            MenuAction::MarkAllRead | MenuAction::Lock if self.session.is_none() => {
                tracing::warn!("not connected to chatd");
            }
            MenuAction::MarkAllRead => {
                let Some(list) =
                    self.call::<_, ConversationList>(m::CONVERSATIONS_LIST, &Empty {})?
                else {
                    return Ok(());
                };
                let mut marked = 0;
                for conversation in list.conversations.iter().filter(|c| c.unread > 0) {
                    let params = MarkRead {
                        conversation: conversation.conversation.clone(),
                        up_to: None,
                    };
                    let done: Option<MarkedRead> = self.call(m::MESSAGES_MARK_READ, &params)?;
                    marked += done.map_or(0, |d| d.marked);
                }
                tracing::info!(marked, "marked everything read");
            }
            MenuAction::Lock => {
                let _: Option<Empty> = self.call(m::ACCOUNT_LOCK, &Empty {})?;
            }
        }
        Ok(())
    }

    fn refresh_icon(&mut self) -> Result<(), Exit> {
        if let Some(counts) = self.unread_counts()? {
            self.icon.set(Status::Unlocked {
                unread: crate::inbox::total(&counts),
            });
        }
        Ok(())
    }

    /// chatd's unread counts by conversation (`None` when it refused: locked).
    fn unread_counts(&mut self) -> Result<Option<HashMap<String, u32>>, Exit> {
        let list: Option<ConversationList> = self.call(m::CONVERSATIONS_LIST, &Empty {})?;
        Ok(list.map(|list| {
            list.conversations
                .into_iter()
                .filter(|c| c.unread > 0)
                .map(|c| (c.conversation, c.unread))
                .collect()
        }))
    }

    /// The display name of the contact `alias` (looked up once, then cached).
    fn name(&mut self, alias: &str, fallback: Option<&str>) -> String {
        let Self { names, session, .. } = self;
        names.get(alias, fallback, |alias| {
            let session = session.as_mut()?;
            let params = ContactRef {
                contact: alias.to_owned(),
            };
            match session.call::<_, ContactDetails>(m::CONTACTS_GET, &params) {
                Ok(details) => Some(details.contact),
                Err(e) => {
                    tracing::debug!(error = %e, "contacts.get failed");
                    None
                }
            }
        })
    }

    /// Calls chatd: `Ok(None)` when it refused (logged; a `locked` refusal also marks the
    /// account locked), `Err` when the connection is gone, which ends the session.
    fn call<P: serde::Serialize, R: serde::de::DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<Option<R>, Exit> {
        let Some(session) = self.session.as_mut() else {
            return Err(Exit::Lost("not connected".into()));
        };
        match session.call(method, params) {
            Ok(result) => Ok(Some(result)),
            Err(e) if is_disconnect(&e) => Err(Exit::Lost(format!("{method}: {e}"))),
            Err(e) => {
                if matches!(e.app_code(), Some(ErrorCode::Locked | ErrorCode::NoAccount)) {
                    self.locked = true;
                    self.icon.set(Status::Locked);
                }
                tracing::warn!(method, error = %e, "chatd refused a call");
                Ok(None)
            }
        }
    }
}

/// The notification saying that "Open chatctl" opened nothing, and what to run instead.
fn terminal_content(error: &terminal::OpenError, socket: &std::path::Path) -> Content {
    let run = if socket == api::paths::default_socket() {
        "chatctl conversations".to_owned()
    } else {
        format!(
            "{}={} chatctl conversations",
            api::paths::SOCKET_ENV,
            crate::text::one_line(&socket.display().to_string(), 200)
        )
    };
    let (summary, why) = match error {
        terminal::OpenError::NoTerminal { .. } => (
            "No terminal to open chatctl in",
            "chat-tray found no terminal emulator (x-terminal-emulator, gnome-terminal, \
             konsole, xterm, ...). Install one, or set `terminal` in chat-tray's tray.toml."
                .to_owned(),
        ),
        terminal::OpenError::Failed { program, error } => (
            "Cannot open a terminal",
            format!(
                "{}: {}. Check `terminal` in chat-tray's tray.toml (or --terminal).",
                crate::text::one_line(program, 100),
                crate::text::one_line(&error.to_string(), 200)
            ),
        ),
    };
    Content {
        summary: summary.to_owned(),
        body: format!("{why}\nIn a terminal, run: {run}"),
        urgency: Urgency::Normal,
    }
}
