//! End-to-end harness (grown by later issues).
