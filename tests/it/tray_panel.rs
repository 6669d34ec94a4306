//! chat-tray in a real desktop panel: Xvfb, a private D-Bus session, xfce4-panel with its
//! systray plugin (a StatusNotifierItem host; configured through a minimal xfconf file in a
//! temporary XDG_CONFIG_HOME) and xfce4-notifyd as the notification server, then real chatd
//! daemons, a relay and chat-tray. Unread messages arrive, and the panel's pixels, read from
//! Xvfb's framebuffer file (`-fbdir`, in XWD format), must show the count; reading the
//! messages must take the badge away.
//!
//! xfce4-panel's systray draws an item's largest pixmap, shrunk to its icon size with smoothing
//! when it is larger. chat-tray's largest is 44 pixels, its 22-pixel icon doubled, so that at
//! xfce4-panel's default 22 pixels the shrunk icon is the 22-pixel one, pixel for pixel. The
//! test runs twice: in a panel as xfce4-panel ships it (26 pixels high, square icons, the
//! systray's icon size left at its default), and in a tall panel with 48-pixel icons, where the
//! 44-pixel icon is drawn unscaled. The count is read exactly both times, and its scale (2 and
//! 4 pixels per pixel of the font) shows which pixmap the panel drew. The panel starts with
//! `--disable-wm-check`: there is no window manager, and without it the panel waits some 5 s
//! for one before loading plugins.
//!
//! Skipped where Xvfb or the Xfce programs are missing (failed with
//! `CHATD_REQUIRE_SYSTEM_TOOLS`, which `.ci/run` sets after installing them). When it fails,
//! the desktop's log and a sketch of the panel's pixels are printed. With
//! `CHATD_TEST_SCREENSHOTS=DIR` the screen is kept at each step, as `DIR/<panel size>-<step>.xwd`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;
use tests::{Pair, private_dir, shared_relay, wait_for};

use crate::tray::{BADGE_RGB, DIGIT_RGB, Tray, read_count};

/// A panel at the top of the screen holding the systray plugin.
#[derive(Debug, Clone, Copy)]
struct Panel {
    /// Its height in pixels (its `size`).
    size: usize,
    /// The systray's `icon-size`, or `None` for xfce4-panel's default (22 pixels).
    icon: Option<usize>,
    /// The scale the count must be read at: 2 where the panel shrinks chat-tray's 44-pixel
    /// icon to 22 pixels, 4 where it draws it unscaled.
    scale: usize,
}

/// xfce4-panel as it ships (its default.xml): 26 pixels high, square icons, the systray's icon
/// size its default, 22 pixels.
const DEFAULT_PANEL: Panel = Panel {
    size: 26,
    icon: None,
    scale: 2,
};

/// A tall panel with 48-pixel icons, at least chat-tray's largest pixmap.
const TALL_PANEL: Panel = Panel {
    size: 56,
    icon: Some(48),
    scale: 4,
};

/// The screen: wide enough for the panel's items, tall enough that a notification popup
/// (placed at the bottom-right) stays clear of the panel.
const SCREEN: (usize, usize) = (480, 360);

/// The panel's configuration: one panel at the top holding the systray plugin; `{size}` and
/// `{icon}` are filled in by [`panel_xml`].
const PANEL_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="{size}"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>{icon}
    </property>
  </property>
</channel>
"#;

/// [`PANEL_XML`] for `panel`.
fn panel_xml(panel: Panel) -> String {
    let icon = panel.icon.map_or(String::new(), |icon| {
        format!("\n      <property name=\"icon-size\" type=\"int\" value=\"{icon}\"/>")
    });
    PANEL_XML
        .replace("{size}", &panel.size.to_string())
        .replace("{icon}", &icon)
}

/// Notifications at the bottom-right, away from the panel.
const NOTIFYD_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-notifyd" version="1.0">
  <property name="notify-location" type="uint" value="3"/>
</channel>
"#;

/// Whether the bus has every one of the names given as arguments.
const HAS_NAMES: &str = r#"
import sys, dbus
names = set(str(n) for n in dbus.SessionBus().list_names())
sys.exit(0 if all(n in names for n in sys.argv[1:]) else 1)
"#;

