//! The man-page sections clap cannot derive from a command: EXIT STATUS, ENVIRONMENT and FILES,
//! per program. Facts that have a home in code are taken from there (chatctl's exit codes, the
//! environment variables of chatctl and `api::paths`, every `env = ...` of a clap argument),
//! so only the prose lives here.

use chatctl::exit;

/// A section of a man page that clap does not render.
#[derive(Debug, Clone)]
pub struct Section {
    /// The heading, in capitals (man-pages(7) names).
    pub title: &'static str,
    /// A paragraph before the items, if any.
    pub intro: Option<String>,
    /// Tagged paragraphs: the term, and its text.
    pub items: Vec<(Term, String)>,
}

/// The tag of an item, set as man-pages(7) asks: codes and variables bold, paths italic.
#[derive(Debug, Clone)]
pub enum Term {
    /// A literal: an exit code, an environment variable.
    Bold(String),
    /// A path.
    Italic(String),
}

/// What a program's man page has beyond what clap_mangen renders from its command.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Sections placed after OPTIONS and SUBCOMMANDS, in man-pages(7) order.
    pub sections: Vec<Section>,
    /// Whether the command's after-help text (shown by `--help`) is already said by
    /// [`Extras::sections`], so the page leaves it out rather than repeating it as NOTES.
    pub after_help_covered: bool,
}

/// The extras of the program `name`, whose clap command (built) is `command`. Every program
/// gets an ENVIRONMENT entry for each argument clap reads from the environment; a program this
/// does not know gets just those.
pub fn extras(name: &str, command: &clap::Command) -> Extras {
    let mut environment = clap_environment(command);
    let (exit_status, files, after_help_covered) = match name {
        "chatctl" => {
            environment.extend(chatctl_environment());
            (chatctl_exit_status(), chatctl_files(), true)
        }
        "chatd" => {
            environment.extend(daemon_environment());
            (daemon_exit_status("chatd"), chatd_files(), false)
        }
        "chat-relay" => {
            environment.extend(relay_environment());
            (daemon_exit_status("chat-relay"), relay_files(), false)
        }
        "chat-tray" => {
            environment.extend(tray_environment());
            (daemon_exit_status("chat-tray"), tray_files(), false)
        }
        _ => (None, None, false),
    };
    let environment = (!environment.is_empty()).then_some(Section {
        title: "ENVIRONMENT",
        intro: None,
        items: environment,
    });
    Extras {
        sections: [exit_status, environment, files]
            .into_iter()
            .flatten()
            .collect(),
        after_help_covered,
    }
}

/// One item per argument that clap reads from an environment variable (`#[arg(env = ...)]`).
fn clap_environment(command: &clap::Command) -> Vec<(Term, String)> {
    command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set() && !arg.is_hide_env_set())
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_string_lossy().into_owned();
            let flag = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => arg.get_id().to_string(),
            };
            let text = format!("Sets {flag} (see OPTIONS); the flag wins when both are given.");
            Some((Term::Bold(variable), text))
        })
        .collect()
}

/// chatctl's exit codes, from [`exit::CODES`].
fn chatctl_exit_status() -> Option<Section> {
    Some(Section {
        title: "EXIT STATUS",
        intro: Some(
            "With --json, a failing command also prints a JSON error document on stdout, \
             whose exit_code field repeats the status."
                .to_owned(),
        ),
        items: exit::CODES
            .iter()
            .map(|(code, meaning)| (Term::Bold(code.to_string()), format!("{meaning}.")))
            .collect(),
    })
}

/// Where chatctl finds chatd's socket, and what autostart runs.
fn chatctl_environment() -> Vec<(Term, String)> {
    vec![
        (
            Term::Bold(api::paths::SOCKET_ENV.to_owned()),
            "chatd's socket, when --socket is not given.".to_owned(),
        ),
        (
            Term::Bold("XDG_RUNTIME_DIR".to_owned()),
            "Without CHATD_SOCKET, the socket is $XDG_RUNTIME_DIR/chatd/chatd.sock; without \
             XDG_RUNTIME_DIR either, $TMPDIR/chatd-UID/chatd.sock (/tmp when TMPDIR is unset)."
                .to_owned(),
        ),
        (
            Term::Bold(chatctl::BIN_ENV.to_owned()),
            "The chatd binary to start when the socket is absent (default: chatd next to \
             chatctl, else on PATH)."
                .to_owned(),
        ),
        (
            Term::Bold(chatctl::ARGS_ENV.to_owned()),
            "Extra arguments for a chatd that chatctl starts, split on whitespace.".to_owned(),
        ),
    ]
}

fn chatctl_files() -> Option<Section> {
    Some(Section {
        title: "FILES",
        intro: None,
        items: vec![(
            Term::Italic("$XDG_RUNTIME_DIR/chatd/chatd.sock".to_owned()),
            "chatd's socket by default (see ENVIRONMENT). chatctl reads or writes no other \
             file, apart from a --passphrase-file it is given."
                .to_owned(),
        )],
    })
}

