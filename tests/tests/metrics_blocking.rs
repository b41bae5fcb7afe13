//! What the `metrics` feature records, on the blocking adapter (its own binary: the recorder
//! is global).

redlock_tests::metrics_suite!(redlock_tests::conformance::BlockingClient);
