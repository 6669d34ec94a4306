//! `xtask man OUT_DIR`: a page for every program and every subcommand, each naming every flag,
//! argument and subcommand of its command; the sections clap cannot derive; and, where `man` is
//! installed, pages that groff formats without a single warning.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use xtask::PROGRAMS;

use crate::{read, temp_dir, xtask};

/// How roff writes `text` in a text line: the roff crate escapes every backslash and `-`, and sets
/// apostrophes as the string `Aq` that its preamble defines.
fn roff(text: &str) -> String {
    text.replace('\\', r"\\")
        .replace('-', r"\-")
        .replace('\'', r"\*(Aq")
}

/// A built command, as xtask renders it (no `help` subcommand).
fn built(command: clap::Command) -> clap::Command {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    command
}

fn page_name(command: &clap::Command) -> String {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned()
}

/// Checks the page of `command` and its subcommands' pages, and collects their file names.
fn check_pages(dir: &Path, command: &clap::Command, files: &mut BTreeSet<String>) {
    let name = page_name(command);
    let file = format!("{name}.1");
    let page = read(&dir.join(&file));
    files.insert(file.clone());

    assert!(
        page.contains(&format!(
            ".TH {name} 1 2023-11-14 \"chatd {}\" \"chatd manual\"\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{file}: no complete .TH line (SOURCE_DATE_EPOCH sets the date):\n{page}"
    );
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "\"SEE ALSO\""] {
        assert!(
            page.contains(&format!("\n.SH {section}\n")),
            "{file}: no {section}"
        );
    }
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        let mention = match (arg.get_long(), arg.get_value_names()) {
            (Some(long), _) => roff(&format!("--{long}")),
            (None, Some(names)) => roff(&names.join(" ")),
            (None, None) => roff(arg.get_id().as_str()),
        };
        assert!(page.contains(&mention), "{file} does not mention {mention}");
    }
    for sub in command.get_subcommands() {
        let reference = roff(&format!("{}(1)", page_name(sub)));
        assert!(
            page.contains(&reference),
            "{file} does not list {reference}"
        );
        check_pages(dir, sub, files);
    }
}

/// The text of the section `title` of `page` (up to the next `.SH`).
fn section<'a>(page: &'a str, title: &str) -> &'a str {
    let heading = if title.contains(' ') {
        format!(".SH \"{title}\"\n")
    } else {
        format!(".SH {title}\n")
    };
    let start = page
        .find(&heading)
        .unwrap_or_else(|| panic!("no {title} section in:\n{page}"))
        + heading.len();
    let end = page[start..]
        .find("\n.SH ")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[test]
