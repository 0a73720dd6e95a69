use std::path::PathBuf;

/// What went wrong with the local database, and what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the data directory {path}: {source} (check its permissions and free space)"
    )]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the database was written by a newer Kith (schema {found}, this one knows {known}); update Kith"
    )]
    NewerSchema { found: u32, known: u32 },
    #[error("{user} is already a contact")]
    ContactExists { user: String },
    #[error("{user} is not a contact")]
    NoSuchContact { user: String },
    #[error("no call record {id}")]
    NoSuchCall { id: i64 },
    #[error("the stored setting {key} is unreadable: {source}")]
    Setting {
        key: String,
        source: serde_json::Error,
    },
    #[error("database error: {0} (is the disk full?)")]
    Sqlite(#[from] rusqlite::Error),
}
