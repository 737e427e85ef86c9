package backplane_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/strata-cache/strata/backplane"
)

// printer is a Handler that hands what it receives to a channel, so that
// the example can wait for it.
type printer struct {
	self string
	got  chan string
}

func (p printer) HandleMessage(m backplane.Message) {
	if m.Source == p.self {
		return // a backplane delivers the sender's own messages too
	}
	p.got <- fmt.Sprintf("%s: %s %s/%s from %s", p.self, m.Kind, m.Cache, m.Key, m.Source)
}

func (p printer) HandleGap() { p.got <- p.self + ": messages may have been lost" }

// Two instances of a cache exchange change notifications over an in-process
// hub. backplane.NewRedis does the same over Redis pub/sub between
// processes; the engine (hybrid.Options.Backplane) is the usual subscriber.
func ExampleNewMemoryHub() {
	hub := backplane.NewMemoryHub()
	channel := backplane.ChannelName("", "users:") // "strata:{users:}:bp", as a provider names it

	a, b := hub.Backplane(channel), hub.Backplane(channel)
	defer a.Close()
	defer b.Close()
	got := make(chan string, 4)
	if err := b.Subscribe(printer{self: "b", got: got}); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	m := backplane.Message{Kind: backplane.KindRemove, Cache: "users", Key: "user:42", Source: "a", Timestamp: time.Now().UnixNano()}
	if err := a.Publish(ctx, m); err != nil {
		log.Fatal(err)
	}
	select {
	case s := <-got:
		fmt.Println(s)
	case <-time.After(5 * time.Second):
		log.Fatal("no message")
	}

	// A message of no known kind is refused, and nothing is sent.
	err := a.Publish(ctx, backplane.Message{Cache: "users", Key: "user:42", Source: "a"})
	fmt.Println(errors.Is(err, backplane.ErrInvalidMessage))
	// Output:
	// b: remove users/user:42 from a
	// true
}
