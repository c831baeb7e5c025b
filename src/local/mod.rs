//! Processes of a local cluster on one machine: a private etcd for tests, benchmarks,
//! the demo and `pacer up`.

pub mod etcd;
