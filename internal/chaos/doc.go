// Package chaos holds Errand's chaos suite (its tests): real errand
// processes against a private Redis, a fresh database (or a private
// PostgreSQL) and fake providers, while faults are injected — SIGKILL of a
// worker mid-job (send, import, export, purge), FLUSHALL and restarts of Redis, a PostgreSQL restart,
// Redis slower than asynq's lease, provider timeouts after acceptance, a
// Sentinel failover (master, replica and sentinel on loopback), and a
// three-node Redis Cluster, also with one node restarting empty.
// Each scenario checks that nothing was lost, nothing was done twice, and
// every row ended in a final state with a reason, and the run prints a
// table of faults and outcomes (also written to artifacts/chaos.txt).
//
// `make test` runs it at small scale; `make chaos` with more work per
// scenario (ERRAND_CHAOS_SCALE).
package chaos
