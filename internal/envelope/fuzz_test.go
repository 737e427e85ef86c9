package envelope_test

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-cache/strata/internal/envelope"
)

func FuzzDecode(f *testing.F) {
	e := full()
	good := e.Append(nil)
	f.Add(good)
	f.Add((&envelope.Envelope{}).Append(nil))
	f.Add((&envelope.Envelope{Timestamp: math.MaxInt64, Tags: []string{"a", "b"}, Value: []byte("v")}).Append(nil))
	f.Add([]byte{})
	f.Add([]byte{envelope.Magic})
	f.Add([]byte{envelope.Magic, 2})
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(seal(cat(header(1), []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0})))
	f.Add(seal(cat(header(-1), []byte{0, 0, 0, 0})))
	f.Add([]byte("plain text someone else stored under our key"))
	f.Add((&envelope.Envelope{Timestamp: 3, Removed: true}).Append(nil))
	f.Add((&envelope.Envelope{Timestamp: 3, Created: 1, Value: []byte("v")}).Append(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		// The checksum hides the parser from the fuzzer: also decode the
		// input taken as a body, with a valid checksum appended.
		checkDecode(t, seal(bytes.Clone(data)))
	})
}

// checkDecode checks Decode's contract on data: no panic, a typed error, or
// an envelope that re-encodes to exactly data.
func checkDecode(t *testing.T, data []byte) {
	t.Helper()
	ts, tsOK := envelope.Timestamp(data)
	got, err := envelope.Decode(data)
	if err != nil {
		if !errors.Is(err, envelope.ErrCorrupt) && !errors.Is(err, envelope.ErrVersion) {
			t.Fatalf("Decode error %v is neither ErrCorrupt nor ErrVersion", err)
		}
		return
	}
	// A decoded envelope re-encodes to exactly its input: the format is
	// canonical, and Timestamp agrees with Decode.
	if re := got.Append(nil); !bytes.Equal(re, data) {
		t.Fatalf("re-encoding differs:\n got % x\nwant % x", re, data)
	}
	if !tsOK || ts != got.Timestamp {
		t.Fatalf("Timestamp = %d, %v; Decode says %d", ts, tsOK, got.Timestamp)
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(1_700_000_000_000_000_000), int64(1_700_000_030_000_000_000), int64(0), "app.User", `"v1"`, "a,b", []byte("value"))
	f.Add(int64(0), int64(-1), int64(math.MinInt64), "", "", "", []byte(nil))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), "\x00\xff", "\xff", ",,", bytes.Repeat([]byte{0xA7}, 300))
	f.Fuzz(func(t *testing.T, ts, fresh, lm int64, typ, etag, tags string, value []byte) {
		e := envelope.Envelope{
			Timestamp:    ts & math.MaxInt64, // the contract: never negative
			FreshUntil:   fresh,
			LastModified: lm,
			Type:         typ,
			ETag:         etag,
			Value:        value,
		}
		if tags != "" {
			e.Tags = strings.Split(tags, ",")
		}
		b := e.Append(nil)
		if len(b) != e.Size() {
			t.Fatalf("len(Append) = %d, Size() = %d", len(b), e.Size())
		}
		got, err := envelope.Decode(b)
		if err != nil {
			t.Fatalf("Decode(Append(%#v)): %v", e, err)
		}
		if want := normalize(e); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
		}
	})
}
