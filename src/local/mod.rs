//! Processes of a local cluster on one machine: a private etcd for tests, benchmarks,
//! the demo and `pacer up`, a link to it that can be cut (fault injection), and the
//! observer of the witness agent's log.

pub mod child;
pub mod etcd;
pub mod link;
pub mod logs;
pub mod witness;