fn every_program_and_subcommand_has_a_page_naming_all_its_flags() {
    let dir = temp_dir();
    let printed: BTreeSet<String> = xtask(&["man"], dir.path()).into_iter().collect();

    let mut expected = BTreeSet::new();
    for &(name, command) in PROGRAMS {
        let command = built(command());
        assert_eq!(command.get_name(), name, "PROGRAMS names {name} wrongly");
        command.clone().debug_assert();
        check_pages(dir.path(), &command, &mut expected);
    }
    assert!(expected.contains("chatctl-send.1") && expected.contains("chatctl-contact-add.1"));
    assert!(expected.contains("chatd.1") && expected.contains("chat-relay.1"));
    assert!(
        !expected.contains("chatctl-help.1"),
        "clap's help gets no page"
    );

    let on_disk: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("listing the pages: {e}"))
        .map(|entry| {
            let entry = entry.unwrap_or_else(|e| panic!("listing the pages: {e}"));
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(on_disk, expected, "pages without a command, or the reverse");
    let printed_names: BTreeSet<String> = printed
        .iter()
        .filter_map(|p| Path::new(p).file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    assert_eq!(printed_names, expected, "xtask prints every file it writes");
}

#[test]
fn pages_have_exit_status_environment_and_files() {
    let dir = temp_dir();
    xtask(&["man"], dir.path());
    let page = |name: &str| read(&dir.path().join(format!("{name}.1")));

    let chatctl = page("chatctl");
    let exit_status = section(&chatctl, "EXIT STATUS");
    for (code, meaning) in chatctl::exit::CODES {
        assert!(
            exit_status.contains(&format!(".TP\n\\fB{code}\\fR\n{}", roff(meaning))),
            "chatctl.1 EXIT STATUS lacks {code} {meaning}:\n{exit_status}"
        );
    }
    let environment = section(&chatctl, "ENVIRONMENT");
    for variable in [
        api::paths::SOCKET_ENV,
        "XDG_RUNTIME_DIR",
        chatctl::BIN_ENV,
        chatctl::ARGS_ENV,
    ] {
        assert!(
            environment.contains(&format!("\\fB{}\\fR", roff(variable))),
            "chatctl.1 ENVIRONMENT lacks {variable}"
        );
    }
    assert!(section(&chatctl, "FILES").contains("chatd.sock"));
    assert!(
        !chatctl.contains("Exit codes:"),
        "--help's exit code list is EXIT STATUS in the page, not repeated as NOTES"
    );

    for (name, variables) in [
        (
            "chatd",
            &["RUST_LOG", "XDG_CONFIG_HOME", "XDG_DATA_HOME"][..],
        ),
        ("chat-relay", &["RUST_LOG", "XDG_DATA_HOME"][..]),
    ] {
        let text = page(name);
        let command = built(
            PROGRAMS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| c())
                .unwrap_or_else(|| panic!("{name} is not in PROGRAMS")),
        );
        let environment = section(&text, "ENVIRONMENT");
        let from_clap = command
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned());
        for variable in from_clap.chain(variables.iter().map(|v| (*v).to_owned())) {
            assert!(
                environment.contains(&format!("\\fB{}\\fR", roff(&variable))),
                "{name}.1 ENVIRONMENT lacks {variable}"
            );
        }
        assert!(section(&text, "EXIT STATUS").contains("SIGTERM"));
        assert!(section(&text, "FILES").contains(&roff(&format!("/{name}"))));
    }
    assert!(section(&page("chatd"), "ENVIRONMENT").contains(r"\fBCHATD_PASSPHRASE_FILE\fR"));

    // Sections in man-pages(7) order, SEE ALSO last, naming the other programs. A program
    // that `sections` does not know yet (one just added to PROGRAMS) may lack the middle three.
    for &(name, _) in PROGRAMS {
        let text = page(name);
        let order: Vec<usize> = [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "\"EXIT STATUS\"",
            "ENVIRONMENT",
            "FILES",
            "\"SEE ALSO\"",
        ]
        .iter()
        .filter_map(|s| text.find(&format!("\n.SH {s}\n")))
        .collect();
        let documented = ["chatctl", "chatd", "chat-relay"].contains(&name);
        assert!(
            order.is_sorted() && order.len() >= if documented { 8 } else { 5 },
            "{name}.1: {order:?}"
        );
        let see_also = section(&text, "SEE ALSO");
        for &(other, _) in PROGRAMS.iter().filter(|(o, _)| *o != name) {
            assert!(
                see_also.contains(&format!("\\fB{}\\fR(1)", roff(other))),
                "{name}.1 SEE ALSO lacks {other}"
            );
        }
    }
    assert!(
        section(&page("chatctl-contact-add"), "SEE ALSO")
            .contains(r"\fBchatctl\-contact\fR(1), \fBchatctl\fR(1)")
    );
}

#[test]
fn man_formats_every_page_without_warnings() {
    if !tests::system_tool_available("man_pages", &["man", "--version"]) {
        return;
    }
    let dir = temp_dir();
    let pages = xtask(&["man"], dir.path());
    assert!(pages.len() > 20, "{pages:?}");
    for page in pages {
        let output = Command::new("man")
            .args(["-l", "--warnings", "-E", "UTF-8"])
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap_or_else(|e| panic!("running man: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stderr.is_empty(),
            "man -l --warnings {page}: {stderr}"
        );
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page} formats to:\n{text}"
        );
    }
}