/// The variables chatd reads besides its flags' own.
fn daemon_environment() -> Vec<(Term, String)> {
    vec![
        rust_log("chatd"),
        (
            Term::Bold("XDG_CONFIG_HOME".to_owned()),
            "Where the default configuration file is looked for (see FILES).".to_owned(),
        ),
        (
            Term::Bold("XDG_DATA_HOME".to_owned()),
            "Where the store lives by default (see FILES).".to_owned(),
        ),
        (
            Term::Bold("XDG_RUNTIME_DIR".to_owned()),
            "The default socket is $XDG_RUNTIME_DIR/chatd/chatd.sock; without it, \
             $TMPDIR/chatd-UID/chatd.sock (/tmp when TMPDIR is unset)."
                .to_owned(),
        ),
    ]
}

/// The variables chat-relay reads.
fn relay_environment() -> Vec<(Term, String)> {
    vec![
        rust_log("chat-relay"),
        (
            Term::Bold("XDG_DATA_HOME".to_owned()),
            "The default data directory is $XDG_DATA_HOME/chat-relay, else \
             $HOME/.local/share/chat-relay (see FILES)."
                .to_owned(),
        ),
    ]
}

/// The variables chat-tray reads besides its flags' own.
fn tray_environment() -> Vec<(Term, String)> {
    vec![
        rust_log("chat-tray"),
        (
            Term::Bold("XDG_RUNTIME_DIR".to_owned()),
            "Without --socket or CHATD_SOCKET, chatd's socket is \
             $XDG_RUNTIME_DIR/chatd/chatd.sock, as chatd and chatctl find it."
                .to_owned(),
        ),
        (
            Term::Bold("XDG_CONFIG_HOME, XDG_STATE_HOME".to_owned()),
            "Where the configuration and state files are by default (see FILES).".to_owned(),
        ),
    ]
}

fn tray_files() -> Option<Section> {
    Some(Section {
        title: "FILES",
        intro: None,
        items: vec![
            (
                Term::Italic("$XDG_CONFIG_HOME/chatd/tray.toml".to_owned()),
                "The configuration file, read if it exists (--config names another): the long \
                 flags with underscores (privacy, preview_chars, terminal, ...); unknown keys \
                 are errors."
                    .to_owned(),
            ),
            (
                Term::Italic("$XDG_STATE_HOME/chatd/tray-state.toml".to_owned()),
                "The cursor of the last event shown, so that a restart of chat-tray or chatd \
                 neither loses nor repeats a notification (--state-file moves it)."
                    .to_owned(),
            ),
        ],
    })
}

fn rust_log(program: &str) -> (Term, String) {
    (
        Term::Bold("RUST_LOG".to_owned()),
        format!(
            "What {program} logs to stderr, as a tracing filter (default info; for example \
             debug, or warn,{}=debug).",
            program.replace('-', "_")
        ),
    )
}

/// The exit codes of chatd and chat-relay, which run until a signal stops them.
fn daemon_exit_status(program: &str) -> Option<Section> {
    Some(Section {
        title: "EXIT STATUS",
        intro: None,
        items: vec![
            (
                Term::Bold("0".to_owned()),
                "Stopped by SIGINT or SIGTERM, after a clean shutdown.".to_owned(),
            ),
            (
                Term::Bold("1".to_owned()),
                format!("{program} could not start or failed; the reason is on stderr."),
            ),
            (Term::Bold("2".to_owned()), "A bad command line.".to_owned()),
        ],
    })
}

fn chatd_files() -> Option<Section> {
    Some(Section {
        title: "FILES",
        intro: Some(
            "The defaults on Linux and other XDG systems; on macOS the configuration file and \
             the store are under ~/Library/Application Support/chatd instead."
                .to_owned(),
        ),
        items: vec![
            (
                Term::Italic("$XDG_CONFIG_HOME/chatd/config.toml".to_owned()),
                "The configuration file, read if it exists (--config names another). Its keys \
                 are the long flags with underscores (data_dir, relay, passphrase_file, ...) \
                 and a [kdf] table; unknown keys are errors. Flags and environment variables \
                 win over it."
                    .to_owned(),
            ),
            (
                Term::Italic("$XDG_DATA_HOME/chatd/store/".to_owned()),
                "The encrypted store (--data-dir moves it; --ephemeral writes nothing).".to_owned(),
            ),
            (
                Term::Italic("$XDG_RUNTIME_DIR/chatd/chatd.sock".to_owned()),
                "The JSON-RPC socket (mode 0600 in a directory of mode 0700), and \
                 chatd.sock.lock beside it, which keeps a second chatd from serving the same \
                 socket."
                    .to_owned(),
            ),
        ],
    })
}

fn relay_files() -> Option<Section> {
    Some(Section {
        title: "FILES",
        intro: Some(
            "chat-relay reads a configuration file only when --config names one; \
             contrib/chat-relay.toml in the source tree is an annotated example."
                .to_owned(),
        ),
        items: vec![(
            Term::Italic("$XDG_DATA_HOME/chat-relay/".to_owned()),
            "The database of mailboxes, prekeys and handles, unless --data-dir, the \
             configuration file's storage key or --ephemeral says otherwise."
                .to_owned(),
        )],
    })
}
