//! Carries the engine's events to the view, the store and the webview.

use kith_call::CallEvents;
use kith_store::{CallDirection, MessageState, NewCall, StoredMessage};
use tauri::{AppHandle, Emitter as _, Manager as _};
use tracing::Instrument as _;
use tracing::{info_span, warn};

use crate::ringtone::RingTone;
use crate::rules::{self, Effect};
use crate::state::{AppState, emit_view};
use crate::view::UiEvent;

pub fn spawn(app: AppHandle, mut events: CallEvents) {
    let task = async move {
        let mut ring = RingTone::default();
        while let Some(event) = events.recv().await {
            let state = app.state::<AppState>();
            let effects = {
                let mut view = state.view();
                let (changed, effects) = rules::apply(&mut view, &event);
                if changed {
                    emit_view(&app, &mut view);
                }
                effects
            };
            if let Err(error) = app.emit("kith", UiEvent::Call { event: &event }) {
                warn!(%error, "cannot send an event to the UI");
            }
            if let kith_call::CallEvent::Error { error } = &event {
                let message = error.to_string();
                if let Err(error) = app.emit("kith", UiEvent::Problem { message }) {
                    warn!(%error, "cannot send a problem to the UI");
                }
            }
            for effect in effects {
                carry_out(&app, &state, &mut ring, effect).await;
            }
        }
    };
    tauri::async_runtime::spawn(task.instrument(info_span!("forward")));
}

pub async fn carry_out(app: &AppHandle, state: &AppState, ring: &mut RingTone, effect: Effect) {
    let stored = match effect {
        Effect::SaveMessage {
            outgoing,
            conversation,
            id,
            from,
            text,
            sent_ms,
        } => {
            let message = StoredMessage {
                id,
                conversation,
                from,
                text,
                sent_ms,
                outgoing,
                state: if outgoing {
                    MessageState::Sent
                } else {
                    MessageState::Received
                },
            };
            state.store().save_message(&message).map(drop)
        }
        Effect::MarkAcked { id } => state.store().mark_acked(&id).map(drop),
        Effect::RecordStart {
            room,
            peers,
            incoming,
            media,
        } => {
            let record = state.store().start_call(&NewCall {
                room: &room,
                peers: &peers,
                direction: direction(incoming),
                media: media_word(media),
            });
            record.map(|id| {
                let mut view = state.view();
                if let Some(call) = view.call.as_mut().filter(|c| c.room == room) {
                    call.record = Some(id);
                }
            })
        }
        Effect::RecordEnd { record, outcome } => state.store().end_call(record, &outcome),
        Effect::RecordNotStarted {
            room,
            peer,
            incoming,
            media,
            outcome,
        } => state
            .store()
            .log_call(
                &NewCall {
                    room: &room,
                    peers: &[peer],
                    direction: direction(incoming),
                    media: media_word(media),
                },
                &outcome,
            )
            .map(drop),
        Effect::Leave { room } => {
            if let Err(error) = crate::commands::calls::leave_room(app, state, &room).await {
                warn!(%error, room, "cannot leave the room");
            }
            Ok(())
        }
        Effect::CameraOff => {
            if let Ok(call) = state.call()
                && let Err(error) = call.set_camera_enabled(false).await
            {
                warn!(%error, "cannot close the camera");
            }
            Ok(())
        }
        Effect::RingTone(on) => {
            ring.set(on);
            Ok(())
        }
        Effect::Notify { title, body } => {
            crate::notify::when_unfocused(app, &title, &body);
            Ok(())
        }
    };
    if let Err(error) = stored {
        warn!(%error, "cannot write to the local database");
        state.update_view(app, |view| {
            view.warnings.push(format!("history not saved: {error}"));
            view.warnings.truncate(MAX_WARNINGS);
        });
    }
}

const MAX_WARNINGS: usize = 8;

fn direction(incoming: bool) -> CallDirection {
    if incoming {
        CallDirection::Incoming
    } else {
        CallDirection::Outgoing
    }
}

fn media_word(media: kith_proto::MediaKind) -> &'static str {
    match media {
        kith_proto::MediaKind::Audio => "audio",
        kith_proto::MediaKind::Video => "video",
    }
}
