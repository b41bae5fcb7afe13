//! What the `metrics` feature records, on async-std (its own binary: the recorder is global).

redlock_tests::metrics_suite!(redlock_tests::conformance::AsyncClient<redlock_async_std::AsyncStd>);
