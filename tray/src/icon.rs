//! The tray icon: a StatusNotifierItem (KDE, GNOME with the AppIndicator extension, waybar,
//! ...) through `ksni`, with the unread count as a badge over the icon and in its title and
//! tooltip, and a menu: open a terminal with chatctl, mark all read, lock, quit. Menu choices
//! go to the main loop as [`Input::Menu`](crate::Input::Menu); the icon only displays what it is told.
//!
//! Built with the `tray-icon` feature (on by default). Without it, or with `--no-tray-icon`,
//! [`Icon`] does nothing. A desktop without a StatusNotifierWatcher (yet) is not an error: the
//! icon appears when one starts.

use std::sync::mpsc::Sender;

use crate::Input;

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
            Ok(_) => Some(Updater(updates)),
            Err(e) => {
                tracing::warn!(error = %e, "no tray icon (notifications still work)");
                None
            }
        }
    }

    /// Sends statuses to the icon's thread.
    #[derive(Debug)]
    pub struct Updater(Sender<Status>);

    impl Updater {
        pub fn set(&self, status: Status) {
            // The thread ends only when the service stopped; nothing to show then.
            let _ = self.0.send(status);
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
            match self.status {
                Status::Offline => "network-offline",
                Status::Locked => "changes-prevent",
                Status::Unlocked { unread: 0 } => "mail-read",
                Status::Unlocked { .. } => "mail-unread",
            }
            .into()
        }

        fn attention_icon_name(&self) -> String {
            "mail-unread".into()
        }

        fn overlay_icon_pixmap(&self) -> Vec<ksni::Icon> {
            match self.status {
                Status::Unlocked { unread } if unread > 0 => vec![super::badge::render(unread)],
                _ => Vec::new(),
            }
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

#[cfg(feature = "tray-icon")]
mod badge {
    //! The unread count drawn as a badge: white digits on a red disc, as ARGB32.

    /// The badge's size in pixels.
    const SIZE: usize = 32;
    /// 3x5 glyphs for 0-9 and `+`, one row per 3 bits.
    const GLYPHS: [[u8; 5]; 11] = [
        [0b111, 0b101, 0b101, 0b101, 0b111],
        [0b010, 0b110, 0b010, 0b010, 0b111],
        [0b111, 0b001, 0b111, 0b100, 0b111],
        [0b111, 0b001, 0b111, 0b001, 0b111],
        [0b101, 0b101, 0b111, 0b001, 0b001],
        [0b111, 0b100, 0b111, 0b001, 0b111],
        [0b111, 0b100, 0b111, 0b101, 0b111],
        [0b111, 0b001, 0b010, 0b010, 0b010],
        [0b111, 0b101, 0b111, 0b101, 0b111],
        [0b111, 0b101, 0b111, 0b001, 0b111],
        [0b000, 0b010, 0b111, 0b010, 0b000],
    ];
    const PLUS: usize = 10;

    /// The badge for `unread` (1 to 99 as digits, more as `99+`).
    pub fn render(unread: u32) -> ksni::Icon {
        let glyphs: Vec<usize> = if unread > 99 {
            vec![9, 9, PLUS]
        } else {
            unread
                .to_string()
                .bytes()
                .map(|b| usize::from(b.saturating_sub(b'0')).min(9))
                .collect()
        };
        let scale = if glyphs.len() > 2 { 2 } else { 3 };
        let width = glyphs.len() * 4 * scale - scale;
        let height = 5 * scale;
        let (left, top) = ((SIZE - width) / 2, (SIZE - height) / 2);
        let mut data = vec![0u8; SIZE * SIZE * 4];
        let centre = (SIZE as f32 - 1.0) / 2.0;
        for y in 0..SIZE {
            for x in 0..SIZE {
                let (dx, dy) = (x as f32 - centre, y as f32 - centre);
                let pixel = &mut data[(y * SIZE + x) * 4..][..4];
                if dx * dx + dy * dy <= centre * centre {
                    pixel.copy_from_slice(&[0xff, 0xd0, 0x20, 0x20]);
                }
                let (gx, gy) = (x.wrapping_sub(left), y.wrapping_sub(top));
                if gx < width && gy < height {
                    let (cell, column) = (gx / scale / 4, gx / scale % 4);
                    let row = GLYPHS[glyphs[cell]][gy / scale];
                    if column < 3 && row & (0b100 >> column) != 0 {
                        pixel.copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
                    }
                }
            }
        }
        ksni::Icon {
            width: SIZE as i32,
            height: SIZE as i32,
            data,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn white_pixels(icon: &ksni::Icon) -> usize {
            icon.data
                .chunks_exact(4)
                .filter(|p| *p == [0xff, 0xff, 0xff, 0xff])
                .count()
        }

        #[test]
        fn badges_have_the_right_size_and_draw_digits() {
            for unread in [1, 7, 42, 99, 100, 5000] {
                let icon = render(unread);
                assert_eq!((icon.width, icon.height), (32, 32));
                assert_eq!(icon.data.len(), 32 * 32 * 4);
                assert!(white_pixels(&icon) > 0, "{unread} draws nothing");
            }
            // "1" has 8 lit cells of the 3x5 grid, each 3x3 pixels.
            assert_eq!(white_pixels(&render(1)), 8 * 9);
            assert_eq!(render(100).data, render(5000).data);
        }
    }
}
