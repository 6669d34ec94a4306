//! Peer to peer (SPEC.md 10.9): daemons that each host their own relay on a `wss://` public URL
//! (`--host-relay ADDR --public-url wss://...`), with a self-signed certificate pinned in their
//! signed records, are each their own home relay and talk with nothing in between: on loopback,
//! across restarts (the certificate is kept), when one of them makes a new certificate (refused
//! by the pin until its new record arrives), ephemeral (the certificate in memory only), and over
//! IPv6 between two network namespaces.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tests::{DaemonOptions, DaemonProcess, free_addr, run_chatctl, wait_for, wait_for_within};

/// A daemon hosting its relay on `listen`, reached at `public_url`, with no other relay.
fn peer(listen: &str, public_url: &str, wrapper: &[String]) -> DaemonProcess {
    DaemonProcess::start_options(
        "",
        DaemonOptions {
            args: ["--host-relay", listen, "--public-url", public_url]
                .map(str::to_owned)
                .to_vec(),
            wrapper: wrapper.to_vec(),
            ..DaemonOptions::default()
        },
    )
}

/// A loopback peer on a free port: `wss://127.0.0.1:PORT`.
fn loopback_peer() -> DaemonProcess {
    let addr = free_addr().to_string();
    peer(&addr, &format!("wss://{addr}"), &[])
}

/// The hosted relay's certificate file.
fn certificate_file(daemon: &DaemonProcess) -> PathBuf {
    daemon.data_dir().join("relay").join("tls").join("cert.pem")
}

/// The contact `alias` of `daemon` appears (an introduction added it).
fn wait_contact(daemon: &DaemonProcess, alias: &str) {
    wait_for(&format!("the contact {alias}"), || {
        let list = daemon.call("contacts.list", json!({}));
        list["contacts"]
            .as_array()?
            .iter()
            .any(|c| c["alias"] == alias)
            .then_some(())
    });
}

/// `alice` invites `bob`; each ends up the other's contact.
fn introduce(alice: &DaemonProcess, bob: &DaemonProcess) {
    let invite = alice.call("invites.create", json!({}));
    bob.call(
        "invites.accept",
        json!({ "code": invite["code"], "alias": "alice" }),
    );
    wait_contact(alice, "bob");
}

/// `from` sends to `to_alias`, the message is delivered, and `to` has it from `from_alias`.
fn talk(from: &DaemonProcess, to_alias: &str, to: &DaemonProcess, from_alias: &str, text: &str) {
    let id = from.send(to_alias, text);
    from.wait_status(to_alias, &id, "delivered");
    let got = to.messages_in(from_alias, "incoming");
    assert!(
        got.iter().any(|m| m["text"] == text),
        "{text:?} not in {got:?}"
    );
}

/// Each daemon's home relay is the one it hosts, at its public URL.
fn assert_own_home(daemon: &DaemonProcess, public_url: &str) {
    let status = daemon.call("daemon.status", json!({}));
    assert_eq!(status["hosted_relay"], public_url, "{status}");
    assert_eq!(status["relay_url"], public_url, "{status}");
}

#[test]
fn two_daemons_that_host_their_own_relays_talk_directly_and_after_restarts() {
    let mut alice = loopback_peer();
    let mut bob = loopback_peer();
    alice.create("alice");
    bob.create("bob");
    for daemon in [&alice, &bob] {
        let url = daemon.call("daemon.status", json!({}))["hosted_relay"].clone();
        let url = url.as_str().unwrap_or_default().to_owned();
        assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
        assert_own_home(daemon, &url);
        let shown = run_chatctl(&daemon.socket(), &["status"]).expect_code(0);
        assert!(
            shown.stdout.contains(&format!("hosting:  {url}")),
            "{}",
            shown.stdout
        );
    }
    // The certificate is kept private in the data directory.
    #[cfg(unix)]
    for daemon in [&alice, &bob] {
        use std::os::unix::fs::PermissionsExt;
        let cert = certificate_file(daemon);
        let key = cert.with_file_name("key.pem");
        for (path, mode) in [
            (cert.parent().map(PathBuf::from).unwrap_or_default(), 0o700),
            (cert.clone(), 0o600),
            (key, 0o600),
        ] {
            let found = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(found, mode, "{}", path.display());
        }
    }

    introduce(&alice, &bob);
    talk(&alice, "bob", &bob, "alice", "alice to bob, peer to peer");
    talk(&bob, "alice", &alice, "bob", "bob to alice, peer to peer");

    // Restarted, each serves the same certificate (so the pin contacts hold still matches).
    let certificates: Vec<Vec<u8>> = [&alice, &bob]
        .map(|d| std::fs::read(certificate_file(d)).unwrap_or_default())
        .to_vec();
    alice.stop();
    bob.stop();
    alice.restart_unlocked();
    bob.restart_unlocked();
    for (daemon, before) in [&alice, &bob].into_iter().zip(&certificates) {
        let after = std::fs::read(certificate_file(daemon)).unwrap_or_default();
        assert_eq!(&after, before, "the certificate is kept across restarts");
    }
    talk(&alice, "bob", &bob, "alice", "after restarts, alice to bob");
    talk(&bob, "alice", &alice, "bob", "after restarts, bob to alice");
}

