//! The tray icon's pixels: an envelope drawn by chat-tray, with the unread count in a red badge
//! at its bottom-right corner, as ARGB32 pixmaps at the sizes panels ask for ([`SIZES`]).
//!
//! The count is part of the icon itself rather than an overlay: panels differ in how (and
//! whether) they draw an `OverlayIconPixmap`, and xfce4-panel draws it under the icon, where
//! nothing of it but a rim shows. The digits are a 3x5 pixel font scaled by whole pixels, so
//! they stay sharp; more than 99 reads `99+`.
//!
//! Hosts choose among the sizes differently. KDE takes the one nearest its icon size.
//! xfce4-panel (4.18) always takes the largest and, when it is larger than its icon size,
//! scales it down with smoothing (`GDK_INTERP_BILINEAR`, an area average when shrinking), which
//! blurs a pixel font unless the factor is exactly one half. So the largest size is
//! [`LARGEST`], twice [`XFCE_DEFAULT`] (xfce4-panel's default icon size), drawn as the
//! `XFCE_DEFAULT` icon with every pixel doubled: halved, it is that icon again, pixel for pixel,
//! and at icon sizes of `LARGEST` or more xfce4-panel draws it unscaled. At other icon sizes
//! xfce4-panel still blurs it.

/// xfce4-panel's default icon size in its systray, in pixels.
pub const XFCE_DEFAULT: usize = 22;

/// The largest size drawn: the [`XFCE_DEFAULT`] icon with every pixel doubled.
pub const LARGEST: usize = 2 * XFCE_DEFAULT;

/// The sizes drawn, in pixels: what panels commonly ask for, and [`LARGEST`] for xfce4-panel.
pub const SIZES: [usize; 5] = [16, 22, 24, 32, LARGEST];

/// ARGB32 colours, in the byte order of the StatusNotifierItem spec (alpha first).
pub mod colour {
    /// The envelope's paper.
    pub const PAPER: [u8; 4] = [0xff, 0xf4, 0xf4, 0xf0];
    /// The envelope's outline and flap.
    pub const INK: [u8; 4] = [0xff, 0x3a, 0x3f, 0x48];
    /// The envelope's paper while chatd is locked or not reachable.
    pub const PAPER_DIM: [u8; 4] = [0xa0, 0xb8, 0xb8, 0xb8];
    /// The envelope's outline while chatd is locked or not reachable.
    pub const INK_DIM: [u8; 4] = [0xa0, 0x60, 0x60, 0x60];
    /// The badge behind the count.
    pub const BADGE: [u8; 4] = [0xff, 0xd0, 0x20, 0x20];
    /// The count's digits.
    pub const DIGIT: [u8; 4] = [0xff, 0xff, 0xff, 0xff];
    /// Nothing.
    pub const CLEAR: [u8; 4] = [0, 0, 0, 0];
}

/// 3x5 glyphs for `0`-`9` and `+`, one row per entry, the leftmost column in bit 2.
pub const GLYPHS: [[u8; 5]; 11] = [
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

/// How the envelope looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// chatd is unlocked.
    Normal,
    /// chatd is locked or not reachable: greyed out.
    Dim,
}

/// A square ARGB32 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixmap {
    /// Width and height in pixels.
    pub size: usize,
    /// `size * size` pixels, row by row, 4 bytes each (alpha, red, green, blue).
    pub argb: Vec<u8>,
}

impl Pixmap {
    fn new(size: usize) -> Self {
        Self {
            size,
            argb: vec![0; size * size * 4],
        }
    }

    /// The pixel at column `x`, row `y` (clear outside the image).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 4] {
        if x >= self.size || y >= self.size {
            return colour::CLEAR;
        }
        let at = (y * self.size + x) * 4;
        let mut pixel = [0; 4];
        pixel.copy_from_slice(&self.argb[at..at + 4]);
        pixel
    }

    fn set(&mut self, x: usize, y: usize, colour: [u8; 4]) {
        if x < self.size && y < self.size {
            let at = (y * self.size + x) * 4;
            self.argb[at..at + 4].copy_from_slice(&colour);
        }
    }
}

/// The text of the badge for `unread`: nothing for 0, the number up to 99, `99+` beyond.
pub fn badge_text(unread: u32) -> String {
    match unread {
        0 => String::new(),
        1..=99 => unread.to_string(),
        _ => "99+".to_owned(),
    }
}

/// The icon at every size of [`SIZES`]; the [`LARGEST`] is the [`XFCE_DEFAULT`] one doubled.
pub fn render_all(look: Look, unread: u32) -> Vec<Pixmap> {
    SIZES
        .iter()
        .map(|&size| {
            if size == LARGEST {
                doubled(&render(XFCE_DEFAULT, look, unread))
            } else {
                render(size, look, unread)
            }
        })
        .collect()
}

