use rusqlite::params;
use serde::Serialize;

use crate::{Store, StoreError, from_sql_ms, now_ms, to_sql_ms};

/// Where an outgoing message is; incoming ones are `Received`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Handed to the call, not yet acked by every peer.
    Sent,
    /// Every peer it went to acked it.
    Acked,
    Received,
}

impl MessageState {
    fn as_str(self) -> &'static str {
        match self {
            MessageState::Sent => "sent",
            MessageState::Acked => "acked",
            MessageState::Received => "received",
        }
    }

    fn parse(text: &str) -> MessageState {
        match text {
            "acked" => MessageState::Acked,
            "received" => MessageState::Received,
            _ => MessageState::Sent,
        }
    }
}

/// A chat message in a conversation (a contact's user id for 1:1 calls,
/// a room for group calls).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMessage {
    pub id: String,
    pub conversation: String,
    pub from: String,
    pub text: String,
    /// The sender's clock.
    pub sent_ms: u64,
    pub outgoing: bool,
    pub state: MessageState,
}

impl Store {
    /// Saves a message; saving the same (conversation, id, sender) again
    /// changes nothing, so a redelivered message is kept once.
    pub fn save_message(&self, message: &StoredMessage) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO messages
                   (id, conversation, sender, text, sent_ms, stored_ms, outgoing, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                message.id,
                message.conversation,
                message.from,
                message.text,
                to_sql_ms(message.sent_ms),
                to_sql_ms(now_ms()),
                message.outgoing,
                message.state.as_str(),
            ])?;
        Ok(())
    }

    /// Marks our message `id` acked; returns whether one was.
    pub fn mark_acked(&self, id: &str) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE messages SET state = 'acked' WHERE id = ?1 AND outgoing = 1",
            params![id],
        )?;
        Ok(changed > 0)
    }

    /// The newest `limit` messages of a conversation, oldest first.
    pub fn history(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, conversation, sender, text, sent_ms, outgoing, state FROM (
               SELECT *, rowid AS seq FROM messages WHERE conversation = ?1
               ORDER BY stored_ms DESC, seq DESC LIMIT ?2
             ) ORDER BY stored_ms, seq",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![conversation, limit], |row| {
            Ok(StoredMessage {
                id: row.get(0)?,
                conversation: row.get(1)?,
                from: row.get(2)?,
                text: row.get(3)?,
                sent_ms: from_sql_ms(row.get(4)?),
                outgoing: row.get(5)?,
                state: MessageState::parse(&row.get::<_, String>(6)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