/// xfce4-notifyd's program (not on PATH: under /usr/lib/<triplet>/xfce4/notifyd).
fn notifyd() -> Option<PathBuf> {
    let lib = std::fs::read_dir("/usr/lib").ok()?;
    lib.flatten()
        .map(|entry| entry.path().join("xfce4/notifyd/xfce4-notifyd"))
        .find(|path| path.is_file())
}

fn tools_available(test: &str) -> bool {
    tests::system_tool_available(test, &["dbus-run-session", "--version"])
        && tests::system_tool_available(test, &["/usr/bin/python3", "-c", "import dbus"])
        && tests::system_tool_available(test, &["Xvfb", "-help"])
        // Not `--version`, which opens the display first and fails where none is set (CI).
        && tests::system_tool_available(test, &["xfce4-panel", "--help"])
        && tests::system_tool_available(
            test,
            &["sh", "-c", "test -x /usr/lib/*/xfce4/notifyd/xfce4-notifyd"],
        )
}

/// Xvfb with its screen in a file; the process group is killed on drop.
struct Xvfb {
    child: Child,
    display: String,
    framebuffer: PathBuf,
    panel: Panel,
}

impl Xvfb {
    fn start(dir: &Path, panel: Panel) -> Self {
        use std::os::unix::process::CommandExt as _;
        let fbdir = dir.join("fb");
        std::fs::create_dir(&fbdir).unwrap_or_else(|e| panic!("{e}"));
        let display_file = dir.join("display");
        let screen = format!("{}x{}x24", SCREEN.0, SCREEN.1);
        // -displayfd: Xvfb picks a free display and writes its number once it accepts clients.
        let child = Command::new("sh")
            .args([
                "-c",
                "exec Xvfb -displayfd 3 -screen 0 \"$1\" -fbdir \"$2\" -nolisten tcp 3>\"$3\"",
                "sh",
                &screen,
            ])
            .arg(&fbdir)
            .arg(&display_file)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning Xvfb: {e}"));
        let mut xvfb = Self {
            child,
            display: String::new(),
            framebuffer: fbdir.join("Xvfb_screen0"),
            panel,
        };
        let number = wait_for("Xvfb's display number", || {
            let text = std::fs::read_to_string(&display_file).ok()?;
            text.ends_with('\n').then(|| text.trim().to_owned())
        });
        xvfb.display = format!(":{number}");
        xvfb
    }

