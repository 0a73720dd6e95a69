//! Capture, audio processing and codecs for Kith; knows no network. Filled in by its own issue.
