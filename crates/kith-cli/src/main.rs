//! The headless Kith client. The call engine it drives arrives with its own
//! issue; until then it says so instead of pretending to call.

fn main() -> std::process::ExitCode {
    eprintln!("kith-cli: calls are not implemented yet; the call engine issue brings them");
    std::process::ExitCode::from(2)
}
