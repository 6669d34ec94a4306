//! Aliases, the names the user knows contacts by: the check of an alias a person chose, the
//! case-insensitive key they are looked up and kept unique by, the typeable alias made from a
//! peer's display name (or handle, or address) when a contact is added without one, and
//! `contacts.rename`.

use std::collections::HashMap;

use api::ErrorCode;
use api::events::EventKind;
use api::types::Contact;
use protocol::address::Address;

use super::records::tables;
use super::unlocked::{ConvId, Unlocked};
use super::{CoreState, Txn};
use crate::error::{ApiError, ApiResult};

/// Most characters of an alias made from a display name (before a `-N` suffix).
const MAX_DERIVED_CHARS: usize = 32;

/// The key an alias is indexed under: aliases differing only in case are the same alias.
pub fn key(alias: &str) -> String {
    alias.to_lowercase()
}

/// Checks an alias a person chose (`api::input::alias_problem`), which must also not read as
/// an address. It is kept as typed.
pub fn check(alias: &str) -> ApiResult<()> {
    if let Some(problem) = api::input::alias_problem(alias) {
        return Err(ApiError::new(ErrorCode::InvalidAlias, problem));
    }
    if Address::parse(alias).is_ok() {
        return Err(ApiError::new(
            ErrorCode::InvalidAlias,
            format!("invalid alias {alias:?}: it is an address"),
        ));
    }
    Ok(())
}

