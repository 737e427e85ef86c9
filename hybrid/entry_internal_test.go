package hybrid

import (
	"testing"
	"time"

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