/// `pixmap` at twice its size, each pixel a 2x2 block.
pub fn doubled(pixmap: &Pixmap) -> Pixmap {
    let mut out = Pixmap::new(2 * pixmap.size);
    for y in 0..out.size {
        for x in 0..out.size {
            out.set(x, y, pixmap.pixel(x / 2, y / 2));
        }
    }
    out
}

/// The icon at `size` pixels (at least 8): the envelope, and the badge when `unread` is not 0.
pub fn render(size: usize, look: Look, unread: u32) -> Pixmap {
    let size = size.max(8);
    let mut pixmap = Pixmap::new(size);
    envelope(&mut pixmap, look);
    let text = badge_text(unread);
    if !text.is_empty() {
        badge(&mut pixmap, &text);
    }
    pixmap
}

/// The stroke width of the envelope's lines at `size`.
fn stroke(size: usize) -> usize {
    (size / 16).max(1)
}

/// An envelope filling the width and the middle 60% of the height: paper, an outline, and the
/// flap as a V from the top corners to the middle.
fn envelope(pixmap: &mut Pixmap, look: Look) {
    let (paper, ink) = match look {
        Look::Normal => (colour::PAPER, colour::INK),
        Look::Dim => (colour::PAPER_DIM, colour::INK_DIM),
    };
    let size = pixmap.size;
    let t = stroke(size);
    let (left, right) = (0, size - 1);
    let top = size * 2 / 10;
    let bottom = size - 1 - size * 2 / 10;
    // The flap's tip, a little above the middle of the envelope.
    let (tip_x, tip_y) = (
        (size as f32 - 1.0) / 2.0,
        (top + (bottom - top) * 6 / 10) as f32,
    );
    let half = t as f32 / 2.0;
    for y in top..=bottom {
        for x in left..=right {
            let edge = x < left + t || x + t > right || y < top + t || y + t > bottom;
            let p = (x as f32, y as f32);
            let flap = distance(p, (left as f32, top as f32), (tip_x, tip_y)) <= half + 0.25
                || distance(p, (right as f32, top as f32), (tip_x, tip_y)) <= half + 0.25;
            pixmap.set(x, y, if edge || flap { ink } else { paper });
        }
    }
}

/// The distance from `p` to the segment from `a` to `b`.
fn distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length = dx * dx + dy * dy;
    let t = if length == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// The glyph index of a badge character.
fn glyph(c: char) -> usize {
    match c.to_digit(10) {
        Some(d) => d as usize,
        None => 10,
    }
}

/// How a badge's text is laid out at one size, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Pixels per pixel of the font.
    pub scale: usize,
    /// Columns between two glyphs.
    pub gap: usize,
    /// Badge around the text, on every side.
    pub margin: usize,
}

impl Layout {
    /// The badge's width for `chars` characters.
    pub fn width(self, chars: usize) -> usize {
        chars * 3 * self.scale + chars.saturating_sub(1) * self.gap + 2 * self.margin
    }

    /// The badge's height.
    pub fn height(self) -> usize {
        5 * self.scale + 2 * self.margin
    }
}

/// The layout of `chars` characters at `size`: digits as large as let the badge fit in 65% of
/// the height (but twice the font wherever a badge of that fits the icon, since a badge of
/// single pixels is hard to read), spaced and framed by one scaled pixel, or by one pixel where
/// that is what makes the width fit; never below one pixel per font pixel.
pub fn layout(size: usize, chars: usize) -> Layout {
    let roomy = |scale| Layout {
        scale,
        gap: scale,
        margin: scale,
    };
    let tight = |scale| Layout {
        scale,
        gap: 1,
        margin: 1,
    };
    let mut scale = (size * 65 / 100 / 7).max(1);
    if scale < 2 && roomy(2).height() <= size {
        scale = 2;
    }
    loop {
        for layout in [roomy(scale), tight(scale)] {
            if layout.width(chars) <= size && layout.height() <= size {
                return layout;
            }
        }
        if scale == 1 {
            return tight(1);
        }
        scale -= 1;
    }
}

/// A red badge at the bottom-right corner with `text` in white.
fn badge(pixmap: &mut Pixmap, text: &str) {
    let size = pixmap.size;
    let chars = text.chars().count();
    let layout = layout(size, chars);
    let Layout { scale, gap, margin } = layout;
    let (width, height) = (layout.width(chars), layout.height());
    let (left, top) = (size.saturating_sub(width), size.saturating_sub(height));
    for y in top..size {
        for x in left..size {
            // Rounded corners where there are pixels to spare.
            let corner = margin > 1 && (x == left || x == size - 1) && (y == top || y == size - 1);
            if !corner {
                pixmap.set(x, y, colour::BADGE);
            }
        }
    }
    for (i, c) in text.chars().enumerate() {
        let rows = GLYPHS[glyph(c)];
        let x0 = left + margin + i * (3 * scale + gap);
        for (row, bits) in rows.iter().enumerate() {
            for column in 0..3 {
                if bits & (0b100 >> column) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        pixmap.set(
                            x0 + column * scale + dx,
                            top + margin + row * scale + dy,
                            colour::DIGIT,
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
