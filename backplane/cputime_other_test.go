//go:build !unix

package backplane_test

import "time"

// processCPU is not available here: it reports false.
func processCPU() (time.Duration, bool) { return 0, false }
