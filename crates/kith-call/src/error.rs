//! The call's errors live in kith-call-core, where the rules that raise
//! most of them are; re-exported here so users of the engine need one crate.

pub use kith_call_core::error::{CallError, DeviceKind, DeviceProblem};
