//! The UI's TypeScript types, generated from these Rust types with ts-rs
//! into `ui/src/bindings/`. The test fails when a file there is stale;
//! `KITH_WRITE_BINDINGS=1 cargo test -p kith-desktop bindings` rewrites them.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ts_rs::{Config, TS};

fn generate(out: &Path) {
    // serde writes u64 as a JSON number; so does the page read it.
    let cfg = Config::new().with_large_int("number").with_out_dir(out);
    crate::view::UiEvent::<'static>::export_all(&cfg).unwrap();
    crate::settings::Settings::export_all(&cfg).unwrap();
    crate::commands::devices::Devices::export_all(&cfg).unwrap();
    crate::commands::devices::Switch::export_all(&cfg).unwrap();
    crate::frames::FrameEndpoint::export_all(&cfg).unwrap();
    kith_store::Contact::export_all(&cfg).unwrap();
    kith_store::StoredMessage::export_all(&cfg).unwrap();
    kith_store::CallRecord::export_all(&cfg).unwrap();
}

fn files(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "ts") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.insert(path.strip_prefix(dir).unwrap().to_path_buf(), text);
            }
        }
    }
    found
}

#[test]
fn typescript_bindings_are_current() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings");
    let fresh = std::env::temp_dir().join(format!("kith-bindings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    generate(&fresh);
    let generated = files(&fresh);
    assert!(
        generated.len() > 20,
        "only {} files generated",
        generated.len()
    );
    if std::env::var_os("KITH_WRITE_BINDINGS").is_some() {
        let _ = std::fs::remove_dir_all(&committed);
        std::fs::create_dir_all(&committed).unwrap();
        for (name, text) in &generated {
            std::fs::write(committed.join(name), text).unwrap();
        }
    }
    let on_disk = files(&committed);
    let _ = std::fs::remove_dir_all(&fresh);
    let stale: Vec<_> = generated
        .iter()
        .filter(|(name, text)| on_disk.get(*name) != Some(text))
        .map(|(name, _)| name.display().to_string())
        .chain(
            on_disk
                .keys()
                .filter(|name| !generated.contains_key(*name))
                .map(|name| format!("{} (no longer generated)", name.display())),
        )
        .collect();
    assert!(
        stale.is_empty(),
        "ui/src/bindings is stale: {stale:?}; run KITH_WRITE_BINDINGS=1 cargo test -p kith-desktop bindings"
    );
}
