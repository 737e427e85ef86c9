package hybrid_test

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-cache/strata/hybrid"
	"github.com/strata-cache/strata/internal/redistest"
)

// A load that runs detached from its caller (on a background worker, with
// a distributed tier) carries the caller's profiler labels (runtime/pprof.Do),
// as a goroutine the caller started would: in a labelled CPU profile the
// factory's work is the request's. So do the loads of a batch.
func TestLoadKeepsProfilerLabels(t *testing.T) {
	srv := redistest.Start(t)
	c := node(t, srv.Client(t), hybrid.EntryOptions{Duration: time.Minute, FactoryHardTimeout: time.Minute})
	// labelsOf returns the labels of the goroutine running the factory
	// (the goroutine profile's "# labels:" line of its stack).
	labelsOf := func(marker string) string {
		var buf bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
			t.Fatal(err)
		}
		for stack := range strings.SplitSeq(buf.String(), "\n\n") {
			if strings.Contains(stack, marker) {
				for line := range strings.SplitSeq(stack, "\n") {
					if strings.HasPrefix(line, "# labels:") {
						return line
					}
				}
				return "(none)"
			}
		}
		return "(no such goroutine)"
	}
	check := func(name string, call func(ctx context.Context, factoryStarted chan<- struct{}, release <-chan struct{})) {
		t.Helper()
		// A load under other labels first, so that a worker exists, idle,
		// for the load under test to reuse (one it started would inherit
		// its labels anyway).
		pprof.Do(context.Background(), pprof.Labels("request", "other"), func(ctx context.Context) {
			if _, err := hybrid.GetOrSet(ctx, c, "warm-"+name, func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
				return "w", nil
			}); err != nil {
				t.Fatal(err)
			}
		})
		waitIdleWorker(t)
		started, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go pprof.Do(context.Background(), pprof.Labels("request", name), func(ctx context.Context) {
			defer close(done)
			call(ctx, started, release)
		})
		<-started
		got := labelsOf("blockInFactory")
		close(release)
		<-done
		if !strings.Contains(got, `"request":"`+name+`"`) {
			t.Errorf("%s: the factory's goroutine has labels %s; want the caller's request=%s", name, got, name)
		}
	}
	check("single", func(ctx context.Context, started chan<- struct{}, release <-chan struct{}) {
		_, err := hybrid.GetOrSet(ctx, c, "k", func(context.Context, *hybrid.FactoryContext[string]) (string, error) {
			return blockInFactory(started, release), nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	check("batch", func(ctx context.Context, started chan<- struct{}, release <-chan struct{}) {
		_, err := hybrid.GetOrSetMany(ctx, c, []string{"b1", "b2"}, func(_ context.Context, bc *hybrid.BatchContext[string]) (map[string]string, error) {
			v := blockInFactory(started, release)
			return map[string]string{"b1": v, "b2": v}, nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}

// blockInFactory says it runs, then waits for release: its name marks the
// factory's stack in a goroutine profile.
//
//go:noinline
func blockInFactory(started chan<- struct{}, release <-chan struct{}) string {
	close(started)
	<-release
	return "v"
}

// blockingL2 is a distributed tier whose Set waits for release (after the
// first pass writes), so that a test can look at the goroutine that writes.
type blockingL2 struct {
	pass    atomic.Int32
	started chan struct{}
	release chan struct{}
}

func (s *blockingL2) Get(context.Context, string) ([]byte, error) { return nil, nil }
func (s *blockingL2) Delete(context.Context, string) error        { return nil }

//go:noinline
func (s *blockingL2) Set(context.Context, string, []byte, time.Duration) (bool, error) {
	if s.pass.Add(-1) >= 0 {
		return true, nil
	}
	close(s.started)
	<-s.release
	return true, nil
}

// A background write (BackgroundL2Operations) carries the profiler labels
// of the Set that made it.
func TestBackgroundWriteKeepsProfilerLabels(t *testing.T) {
	l2 := &blockingL2{started: make(chan struct{}), release: make(chan struct{})}
	l2.pass.Store(1)
	c := newCache(t, hybrid.Options{L2: l2, Entry: hybrid.EntryOptions{Duration: time.Minute, BackgroundL2Operations: true}})
	// A write under other labels first, so that a worker exists, idle, for
	// the write under test to reuse (one it started would inherit its
	// labels anyway).
	pprof.Do(context.Background(), pprof.Labels("request", "other"), func(ctx context.Context) {
		if err := hybrid.Set(ctx, c, "warm", "v"); err != nil {
			t.Fatal(err)
		}
	})
	waitIdleWorker(t)
	pprof.Do(context.Background(), pprof.Labels("request", "writer"), func(ctx context.Context) {
		if err := hybrid.Set(ctx, c, "k", "v"); err != nil {
			t.Fatal(err)
		}
	})
	<-l2.started
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	got := "(no such goroutine)"
	for stack := range strings.SplitSeq(buf.String(), "\n\n") {
		if strings.Contains(stack, "blockingL2") {
			got = "(none)"
			for line := range strings.SplitSeq(stack, "\n") {
				if strings.HasPrefix(line, "# labels:") {
					got = line
				}
			}
		}
	}
	close(l2.release)
	if !strings.Contains(got, `"request":"writer"`) {
		t.Errorf("the background write's goroutine has labels %s; want the Set's request=writer", got)
	}
}

// waitIdleWorker waits until a background worker of a cache waits for work
// (runtime frames are left out of the profile: an idle worker's stack is
// backgroundWorker's select alone).
func waitIdleWorker(t *testing.T) {
	t.Helper()
	redistest.Eventually(t, "a background worker to be idle", func() bool {
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		for stack := range strings.SplitSeq(buf.String(), "\n\n") {
			if strings.Contains(stack, "backgroundWorker") && !strings.Contains(stack, "workerJob") &&
				!strings.Contains(stack, "writeL2") && !strings.Contains(stack, "blockingL2") {
				return true
			}
		}
		return false
	})
}
