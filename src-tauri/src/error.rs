//! Errors as the UI receives them: a stable `kind` to branch on and a
//! `message` written for the person using the app.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Call(#[from] kith_call::CallError),
    #[error(transparent)]
    Store(#[from] kith_store::StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("set up your profile first")]
    NoProfile,
    #[error("you are not in a call")]
    NotInCall,
    #[error("cannot start the bundled signaling server: {0}")]
    Server(String),
}

/// A user id, name or room the user typed that the protocol does not allow.
impl From<kith_proto::FieldError> for AppError {
    fn from(error: kith_proto::FieldError) -> Self {
        AppError::Invalid(error.to_string())
    }
}

impl AppError {
    fn kind(&self) -> &'static str {
        match self {
            AppError::Call(_) => "call",
            AppError::Store(_) => "store",
            AppError::Invalid(_) => "invalid",
            AppError::NoProfile => "no_profile",
            AppError::NotInCall => "not_in_call",
            AppError::Server(_) => "server",
        }
    }
}

impl Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut out = serializer.serialize_struct("AppError", 3)?;
        out.serialize_field("kind", self.kind())?;
        out.serialize_field("message", &self.to_string())?;
        match self {
            AppError::Call(error) => out.serialize_field("detail", error)?,
            _ => out.serialize_field("detail", &None::<()>)?,
        }
        out.end()
    }
}

pub type AppResult<T> = Result<T, AppError>;