    /// The screen now.
    fn screenshot(&self) -> Screen {
        let bytes = std::fs::read(&self.framebuffer)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.framebuffer.display()));
        Screen::from_xwd(&bytes, self.panel.size)
    }

    /// Copies the screen now to `$CHATD_TEST_SCREENSHOTS/NAME.xwd` when that is set (to look at
    /// what the panel shows: `convert NAME.xwd NAME.png`).
    fn keep_screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("CHATD_TEST_SCREENSHOTS") {
            let to = Path::new(&dir).join(format!("{name}.xwd"));
            std::fs::copy(&self.framebuffer, &to)
                .unwrap_or_else(|e| panic!("copying the screen to {}: {e}", to.display()));
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        if std::thread::panicking() && self.framebuffer.exists() {
            eprintln!("the panel at the end:\n{}", self.screenshot().sketch());
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// A screen's pixels, from an XWD image (X11/XWDFile.h: a header of big-endian 32-bit fields,
/// a colour map, then the pixels).
struct Screen {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
    /// The panel's height: the rows at the top that are the panel.
    panel: usize,
}

impl Screen {
    fn from_xwd(bytes: &[u8], panel: usize) -> Self {
        let field = |i: usize| -> usize {
            let b = bytes
                .get(i * 4..i * 4 + 4)
                .unwrap_or_else(|| panic!("a short XWD header"));
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        };
        let (header, width, height) = (field(0), field(4), field(5));
        let (little_endian, bits, stride, colours) =
            (field(7) == 0, field(11), field(12), field(19));
        let masks = (field(14), field(15), field(16));
        assert_eq!(bits, 32, "an XWD image of {bits} bits per pixel");
        assert_eq!(
            masks,
            (0xff_0000, 0xff00, 0xff),
            "an XWD image with other colour masks"
        );
        let start = header + colours * 12;
        assert!(bytes.len() >= start + stride * height, "a short XWD image");
        let mut rgb = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let at = start + y * stride + x * 4;
                let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
                let v = if little_endian {
                    u32::from_le_bytes(b)
                } else {
                    u32::from_be_bytes(b)
                };
                rgb.push([(v >> 16) as u8, (v >> 8) as u8, v as u8]);
            }
        }
        Self {
            width,
            height,
            rgb,
            panel: panel.min(height),
        }
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }

    /// The count drawn in the panel, read as the test's font.
    fn panel_count(&self) -> Option<String> {
        read_count(self.width, self.panel, |x, y| self.pixel(x, y))
    }

    /// The scale the count's digits are drawn at: the rows of the panel with the digits' white,
    /// over the font's 5.
    fn count_scale(&self) -> usize {
        let rows = (0..self.panel)
            .filter(|&y| (0..self.width).any(|x| self.pixel(x, y) == DIGIT_RGB))
            .count();
        rows / 5
    }

    /// How many pixels of the panel have the colour `rgb`.
    fn panel_pixels(&self, rgb: [u8; 3]) -> usize {
        (0..self.panel)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| self.pixel(x, y) == rgb)
            .count()
    }

    /// The panel's background: its top-right pixel, where no item reaches.
    fn panel_background(&self) -> [u8; 3] {
        self.pixel(self.width - 1, 0)
    }

    /// Whether an item is in the panel (the systray is its only plugin, so anything other than
    /// the background is one), and if so whether the badge's red shows. Without a badge the
    /// item may be the theme's `mail-read` icon rather than chat-tray's envelope: xfce4-panel
    /// prefers an icon name it finds in the theme to the pixmaps.
    fn item(&self) -> Option<bool> {
        let background = self.panel_background();
        let any = (0..self.panel).any(|y| (0..self.width).any(|x| self.pixel(x, y) != background));
        any.then(|| self.panel_pixels(BADGE_RGB) > 0)
    }

    /// The left of the panel as text, for a failure's message: `R` the badge, `W` the digits,
    /// `.` the panel's background, `+` anything else.
    fn sketch(&self) -> String {
        let background = self.panel_background();
        let mut text = format!(
            "{}x{}; the count read: {:?}\n",
            self.width,
            self.height,
            self.panel_count()
        );
        for y in 0..self.panel {
            for x in 0..self.width.min(2 * self.panel + 16) {
                text.push(match self.pixel(x, y) {
                    p if p == BADGE_RGB => 'R',
                    p if p == DIGIT_RGB => 'W',
                    p if p == background => '.',
                    _ => '+',
                });
            }
            text.push('\n');
        }
        text
    }
}

