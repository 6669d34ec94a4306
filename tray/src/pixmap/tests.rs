//! Unit tests of the icon's pixels: reading the count back from the pixels (a tiny OCR of the
//! 3x5 font), at every size.

use super::*;

const CHARS: [char; 11] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '+'];

fn count(pixmap: &Pixmap, colour: [u8; 4]) -> usize {
    pixmap.argb.chunks_exact(4).filter(|p| *p == colour).count()
}

/// Reads the badge's text back from the pixels: finds the digit-coloured pixels, infers the
/// scale from their height (5 glyph rows), checks that every scaled pixel is a solid block and
/// that the gaps between glyphs are badge-coloured, and matches each 3x5 cell against the font.
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
    let width = x1 - x0 + 1;
    assert_eq!(
        (width + scale) % (4 * scale),
        0,
        "digits {width} wide at {size}"
    );
    let cells = (width + scale) / (4 * scale);
    let mut text = String::new();
    for cell in 0..cells {
        let left = x0 + cell * 4 * scale;
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
                if !on {
                    assert_eq!(
                        pixmap.pixel(bx, by),
                        colour::BADGE,
                        "no badge behind the glyph"
                    );
                }
            }
        }
        if cell + 1 < cells {
            for y in y0..=y1 {
                for dx in 0..scale {
                    assert_eq!(pixmap.pixel(left + 3 * scale + dx, y), colour::BADGE);
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
    text
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
            let pixmap = render(size, Look::Normal, unread);
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
            let pixmap = render(size, look, 0);
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
        let plain = render(size, Look::Normal, 0);
        let one = render(size, Look::Normal, 1);
        let two = render(size, Look::Normal, 2);
        assert_ne!(plain, one);
        assert_ne!(one, two);
        assert_ne!(
            render(size, Look::Normal, 99),
            render(size, Look::Normal, 100)
        );
        assert_eq!(
            render(size, Look::Normal, 100),
            render(size, Look::Normal, 5000)
        );
        // The badge sits at the bottom-right corner; the top-left of the envelope is untouched.
        assert_eq!(one.pixel(size - 1, size - 2), colour::BADGE);
        for y in 0..size / 2 {
            for x in 0..size / 2 {
                assert_eq!(one.pixel(x, y), plain.pixel(x, y), "({x}, {y}) at {size}");
            }
        }
    }
}

#[test]
fn digits_are_as_large_as_fit() {
    // One digit at 48 pixels is 4 pixels per font pixel; `99+` still fits in the width.
    assert_eq!(digit_scale(48, 1), 4);
    assert_eq!(digit_scale(16, 1), 1);
    assert_eq!(digit_scale(22, 2), 2);
    for size in SIZES {
        for chars in 1..=3 {
            let scale = digit_scale(size, chars);
            assert!(badge_width(chars, scale) <= size, "{chars} chars at {size}");
            assert!(7 * scale <= size * 65 / 100 || scale == 1);
        }
    }
    assert_eq!(render_all(Look::Normal, 3).len(), SIZES.len());
    assert_eq!(badge_text(0), "");
    assert_eq!(badge_text(99), "99");
    assert_eq!(badge_text(100), "99+");
}
