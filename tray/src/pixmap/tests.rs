//! Unit tests of the icon's pixels: reading the count back from the pixels (a tiny OCR of the
//! 3x5 font), at every size.

use super::*;

const CHARS: [char; 11] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '+'];

fn count(pixmap: &Pixmap, colour: [u8; 4]) -> usize {
    pixmap.argb.chunks_exact(4).filter(|p| *p == colour).count()
}

/// Reads the badge's text back from the pixels: finds the digit-coloured pixels, infers the
/// scale from their height (5 glyph rows), splits them into glyphs at the columns with no digit
/// pixel, checks that every glyph is 3 scaled pixels wide, that every scaled pixel is a solid
/// block and that everything between is badge-coloured, and matches each 3x5 cell against the
/// font.
fn read(pixmap: &Pixmap) -> String {
    let size = pixmap.size;
    let digit = |x: usize, y: usize| pixmap.pixel(x, y) == colour::DIGIT;
    let lit: Vec<(usize, usize)> = (0..size)
        .flat_map(|y| (0..size).map(move |x| (x, y)))
        .filter(|&(x, y)| digit(x, y))
        .collect();
    let Some(x0) = lit.iter().map(|p| p.0).min() else {
        return String::new();
    };
    let x1 = lit.iter().map(|p| p.0).max().unwrap_or(x0);
    let y0 = lit.iter().map(|p| p.1).min().unwrap_or(0);
    let y1 = lit.iter().map(|p| p.1).max().unwrap_or(y0);
    let height = y1 - y0 + 1;
    assert_eq!(height % 5, 0, "digits {height} pixels high at {size}");
    let scale = height / 5;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let p = pixmap.pixel(x, y);
            assert!(
                p == colour::DIGIT || p == colour::BADGE,
                "no badge behind the glyphs at {size}"
            );
        }
    }
    let mut glyphs = Vec::new();
    let mut x = x0;
    while x <= x1 {
        if (y0..=y1).any(|y| digit(x, y)) {
            let start = x;
            while x <= x1 && (y0..=y1).any(|y| digit(x, y)) {
                x += 1;
            }
            assert_eq!(x - start, 3 * scale, "a glyph {} wide at {size}", x - start);
            glyphs.push(start);
        } else {
            x += 1;
        }
    }
    let mut text = String::new();
    for left in glyphs {
        let mut rows = [0u8; 5];
        for (row, bits) in rows.iter_mut().enumerate() {
            for column in 0..3 {
                let (bx, by) = (left + column * scale, y0 + row * scale);
                let on = digit(bx, by);
                for dy in 0..scale {
                    for dx in 0..scale {
                        assert_eq!(digit(bx + dx, by + dy), on, "a blurred glyph at {size}");
                    }
                }
                if on {
                    *bits |= 0b100 >> column;
                }
            }
        }
        let index = GLYPHS
            .iter()
            .position(|g| *g == rows)
            .unwrap_or_else(|| panic!("an unreadable glyph {rows:?} at {size}"));
        text.push(CHARS[index]);
    }
    // A margin of badge around the text, so it stands out of the envelope.
    for x in x0.saturating_sub(1)..=x1 + 1 {
        for y in [y0 - 1, y1 + 1] {
            assert_eq!(pixmap.pixel(x, y), colour::BADGE, "no margin at {size}");
        }
    }
    for y in y0..=y1 {
        for x in [x0 - 1, x1 + 1] {
            assert_eq!(pixmap.pixel(x, y), colour::BADGE, "no margin at {size}");
        }
    }
    text
}

/// The scale the digits of `pixmap` are drawn at (their height over 5), or 0 with none.
fn scale_of(pixmap: &Pixmap) -> usize {
    let rows: Vec<usize> = (0..pixmap.size)
        .filter(|&y| (0..pixmap.size).any(|x| pixmap.pixel(x, y) == colour::DIGIT))
        .collect();
    rows.len() / 5
}

/// `pixmap` at half its size, each pixel the average of a 2x2 block: what xfce4-panel's
/// smoothing does to an icon twice its icon size.
fn halved(pixmap: &Pixmap) -> Pixmap {
    halved_from(pixmap, 0)
}

/// [`halved`], with the blocks starting `offset` pixels right of and below the corner.
fn halved_from(pixmap: &Pixmap, offset: usize) -> Pixmap {
    let size = pixmap.size / 2;
    let mut out = Pixmap::new(size);
    for y in 0..size {
        for x in 0..size {
            let mut sum = [0u32; 4];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = pixmap.pixel(2 * x + dx + offset, 2 * y + dy + offset);
                for (s, v) in sum.iter_mut().zip(p) {
                    *s += u32::from(v);
                }
            }
            out.set(x, y, sum.map(|s| (s / 4) as u8));
        }
    }
    out
}

/// The pixmap of [`render_all`] at `size`.
fn sized(size: usize, look: Look, unread: u32) -> Pixmap {
    let all = render_all(look, unread);
    let found = all.into_iter().find(|p| p.size == size);
    found.unwrap_or_else(|| panic!("no pixmap at {size}"))
}

#[test]
fn the_count_reads_back_from_the_pixels_at_every_size() {
    for size in SIZES {
        for unread in [
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            10,
            11,
            42,
            60,
            99,
            100,
            5000,
            u32::MAX,
        ] {
            let pixmap = sized(size, Look::Normal, unread);
            assert_eq!(pixmap.size, size);
            assert_eq!(pixmap.argb.len(), size * size * 4);
            let expected = if unread > 99 {
                "99+".to_owned()
            } else {
                unread.to_string()
            };
            assert_eq!(read(&pixmap), expected, "{unread} unread at {size} pixels");
        }
    }
}

