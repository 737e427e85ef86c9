package envelope_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/strata-cache/strata/internal/envelope"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// full is an envelope with every field set, lengths of several varint sizes.
func full() envelope.Envelope {
	return envelope.Envelope{
		Timestamp:    1_700_000_000_123_456_789,
		FreshUntil:   1_700_000_030_123_456_789,
		LastModified: 1_699_999_999_000_000_000,
		Type:         "github.com/acme/app/model.User",
		ETag:         `W/"abc-123"`,
		Tags:         []string{"user", "tenant:7", "", strings.Repeat("t", 200)},
		Value:        bytes.Repeat([]byte{0x81, 0xa2, 'i', 'd', 0x2a}, 40),
	}
}

// normalize maps empty slices to nil, as Decode returns them.
func normalize(e envelope.Envelope) envelope.Envelope {
	if len(e.Tags) == 0 {
		e.Tags = nil
	}
	if len(e.Value) == 0 {
		e.Value = nil
	}
	return e
}

// seal appends the CRC-32C of body, producing an envelope whose checksum is
// right whatever the body holds.
func seal(body []byte) []byte {
	return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
}

// header returns the 27 fixed bytes of a version 1 envelope.
func header(ts int64) []byte {
	b := []byte{envelope.Magic, envelope.Version}
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint64(b, 0)
	return append(b, 0)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		e    envelope.Envelope
	}{
		{"zero", envelope.Envelope{}},
		{"full", full()},
		{"empty tags and value", envelope.Envelope{Timestamp: 1, Type: "int", Tags: []string{}, Value: []byte{}}},
		{"max timestamps", envelope.Envelope{Timestamp: math.MaxInt64, FreshUntil: math.MaxInt64, LastModified: math.MaxInt64, Value: []byte{1}}},
		{"negative fresh-until and last-modified", envelope.Envelope{Timestamp: 5, FreshUntil: -1, LastModified: math.MinInt64}},
		{"binary strings", envelope.Envelope{Type: "\x00\xff", ETag: "a\xffb", Tags: []string{"\x00"}, Value: []byte{0}}},
		{"large value", envelope.Envelope{Timestamp: 9, Value: bytes.Repeat([]byte("0123456789abcdef"), 1<<16)}},
		{"many tags", envelope.Envelope{Timestamp: 9, Tags: strings.Split(strings.Repeat("tag,", 300), ",")}},
		{"removal record", envelope.Envelope{Timestamp: 7, FreshUntil: 7, Removed: true}},
		{"expired copy", envelope.Envelope{Timestamp: 9, FreshUntil: 8, Created: 3, Type: "string", Value: []byte("v")}},
		{"removal with created", envelope.Envelope{Timestamp: 9, Removed: true, Created: 2}},
		{"not found", envelope.Envelope{Timestamp: 9, FreshUntil: 10, Type: "string", NotFound: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := tc.e.Append(nil)
			if got, want := len(b), tc.e.Size(); got != want {
				t.Errorf("len(Append) = %d, Size() = %d", got, want)
			}
			got, err := envelope.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := normalize(tc.e); !reflect.DeepEqual(got, want) {
				t.Errorf("Decode(Append(e)):\n got %#v\nwant %#v", got, want)
			}
			ts, ok := envelope.Timestamp(b)
			if !ok || ts != tc.e.Timestamp {
				t.Errorf("Timestamp = %d, %v; want %d, true", ts, ok, tc.e.Timestamp)
			}
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	t.Parallel()
	e := full()
	prefix := []byte("prefix")
	b := e.Append(bytes.Clone(prefix))
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("Append dropped the prefix: %q", b[:10])
	}
	if !bytes.Equal(b[len(prefix):], e.Append(nil)) {
		t.Error("Append after a prefix encodes differently from Append(nil)")
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	e := envelope.Envelope{Timestamp: 0x0102030405060708, FreshUntil: 0x1112131415161718, LastModified: 0x2122232425262728,
		Type: "T", ETag: "E", Tags: []string{"a", "bc"}, Value: []byte("V")}
	want := cat(
		[]byte{0xA7, 1},
		[]byte{1, 2, 3, 4, 5, 6, 7, 8},
		[]byte{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18},
		[]byte{0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28},
		[]byte{0},
		[]byte{1, 'T'}, []byte{1, 'E'}, []byte{2, 1, 'a', 2, 'b', 'c'}, []byte{1, 'V'},
	)
	want = seal(want)
	if got := e.Append(nil); !bytes.Equal(got, want) {
		t.Errorf("Append:\n got % x\nwant % x", got, want)
	}
	if got := (&envelope.Envelope{}).Append(nil); len(got) != envelope.MinSize {
		t.Errorf("zero envelope is %d bytes, MinSize is %d", len(got), envelope.MinSize)
	}
}

// TestTimestampBytesSortAsNumbers checks the contract the Redis Lua script
// relies on: bytes 2..9 compare like the non-negative timestamps.
func TestTimestampBytesSortAsNumbers(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	edge := []int64{0, 1, 255, 256, 1 << 53, math.MaxInt64 - 1, math.MaxInt64}
	for i := range 2000 {
		var a, b int64
		if i < len(edge)*len(edge) {
			a, b = edge[i/len(edge)], edge[i%len(edge)]
		} else {
			a, b = r.Int64(), r.Int64()
			if i%2 == 0 {
				b = a + r.Int64N(512) - 256
				b = max(b, 0)
			}
		}
		ea := (&envelope.Envelope{Timestamp: a}).Append(nil)
		eb := (&envelope.Envelope{Timestamp: b}).Append(nil)
		off := envelope.TimestampOffset
		if got, want := bytes.Compare(ea[off:off+8], eb[off:off+8]), cmp.Compare(a, b); got != want {
			t.Fatalf("timestamps %d vs %d: bytes compare %d, numbers %d", a, b, got, want)
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	t.Parallel()
	valid := full()
	good := valid.Append(nil)
	body := good[:len(good)-4]
	// rest is everything after the header of the zero envelope but the CRC.
	emptyFields := []byte{0, 0, 0, 0}
	cases := []struct {
		name    string
		data    []byte
		wantErr error
		detail  string
	}{
		{"nil", nil, envelope.ErrCorrupt, "shorter than the header"},
		{"one byte", []byte{envelope.Magic}, envelope.ErrCorrupt, "shorter than the header"},
		{"bad magic", cat([]byte{0xA8}, good[1:]), envelope.ErrCorrupt, "bad magic"},
		{"foreign string", []byte("hello world, this is not an envelope at all"), envelope.ErrCorrupt, "bad magic"},
		{"version 0", seal(cat([]byte{envelope.Magic, 0}, body[2:])), envelope.ErrVersion, "0"},
		{"version 2", seal(cat([]byte{envelope.Magic, 2}, body[2:])), envelope.ErrVersion, "2"},
		{"header only", header(1), envelope.ErrCorrupt, "want at least"},
		{"bad checksum", cat(body, []byte{0, 0, 0, 0}), envelope.ErrCorrupt, "checksum"},
		{"trailing garbage", cat(good, []byte{0}), envelope.ErrCorrupt, "checksum"},
		{"trailing garbage resealed", seal(cat(body, []byte{0xEE})), envelope.ErrCorrupt, "trailing"},
		{"negative timestamp", seal(cat(header(-1), emptyFields)), envelope.ErrCorrupt, "negative timestamp"},
		{"unknown flag", seal(cat(header(1)[:26], []byte{0x80}, emptyFields)), envelope.ErrCorrupt, "flags"},
		{"not found with a value", seal(cat(header(1)[:26], []byte{envelope.FlagNotFound}, []byte{0, 0, 0, 1, 'v'})), envelope.ErrCorrupt, "not-found record"},
		{"removal with a value", seal(cat(header(1)[:26], []byte{envelope.FlagRemoved}, []byte{0, 0, 0, 1, 'v'})), envelope.ErrCorrupt, "removal record"},
		{"created truncated", seal(cat(header(1)[:26], []byte{envelope.FlagCreated}, emptyFields, []byte{0, 0, 0})), envelope.ErrCorrupt, "created time truncated"},
		{"created zero", seal(cat(header(1)[:26], []byte{envelope.FlagCreated}, emptyFields, make([]byte, 8))), envelope.ErrCorrupt, "not positive"},
		{"huge type length", seal(cat(header(1), binary.AppendUvarint(nil, 1<<62), emptyFields)), envelope.ErrCorrupt, "type length"},
		{"huge etag length", seal(cat(header(1), []byte{0}, binary.AppendUvarint(nil, math.MaxUint64), emptyFields)), envelope.ErrCorrupt, "etag length"},
		{"huge tag count", seal(cat(header(1), []byte{0, 0}, binary.AppendUvarint(nil, 1<<40), []byte{0, 0})), envelope.ErrCorrupt, "tag count"},
		{"tag count past end", seal(cat(header(1), []byte{0, 0, 3, 0, 0})), envelope.ErrCorrupt, "tag count 3 exceeds"},
		{"tags eat the value", seal(cat(header(1), []byte{0, 0, 2, 0, 0})), envelope.ErrCorrupt, "value length truncated"},
		{"huge tag length", seal(cat(header(1), []byte{0, 0, 1}, binary.AppendUvarint(nil, 1<<50), []byte{0})), envelope.ErrCorrupt, "tag length"},
		{"huge value length", seal(cat(header(1), []byte{0, 0, 0}, binary.AppendUvarint(nil, 1<<33), []byte{1, 2, 3})), envelope.ErrCorrupt, "value length"},
		{"value one byte short", seal(cat(header(1), []byte{0, 0, 0, 4, 'a', 'b', 'c'})), envelope.ErrCorrupt, "value length"},
		{"varint overflow", seal(cat(header(1), bytes.Repeat([]byte{0xff}, 10), []byte{1}, emptyFields)), envelope.ErrCorrupt, "overflows"},
		{"varint not shortest", seal(cat(header(1), []byte{0x80, 0x00}, []byte{0, 0, 0})), envelope.ErrCorrupt, "shortest form"},
		{"missing value", seal(cat(header(1), []byte{0, 0, 0, 0x80})), envelope.ErrCorrupt, "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := envelope.Decode(tc.data)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Decode(% x) error = %v, want %v", tc.data, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not mention %q", err, tc.detail)
			}
			if !strings.HasPrefix(err.Error(), "envelope: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !reflect.DeepEqual(got, envelope.Envelope{}) {
				t.Errorf("Decode returned a non-zero envelope with an error: %#v", got)
			}
		})
	}
}

func TestDecodeTruncatedAtEveryByte(t *testing.T) {
	t.Parallel()
	e := full()
	b := e.Append(nil)
	for n := range len(b) {
		if _, err := envelope.Decode(b[:n]); !errors.Is(err, envelope.ErrCorrupt) {
			t.Errorf("Decode of the first %d of %d bytes: error %v, want ErrCorrupt", n, len(b), err)
		}
	}
}

func TestDecodeBitFlips(t *testing.T) {
	t.Parallel()
	e := full()
	b := e.Append(nil)
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			_, err := envelope.Decode(c)
			if !errors.Is(err, envelope.ErrCorrupt) && !errors.Is(err, envelope.ErrVersion) {
				t.Fatalf("flip of bit %d of byte %d: error %v, want ErrCorrupt or ErrVersion", bit, i, err)
			}
			if i != 1 && errors.Is(err, envelope.ErrVersion) {
				t.Errorf("flip of bit %d of byte %d reported as a version error: %v", bit, i, err)
			}
		}
	}
}

