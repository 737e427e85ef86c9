package hybrid

import (
	"sync"
	"testing"
	"time"

	"github.com/strata-cache/strata/backplane"
)

type bpvRecord struct {
	Name string
	N    int
}

// An entry received in a backplane message decodes once for every reader
// of its type, keeps its type name when written again, and is a mismatch
// for another type.
func TestMessageEntry(t *testing.T) {
	c, err := New(Options{Name: "app", Entry: EntryOptions{Duration: time.Minute, Tags: []string{"t"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := newEntry("k", bpvRecord{"a", 1}, stamp(), nowNano(), &c.entry, meta{})
	enc, err := c.encode(src)
	if err != nil {
		t.Fatal(err)
	}
	m := backplane.Message{Kind: backplane.KindSet, Key: "k", Timestamp: src.ts, Value: string(enc)}
	e := c.fromMessage(m.Key, m.Timestamp, m.Value)
	if e == nil {
		t.Fatal("no entry from the message")
	}
	if e.typ() != typeName[bpvRecord]() || len(e.tags()) != 1 || e.freshUntil != src.freshUntil {
		t.Fatalf("entry: type %q tags %v fresh %d; want %q [t] %d", e.typ(), e.tags(), e.freshUntil, typeName[bpvRecord](), src.freshUntil)
	}
	var wg sync.WaitGroup
	got := make([]*bpvRecord, 8)
	for i := range got {
		wg.Go(func() {
			v, ok := valueOf[bpvRecord](e)
			if !ok || v != (bpvRecord{"a", 1}) {
				t.Errorf("reader %d: %+v, %v", i, v, ok)
			}
			p, _ := e.value.(*lazyValue).decoded.Load().(*bpvRecord)
			got[i] = p
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatal("readers decoded copies of their own: the value is decoded once")
		}
	}
	if _, ok := valueOf[string](e); ok {
		t.Fatal("the entry read as another type")
	}
	// Written again (a sliding extension, a throttle): the same bytes and type.
	re, err := c.encode(e)
	if err != nil {
		t.Fatal(err)
	}
	back := decodeL2[bpvRecord](c, "k", re, &c.entry, stamp())
	if v, ok := valueOf[bpvRecord](back); back == nil || !ok || v != (bpvRecord{"a", 1}) {
		t.Fatalf("re-encoded entry decodes to %+v, %v", v, ok)
	}
	// A value whose timestamp is not the message's, or corrupt: none.
	if c.fromMessage("k", src.ts+1, m.Value) != nil || c.fromMessage("k", src.ts, m.Value[:len(m.Value)-1]) != nil {
		t.Fatal("an unusable message value gave an entry")
	}
}