#[test]
fn no_unread_draws_an_envelope_and_no_badge() {
    for size in SIZES {
        for look in [Look::Normal, Look::Dim] {
            let pixmap = sized(size, look, 0);
            assert_eq!(count(&pixmap, colour::BADGE), 0, "a badge at {size}");
            assert_eq!(count(&pixmap, colour::DIGIT), 0, "digits at {size}");
            assert_eq!(read(&pixmap), "");
            let (paper, ink) = match look {
                Look::Normal => (colour::PAPER, colour::INK),
                Look::Dim => (colour::PAPER_DIM, colour::INK_DIM),
            };
            // The envelope fills the width and most of the height: lines and paper both.
            assert!(count(&pixmap, ink) >= 4 * size, "too few lines at {size}");
            assert!(
                count(&pixmap, paper) >= size * size / 4,
                "too little paper at {size}"
            );
            // Its flap: the middle column has ink inside the envelope, not only its edges.
            let middle = size / 2;
            let inked = (0..size)
                .filter(|&y| pixmap.pixel(middle, y) == ink)
                .count();
            assert!(inked >= 3 * stroke(size), "no flap at {size}");
            // Clear above and below: a panel's background shows around it.
            assert_eq!(pixmap.pixel(middle, 0), colour::CLEAR);
            assert_eq!(pixmap.pixel(middle, size - 1), colour::CLEAR);
        }
    }
}

#[test]
fn the_count_changes_the_pixels_and_saturates_at_99_plus() {
    for size in SIZES {
        let plain = sized(size, Look::Normal, 0);
        let one = sized(size, Look::Normal, 1);
        let two = sized(size, Look::Normal, 2);
        assert_ne!(plain, one);
        assert_ne!(one, two);
        assert_ne!(
            sized(size, Look::Normal, 99),
            sized(size, Look::Normal, 100)
        );
        assert_eq!(
            sized(size, Look::Normal, 100),
            sized(size, Look::Normal, 5000)
        );
        // The badge sits at the bottom-right corner; the envelope's top-left is untouched, and
        // so is the top row of pixels.
        assert_eq!(one.pixel(size - 1, size - 3), colour::BADGE);
        for unread in [1, 42, 100] {
            let counted = sized(size, Look::Normal, unread);
            let untouched = (0..size)
                .flat_map(|y| (0..size).map(move |x| (x, y)))
                .filter(|&(x, y)| y < size / 8 || (x < size / 4 && y < size / 4));
            for (x, y) in untouched {
                {
                    assert_eq!(
                        counted.pixel(x, y),
                        plain.pixel(x, y),
                        "({x}, {y}) at {size}"
                    );
                }
            }
        }
    }
}

#[test]
fn digits_are_as_large_as_fit() {
    // At xfce4-panel's 22 pixels, every count is drawn at twice the font, "99+" too (one
    // pixel between glyphs, the badge the icon's whole width).
    for chars in 1..=3 {
        assert_eq!(layout(22, chars).scale, 2, "{chars} chars at 22");
    }
    assert_eq!(layout(22, 1).width(1), 10);
    assert_eq!(layout(22, 3).width(3), 22);
    assert_eq!(layout(16, 1).scale, 2);
    assert_eq!(layout(16, 3).scale, 1);
    assert_eq!(layout(8, 1).scale, 1);
    for (unread, chars) in [(7, 1), (42, 2), (100, 3)] {
        assert_eq!(scale_of(&sized(XFCE_DEFAULT, Look::Normal, unread)), 2);
        assert_eq!(scale_of(&sized(LARGEST, Look::Normal, unread)), 4);
        for size in SIZES {
            let layout = layout(size, chars);
            assert!(layout.width(chars) <= size, "{chars} chars at {size}");
            assert!(layout.height() <= size, "{chars} chars at {size}");
            assert!(layout.gap >= 1 && layout.margin >= 1);
        }
    }
    assert_eq!(render_all(Look::Normal, 3).len(), SIZES.len());
    assert_eq!(badge_text(0), "");
    assert_eq!(badge_text(99), "99");
    assert_eq!(badge_text(100), "99+");
}

#[test]
fn the_largest_size_halves_into_the_22_pixel_icon_exactly() {
    // xfce4-panel takes the largest pixmap and shrinks it to its icon size (22 by default)
    // by averaging: halving the doubled icon must give back every pixel of the 22-pixel one.
    assert_eq!(SIZES.iter().max(), Some(&LARGEST));
    assert_eq!(LARGEST, 2 * XFCE_DEFAULT);
    for look in [Look::Normal, Look::Dim] {
        for unread in [0, 1, 8, 42, 99, 100] {
            let all = render_all(look, unread);
            let small = sized(XFCE_DEFAULT, look, unread);
            let large = all.iter().find(|p| p.size == LARGEST);
            let large = large.unwrap_or_else(|| panic!("no pixmap at {LARGEST}"));
            assert_eq!(*large, doubled(&small));
            assert_eq!(halved(large), small, "{unread} unread");
            if unread > 0 {
                assert_eq!(read(&halved(large)), badge_text(unread));
            }
        }
    }
}

#[test]
fn the_reader_refuses_a_blurred_badge() {
    // Halved out of step with its pixels, a badge's glyph edges average into the badge: the
    // reader must not take that for a count.
    for unread in [3, 8, 42] {
        let blurred = halved_from(&render(LARGEST, Look::Normal, unread), 1);
        let read = std::panic::catch_unwind(|| read(&blurred));
        assert!(read.is_err(), "{unread} blurred read as {read:?}");
    }
}
