//! `chatctl completions`: the bash script, loaded into a real non-interactive bash, completes
//! subcommands, nested subcommands, flags and fixed values as the shell would ask it to; the
//! zsh and fish scripts name every subcommand (and are syntax-checked where those shells are
//! installed).

use std::process::Command;

use tests::{Finished, bin};

/// Every subcommand of chatctl, as a user types it.
const SUBCOMMANDS: &[&str] = &[
    "init",
    "unlock",
    "lock",
    "status",
    "whoami",
    "register",
    "contact",
    "invite",
    "accept",
    "send",
    "history",
    "conversations",
    "read",
    "watch",
    "completions",
    "passphrase",
    "unregister",
    "account",
    "export",
];

/// The subcommands of `chatctl contact`.
const CONTACT_SUBCOMMANDS: &[&str] = &["add", "list", "show", "verify", "trust", "remove"];

/// `chatctl completions SHELL`'s output; it must succeed without a daemon.
fn script(shell: &str) -> String {
    let mut command = Command::new(bin("chatctl"));
    command
        .args(["completions", shell])
        .env_remove("CHATD_SOCKET");
    let finished = Finished::run(&mut command, b"").expect_code(0);
    assert!(
        finished.stderr.is_empty(),
        "completions {shell} wrote to stderr: {}",
        finished.stderr
    );
    finished.stdout
}

/// What bash's programmable completion offers for the command line `words`, the last word
/// being the one completed (empty for "after a space"): the script is sourced into
/// `bash --norc`, and the function `complete -p chatctl` names is called the way readline
/// calls it (`COMP_WORDS`, `COMP_CWORD`, `COMP_LINE`, `COMP_POINT`, and the arguments
/// command, current word, previous word).
fn bash_complete(script_path: &std::path::Path, words: &[&str]) -> Vec<String> {
    const DRIVER: &str = r#"
set -u
source "$1" || exit 10
spec=$(complete -p chatctl) || exit 11
function=${spec##*-F }
function=${function%% *}
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
previous=""
if (( COMP_CWORD > 0 )); then previous=${COMP_WORDS[COMP_CWORD-1]}; fi
COMPREPLY=()
"$function" chatctl "${COMP_WORDS[COMP_CWORD]}" "$previous"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let mut command = Command::new("bash");
    command
        .args(["--norc", "--noprofile", "-c", DRIVER, "bash"])
        .arg(script_path)
        .args(words);
    let finished = Finished::run(&mut command, b"").expect_code(0);
    assert!(
        finished.stderr.is_empty(),
        "bash complained completing {words:?}: {}",
        finished.stderr
    );
    finished
        .stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_script_loads_and_completes() {
    if !tests::system_tool_available("completions", &["bash", "--version"]) {
        return;
    }
    let dir = tests::private_dir();
    let path = dir.path().join("chatctl.bash");
    std::fs::write(&path, script("bash")).unwrap_or_else(|e| panic!("writing the script: {e}"));

    assert_eq!(bash_complete(&path, &["chatctl", "se"]), ["send"]);

    let top = bash_complete(&path, &["chatctl", ""]);
    for sub in SUBCOMMANDS {
        assert!(top.iter().any(|w| w == sub), "{sub} missing from {top:?}");
    }

    let contact = bash_complete(&path, &["chatctl", "contact", ""]);
    for sub in CONTACT_SUBCOMMANDS {
        assert!(
            contact.iter().any(|w| w == sub),
            "{sub} missing from {contact:?}"
        );
    }
    assert!(
        !contact.iter().any(|w| w == "send"),
        "top-level commands offered after `contact`: {contact:?}"
    );
    assert_eq!(
        bash_complete(&path, &["chatctl", "contact", "tr"]),
        ["trust"]
    );

    // Global flags complete after a subcommand too, and value enums offer their values.
    assert_eq!(
        bash_complete(&path, &["chatctl", "send", "--js"]),
        ["--json"]
    );
    assert_eq!(
        bash_complete(&path, &["chatctl", "send", "bob", "hi", "--wait", ""]),
        ["sent", "delivered", "read"]
    );
    let shells = bash_complete(&path, &["chatctl", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            shells.iter().any(|w| w == shell),
            "{shell} missing from {shells:?}"
        );
    }
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    for (shell, syntax_check) in [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])] {
        let text = script(shell);
        assert!(text.len() > 1000, "{shell}: a short script: {text}");
        for sub in SUBCOMMANDS.iter().chain(CONTACT_SUBCOMMANDS) {
            assert!(text.contains(sub), "{shell}: {sub} is not mentioned");
        }
        for flag in ["socket", "json", "no-autostart", "passphrase-file", "wait"] {
            assert!(text.contains(flag), "{shell}: --{flag} is not mentioned");
        }
        // The shells themselves are optional here: CI does not install them, so their absence
        // is a note, not a failure.
        let [program, check] = syntax_check;
        let installed = Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            eprintln!("completions: {program} is not installed; its script is not parsed");
            continue;
        }
        let dir = tests::private_dir();
        let path = dir.path().join(format!("chatctl.{shell}"));
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("writing the script: {e}"));
        Finished::run(Command::new(program).arg(check).arg(&path), b"").expect_code(0);
    }
}
