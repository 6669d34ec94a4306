//! `xtask completions OUT_DIR`: a script per program and shell, named as the shells' completion
//! directories expect, each the one `chatctl completions` would print; the bash ones register
//! their completion in a real bash.

use std::process::Command;

use xtask::PROGRAMS;
use xtask::completions::{SHELLS, script};

use crate::{read, temp_dir, xtask};

#[test]
fn every_program_gets_a_script_for_every_shell() {
    let dir = temp_dir();
    let printed = xtask(&["completions"], dir.path());
    assert_eq!(printed.len(), PROGRAMS.len() * SHELLS.len(), "{printed:?}");
    for (shell, subdir, prefix, suffix) in SHELLS {
        for &(name, command) in PROGRAMS {
            let path = dir
                .path()
                .join(subdir)
                .join(format!("{prefix}{name}{suffix}"));
            let text = read(&path);
            assert_eq!(
                text.as_bytes(),
                script(shell, name, command()),
                "{} differs from the generator's script",
                path.display()
            );
            assert!(text.contains(name), "{}", path.display());
        }
    }
    assert!(dir.path().join("bash/chatctl").exists());
    assert!(dir.path().join("zsh/_chatctl").exists());
    assert!(dir.path().join("fish/chatctl.fish").exists());
}

#[test]
fn bash_scripts_register_a_completion_for_their_program() {
    if !tests::system_tool_available("completions", &["bash", "--version"]) {
        return;
    }
    let dir = temp_dir();
    xtask(&["completions"], dir.path());
    for &(name, _) in PROGRAMS {
        let output = Command::new("bash")
            .args([
                "--norc",
                "--noprofile",
                "-c",
                r#"source "$1" && complete -p "$2""#,
                "bash",
            ])
            .arg(dir.path().join("bash").join(name))
            .arg(name)
            .output()
            .unwrap_or_else(|e| panic!("running bash: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(&format!(" {name}")), "{name}: {stdout}");
    }
}
