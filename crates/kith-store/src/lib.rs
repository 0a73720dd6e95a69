//! Kith's local storage: contacts, chat history, call history and settings,
//! in one SQLite database in the platform data directory.
//!
//! Writes are durable when a call returns: the database runs in WAL mode with
//! `synchronous = FULL`, so a message the app has acknowledged to the user
//! survives the process being killed (or the machine losing power) right
//! after. Everything is synchronous; the app calls it off its real-time paths.

mod calls;
mod contacts;
mod error;
mod messages;
mod migrations;
mod settings;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use calls::{CallDirection, CallRecord, NewCall};
pub use contacts::Contact;
pub use error::StoreError;
pub use messages::{MessageState, StoredMessage};

/// The file name inside the data directory.
pub const DATABASE_FILE: &str = "kith.sqlite3";

/// An open database. One per process; not shared between threads (wrap it
/// where the app needs that).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Where Kith keeps its data on this platform, e.g.
    /// `~/.local/share/kith` on Linux.
    pub fn default_dir() -> Option<PathBuf> {
        directories::ProjectDirs::from("org", "kith", "kith").map(|dirs| dirs.data_dir().into())
    }

    /// Opens (creating and migrating if needed) the database in `dir`.
    pub fn open_in(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::open(&dir.join(DATABASE_FILE))
    }

    /// Opens (creating and migrating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let opened = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(opened)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(opened)?;
        // WAL: readers never block the writer; FULL: a commit that returned is on disk.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(opened)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(opened)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(opened)?;
        migrations::run(&mut conn)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this database is at.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        migrations::version(&self.conn)
    }
}

/// Milliseconds since the Unix epoch, the time unit of every stored row.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn to_sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_sql_ms(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}
