package backplane_test

import (
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
)

const waitTimeout = 10 * time.Second

// recorder is a Handler that forwards what it receives to channels.
type recorder struct {
	msgs chan backplane.Message
	gaps chan struct{}
	// gate, when not nil, makes HandleMessage wait until it is closed.
	gate chan struct{}
}

func newRecorder() *recorder {
	return &recorder{msgs: make(chan backplane.Message, 1<<16), gaps: make(chan struct{}, 1<<10)}
}

func (r *recorder) HandleMessage(m backplane.Message) {
	if r.gate != nil {
		<-r.gate
	}
	r.msgs <- m
}

func (r *recorder) HandleGap() { r.gaps <- struct{}{} }

func (r *recorder) wantMessage(t testing.TB, want backplane.Message) {
	t.Helper()
	select {
	case got := <-r.msgs:
		if got != want {
			t.Fatalf("received %+v, want %+v", got, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no message within %s, want %+v", waitTimeout, want)
	}
}

func (r *recorder) wantGap(t testing.TB) {
	t.Helper()
	select {
	case <-r.gaps:
	case <-time.After(waitTimeout):
		t.Fatalf("no HandleGap within %s", waitTimeout)
	}
}

// wantNoGap checks that no HandleGap call is pending.
func (r *recorder) wantNoGap(t testing.TB) {
	t.Helper()
	select {
	case <-r.gaps:
		t.Fatal("unexpected HandleGap")
	default:
	}
}

func msg(kind backplane.Kind, key string) backplane.Message {
	return backplane.Message{Kind: kind, Cache: "users", Key: key, Source: "test", Timestamp: time.Now().UnixNano()}
}
