//! Parsing of every command and flag, and the refusals clap must make.

use std::path::Path;
use std::time::Duration;

use clap::CommandFactory;
use clap::error::ErrorKind;

use super::*;

fn parse(args: &[&str]) -> Cli {
    let argv = std::iter::once("chatctl").chain(args.iter().copied());
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?} refused: {e}"))
}

fn refuse(args: &[&str]) -> ErrorKind {
    let argv = std::iter::once("chatctl").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} accepted: {cli:?}"),
        Err(e) => e.kind(),
    }
}

#[test]
fn the_command_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_flags_go_before_or_after_the_command() {
    let cli = parse(&["--json", "--socket", "/tmp/s", "--no-autostart", "status"]);
    assert!(cli.json && cli.no_autostart);
    assert_eq!(cli.socket.as_deref(), Some(Path::new("/tmp/s")));
    assert!(matches!(cli.command, Command::Status));

    let cli = parse(&["status", "--json", "--socket=/tmp/t"]);
    assert!(cli.json && !cli.no_autostart);
    assert_eq!(cli.socket.as_deref(), Some(Path::new("/tmp/t")));

    let cli = parse(&["whoami"]);
    assert!(!cli.json && cli.socket.is_none());
}

#[test]
fn init_takes_a_passphrase_file_or_no_passphrase_but_not_both() {
    let Command::Init(args) = parse(&["init", "--name", "Alice"]).command else {
        panic!("not init");
    };
    assert_eq!(args.name, "Alice");
    assert!(args.relay.is_none() && args.passphrase_file.is_none() && !args.no_passphrase);

    let Command::Init(args) = parse(&[
        "init",
        "--name",
        "Alice",
        "--relay",
        "wss://relay.example/v1",
        "--passphrase-file",
        "/run/credentials/chatd/pass",
    ])
    .command
    else {
        panic!("not init");
    };
    assert_eq!(args.relay.as_deref(), Some("wss://relay.example/v1"));
    assert_eq!(
        args.passphrase_file.as_deref(),
        Some(Path::new("/run/credentials/chatd/pass"))
    );

    let Command::Init(args) = parse(&["init", "--name", "A", "--no-passphrase"]).command else {
        panic!("not init");
    };
    assert!(args.no_passphrase);

    assert_eq!(
        refuse(&[
            "init",
            "--name",
            "A",
            "--no-passphrase",
            "--passphrase-file",
            "f"
        ]),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(refuse(&["init"]), ErrorKind::MissingRequiredArgument);
}

#[test]
fn account_commands_parse() {
    let Command::Unlock(args) = parse(&["unlock"]).command else {
        panic!("not unlock");
    };
    assert!(args.passphrase_file.is_none());
    let Command::Unlock(args) = parse(&["unlock", "--passphrase-file", "p"]).command else {
        panic!("not unlock");
    };
    assert_eq!(args.passphrase_file.as_deref(), Some(Path::new("p")));
    assert!(matches!(parse(&["lock"]).command, Command::Lock));
    assert!(matches!(parse(&["status"]).command, Command::Status));
    assert!(matches!(parse(&["whoami"]).command, Command::Whoami));
    for handle in ["alice", "@alice"] {
        let Command::Register { handle: got } = parse(&["register", handle]).command else {
            panic!("not register");
        };
        assert_eq!(got, handle, "the @ is stripped when the request is made");
    }
    assert_eq!(refuse(&["register"]), ErrorKind::MissingRequiredArgument);
}

#[test]
fn contact_commands_parse() {
    let contact = |args: &[&str]| match parse(args).command {
        Command::Contact(c) => c,
        other => panic!("not a contact command: {other:?}"),
    };
    let ContactCommand::Add { alias, target } = contact(&["contact", "add", "bob", "@bob"]) else {
        panic!("not add");
    };
    assert_eq!((alias.as_str(), target.as_str()), ("bob", "@bob"));
    assert!(matches!(
        contact(&["contact", "list"]),
        ContactCommand::List
    ));
    let ContactCommand::Show { alias } = contact(&["contact", "show", "bob"]) else {
        panic!("not show");
    };
    assert_eq!(alias, "bob");
    let ContactCommand::Verify {
        alias,
        safety_number,
    } = contact(&["contact", "verify", "bob"])
    else {
        panic!("not verify");
    };
    assert_eq!(alias, "bob");
    assert!(safety_number.is_none());
    let digits = "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890";
    let ContactCommand::Verify { safety_number, .. } =
        contact(&["contact", "verify", "bob", "--safety-number", digits])
    else {
        panic!("not verify");
    };
    assert_eq!(safety_number.as_deref(), Some(digits));
    assert_eq!(
        refuse(&["contact", "verify", "bob", "--safety-number", "12a45"]),
        ErrorKind::ValueValidation
    );
    assert!(matches!(
        contact(&["contact", "trust", "bob"]),
        ContactCommand::Trust { .. }
    ));
    assert!(matches!(
        contact(&["contact", "remove", "bob"]),
        ContactCommand::Remove { .. }
    ));
    assert_eq!(
        refuse(&["contact", "add", "bob"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        refuse(&["contact"]),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
}

#[test]
fn invites_parse() {
    assert!(matches!(parse(&["invite"]).command, Command::Invite));
    let Command::Accept { code, alias } = parse(&["accept", "chatinvite1xyz"]).command else {
        panic!("not accept");
    };
    assert_eq!(code, "chatinvite1xyz");
    assert!(alias.is_none());
    let Command::Accept { alias, .. } = parse(&["accept", "c", "--as", "bob"]).command else {
        panic!("not accept");
    };
    assert_eq!(alias.as_deref(), Some("bob"));
}

#[test]
fn send_parses_wait_and_timeout() {
    let Command::Send(args) = parse(&["send", "bob", "hello there"]).command else {
        panic!("not send");
    };
    assert_eq!(
        (args.target.as_str(), args.text.as_str()),
        ("bob", "hello there")
    );
    assert_eq!(args.wait, None);
    assert_eq!(args.timeout, Duration::from_secs(30), "the default");

    let Command::Send(args) = parse(&["send", "@bob", "-", "--wait", "delivered"]).command else {
        panic!("not send");
    };
    assert_eq!(
        args.text, "-",
        "a lone dash is the text, read from stdin later"
    );
    assert_eq!(args.wait, Some(WaitFor::Delivered));
    assert_eq!(args.timeout, Duration::from_secs(30));

    let Command::Send(args) =
        parse(&["send", "bob", "hi", "--wait", "sent", "--timeout", "0.25"]).command
    else {
        panic!("not send");
    };
    assert_eq!(args.wait.map(WaitFor::status), Some(MessageStatus::Sent));
    assert_eq!(args.timeout, Duration::from_millis(250));

    let Command::Send(args) = parse(&["send", "bob", "--", "-5 degrees"]).command else {
        panic!("not send");
    };
    assert_eq!(args.text, "-5 degrees");

    assert_eq!(
        refuse(&["send", "bob", "hi", "--timeout", "5"]),
        ErrorKind::MissingRequiredArgument,
        "--timeout means nothing without --wait"
    );
    for bad in ["0", "-1", "soon", "NaN", "inf"] {
        assert_eq!(
            refuse(&[
                "send",
                "bob",
                "hi",
                "--wait",
                "sent",
                &format!("--timeout={bad}")
            ]),
            ErrorKind::ValueValidation,
            "--timeout {bad}"
        );
    }
    assert_eq!(
        refuse(&["send", "bob", "hi", "--wait", "pending"]),
        ErrorKind::InvalidValue
    );
    assert_eq!(refuse(&["send", "bob"]), ErrorKind::MissingRequiredArgument);
}

#[test]
fn history_conversations_and_read_parse() {
    let Command::History(args) = parse(&["history", "bob"]).command else {
        panic!("not history");
    };
    assert_eq!(args.target, "bob");
    assert!(args.limit.is_none() && args.before.is_none());
    let Command::History(args) =
        parse(&["history", "bob", "--limit", "500", "--before", "c123"]).command
    else {
        panic!("not history");
    };
    assert_eq!(args.limit, Some(500));
    assert_eq!(args.before.as_deref(), Some("c123"));
    for bad in ["0", "501", "ten"] {
        assert_eq!(
            refuse(&["history", "bob", "--limit", bad]),
            ErrorKind::ValueValidation,
            "--limit {bad}"
        );
    }

    assert!(matches!(
        parse(&["conversations"]).command,
        Command::Conversations
    ));

    let id = "0123456789abcdefABCDEF0123456789";
    let Command::Read { target, up_to } = parse(&["read", "bob", "--up-to", id]).command else {
        panic!("not read");
    };
    assert_eq!(target, "bob");
    assert_eq!(up_to.as_deref(), Some(id));
    let Command::Read { up_to, .. } = parse(&["read", "bob"]).command else {
        panic!("not read");
    };
    assert!(up_to.is_none());
    assert_eq!(
        refuse(&["read", "bob", "--up-to", "xyz"]),
        ErrorKind::ValueValidation
    );
}

#[test]
fn watch_parses_since() {
    let Command::Watch { since } = parse(&["watch"]).command else {
        panic!("not watch");
    };
    assert!(since.is_none());
    let Command::Watch { since } = parse(&["watch", "--since", "1700000000000000"]).command else {
        panic!("not watch");
    };
    assert_eq!(since, Some(1_700_000_000_000_000));
    assert_eq!(
        refuse(&["watch", "--since", "-3"]),
        ErrorKind::UnknownArgument
    );
}

#[test]
fn unknown_commands_and_flags_are_usage_errors() {
    assert_eq!(refuse(&["frobnicate"]), ErrorKind::InvalidSubcommand);
    assert_eq!(refuse(&["status", "--colour"]), ErrorKind::UnknownArgument);
    assert_eq!(
        refuse(&[]),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
}

#[test]
fn long_help_lists_every_exit_code() {
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains(&crate::exit::help()), "{help}");
}

#[test]
fn the_account_commands_parse_and_refuse_what_they_must() {
    let Command::Passphrase(args) =
        parse(&["passphrase", "--old-file", "o", "--new-file", "n"]).command
    else {
        panic!("not passphrase");
    };
    assert_eq!(args.old_file.as_deref(), Some(Path::new("o")));
    assert_eq!(args.new_file.as_deref(), Some(Path::new("n")));
    assert!(!args.no_passphrase);
    assert_eq!(
        refuse(&["passphrase", "--new-file", "n", "--no-passphrase"]),
        ErrorKind::ArgumentConflict
    );
    let Command::Unregister { handle } = parse(&["unregister", "@alice"]).command else {
        panic!("not unregister");
    };
    assert_eq!(handle, "@alice");
    assert_eq!(refuse(&["unregister"]), ErrorKind::MissingRequiredArgument);
    let Command::Account(AccountCommand::Delete(args)) =
        parse(&["account", "delete", "--yes"]).command
    else {
        panic!("not account delete");
    };
    assert!(args.yes && args.passphrase_file.is_none());
    let Command::Export { file } = parse(&["export", "-"]).command else {
        panic!("not export");
    };
    assert_eq!(file, Path::new("-"));
    assert_eq!(refuse(&["export"]), ErrorKind::MissingRequiredArgument);
}
