//! What the `metrics` feature records, on smol (its own binary: the recorder is global).

redlock_tests::metrics_suite!(redlock_tests::conformance::AsyncClient<redlock_smol::Smol>);
