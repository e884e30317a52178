//go:build !linux

package pgtest_test

// childEnv is not used outside Linux, where there is no parent-death
// signal to test.
const childEnv = "AEGIS_PGTEST_CHILD"

func child(string) int { return 1 }
