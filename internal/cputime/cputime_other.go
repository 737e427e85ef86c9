//go:build !unix

// Package cputime reads the CPU time of the running process, for
// benchmarks that report it per operation beside the wall time (on a
// loaded or shared machine the CPU varies far less).
package cputime

import "time"

// Process is not measured on this system: it reports false.
func Process() (time.Duration, bool) { return 0, false }