/// A D-Bus session running xfce4-panel and xfce4-notifyd (the process group is killed on drop,
/// and their log printed if the test failed).
struct Desktop {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Desktop {
    fn start(xvfb: &Xvfb, dir: &Path, notifyd: &Path) -> Self {
        let panel = xvfb.panel;
        use std::os::unix::process::CommandExt as _;
        let config = dir.join("config");
        let xml = config.join("xfce4/xfconf/xfce-perchannel-xml");
        std::fs::create_dir_all(&xml).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(xml.join("xfce4-panel.xml"), panel_xml(panel))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(xml.join("xfce4-notifyd.xml"), NOTIFYD_XML)
            .unwrap_or_else(|e| panic!("{e}"));
        let address_file = dir.join("bus");
        let log_path = dir.join("desktop.log");
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("{e}"));
        // xfconfd is started by the bus (D-Bus activation), so it reads the same environment.
        let child = Command::new("dbus-run-session")
            .args([
                "--",
                "sh",
                "-c",
                "printf %s \"$DBUS_SESSION_BUS_ADDRESS\" > \"$1.tmp\" && mv \"$1.tmp\" \"$1\" && \
                 { \"$2\" & exec xfce4-panel --disable-wm-check; }",
                "sh",
            ])
            .arg(&address_file)
            .arg(notifyd)
            .env("DISPLAY", &xvfb.display)
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", &config)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_RUNTIME_DIR", dir)
            .env("NO_AT_BRIDGE", "1")
            .env_remove("SESSION_MANAGER")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the desktop: {e}"));
        let mut desktop = Self {
            child,
            address: String::new(),
            log: log_path,
        };
        desktop.address = wait_for("the desktop's session bus", || {
            std::fs::read_to_string(&address_file)
                .ok()
                .filter(|a| !a.is_empty())
        });
        wait_for("the panel's tray host and the notification server", || {
            desktop
                .has_names(&[
                    "org.kde.StatusNotifierWatcher",
                    "org.freedesktop.Notifications",
                ])
                .then_some(())
        });
        desktop
    }

    fn has_names(&self, names: &[&str]) -> bool {
        Command::new("/usr/bin/python3")
            .args(["-c", HAS_NAMES])
            .args(names)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("the desktop's log:\n{log}");
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn tray_shows_the_unread_count_in_a_real_xfce_panel_at_its_default_icon_size() {
    shows_the_count(
        "tray_shows_the_unread_count_in_a_real_xfce_panel_at_its_default_icon_size",
        DEFAULT_PANEL,
    );
}

#[test]
fn tray_shows_the_unread_count_in_a_real_xfce_panel_with_48_pixel_icons() {
    shows_the_count(
        "tray_shows_the_unread_count_in_a_real_xfce_panel_with_48_pixel_icons",
        TALL_PANEL,
    );
}

/// The scenario, in `panel`; `test` is the test's name.
fn shows_the_count(test: &str, panel: Panel) {
    if !tools_available(test) {
        return;
    }
    let shot = |xvfb: &Xvfb, step: &str| xvfb.keep_screenshot(&format!("{}-{step}", panel.size));
    let Some(notifyd) = notifyd() else {
        panic!("xfce4-notifyd is installed but not found under /usr/lib");
    };
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let dir = private_dir();
    let xvfb = Xvfb::start(dir.path(), panel);
    let desktop = Desktop::start(&xvfb, dir.path(), &notifyd);

    // The panel is drawn, and holds no item before chat-tray runs.
    wait_for("the panel to be drawn, empty", || {
        let screen = xvfb.screenshot();
        (screen.pixel(SCREEN.0 / 2, panel.size / 2) != [0, 0, 0] && screen.item().is_none())
            .then_some(())
    });

    let mut tray = Tray::start_on(
        &desktop.address,
        bob,
        &dir.path().join("state.toml"),
        &[],
        &[],
    );
    wait_for("the item in the panel, without a badge", || {
        (xvfb.screenshot().item() == Some(false)).then_some(())
    });

    alice.send("bob", "one");
    alice.send("bob", "two");
    bob.wait_incoming("alice", 2);
    wait_for("the panel to show 2", || {
        (xvfb.screenshot().panel_count().as_deref() == Some("2")).then_some(())
    });
    shot(&xvfb, "2");
    assert_eq!(
        xvfb.screenshot().count_scale(),
        panel.scale,
        "the count drawn at another size"
    );

    alice.send("bob", "three");
    wait_for("the panel to show 3", || {
        (xvfb.screenshot().panel_count().as_deref() == Some("3")).then_some(())
    });
    shot(&xvfb, "3");

    bob.call("messages.mark_read", json!({ "conversation": "alice" }));
    wait_for("the badge to leave the item once read", || {
        (xvfb.screenshot().item() == Some(false)).then_some(())
    });
    shot(&xvfb, "read");

    // On SIGTERM the item leaves the panel.
    alice.send("bob", "four");
    wait_for("the panel to show 1", || {
        (xvfb.screenshot().panel_count().as_deref() == Some("1")).then_some(())
    });
    let status = tray.stop_with("-TERM");
    assert!(status.success(), "chat-tray exited with {status}");
    wait_for("the item to leave the panel", || {
        xvfb.screenshot().item().is_none().then_some(())
    });
}
