//! Video sources, sinks and picture operations.

pub mod latency_strip;
pub mod scale;
pub mod synthetic;
pub mod y4m_file;
