//! Man pages (section 1): one per program and one per subcommand (`chatctl-send.1`,
//! `chatctl-contact-add.1`), as git has. clap_mangen renders what the clap command knows (NAME,
//! SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS, VERSION); this module puts the sections from
//! `sections` (EXIT STATUS, ENVIRONMENT, FILES) after those in man-pages(7) order and ends
//! every page with SEE ALSO.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::PROGRAMS;
use crate::sections::{self, Extras, Term};

/// The manual section every page is in: user commands.
pub const SECTION: &str = "1";

/// The manual the pages belong to (the centre of the page's header line).
const MANUAL: &str = "chatd manual";

/// The environment variable that fixes the pages' date, as reproducible builds set it
/// (seconds since 1970; <https://reproducible-builds.org/specs/source-date-epoch/>).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Writes every page of every program into `out_dir` and returns the files written.
pub fn generate(out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let seconds = match std::env::var(SOURCE_DATE_EPOCH) {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("{SOURCE_DATE_EPOCH}={text:?} is not a number of seconds"))?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_secs(),
    };
    let date = date(seconds);
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut written = Vec::new();
    for &(name, command) in PROGRAMS {
        for (file, page) in pages(name, command(), &date)? {
            let path = out_dir.join(file);
            fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The pages of the program `name` (file name, roff source), dated `date` (YYYY-MM-DD): its
/// own, then one per subcommand, depth first. clap's `help` subcommand gets none (the pages
/// are the help).
pub fn pages(name: &str, command: clap::Command, date: &str) -> io::Result<Vec<(String, String)>> {
    let header = Header {
        date,
        source: &format!("chatd {}", env!("CARGO_PKG_VERSION")),
    };
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let extras = sections::extras(name, &command);
    let see_also: Vec<String> = PROGRAMS
        .iter()
        .map(|(other, _)| *other)
        .filter(|other| *other != name)
        .map(reference)
        .collect();
    let mut pages = vec![(
        file_name(&command),
        render(&command, &header, &extras, &see_also)?,
    )];
    subcommand_pages(&command, &header, &[reference(name)], &mut pages)?;
    Ok(pages)
}

/// Adds the pages of `parent`'s subcommands; `ancestors` are the references to the pages
/// above it, nearest last.
fn subcommand_pages(
    parent: &clap::Command,
    header: &Header<'_>,
    ancestors: &[String],
    pages: &mut Vec<(String, String)>,
) -> io::Result<()> {
    for sub in parent.get_subcommands().filter(|s| !s.is_hide_set()) {
        let see_also: Vec<String> = ancestors.iter().rev().cloned().collect();
        pages.push((
            file_name(sub),
            render(sub, header, &Extras::default(), &see_also)?,
        ));
        let mut below = ancestors.to_vec();
        below.push(reference(page_name(sub)));
        subcommand_pages(sub, header, &below, pages)?;
    }
    Ok(())
}

/// The fields of a page's `.TH` line besides its name and section.
#[derive(Debug)]
struct Header<'a> {
    /// The date, YYYY-MM-DD.
    date: &'a str,
    /// The software and version, `chatd 0.1.0` (the workspace's version).
    source: &'a str,
}

/// The page name clap gives a built command: `chatctl`, `chatctl-contact-add`.
fn page_name(command: &clap::Command) -> &str {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
}

fn file_name(command: &clap::Command) -> String {
    format!("{}.{SECTION}", page_name(command))
}

/// `name(1)`, as pages refer to each other.
fn reference(name: &str) -> String {
    format!("{name}({SECTION})")
}

/// One page: clap_mangen's sections, the extras, the after-help text as NOTES unless the
/// extras cover it, VERSION and SEE ALSO.
fn render(
    command: &clap::Command,
    header: &Header<'_>,
    extras: &Extras,
    see_also: &[String],
) -> io::Result<String> {
    // Every field of the header is set: roff cannot pass an empty one, so clap_mangen's empty
    // default date would shift the source into the date's place.
    let man = Man::new(command.clone())
        .date(header.date)
        .source(header.source)
        .manual(MANUAL);
    let mut pieces = vec![
        rendered(|w| man.render_title(w))?,
        rendered(|w| man.render_name_section(w))?,
        rendered(|w| man.render_synopsis_section(w))?,
        rendered(|w| man.render_description_section(w))?,
    ];
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        pieces.push(rendered(|w| man.render_options_section(w))?);
    }
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        pieces.push(rendered(|w| man.render_subcommands_section(w))?);
    }

    let mut roff = Roff::new();
    for section in &extras.sections {
        roff.control("SH", [section.title]);
        if let Some(intro) = &section.intro {
            roff.text([roman(intro.as_str())]);
        }
        for (term, text) in &section.items {
            roff.control("TP", []);
            roff.text([match term {
                Term::Bold(term) => bold(term.as_str()),
                Term::Italic(term) => italic(term.as_str()),
            }]);
            roff.text([roman(text.as_str())]);
        }
    }
    let after_help = command
        .get_after_long_help()
        .or_else(|| command.get_after_help());
    if let (Some(after_help), false) = (after_help, extras.after_help_covered) {
        roff.control("SH", ["NOTES"]);
        paragraphs(&mut roff, &after_help.to_string());
    }
    pieces.push(roff_bytes(&roff)?);

    if command.get_version().is_some() || command.get_long_version().is_some() {
        pieces.push(rendered(|w| man.render_version_section(w))?);
    }
    let mut roff = Roff::new();
    if !see_also.is_empty() {
        roff.control("SH", ["SEE ALSO"]);
        let mut line = Vec::new();
        for (i, page) in see_also.iter().enumerate() {
            if i > 0 {
                line.push(roman(", "));
            }
            // `name(1)`: the name bold, the section plain (man-pages(7)).
            let (name, section) = page.split_at(page.find('(').unwrap_or(page.len()));
            line.push(bold(name));
            line.push(roman(section));
        }
        roff.text(line);
    }
    pieces.push(roff_bytes(&roff)?);

    join_pieces(pieces)
}

/// Text as roff paragraphs: a blank line starts a new one, and every other line break is kept.
fn paragraphs(roff: &mut Roff, text: &str) {
    for line in text.lines() {
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
            roff.control("br", []);
        }
    }
}

/// What `render` writes.
fn rendered(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    render(&mut out)?;
    Ok(out)
}

fn roff_bytes(roff: &Roff) -> io::Result<Vec<u8>> {
    rendered(|w| roff.to_writer(w))
}

/// Joins separately rendered pieces into one page. The roff crate starts everything it renders
/// with the same preamble (it defines the apostrophe string); the page needs it once.
fn join_pieces(pieces: Vec<Vec<u8>>) -> io::Result<String> {
    let preamble = String::from_utf8_lossy(&roff_bytes(&Roff::new())?).into_owned();
    let mut page = preamble.clone();
    for piece in pieces {
        let piece = String::from_utf8(piece).map_err(io::Error::other)?;
        page.push_str(piece.strip_prefix(&preamble).unwrap_or(&piece));
    }
    Ok(page)
}

/// The UTC date (YYYY-MM-DD) of `seconds` after 1970-01-01, by Howard Hinnant's
/// days-to-civil algorithm (<https://howardhinnant.github.io/date_algorithms.html>).
pub fn date(seconds: u64) -> String {
    let days = seconds / 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests;
