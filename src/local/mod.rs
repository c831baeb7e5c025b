//! Processes of a local cluster on one machine: a private etcd for tests, benchmarks,
//! the demo and `pacer up`, and a link to it that can be cut (fault injection).

pub mod child;
pub mod etcd;
pub mod link;
