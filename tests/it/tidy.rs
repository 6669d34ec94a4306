//! Tidy checks: the project's written rules, enforced by `cargo test` (as rust-analyzer's tidy).
//!
//! Each test names every offender it finds, not just the first, so one run shows all the work.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tests::workspace_root;

/// `path` relative to the workspace root, with `/` separators, for messages.
fn display(path: &Path) -> String {
    let root = workspace_root();
    let rel = path.strip_prefix(&root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", display(path)))
}

/// Every file under `dir` whose name ends in `extension`, skipping `target` and hidden
/// directories, in a stable order.
fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", display(&dir)));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", display(&dir)));
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file_type = entry
                .file_type()
                .unwrap_or_else(|e| panic!("cannot stat {}: {e}", display(&path)));
            if file_type.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if file_type.is_file() && path.extension().is_some_and(|e| e == extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Fails with one line per offender, under a heading that says which rule was broken.
fn report(rule: &str, offenders: &[String]) {
    assert!(
        offenders.is_empty(),
        "{rule}:\n  {}\n",
        offenders.join("\n  ")
    );
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let root = workspace_root();
    let files = files_with_extension(&root, "rs");
    assert!(
        files.iter().any(|f| f.ends_with("protocol/src/lib.rs")),
        "the walk from {} found no protocol/src/lib.rs: is the root right?",
        root.display()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !read(f).starts_with("//!"))
        .map(|f| display(f))
        .collect();
    report(
        "these files do not start with a `//!` line saying what they own (CONTRIBUTING.md)",
        &offenders,
    );
}

#[test]
fn no_ignored_or_should_panic_tests() {
    // Spelled in pieces so that this file does not match itself.
    let ignore = concat!("#[", "ignore");
    let should_panic = concat!("#[", "should_panic");
    let mut offenders = Vec::new();
    for file in files_with_extension(&workspace_root(), "rs") {
        for (number, line) in read(&file).lines().enumerate() {
            let ignored = line.match_indices(ignore).any(|(at, m)| {
                matches!(line[at + m.len()..].chars().next(), Some(']' | ' ' | '='))
            });
            if ignored || line.contains(should_panic) {
                offenders.push(format!(
                    "{}:{}: {}",
                    display(&file),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    report(
        "tests must run and must say what they expect: no `ignore` or `should_panic` attributes \
         (assert on the `Result` or error instead)",
        &offenders,
    );
}

/// The files allowed to lift the workspace's `unsafe_code = "deny"`, each for a reason its
/// SAFETY comments prove sound. A new one needs a review, and a line here.
const UNSAFE_ALLOWED: &[&str] = &[
    // Adopting the socket a service manager passed (one `OwnedFd::from_raw_fd`).
    "chatd/src/rpc/activation.rs",
    // mallopt(3) and malloc_trim(3), one FFI call each.
    "chatd/src/memory.rs",
    // A counting global allocator that forwards to `System`, to measure allocations.
    "protocol/tests/it/frames.rs",
    // SetHandleInformation on chatctl's standard handles before autostarting chatd (Windows).
    "chatctl/src/connect/handles.rs",
];

#[test]
fn the_project_cites_no_document_outside_it() {
    // The project stands alone: a rule it relies on is written in ARCHITECTURE.md or
    // protocol/SPEC.md, never cited from a brief outside the repository. The names are built
    // here so that this file does not match itself.
    let brief = ["design", ".md"].concat();
    let outside = ["..", "/shared"].concat();
    let root = workspace_root();
    let mut offenders = Vec::new();
    for extension in ["rs", "md", "toml", "sh", "py", "js"] {
        for path in files_with_extension(&root, extension) {
            for (number, line) in read(&path).lines().enumerate() {
                if line.contains(&brief) || line.contains(&outside) {
                    offenders.push(format!(
                        "{}:{}: {}",
                        display(&path),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    report("files cite a document outside the repository", &offenders);
}

#[test]
fn unsafe_code_is_allowed_only_where_listed() {
    // Spelled in pieces so that this file does not match itself.
    let allow = concat!("allow(", "unsafe_code)");
    let mut offenders = Vec::new();
    for file in files_with_extension(&workspace_root(), "rs") {
        let name = display(&file);
        if read(&file).contains(allow) && !UNSAFE_ALLOWED.contains(&name.as_str()) {
            offenders.push(name);
        }
    }
    report(
        "these files lift `unsafe_code = \"deny\"` but are not in UNSAFE_ALLOWED (tidy.rs); \
         keep unsafe in the few files that prove it sound",
        &offenders,
    );
}

#[test]
fn protocol_source_does_no_io_and_takes_no_global_rng_or_clock() {
    // A grep-level check of ARCHITECTURE.md's invariant "protocol does no I/O". Comment lines are
    // skipped so the rule itself can be written down in doc comments.
    const FORBIDDEN: &[&str] = &[
        "std::fs",
        "std::net",
        "SystemTime::now",
        "Instant::now",
        "thread_rng",
        "OsRng",
        "getrandom",
    ];
    let src = workspace_root().join("protocol").join("src");
    let mut offenders = Vec::new();
    for file in files_with_extension(&src, "rs") {
        for (number, line) in read(&file).lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for word in FORBIDDEN.iter().filter(|w| line.contains(**w)) {
                offenders.push(format!(
                    "{}:{}: `{word}` in: {}",
                    display(&file),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    report(
        "protocol/src must not touch files, sockets, the clock or a global RNG: take them as \
         arguments (ARCHITECTURE.md, invariants)",
        &offenders,
    );
}

#[test]
fn only_protocol_crypto_names_the_primitive_crates() {
    // `protocol/src/crypto/mod.rs` promises this; everything above it uses the wrappers.
    const PRIMITIVES: &[&str] = &[
        "x25519_dalek",
        "ed25519_dalek",
        "ml_kem",
        "aes_gcm",
        "hkdf",
        "hmac",
    ];
    let src = workspace_root().join("protocol").join("src");
    let crypto = src.join("crypto");
    let mut offenders = Vec::new();
    for file in files_with_extension(&src, "rs") {
        if file.starts_with(&crypto) {
            continue;
        }
        for (number, line) in read(&file).lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for krate in PRIMITIVES {
                if names_crate(line, krate) {
                    offenders.push(format!(
                        "{}:{}: `{krate}` in: {}",
                        display(&file),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    report(
        "only protocol/src/crypto may name the primitive crates; use its wrappers",
        &offenders,
    );
}

/// Whether `line` uses `krate` as the root of a path (`krate::...`), not as a segment inside one
/// (`kdf::hkdf::...`) or part of a longer name (`my_hkdf::...`).
fn names_crate(line: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    line.match_indices(&needle).any(|(at, _)| {
        !line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

/// The resolved dependency graph of the workspace, from `cargo metadata`.
struct Graph {
    names: BTreeMap<String, String>,
    normal_deps: BTreeMap<String, Vec<String>>,
    members: BTreeMap<String, String>,
}

impl Graph {
    fn load() -> Graph {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let root = workspace_root();
        let output = Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--locked",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .current_dir(&root)
            .output()
            .expect("cannot run `cargo metadata`");
        assert!(
            output.status.success(),
            "`cargo metadata --format-version 1 --locked` failed (is Cargo.lock up to date?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value =
            serde_json::from_slice(&output.stdout).expect("`cargo metadata` printed invalid JSON");

        let str_of = |v: &Value| {
            v.as_str()
                .expect("cargo metadata: expected a string")
                .to_owned()
        };
        let array_of = |v: &Value| -> Vec<Value> {
            v.as_array()
                .expect("cargo metadata: expected an array")
                .clone()
        };

        let names: BTreeMap<String, String> = array_of(&metadata["packages"])
            .iter()
            .map(|p| (str_of(&p["id"]), str_of(&p["name"])))
            .collect();
        let members = array_of(&metadata["workspace_members"])
            .iter()
            .map(|id| (names[&str_of(id)].clone(), str_of(id)))
            .collect();

        // Only normal edges count: dev-dependencies are not linked into the product, and
        // build-dependencies only run at build time. A platform-specific dependency is still
        // a normal edge (its `target` field is set), so every platform is checked.
        let mut normal_deps = BTreeMap::new();
        for node in array_of(&metadata["resolve"]["nodes"]) {
            let deps = array_of(&node["deps"])
                .iter()
                .filter(|dep| {
                    array_of(&dep["dep_kinds"])
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|dep| str_of(&dep["pkg"]))
                .collect();
            normal_deps.insert(str_of(&node["id"]), deps);
        }
        Graph {
            names,
            normal_deps,
            members,
        }
    }

    /// For each package in `forbidden` that `member` reaches through normal dependencies, the
    /// shortest path to it, as `member -> a -> b -> forbidden`.
    fn forbidden_paths(&self, member: &str, forbidden: &[&str]) -> Vec<String> {
        let start = self.members.get(member).unwrap_or_else(|| {
            panic!("`{member}` is not a workspace member any more: update this test")
        });
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut seen = BTreeSet::from([start.as_str()]);
        let mut queue = VecDeque::from([start.as_str()]);
        let mut paths = Vec::new();
        while let Some(id) = queue.pop_front() {
            if forbidden.contains(&self.names[id].as_str()) {
                let mut path = vec![self.names[id].as_str()];
                let mut at = id;
                while let Some(&up) = parent.get(at) {
                    path.push(self.names[up].as_str());
                    at = up;
                }
                path.reverse();
                paths.push(path.join(" -> "));
            }
            for dep in self.normal_deps.get(id).into_iter().flatten() {
                if seen.insert(dep.as_str()) {
                    parent.insert(dep.as_str(), id);
                    queue.push_back(dep.as_str());
                }
            }
        }
        paths
    }
}

#[test]
fn dependency_invariants_hold() {
    let graph = Graph::load();
    let rules: &[(&str, &[&str], &str)] = &[
        (
            "protocol",
            &[
                "tokio",
                "sled",
                "mio",
                "socket2",
                "tokio-tungstenite",
                "jsonrpsee",
                "interprocess",
            ],
            "protocol does no I/O and depends on no async runtime, storage or networking crate",
        ),
        (
            "chatctl",
            &["sled", "x25519-dalek", "ed25519-dalek", "ml-kem"],
            "chatctl is an RPC client: it never links the store or key material",
        ),
        (
            "chat-tray",
            &[
                "sled",
                "x25519-dalek",
                "ed25519-dalek",
                "ml-kem",
                "chatd",
                "protocol",
            ],
            "chat-tray is an RPC client: it never links the daemon, the store or key material",
        ),
        (
            "chat-tray",
            &["libdbus-sys", "dbus"],
            "chat-tray speaks D-Bus in pure Rust (zbus), with no C libdbus to install",
        ),
    ];
    let mut offenders = Vec::new();
    for (member, forbidden, why) in rules {
        for path in graph.forbidden_paths(member, forbidden) {
            offenders.push(format!("{path}  ({why})"));
        }
    }
    report(
        "forbidden dependencies (ARCHITECTURE.md, invariants; `cargo tree -p <crate> -i <dep>` \
         shows the way in)",
        &offenders,
    );
}

/// The value of `readonly TEST_COMMAND="..."` in `.ci/run`.
fn ci_test_command() -> String {
    let ci = read(&workspace_root().join(".ci").join("run"));
    let command = ci
        .lines()
        .find_map(|l| {
            l.strip_prefix("readonly TEST_COMMAND=\"")?
                .strip_suffix('"')
        })
        .expect(".ci/run must define `readonly TEST_COMMAND=\"...\"` on one line");
    assert!(
        ci.lines().any(|l| l.trim() == "run $TEST_COMMAND"),
        ".ci/run defines TEST_COMMAND but never runs it with `run $TEST_COMMAND`"
    );
    command.to_owned()
}

#[test]
fn readme_test_command_is_the_one_ci_runs() {
    let command = ci_test_command();
    assert!(
        command.starts_with("cargo test "),
        "TEST_COMMAND in .ci/run is not a `cargo test` command: {command}"
    );
    let readme = read(&workspace_root().join("README.md"));
    let mut in_fence = false;
    let mut fenced_lines = Vec::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if in_fence {
            fenced_lines.push(line.trim());
        }
    }
    assert!(
        fenced_lines.contains(&command.as_str()),
        "README.md has no fenced code line `{command}`, the test command .ci/run runs; \
         change them together"
    );
}

#[cfg(unix)]
#[test]
fn ci_script_is_executable() {
    use std::os::unix::fs::PermissionsExt;
    let path = workspace_root().join(".ci").join("run");
    let mode = fs::metadata(&path)
        .unwrap_or_else(|e| panic!("cannot stat .ci/run: {e}"))
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        ".ci/run is not executable (git update-index --chmod=+x .ci/run)"
    );
    assert!(
        read(&path).lines().any(|l| l.trim() == "set -euo pipefail"),
        ".ci/run must `set -euo pipefail`"
    );
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let root = workspace_root();
    let docs = [
        "README.md",
        "ARCHITECTURE.md",
        "CONTRIBUTING.md",
        "contrib/README.md",
    ];
    let mut offenders = Vec::new();
    for doc in docs {
        let path = root.join(doc);
        let text = read(&path);
        let dir = path.parent().expect("a document path has a parent");
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            let target = target.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !dir.join(target).exists() {
                offenders.push(format!("{doc}: ({target})"));
            }
        }
    }
    report("these relative links point at nothing", &offenders);
}

/// The names a document's sections can be cited by: its headings and its bold run-in headings
/// (`**Peer to peer.**`), without their numbers (`10.9 `).
fn section_names(doc: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim();
            let heading = heading
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
                .trim();
            names.push(heading.to_owned());
        }
    }
    let mut rest = doc;
    while let Some(start) = rest.find("**") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("**") else { break };
        names.push(after[..end].trim_end_matches('.').trim().to_owned());
        rest = &after[end + 2..];
    }
    names
}

/// A quoted name as cited, on one line: comment markers of wrapped lines dropped, runs of
/// white space made one space.
fn cited_name(quoted: &str) -> String {
    quoted
        .lines()
        .map(|line| {
            line.trim()
                .trim_start_matches("//!")
                .trim_start_matches("///")
                .trim_start_matches("//")
                .trim_start_matches('#')
                .trim()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The document a citation names by the word before it (`README`, `SPEC.md`,
/// `docs/SERVICES.md`, `README's`), if it is one of the workspace's.
fn cited_document(before: &str) -> Option<&'static str> {
    let mut text = before.trim_end();
    text = text.strip_suffix("section").unwrap_or(text).trim_end();
    text = text.strip_suffix(',').unwrap_or(text);
    text = text.strip_suffix("'s").unwrap_or(text);
    let word = text
        .rsplit(|c: char| c.is_whitespace() || "([`".contains(c))
        .next()
        .unwrap_or_default();
    match word.trim_end_matches(".md") {
        "README" | "../README" => Some("README.md"),
        "ARCHITECTURE" => Some("ARCHITECTURE.md"),
        "CONTRIBUTING" => Some("CONTRIBUTING.md"),
        "SPEC" | "protocol/SPEC" => Some("protocol/SPEC.md"),
        "SERVICES" | "docs/SERVICES" => Some("docs/SERVICES.md"),
        "MANPAGES" | "docs/MANPAGES" => Some("docs/MANPAGES.md"),
        "chatd/BENCHMARKS" => Some("chatd/BENCHMARKS.md"),
        "protocol/BENCHMARKS" => Some("protocol/BENCHMARKS.md"),
        "contrib/README" => Some("contrib/README.md"),
        "fuzz/README" => Some("fuzz/README.md"),
        _ => None,
    }
}

#[test]
fn cited_section_names_exist() {
    // `README, "Peer to peer"`, `SPEC.md section "Delivery"`, `the README's "Windows"`, and in
    // a document, `see "Windows" below` for one of its own: each cited name must begin a
    // heading or a bold run-in heading of that document, so a reader finds it.
    let root = workspace_root();
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut offenders = Vec::new();
    let extensions = [
        "md", "rs", "sh", "toml", "py", "js", "service", "socket", "plist",
    ];
    for file in extensions
        .iter()
        .flat_map(|extension| files_with_extension(&root, extension))
    {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let own = display(&file);
        let quotes: Vec<usize> = text.match_indices('"').map(|(at, _)| at).collect();
        for pair in quotes.windows(2) {
            let (open, close) = (pair[0], pair[1]);
            let quoted = &text[open + 1..close];
            let starts_upper = quoted.chars().next().is_some_and(char::is_uppercase);
            if !starts_upper || quoted.len() > 100 {
                continue;
            }
            let before = &text[text[..open].rfind(['(', ';', ':']).map_or(0, |at| at + 1)..open];
            let before = cited_name(before);
            let document = match cited_document(&before) {
                Some(document) => document.to_owned(),
                None if own.ends_with(".md") && before.ends_with("see") => own.clone(),
                None => continue,
            };
            let cited = cited_name(quoted);
            let known = names.entry(document.clone()).or_insert_with(|| {
                section_names(&fs::read_to_string(root.join(&document)).unwrap_or_default())
            });
            if !known.iter().any(|name| name.starts_with(&cited)) {
                offenders.push(format!("{own}: {document}, \"{cited}\""));
            }
        }
    }
    report(
        "these cite a section by a name its document has no heading for",
        &offenders,
    );
}