#[test]
fn a_new_certificate_is_refused_by_the_old_pin_until_the_new_record_arrives() {
    let alice = loopback_peer();
    let mut bob = loopback_peer();
    alice.create("alice");
    // Bob has a passphrase, so after a restart he stays locked (his relay serves, his account
    // has not yet taken the new pin nor told anyone) until he unlocks.
    bob.call(
        "account.create",
        json!({ "name": "bob", "passphrase": "correct horse" }),
    );
    bob.wait_connected();
    introduce(&alice, &bob);
    talk(&alice, "bob", &bob, "alice", "before the new certificate");

    bob.stop();
    let cert = certificate_file(&bob);
    for file in [cert.clone(), cert.with_file_name("key.pem")] {
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    bob.restart();
    assert_eq!(
        bob.call("daemon.status", json!({}))["state"],
        "locked",
        "Bob waits for his passphrase"
    );
    assert!(certificate_file(&bob).exists(), "a new certificate is made");

    // Alice still holds the old pin: Bob's relay is refused, and the message says why.
    let id = alice.send("bob", "to the new certificate");
    let waiting: Value = wait_for_within(
        "the message to say why it waits",
        Duration::from_secs(60),
        || {
            let messages = alice.messages_in("bob", "outgoing");
            let message = messages.iter().find(|m| m["message_id"] == id)?.clone();
            message["failure"]
                .as_str()
                .is_some_and(|why| why.contains("certificate"))
                .then_some(message)
        },
    );
    assert_eq!(waiting["status"], "pending", "{waiting}");

    // Unlocked, Bob's record carries the new pin and his introduction takes it to Alice, whose
    // message then goes through.
    bob.call("account.unlock", json!({ "passphrase": "correct horse" }));
    bob.wait_connected();
    alice.wait_status("bob", &id, "delivered");
    talk(&bob, "alice", &alice, "bob", "from the new certificate");
}

#[test]
fn an_ephemeral_peer_makes_its_certificate_in_memory_and_its_own_link_accepts_it() {
    let addr = free_addr().to_string();
    let url = format!("wss://{addr}");
    let daemon = DaemonProcess::start_options(
        "",
        DaemonOptions {
            args: ["--host-relay", &addr, "--public-url", &url]
                .map(str::to_owned)
                .to_vec(),
            ephemeral: true,
            ..DaemonOptions::default()
        },
    );
    // Connected: the home link accepted the self-signed certificate by the account's pin.
    daemon.create("eve");
    assert_own_home(&daemon, &format!("{url}/v1"));
    assert!(!daemon.data_dir().exists(), "nothing is written to disk");
}

/// Two network namespaces joined by a veth pair, each with an IPv6 address of its own; deleted
/// (with their interfaces) when dropped, whatever happened.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// `ip` with `args`, true if it succeeded.
    fn ip(args: &[&str]) -> Result<(), String> {
        let output = Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Makes the namespaces `<prefix>-0` (address `addresses[0]`) and `<prefix>-1`.
    fn create(prefix: &str, addresses: [&str; 2]) -> Result<Self, String> {
        let names: Vec<String> = (0..2).map(|i| format!("{prefix}-{i}")).collect();
        let mut made = Self { names: Vec::new() };
        for name in &names {
            Self::ip(&["netns", "add", name])?;
            made.names.push(name.clone());
        }
        let (a, b) = (names[0].as_str(), names[1].as_str());
        Self::ip(&[
            "-n", a, "link", "add", "p2p0", "type", "veth", "peer", "name", "p2p1", "netns", b,
        ])?;
        for (name, device, address) in [(a, "p2p0", addresses[0]), (b, "p2p1", addresses[1])] {
            Self::ip(&["-n", name, "link", "set", "lo", "up"])?;
            Self::ip(&[
                "-n", name, "-6", "addr", "add", address, "dev", device, "nodad",
            ])?;
            Self::ip(&["-n", name, "link", "set", device, "up"])?;
        }
        Ok(made)
    }

    /// The command that runs a program in namespace `index`.
    fn exec(&self, index: usize) -> Vec<String> {
        ["ip", "netns", "exec", &self.names[index]]
            .map(str::to_owned)
            .to_vec()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = Self::ip(&["netns", "del", name]) {
                eprintln!("cleaning up: {e}");
            }
        }
    }
}

#[test]
fn two_peers_in_their_own_network_namespaces_talk_over_ipv6() {
    const TEST: &str = "two_peers_in_their_own_network_namespaces_talk_over_ipv6";
    if !tests::system_tool_available(TEST, &["ip", "-V"]) {
        return;
    }
    let namespaces = match Namespaces::create(
        &format!("chatd-p2p-{}", std::process::id()),
        ["fd00::1/64", "fd00::2/64"],
    ) {
        Ok(namespaces) => namespaces,
        Err(why) => {
            if std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_some() {
                panic!(
                    "{TEST}: cannot make network namespaces ({why}), and CHATD_REQUIRE_SYSTEM_TOOLS is set (run the tests as root)"
                );
            }
            eprintln!("{TEST}: SKIPPED: cannot make network namespaces ({why}; it needs root)");
            return;
        }
    };
    // Each daemon in its own namespace, on its own address; the RPC sockets are files, shared.
    let alice = peer(
        "[fd00::1]:7420",
        "wss://[fd00::1]:7420",
        &namespaces.exec(0),
    );
    let bob = peer(
        "[fd00::2]:7420",
        "wss://[fd00::2]:7420",
        &namespaces.exec(1),
    );
    alice.create("alice");
    bob.create("bob");
    assert_own_home(&alice, "wss://[fd00::1]:7420/v1");
    assert_own_home(&bob, "wss://[fd00::2]:7420/v1");

    introduce(&alice, &bob);
    talk(&alice, "bob", &bob, "alice", "alice to bob over IPv6");
    talk(&bob, "alice", &alice, "bob", "bob to alice over IPv6");
    drop(alice);
    drop(bob);
    drop(namespaces);
}
