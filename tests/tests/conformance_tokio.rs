//! The conformance suite against live redis-server nodes, on tokio.

redlock_tests::conformance_suite!(redlock_tests::conformance::AsyncClient<redlock_tokio::Tokio>);
redlock_tests::transport_suite!(redlock_tests::conformance::AsyncClient<redlock_tokio::Tokio>);
redlock_tests::node_errors_suite!(redlock_tests::conformance::AsyncClient<redlock_tokio::Tokio>);
redlock_tests::cluster_suite!(redlock_tests::conformance::AsyncClient<redlock_tokio::Tokio>);
