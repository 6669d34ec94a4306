//! Who a conversation is with, as the notification's summary names them: the contact's alias
//! (the name the user chose, so a peer cannot pose as someone else by picking a display name),
//! followed by the display name the peer gave when it differs. Looked up with `contacts.get`
//! once per contact and cached; the cache learns from `contact.*` events.

use std::collections::HashMap;

use api::types::Contact;

/// The display name of a contact: `alias`, or `alias (display name)`.
pub fn display_name(alias: &str, display_name: Option<&str>) -> String {
    match display_name.map(str::trim) {
        Some(name) if !name.is_empty() && !name.eq_ignore_ascii_case(alias) => {
            format!("{alias} ({name})")
        }
        _ => alias.to_owned(),
    }
}

/// Display names by alias.
#[derive(Debug, Default)]
pub struct Names {
    cache: HashMap<String, String>,
}

impl Names {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The display name for `alias`: cached, else from `lookup` (`contacts.get`), else
    /// `fallback` (the event's sender name) with the alias.
    pub fn get(
        &mut self,
        alias: &str,
        fallback: Option<&str>,
        lookup: impl FnOnce(&str) -> Option<Contact>,
    ) -> String {
        if let Some(name) = self.cache.get(alias) {
            return name.clone();
        }
        match lookup(alias) {
            Some(contact) => {
                self.learn(&contact);
                display_name(&contact.alias, contact.display_name.as_deref())
            }
            None => display_name(alias, fallback),
        }
    }

    /// Remembers (or updates) a contact.
    pub fn learn(&mut self, contact: &Contact) {
        self.cache.insert(
            contact.alias.clone(),
            display_name(&contact.alias, contact.display_name.as_deref()),
        );
    }

    /// Forgets a contact (removed, or renamed away from `alias`).
    pub fn forget(&mut self, alias: &str) {
        self.cache.remove(alias);
    }

    /// Forgets everything (after a reconnect: contacts may have changed meanwhile).
    pub fn clear(&mut self) {
        self.cache.clear();
    }
}

#[cfg(test)]
mod tests {
    use api::types::Trust;

    use super::*;

    fn contact(alias: &str, name: Option<&str>) -> Contact {
        Contact {
            alias: alias.into(),
            address: "chat1test".into(),
            handle: None,
            display_name: name.map(Into::into),
            trust: Trust::Unverified,
            added_at_ms: 0,
            blocked: false,
            request: false,
            invite_refused: None,
        }
    }

    #[test]
    fn the_alias_leads_and_a_different_display_name_follows() {
        assert_eq!(display_name("alice", None), "alice");
        assert_eq!(display_name("alice", Some("Alice")), "alice");
        assert_eq!(display_name("alice", Some(" ")), "alice");
        assert_eq!(display_name("mum", Some("Jane Doe")), "mum (Jane Doe)");
    }

    #[test]
    fn lookups_are_cached_and_events_update_the_cache() {
        let mut names = Names::new();
        let mut lookups = 0;
        for _ in 0..3 {
            let name = names.get("mum", None, |alias| {
                lookups += 1;
                Some(contact(alias, Some("Jane")))
            });
            assert_eq!(name, "mum (Jane)");
        }
        assert_eq!(lookups, 1);
        names.learn(&contact("mum", Some("Janet")));
        assert_eq!(names.get("mum", None, |_| None), "mum (Janet)");
        assert_eq!(names.get("x", Some("Xavier"), |_| None), "x (Xavier)");
        names.forget("mum");
        assert_eq!(names.get("mum", None, |_| None), "mum");
        names.learn(&contact("mum", Some("Janet")));
        names.clear();
        assert_eq!(names.get("mum", None, |_| None), "mum");
    }
}
