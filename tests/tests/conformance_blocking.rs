//! The conformance suite against live redis-server nodes, on the blocking adapter.

redlock_tests::conformance_suite!(redlock_tests::conformance::BlockingClient);
redlock_tests::transport_suite!(redlock_tests::conformance::BlockingClient);
redlock_tests::node_errors_suite!(redlock_tests::conformance::BlockingClient);
redlock_tests::cluster_suite!(redlock_tests::conformance::BlockingClient);
