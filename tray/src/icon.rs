//! The tray icon: a StatusNotifierItem (KDE, GNOME with the AppIndicator extension, waybar,
//! xfce4-panel, ...) through `ksni`, with the unread count drawn into the icon's pixels
//! ([`crate::pixmap`]) and in its title and tooltip, and a menu: open a terminal with chatctl, mark all read, lock, quit. Menu choices
//! go to the main loop as [`Input::Menu`](crate::Input::Menu); the icon only displays what it is told.
//!
//! Built with the `tray-icon` feature (on by default). Without it, or with `--no-tray-icon`,
//! [`Icon`] does nothing. A desktop without a StatusNotifierWatcher (yet) is not an error: the
//! icon appears when one starts.

use std::sync::mpsc::Sender;

use crate::Input;
use crate::pixmap::{self, Look, Pixmap};

/// The longest [`Icon::remove`] waits for the item's service to stop.
pub const REMOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the icon shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// chatd is not reachable.
    Offline,
    /// chatd is locked (or has no account).
    Locked,
    /// chatd is unlocked; this many messages are unread.
    Unlocked {
        /// Unread messages in every conversation.
        unread: u32,
    },
}

impl Status {
    /// One line saying it, for the title and tooltip.
    pub fn describe(self) -> String {
        match self {
            Self::Offline => "not connected to chatd".to_owned(),
            Self::Locked => "locked".to_owned(),
            Self::Unlocked { unread: 0 } => "no unread messages".to_owned(),
            Self::Unlocked { unread: 1 } => "1 unread message".to_owned(),
            Self::Unlocked { unread } => format!("{unread} unread messages"),
        }
    }
}

/// The tray icon, or nothing.
#[derive(Debug)]
pub struct Icon {
    #[cfg(feature = "tray-icon")]
    handle: Option<sni::Updater>,
    status: Option<Status>,
}

/// The themed icon for `status`, or none (`""`) while messages are unread: hosts prefer a
/// name to the pixmaps, and no theme's icon has the count in it.
pub fn icon_name(status: Status) -> &'static str {
    match status {
        Status::Offline => "network-offline",
        Status::Locked => "changes-prevent",
        Status::Unlocked { unread: 0 } => "mail-read",
        Status::Unlocked { .. } => "",
    }
}

/// The icon's pixels for `status` at every size of [`pixmap::SIZES`]: the envelope, greyed
/// out when chatd is locked or not reachable, with the unread count drawn into it.
pub fn pixmaps_for(status: Status) -> Vec<Pixmap> {
    match status {
        Status::Offline | Status::Locked => pixmap::render_all(Look::Dim, 0),
        Status::Unlocked { unread } => pixmap::render_all(Look::Normal, unread),
    }
}

#[cfg(feature = "tray-icon")]
fn pixmaps(status: Status) -> Vec<ksni::Icon> {
    pixmaps_for(status)
        .into_iter()
        .map(|p| ksni::Icon {
            width: i32::try_from(p.size).unwrap_or(i32::MAX),
            height: i32::try_from(p.size).unwrap_or(i32::MAX),
            data: p.argb,
        })
        .collect()
}

impl Icon {
    /// Shows the icon when `enabled` (and built with the feature); menu choices are sent to
    /// `inputs`.
    pub fn spawn(enabled: bool, inputs: Sender<Input>) -> Self {
        #[cfg(feature = "tray-icon")]
        {
            let handle = if enabled { sni::spawn(inputs) } else { None };
            Self {
                handle,
                status: None,
            }
        }
        #[cfg(not(feature = "tray-icon"))]
        {
            let _ = inputs;
            if enabled {
                tracing::debug!("built without the tray-icon feature: notifications only");
            }
            Self { status: None }
        }
    }

    /// Takes the item off the panel (its D-Bus service stops, so the host drops it), waiting
    /// at most [`REMOVE_WAIT`] for that.
    pub fn remove(&mut self) {
        #[cfg(feature = "tray-icon")]
        if let Some(handle) = self.handle.take() {
            handle.remove();
        }
    }

    /// Shows `status` (a no-op when it is already shown).
    pub fn set(&mut self, status: Status) {
        if self.status == Some(status) {
            return;
        }
        self.status = Some(status);
        #[cfg(feature = "tray-icon")]
        if let Some(handle) = &self.handle {
            handle.set(status);
        }
    }
}

#[cfg(feature = "tray-icon")]
mod sni {
    //! The ksni side of [`super::Icon`].

    use std::sync::Mutex;
    use std::sync::mpsc::{Sender, channel};

    use ksni::blocking::TrayMethods as _;
    use ksni::menu::{MenuItem, StandardItem};

    use super::Status;
    use crate::{Input, MenuAction};

    /// The item's state, read by the tray service's thread.
    #[derive(Debug)]
    pub struct Tray {
        status: Status,
        inputs: Mutex<Sender<Input>>,
    }

