package backplane

import (
	"sync/atomic"
)

// inbox is the bounded queue between a transport's receiver and the handler, with its
// dispatcher. push never blocks: a full queue drops the message and flags a gap. Gaps
// are coalesced: however many are flagged before the dispatcher runs, the handler gets
// one HandleGap.
type inbox struct {
	queue chan Message
	wake  chan struct{} // capacity 1: "a gap is pending"
	stop  chan struct{} // closed to stop the dispatcher
	gap   atomic.Bool

	received atomic.Uint64
	dropped  atomic.Uint64
	corrupt  atomic.Uint64
	gaps     atomic.Uint64
}

func newInbox(size int) *inbox {
	return &inbox{
		queue: make(chan Message, size),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
	}
}

// push queues m for the handler. It reports false if the queue was full (m dropped and
// a gap flagged); the caller may log the first drop of an episode (see flagGap's result).
func (in *inbox) push(m Message) (ok, newGap bool) {
	select {
	case in.queue <- m:
		return true, false
	default:
		in.dropped.Add(1)
		return false, in.flagGap()
	}
}

// flagGap makes the dispatcher call HandleGap. It reports whether no gap was pending.
func (in *inbox) flagGap() bool {
	if in.gap.Swap(true) {
		return false
	}
	select {
	case in.wake <- struct{}{}:
	default:
	}
	return true
}

// run calls h until stop is closed.
func (in *inbox) run(h Handler) {
	for {
		select {
		case <-in.stop:
			return
		default:
		}
		if in.gap.Swap(false) {
			in.gaps.Add(1)
			h.HandleGap()
			continue
		}
		select {
		case <-in.stop:
			return
		case m := <-in.queue:
			h.HandleMessage(m)
		case <-in.wake:
		}
	}
}