func TestDecodeDoesNotAliasInput(t *testing.T) {
	t.Parallel()
	want := full()
	b := want.Append(nil)
	got, err := envelope.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xEE
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded envelope changed after its input was overwritten:\n got %#v\nwant %#v", got, want)
	}
}

func TestTimestamp(t *testing.T) {
	t.Parallel()
	e := full()
	good := e.Append(nil)
	cases := []struct {
		name   string
		data   []byte
		want   int64
		wantOK bool
	}{
		{"valid", good, e.Timestamp, true},
		{"zero", (&envelope.Envelope{}).Append(nil), 0, true},
		{"nil", nil, 0, false},
		{"too short", good[:envelope.MinSize-1], 0, false},
		{"bad magic", cat([]byte{0}, good[1:]), 0, false},
		{"bad version", cat([]byte{envelope.Magic, 9}, good[2:]), 0, false},
		{"negative", seal(cat(header(-5), []byte{0, 0, 0, 0})), 0, false},
		{"foreign", []byte("some other application's value"), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := envelope.Timestamp(tc.data)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Timestamp = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	e := full()
	buf := make([]byte, 0, e.Size())
	b.ReportAllocs()
	for b.Loop() {
		buf = e.Append(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		e    envelope.Envelope
	}{
		{"typical", envelope.Envelope{Timestamp: 1, FreshUntil: 2, Type: "app.User", Value: bytes.Repeat([]byte{1}, 128)}},
		{"full", full()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := bc.e.Append(nil)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTimestamp(b *testing.B) {
	e := full()
	data := e.Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := envelope.Timestamp(data); !ok {
			b.Fatal("not ok")
		}
	}
}

func TestDecodeSharedAliasesTheValue(t *testing.T) {
	t.Parallel()
	b := (&envelope.Envelope{Timestamp: 1, Type: "string", Value: []byte("value")}).Append(nil)
	shared, err := envelope.DecodeShared(b, "")
	if err != nil {
		t.Fatal(err)
	}
	copied, err := envelope.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shared, copied) {
		t.Fatalf("DecodeShared = %#v, Decode = %#v", shared, copied)
	}
	b[len(b)-5] = 'X' // inside the value (before the 4 checksum bytes)
	if string(copied.Value) != "value" {
		t.Errorf("Decode's value changed with its input: %q", copied.Value)
	}
	if string(shared.Value) == "value" {
		t.Errorf("DecodeShared's value does not alias its input")
	}
	if _, err := envelope.DecodeShared([]byte("garbage"), ""); err == nil {
		t.Error("DecodeShared accepted garbage")
	}
}

// DecodeShared's typ is only a hint: the Type decoded is the envelope's,
// whether or not it is typ.
func TestDecodeSharedExpectedType(t *testing.T) { // not parallel: AllocsPerRun
	b := (&envelope.Envelope{Timestamp: 1, Type: "main.User", Value: []byte("v")}).Append(nil)
	for _, typ := range []string{"", "main.User", "main.Other", "main.Use"} {
		e, err := envelope.DecodeShared(b, typ)
		if err != nil || e.Type != "main.User" {
			t.Errorf("DecodeShared(b, %q) = Type %q, %v; want main.User", typ, e.Type, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = envelope.DecodeShared(b, "main.User") }); n != 0 {
		t.Errorf("DecodeShared with the expected type: %v allocations, want 0", n)
	}
}
