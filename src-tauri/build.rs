// The app's own commands, declared so that `capabilities/` gates them (an
// undeclared command would be allowed by default). The list is shared
// with the app, whose test checks it against the handler.
include!("src/commands/list.rs");

fn main() {
    // `generate_context!` embeds the built UI; a checkout that has not built
    // it yet gets a page saying how, instead of a compile error.
    let dist = std::path::Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        let _ = std::fs::create_dir_all(dist);
        let _ = std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>Kith</title><p>The UI is not built: run <code>cargo xtask run</code>.</p>",
        );
    }
    println!("cargo:rerun-if-changed=../ui/dist");
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri build step failed: {error:#}");
    }
}