/// Reduces a peer's name to something a person can type: invisible, bidirectional, control
/// and combining characters, emoji and symbols are dropped; letters with accents and other
/// Latin letters are folded to ASCII, everything lowercased; white space and punctuation
/// between words become one `-`. Letters of other scripts stay (lowercased). Empty when
/// nothing typeable is left.
pub fn typeable(name: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in name.chars() {
        if api::input::is_invisible(c) || c.is_control() {
            continue;
        }
        let folded = fold(c);
        if let Some(ascii) = folded {
            if !out.is_empty() && gap {
                out.push('-');
            }
            gap = false;
            out.push_str(ascii);
        } else if c.is_alphanumeric() {
            if !out.is_empty() && gap {
                out.push('-');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else if c == '_' {
            gap = false;
            out.push('_');
        } else if c.is_whitespace() || matches!(c, '-' | '.' | ',' | '\'' | '’' | '/' | '|') {
            gap = true;
        }
        // Anything else (emoji, symbols, combining marks, other punctuation) is dropped
        // without separating words: "Bob🎉" is "bob".
        if out.chars().count() >= MAX_DERIVED_CHARS {
            break;
        }
    }
    let out: String = out.chars().take(MAX_DERIVED_CHARS).collect();
    out.trim_matches(|c| c == '-' || c == '_').to_owned()
}

/// An alias not yet used (ignoring case), made typeable from `base` ([`typeable`]): `base`,
/// `base-2`, `base-3`... When nothing typeable is left of `base`, `fallback` (the contact's
/// address) gives one: its first 13 characters.
pub fn free(taken: &HashMap<String, ConvId>, base: &str, fallback: &str) -> String {
    let mut base = typeable(base);
    if base.is_empty() || check(&base).is_err() {
        base = fallback.chars().take(13).collect();
    }
    if base.is_empty() {
        base = "contact".to_owned();
    }
    if !taken.contains_key(&key(&base)) {
        return base;
    }
    (2u32..)
        .map(|n| format!("{base}-{n}"))
        .find(|alias| !taken.contains_key(&key(alias)))
        .unwrap_or(base)
}

/// `alias_taken` if another contact (any but `except`) has `alias`, in any case.
pub fn ensure_free(unlocked: &Unlocked, alias: &str, except: Option<&ConvId>) -> ApiResult<()> {
    match unlocked.by_alias.get(&key(alias)) {
        Some(other) if Some(other) != except => Err(ApiError::new(
            ErrorCode::AliasTaken,
            format!(
                "the alias {alias:?} is already used by {:?} (aliases ignore case)",
                unlocked.contact(other)?.alias
            ),
        )),
        _ => Ok(()),
    }
}

/// `contacts.rename`: gives the contact `name` the alias `alias`. Its conversation (and so its
/// history) is keyed by id, not alias, so it stays; a `contact.renamed` event says so.
pub fn rename(state: &mut CoreState, txn: &mut Txn, name: &str, alias: &str) -> ApiResult<Contact> {
    check(alias)?;
    let unlocked = state.unlocked()?;
    let id = unlocked.find_contact(name)?;
    ensure_free(unlocked, alias, Some(&id))?;
    let mut record = unlocked.contact(&id)?.clone();
    if record.alias == alias {
        return Ok(super::contacts::view(&record));
    }
    let old_alias = std::mem::replace(&mut record.alias, alias.to_owned());
    let contact = super::contacts::view(&record);
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    batch.put(tables::CONTACTS, &id, &record.encode());
    super::messaging::event_log::record_event(
        state,
        &mut batch,
        txn,
        EventKind::ContactRenamed {
            old_alias,
            contact: contact.clone(),
        },
    )?;
    txn.commit(&store, batch)?;
    let unlocked = state.unlocked()?;
    unlocked.unindex_contact(&id);
    unlocked.index_contact(id, record);
    Ok(contact)
}

/// The ASCII spelling of a Latin letter with a diacritic or a ligature (what NFKD and dropping
/// combining marks would give, for the letters that have one), lowercased; ASCII letters and
/// digits are themselves, lowercased; fullwidth ASCII is folded too.
fn fold(c: char) -> Option<&'static str> {
    const ASCII: [&str; 36] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f", "g", "h",
        "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z",
    ];
    let c = match c {
        // Fullwidth forms.
        '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
            char::from_u32(u32::from(c) - 0xFEE0)?
        }
        _ => c,
    };
    if c.is_ascii_alphanumeric() {
        let c = c.to_ascii_lowercase();
        let index = c.to_digit(36)?;
        return ASCII.get(usize::try_from(index).ok()?).copied();
    }
    let folded = match c {
        'À'..='Å' | 'à'..='å' | 'Ā'..='ą' | 'Ǎ' | 'ǎ' | 'Ǻ' | 'ǻ' => "a",
        'Æ' | 'æ' | 'Ǽ' | 'ǽ' => "ae",
        'Ç' | 'ç' | 'Ć'..='č' => "c",
        'Ð' | 'ð' | 'Ď'..='đ' => "d",
        'È'..='Ë' | 'è'..='ë' | 'Ē'..='ě' => "e",
        'Ĝ'..='ģ' => "g",
        'Ĥ'..='ħ' => "h",
        'Ì'..='Ï' | 'ì'..='ï' | 'Ĩ'..='ı' | 'Ǐ' | 'ǐ' => "i",
        'Ĳ' | 'ĳ' => "ij",
        'Ĵ' | 'ĵ' => "j",
        'Ķ' | 'ķ' | 'ĸ' => "k",
        'Ĺ'..='ł' => "l",
        'Ñ' | 'ñ' | 'Ń'..='ŉ' | 'Ŋ' | 'ŋ' => "n",
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' | 'Ō'..='ő' | 'Ǒ' | 'ǒ' | 'Ǿ' | 'ǿ' => "o",
        'Œ' | 'œ' => "oe",
        'Ŕ'..='ř' => "r",
        'Ś'..='š' | 'Ș' | 'ș' => "s",
        'ß' => "ss",
        'Ţ'..='ŧ' | 'Ț' | 'ț' => "t",
        'Þ' | 'þ' => "th",
        'Ù'..='Ü' | 'ù'..='ü' | 'Ũ'..='ų' | 'Ǔ'..='ǜ' => "u",
        'Ŵ' | 'ŵ' => "w",
        'Ý' | 'ý' | 'ÿ' | 'Ŷ'..='Ÿ' => "y",
        'Ź'..='ž' => "z",
        _ => return None,
    };
    Some(folded)
}

#[cfg(test)]
mod tests;
