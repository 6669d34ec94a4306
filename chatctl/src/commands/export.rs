//! `export FILE`: every conversation's history as JSON lines, written to a temporary file
//! (0600) beside FILE and renamed over it once complete, or streamed to stdout with `-`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use api::methods;
use api::types::{ConversationList, Empty, History};
use serde_json::Value;

use super::{Ctx, Rpc, decode};
use crate::exit::StdoutClosed;

/// Messages asked for per `messages.history` page (the most chatd gives).
const PAGE: u32 = 500;

/// `export`: writes every message of every conversation, one JSON object per line.
pub(super) fn export(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let mut rpc = ctx.connect()?;
    let list: ConversationList = decode(
        methods::CONVERSATIONS_LIST,
        rpc.call(methods::CONVERSATIONS_LIST, &Empty {})?,
    )?;
    let stats = if file.as_os_str() == "-" {
        let stdout = io::stdout().lock();
        let mut out = BufWriter::new(stdout);
        let stats = write_all(&mut rpc, &list, &mut out).map_err(stdout_error)?;
        out.flush().map_err(|e| stdout_error(e.into()))?;
        stats
    } else {
        write_atomically(file, |out| write_all(&mut rpc, &list, out))?
    };
    let summary = format!(
        "exported {} message{} from {} conversation{}{}",
        stats.messages,
        if stats.messages == 1 { "" } else { "s" },
        stats.conversations,
        if stats.conversations == 1 { "" } else { "s" },
        if file.as_os_str() == "-" {
            String::new()
        } else {
            format!(" to {}", file.display())
        }
    );
    if ctx.out.is_json() {
        let document = serde_json::json!({
            "conversations": stats.conversations,
            "messages": stats.messages,
        });
        // With `-`, stdout holds the export itself: the summary goes to stderr.
        if file.as_os_str() == "-" {
            ctx.out.note(&document.to_string());
            return Ok(());
        }
        return ctx.out.json(&document);
    }
    // A note, so that stdout holds nothing but the export with `-`.
    ctx.out.note(&summary);
    Ok(())
}

/// What was written.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    conversations: usize,
    messages: u64,
}

/// Writes every conversation, each oldest message first, to `out`.
fn write_all(
    rpc: &mut Rpc,
    list: &ConversationList,
    out: &mut impl Write,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    for conversation in &list.conversations {
        // Pages come newest first, each oldest message first; the address names the
        // conversation, since it stays the same whatever the contact is called.
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let params = History {
                conversation: conversation.address.clone(),
                limit: Some(PAGE),
                before: before.take(),
            };
            let page = rpc.call(methods::MESSAGES_HISTORY, &params)?;
            let next = page
                .get("next_before")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let messages = match page.get("messages") {
                Some(Value::Array(messages)) => messages.clone(),
                _ => anyhow::bail!("chatd sent an unexpected result for messages.history"),
            };
            pages.push(messages);
            match next {
                Some(cursor) => before = Some(cursor),
                None => break,
            }
        }
        for message in pages.into_iter().rev().flatten() {
            let Value::Object(mut fields) = message else {
                anyhow::bail!("chatd sent a message that is not an object");
            };
            fields.insert(
                "address".to_owned(),
                Value::String(conversation.address.clone()),
            );
            let mut line = serde_json::to_string(&fields)?;
            line.push('\n');
            out.write_all(line.as_bytes())?;
            stats.messages += 1;
        }
        stats.conversations += 1;
    }
    Ok(stats)
}

/// Writes `file` through a temporary file beside it (created 0600, synced, renamed over
/// `file`, and the directory synced), so that `file` is either as it was or complete. The
/// temporary file is removed when anything fails.
fn write_atomically<T>(
    file: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let name = file
        .file_name()
        .with_context(|| format!("{} is not a file name", file.display()))?;
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let created = options
        .open(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    let result = (|| {
        let mut out = BufWriter::new(created);
        let value = write(&mut out)?;
        let created = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", temp.display()))?;
        created
            .sync_all()
            .with_context(|| format!("cannot write {}", temp.display()))?;
        fs::rename(&temp, file).with_context(|| format!("cannot replace {}", file.display()))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
        return result;
    }
    // The rename is durable once the directory is; a failure here loses nothing written.
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    result
}

fn stdout_error(err: anyhow::Error) -> anyhow::Error {
    let closed = err
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
    if closed { StdoutClosed.into() } else { err }
}