    impl Tray {
        fn send(&self, action: MenuAction) {
            let inputs = self
                .inputs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // The main loop is gone only while the process exits.
            let _ = inputs.send(Input::Menu(action));
        }

        fn item(label: &str, icon: &str, enabled: bool, action: MenuAction) -> MenuItem<Self> {
            StandardItem {
                label: label.into(),
                icon_name: icon.into(),
                enabled,
                activate: Box::new(move |tray: &mut Self| tray.send(action)),
                ..Default::default()
            }
            .into()
        }
    }

    /// Starts the item, and a thread that applies statuses to it: ksni's blocking `update`
    /// waits for its D-Bus service, which must never hold up the main loop.
    pub fn spawn(inputs: Sender<Input>) -> Option<Updater> {
        let tray = Tray {
            status: Status::Offline,
            inputs: Mutex::new(inputs),
        };
        // Started before the panel (at login), the icon waits for a StatusNotifierWatcher.
        let handle = match tray.assume_sni_available(true).spawn() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "no tray icon (notifications still work)");
                return None;
            }
        };
        let service = handle.clone();
        let (updates, statuses) = channel::<Status>();
        let spawned = std::thread::Builder::new()
            .name("tray-icon".into())
            .spawn(move || {
                while let Ok(mut status) = statuses.recv() {
                    // Only the latest status matters.
                    while let Ok(newer) = statuses.try_recv() {
                        status = newer;
                    }
                    if handle.update(|tray| tray.status = status).is_none() {
                        tracing::debug!("the tray icon service has stopped");
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Updater {
                statuses: updates,
                service,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no tray icon (notifications still work)");
                None
            }
        }
    }

    /// Sends statuses to the icon's thread; stops the item's service.
    pub struct Updater {
        statuses: Sender<Status>,
        service: ksni::blocking::Handle<Tray>,
    }

    impl std::fmt::Debug for Updater {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Updater").finish_non_exhaustive()
        }
    }

    impl Updater {
        pub fn set(&self, status: Status) {
            // The thread ends only when the service stopped; nothing to show then.
            let _ = self.statuses.send(status);
        }

        /// Stops the item's service (its bus name goes, so the host removes the item), and
        /// waits for that on a thread of its own, at most [`super::REMOVE_WAIT`].
        pub fn remove(self) {
            let awaiter = self.service.shutdown();
            let (done, stopped) = channel();
            let waiting = std::thread::Builder::new()
                .name("tray-icon-stop".into())
                .spawn(move || {
                    awaiter.wait();
                    let _ = done.send(());
                });
            if waiting.is_ok() && stopped.recv_timeout(super::REMOVE_WAIT).is_err() {
                tracing::warn!("the tray icon service did not stop in time");
            }
        }
    }

    impl ksni::Tray for Tray {
        fn id(&self) -> String {
            "chat-tray".into()
        }

        fn category(&self) -> ksni::Category {
            ksni::Category::Communications
        }

        fn title(&self) -> String {
            format!("chat: {}", self.status.describe())
        }

        fn status(&self) -> ksni::Status {
            match self.status {
                Status::Unlocked { unread } if unread > 0 => ksni::Status::NeedsAttention,
                _ => ksni::Status::Active,
            }
        }

        fn icon_name(&self) -> String {
            super::icon_name(self.status).into()
        }

        fn icon_pixmap(&self) -> Vec<ksni::Icon> {
            super::pixmaps(self.status)
        }

        // Hosts show the attention icon instead while the status is NeedsAttention: the
        // same pixmaps, so the count shows there too (no name: a themed icon has no count).
        fn attention_icon_pixmap(&self) -> Vec<ksni::Icon> {
            super::pixmaps(self.status)
        }

        fn tool_tip(&self) -> ksni::ToolTip {
            ksni::ToolTip {
                title: "chat".into(),
                description: self.status.describe(),
                ..Default::default()
            }
        }

        fn activate(&mut self, _x: i32, _y: i32) {
            self.send(MenuAction::OpenTerminal);
        }

        fn menu(&self) -> Vec<MenuItem<Self>> {
            let unlocked = matches!(self.status, Status::Unlocked { .. });
            let unread = matches!(self.status, Status::Unlocked { unread } if unread > 0);
            vec![
                StandardItem {
                    label: self.status.describe(),
                    enabled: false,
                    ..Default::default()
                }
                .into(),
                MenuItem::Separator,
                Self::item(
                    "Open chatctl",
                    "utilities-terminal",
                    true,
                    MenuAction::OpenTerminal,
                ),
                Self::item(
                    "Mark all read",
                    "mail-mark-read",
                    unread,
                    MenuAction::MarkAllRead,
                ),
                Self::item("Lock", "system-lock-screen", unlocked, MenuAction::Lock),
                MenuItem::Separator,
                Self::item("Quit", "application-exit", true, MenuAction::Quit),
            ]
        }
    }
}
