//! Schema migrations, applied in order inside one transaction each, with
//! SQLite's `user_version` as the schema version. (A list of statements is
//! all the app needs; a migration crate would add a dependency for a loop.)

use rusqlite::Connection;

use crate::StoreError;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: contacts, chat messages, calls, settings.
    "CREATE TABLE contacts (
        user     TEXT PRIMARY KEY NOT NULL,
        name     TEXT NOT NULL,
        added_ms INTEGER NOT NULL
    );
    CREATE TABLE messages (
        id           TEXT NOT NULL,
        conversation TEXT NOT NULL,
        sender       TEXT NOT NULL,
        text         TEXT NOT NULL,
        sent_ms      INTEGER NOT NULL,
        stored_ms    INTEGER NOT NULL,
        outgoing     INTEGER NOT NULL,
        state        TEXT NOT NULL,
        PRIMARY KEY (conversation, id, sender)
    );
    CREATE INDEX messages_by_time ON messages (conversation, stored_ms);
    CREATE TABLE calls (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        room       TEXT NOT NULL,
        peers      TEXT NOT NULL,
        direction  TEXT NOT NULL,
        media      TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        ended_ms   INTEGER,
        outcome    TEXT
    );
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    );",
];

pub(crate) fn version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

pub(crate) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as u32;
    let found = version(conn)?;
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}
