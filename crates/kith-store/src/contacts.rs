use rusqlite::{OptionalExtension as _, params};
use serde::Serialize;

use crate::{Store, StoreError, from_sql_ms, now_ms, to_sql_ms};

/// Someone in the address book.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub user: String,
    pub name: String,
    pub added_ms: u64,
}

impl Store {
    pub fn add_contact(&self, user: &str, name: &str) -> Result<Contact, StoreError> {
        let added_ms = now_ms();
        let inserted = self.conn.execute(
            "INSERT INTO contacts (user, name, added_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (user) DO NOTHING",
            params![user, name, to_sql_ms(added_ms)],
        )?;
        if inserted == 0 {
            return Err(StoreError::ContactExists { user: user.into() });
        }
        Ok(Contact {
            user: user.into(),
            name: name.into(),
            added_ms,
        })
    }

    pub fn rename_contact(&self, user: &str, name: &str) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE contacts SET name = ?2 WHERE user = ?1",
            params![user, name],
        )?;
        if changed == 0 {
            return Err(StoreError::NoSuchContact { user: user.into() });
        }
        Ok(())
    }

    /// Removes the contact; their chat history stays.
    pub fn remove_contact(&self, user: &str) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute("DELETE FROM contacts WHERE user = ?1", params![user])?;
        if changed == 0 {
            return Err(StoreError::NoSuchContact { user: user.into() });
        }
        Ok(())
    }

    pub fn contact(&self, user: &str) -> Result<Option<Contact>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT user, name, added_ms FROM contacts WHERE user = ?1",
                params![user],
                row_to_contact,
            )
            .optional()?)
    }

    /// Every contact, by name.
    pub fn contacts(&self) -> Result<Vec<Contact>, StoreError> {
        self.search_contacts("")
    }

    /// Contacts whose id or name contains `query`, ignoring ASCII case.
    pub fn search_contacts(&self, query: &str) -> Result<Vec<Contact>, StoreError> {
        let pattern = format!("%{}%", escape_like(query));
        let mut statement = self.conn.prepare_cached(
            "SELECT user, name, added_ms FROM contacts
             WHERE user LIKE ?1 ESCAPE '\\' OR name LIKE ?1 ESCAPE '\\'
             ORDER BY name COLLATE NOCASE, user",
        )?;
        let rows = statement.query_map(params![pattern], row_to_contact)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row_to_contact(row: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        user: row.get(0)?,
        name: row.get(1)?,
        added_ms: from_sql_ms(row.get(2)?),
    })
}

/// `%` and `_` in a search are literal characters, not wildcards.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
