//! Kith local storage: contacts, chat history, settings. Filled in by its own issue.
