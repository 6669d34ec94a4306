//! Running a parsed command: each maps to one or two RPC calls, and its result to human text or
//! (with `--json`) the result document as chatd sent it, so fields a newer chatd adds pass
//! through.

mod account;
mod account_admin;
mod completions;
mod contact;
mod export;
mod message;
mod watch;

mod daemon;
mod outbox;
mod requests;

use std::path::PathBuf;

use anyhow::Context;
use api::client::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::connect;
use crate::output::Output;

/// Runs the command `cli` names.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        socket: cli.socket.clone(),
        autostart: !cli.no_autostart,
        out: Output::new(cli.json),
    };
    match &cli.command {
        Command::Init(args) => account::init(&ctx, args),
        Command::Unlock(args) => account::unlock(&ctx, args),
        Command::Lock => account::lock(&ctx),
        Command::Status => account::status(&ctx),
        Command::Whoami => account::whoami(&ctx),
        Command::Register { handle } => account::register(&ctx, handle),
        Command::Contact(command) => contact::run(&ctx, command),
        Command::Relay(crate::cli::RelayCommand::Move { url }) => account::move_relay(&ctx, url),
        Command::Block { alias } => contact::block(&ctx, alias, true),
        Command::Unblock { alias } => contact::block(&ctx, alias, false),
        Command::Blocked => requests::blocked(&ctx),
        Command::Strangers { choice } => {
            account::strangers(&ctx, *choice == crate::cli::StrangerChoice::Accept)
        }
        Command::Invite => contact::invite(&ctx),
        Command::Accept { code, alias } => contact::accept(&ctx, code, alias.as_deref()),
        Command::Send(args) => message::send(&ctx, args),
        Command::History(args) => message::history(&ctx, args),
        Command::Conversations => message::conversations(&ctx),
        Command::Read { target, up_to } => message::read(&ctx, target, up_to.as_deref()),
        Command::Watch { since } => watch::watch(&ctx, *since),
        Command::Completions { shell } => completions::completions(&ctx, *shell),
        Command::Passphrase(args) => account_admin::passphrase(&ctx, args),
        Command::Unregister { handle } => account_admin::unregister(&ctx, handle),
        Command::Account(crate::cli::AccountCommand::Delete(args)) => {
            account_admin::delete(&ctx, args)
        }
        Command::Export { file } => export::export(&ctx, file),
        Command::Outbox(args) => outbox::run(&ctx, args.command.as_ref()),
        Command::Requests(args) => requests::run(&ctx, args.command.as_ref()),
        Command::Resend { message_id } => outbox::resend(&ctx, message_id),
        Command::Daemon(crate::cli::DaemonCommand::Stop { data_dir, timeout }) => {
            daemon::stop(&ctx, data_dir.as_deref(), *timeout)
        }
    }
}

/// What every command needs: where chatd is, and where results go.
struct Ctx {
    socket: Option<PathBuf>,
    autostart: bool,
    out: Output,
}

impl Ctx {
    /// Connects to chatd (starting it if allowed).
    fn connect(&self) -> anyhow::Result<Rpc> {
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(api::paths::default_socket);
        let client = connect::connect(&socket, self.autostart)?;
        Ok(Rpc { client })
    }

    /// Connects to a chatd that runs already (never starting one).
    fn connect_running(&self) -> anyhow::Result<Rpc> {
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(api::paths::default_socket);
        Ok(Rpc {
            client: connect::connect(&socket, false)?,
        })
    }

    /// Connects, makes one call, and prints its result: as chatd sent it with `--json`, else
    /// decoded as `T` and rendered by `human`.
    fn call_and_show<P, T>(
        &self,
        method: &str,
        params: &P,
        human: impl FnOnce(T) -> anyhow::Result<String>,
    ) -> anyhow::Result<()>
    where
        P: Serialize,
        T: DeserializeOwned,
    {
        let value = self.connect()?.call(method, params)?;
        self.show(method, value, human)
    }

    /// Prints a result: as it is with `--json`, else decoded as `T` and rendered by `human`.
    fn show<T: DeserializeOwned>(
        &self,
        method: &str,
        value: Value,
        human: impl FnOnce(T) -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        if self.out.is_json() {
            return self.out.json(&value);
        }
        let text = human(decode(method, value)?)?;
        self.out.text(&text)
    }
}

/// A connection to chatd.
#[derive(Debug)]
struct Rpc {
    client: Client,
}

impl Rpc {
    /// Calls `method` and returns its raw result.
    fn call<P: Serialize>(&mut self, method: &str, params: &P) -> anyhow::Result<Value> {
        let params = serde_json::to_value(params)
            .with_context(|| format!("cannot encode the params of {method}"))?;
        Ok(self.client.call_value(method, params)?)
    }
}

/// Decodes the result of `method`.
fn decode<T: DeserializeOwned>(method: &str, value: Value) -> anyhow::Result<T> {
    serde_json::from_value(value)
        .with_context(|| format!("chatd sent an unexpected result for {method}"))
}
