//! The commands the UI may call, by domain; each a few lines into
//! kith-call, kith-store and the view. `COMMANDS` (list.rs) is what the build manifest
//! declares, so the capability file really gates them.

pub mod calls;
pub mod chat;
pub mod contacts;
pub mod devices;
pub mod profile;
pub mod settings;

#[cfg(test)]
include!("list.rs");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The capability file allows every declared command and nothing else
    /// of the app's (a command the UI does not use should not be declared).
    #[test]
    fn the_capability_allows_exactly_the_declared_commands() {
        let text = include_str!("../../capabilities/main.json");
        let capability: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut allowed: Vec<String> = capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .filter_map(|p| p.strip_prefix("allow-"))
            .map(String::from)
            .collect();
        allowed.sort();
        let mut declared: Vec<String> = super::COMMANDS
            .iter()
            .map(|c| c.replace('_', "-"))
            .collect();
        declared.sort();
        assert_eq!(allowed, declared);
        let others: Vec<&str> = capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .filter(|p| !p.starts_with("allow-"))
            .collect();
        assert_eq!(
            others,
            ["core:event:allow-listen", "core:event:allow-unlisten"]
        );
    }

    /// Every command the UI calls is declared (and so allowed).
    #[test]
    fn the_ui_calls_only_declared_commands() {
        let ipc = include_str!("../../../ui/src/ipc.ts");
        let called: Vec<&str> = ipc
            .split("invoke<")
            .skip(1)
            .filter_map(|rest| rest.split('"').nth(1))
            .collect();
        assert!(called.len() >= 10, "found {called:?}");
        for command in &called {
            assert!(
                super::COMMANDS.contains(command),
                "{command} is not declared"
            );
        }
        for command in super::COMMANDS {
            assert!(
                called.contains(command),
                "{command} is declared but the UI never calls it"
            );
        }
    }
}
