package hybrid_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-cache/strata/hybrid"
)

// TestSlidingExpiration: an entry read within its window stays fresh for
// another window, up to Duration after it was written; one not read
// expires after one window.
func TestSlidingExpiration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, hybrid.Options{Entry: hybrid.EntryOptions{Duration: 10 * time.Minute, SlidingDuration: time.Minute}})
		ctx := context.Background()
		hybrid.Set(ctx, c, "read", "v")
		hybrid.Set(ctx, c, "idle", "v")
		for i := range 12 { // read every 40s for 8 minutes: fresh throughout
			time.Sleep(40 * time.Second)
			if _, ok := mustGet[string](t, c, "read"); !ok {
				t.Fatalf("read every 40s, expired after %v", time.Duration(i+1)*40*time.Second)
			}
		}
		if _, ok := mustGet[string](t, c, "idle"); ok {
			t.Fatal("an entry never read stayed fresh past its window")
		}
		for range 4 { // up to 10m40s: past the absolute limit of 10 minutes
			time.Sleep(40 * time.Second)
			mustGet[string](t, c, "read")
		}
		if _, ok := mustGet[string](t, c, "read"); ok {
			t.Fatal("sliding expiration went past Duration, the absolute limit")
		}
	})
}
