package hybrid

import (
	"testing"
	"time"
	"unsafe"

	"github.com/strata-cache/strata/serializer"
)

type entryTestStruct struct{ A int }

type entryTestIface interface{ M() }

// typOf checks that an entry holding a T written now reports typeName[T]
// as its type, as the stored field it replaces did.
func typOf[T any](t *testing.T, v T) {
	t.Helper()
	o := &EntryOptions{Duration: time.Minute}
	now := nowNano()
	if got, want := newEntry("k", v, now, now, o, meta{}).typ(), typeName[T](); got != want {
		t.Errorf("typ() = %q, want %q", got, want)
	}
	if got, want := newNotFound[T]("k", now, now, o).typ(), typeName[T](); got != want {
		t.Errorf("not found: typ() = %q, want %q", got, want)
	}
	e := newEntry("k", v, now, now, o, meta{})
	ac := &EntryOptions{AutoClone: true}
	if err := makeAutoClone(e, v, ac, serializer.Msgpack{}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.typ(), typeName[T](); got != want {
		t.Errorf("auto-clone: typ() = %q, want %q", got, want)
	}
}

func TestEntryTypeName(t *testing.T) {
	typOf(t, 1)
	typOf(t, "s")
	typOf(t, []string{"a"})
	typOf(t, map[string]int{})
	typOf(t, entryTestStruct{})
	typOf(t, &entryTestStruct{})
	typOf[any](t, 3)
	typOf[entryTestIface](t, nil)
	if got := newTombstone("k", 1).typ(); got != "" {
		t.Errorf("tombstone: typ() = %q", got)
	}
}

// TestEntryExt checks that the common entry has no ext, that the rare
// fields round-trip through it, and that withVTS does not change the
// entry it was cloned from.
func TestEntryExt(t *testing.T) {
	o := &EntryOptions{Duration: time.Minute}
	now := nowNano()
	e := newEntry("k", 1, now, now, o, meta{})
	if e.ext != nil || e.etag() != "" || e.lastMod() != 0 || e.tags() != nil || e.vts() != now {
		t.Fatalf("plain entry: ext %+v", e.ext)
	}
	o.Tags = []string{"t1", "t2"}
	e = newEntry("k", 1, now, now, o, meta{etag: "E", lastMod: 7})
	if e.etag() != "E" || e.lastMod() != 7 || len(e.tags()) != 2 || e.vts() != now {
		t.Fatalf("entry with meta: ext %+v", e.ext)
	}
	x := e.clone()
	x.withVTS(now + 5)
	if x.vts() != now+5 || e.vts() != now || x.etag() != "E" || len(x.tags()) != 2 {
		t.Fatalf("withVTS: clone vts %d etag %q, original vts %d", x.vts(), x.etag(), e.vts())
	}
	x.withVTS(x.ts)
	if x.vts() != x.ts || x.ext.vts != 0 {
		t.Fatalf("withVTS(ts): %+v", x.ext)
	}
	p := newEntry("k", 1, now, now, &EntryOptions{Duration: time.Minute}, meta{}).clone()
	p.withVTS(now + 1)
	if p.vts() != now+1 {
		t.Fatalf("withVTS on a plain entry: vts %d", p.vts())
	}
	p.withVTS(p.ts)
	if p.ext != nil {
		t.Fatalf("withVTS(ts) on a plain entry left ext %+v", p.ext)
	}
}

// TestEntryOnHit checks eager refresh and sliding expiration through
// onHit: set together in one allocation, turned off one at a time on a
// clone without changing the original.
func TestEntryOnHit(t *testing.T) {
	now := nowNano()
	o := &EntryOptions{Duration: time.Minute, EagerRefreshThreshold: 0.5, SlidingDuration: 10 * time.Second}
	e := newEntry("k", 1, now, now, o, meta{etag: "E"})
	if e.eagerAt() == 0 || e.sliding() == nil || e.etag() != "E" {
		t.Fatalf("eager %d, sliding %v, etag %q", e.eagerAt(), e.sliding(), e.etag())
	}
	if e.eagerDue(now) || !e.eagerDue(now+int64(time.Minute)) {
		t.Fatal("eagerDue")
	}
	x := e.clone()
	x.noEager()
	if x.eagerAt() != 0 || x.sliding() == nil || *x.sliding() != *e.sliding() || e.eagerAt() == 0 {
		t.Fatalf("noEager: clone eager %d sliding %v; original eager %d", x.eagerAt(), x.sliding(), e.eagerAt())
	}
	x.setSlide(sliding{})
	if x.hit != nil || e.sliding() == nil {
		t.Fatalf("setSlide(none): clone hit %+v, original sliding %v", x.hit, e.sliding())
	}
	y := e.clone()
	y.setSlide(newSliding(now+5, 7, now+100))
	if y.eagerAt() != e.eagerAt() || y.sliding().window != 7 || e.sliding().window != int64(10*time.Second) {
		t.Fatal("setSlide changed eager refresh or the original")
	}
	p := newEntry("k", 1, now, now, &EntryOptions{Duration: time.Minute}, meta{})
	if p.hit != nil || p.sliding() != nil || p.eagerDue(now+int64(time.Hour)) {
		t.Fatal("a plain entry has an onHit")
	}
	if !newTombstone("k", now).tombstone() || p.tombstone() || newNotFound[int]("k", now, now, o).tombstone() {
		t.Fatal("tombstone()")
	}
}

// TestEntryHeaderSize keeps the header of the common entry (what every
// entry pays before its value) from growing back: the rarely used fields
// belong in entryExt or onHit (docs/benchmarks.md, memory per entry).
func TestEntryHeaderSize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 96 {
		t.Fatalf("entry header is %d bytes, want at most 96", n)
	}
}
