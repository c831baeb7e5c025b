//! Pacer: a cluster resource manager with Pacemaker's semantics, designed
//! Kubernetes-style. See ARCHITECTURE.md for the map.

pub mod agent;
pub mod alerts;
pub mod api;
pub mod cib;
pub mod cli;
pub mod console;
pub mod daemon;
pub mod exec;
pub mod local;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod pki;
pub mod runtime;
pub mod scheduler;
pub mod state;
pub mod store;
