//! The conformance suite against live redis-server nodes, on async_std.

redlock_tests::conformance_suite!(
    redlock_tests::conformance::AsyncClient<redlock_async_std::AsyncStd>
);
redlock_tests::transport_suite!(
    redlock_tests::conformance::AsyncClient<redlock_async_std::AsyncStd>
);
redlock_tests::node_errors_suite!(
    redlock_tests::conformance::AsyncClient<redlock_async_std::AsyncStd>
);
redlock_tests::cluster_suite!(redlock_tests::conformance::AsyncClient<redlock_async_std::AsyncStd>);
