use rusqlite::params;
use serde::Serialize;

use crate::{Store, StoreError, from_sql_ms, now_ms, to_sql_ms};

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Outgoing,
    Incoming,
}

impl CallDirection {
    fn as_str(self) -> &'static str {
        match self {
            CallDirection::Outgoing => "outgoing",
            CallDirection::Incoming => "incoming",
        }
    }
}

/// A call as it starts: who, which way, audio or video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall<'a> {
    pub room: &'a str,
    pub peers: &'a [String],
    pub direction: CallDirection,
    pub media: &'a str,
}

/// A call in the history; `outcome` is the app's word for how it ended
/// (`"ended"`, `"missed"`, `"declined"`, …), `None` while it runs.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    pub id: i64,
    pub room: String,
    pub peers: Vec<String>,
    pub direction: CallDirection,
    pub media: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub outcome: Option<String>,
}

impl Store {
    /// Records a call that starts now; returns its id for [`Store::end_call`].
    pub fn start_call(&self, call: &NewCall<'_>) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO calls (room, peers, direction, media, started_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                call.room,
                call.peers.join(","),
                call.direction.as_str(),
                call.media,
                to_sql_ms(now_ms())
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a call that never started, such as a missed one.
    pub fn log_call(&self, call: &NewCall<'_>, outcome: &str) -> Result<i64, StoreError> {
        let id = self.start_call(call)?;
        self.end_call(id, outcome)?;
        Ok(id)
    }

    pub fn end_call(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE calls SET ended_ms = ?2, outcome = ?3 WHERE id = ?1",
            params![id, to_sql_ms(now_ms()), outcome],
        )?;
        if changed == 0 {
            return Err(StoreError::NoSuchCall { id });
        }
        Ok(())
    }

    /// The newest `limit` calls, newest first.
    pub fn calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, room, peers, direction, media, started_ms, ended_ms, outcome
             FROM calls ORDER BY started_ms DESC, id DESC LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![limit], |row| {
            let peers: String = row.get(2)?;
            let direction: String = row.get(3)?;
            Ok(CallRecord {
                id: row.get(0)?,
                room: row.get(1)?,
                peers: peers
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
                direction: if direction == "incoming" {
                    CallDirection::Incoming
                } else {
                    CallDirection::Outgoing
                },
                media: row.get(4)?,
                started_ms: from_sql_ms(row.get(5)?),
                ended_ms: row.get::<_, Option<i64>>(6)?.map(from_sql_ms),
                outcome: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
