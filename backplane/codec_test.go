package backplane_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/strata-cache/strata/backplane"
)

func sampleMessages() []backplane.Message {
	return []backplane.Message{
		{Kind: backplane.KindSet, Cache: "users", Key: "user:42", Source: "node-a", Timestamp: 1_700_000_000_123_456_789},
		{Kind: backplane.KindRemove, Cache: "c", Key: "k", Source: "s", Timestamp: 0},
		{Kind: backplane.KindExpire, Cache: "", Key: "", Source: "", Timestamp: -1},
		{Kind: backplane.KindClear, Cache: "orders", Source: "node-b", Timestamp: math.MaxInt64},
		{Kind: backplane.KindSet, Cache: "bin", Key: "\xff\xfe\x00invalid\xc3\x28utf8", Source: "\x80", Timestamp: math.MinInt64},
		{Kind: backplane.KindSet, Cache: "long", Key: strings.Repeat("k", 300), Source: strings.Repeat("s", 20000), Timestamp: 7},
		{Kind: backplane.KindRemove, Cache: "{weird}", Key: "ключ", Source: "日本", Timestamp: 42},
		{Kind: backplane.KindSet, Cache: "users", Key: "k", Source: "a", Timestamp: 3, Value: "\x00envelope\xff"},
		{Kind: backplane.KindSet, Cache: "users", Key: "k", Source: "a", Timestamp: 3, Value: strings.Repeat("v", 5000)},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range sampleMessages() {
		b := m.AppendBinary(nil)
		got, err := backplane.DecodeMessage(b)
		if err != nil {
			t.Fatalf("DecodeMessage(%q): %v", b, err)
		}
		if got != m {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
		mb, _ := m.MarshalBinary()
		if !bytes.Equal(mb, b) {
			t.Errorf("MarshalBinary = %x, want %x", mb, b)
		}
		var um backplane.Message
		if err := um.UnmarshalBinary(b); err != nil || um != m {
			t.Errorf("UnmarshalBinary: got %+v, %v; want %+v", um, err, m)
		}
	}
}

func TestAppendBinaryAppends(t *testing.T) {
	t.Parallel()
	m := sampleMessages()[0]
	prefix := []byte("prefix")
	b := m.AppendBinary(prefix)
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("AppendBinary lost the prefix: %q", b)
	}
	if got, err := backplane.DecodeMessage(b[len(prefix):]); err != nil || got != m {
		t.Fatalf("decode after prefix: got %+v, %v", got, err)
	}
}

func TestMessageWireFormat(t *testing.T) {
	t.Parallel()
	m := backplane.Message{Kind: backplane.KindExpire, Cache: "c", Key: "ab", Source: "", Timestamp: 0x0102030405060708}
	want := []byte{0xC1, 0x42, 1, 3, 1, 2, 3, 4, 5, 6, 7, 8, 1, 'c', 2, 'a', 'b', 0}
	if got := m.AppendBinary(nil); !bytes.Equal(got, want) {
		t.Fatalf("AppendBinary = %x, want %x", got, want)
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	t.Parallel()
	valid := backplane.Message{Kind: backplane.KindSet, Cache: "c", Key: "k", Source: "s", Timestamp: 1}.AppendBinary(nil)
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, backplane.ErrCorrupt},
		{"empty", []byte{}, backplane.ErrCorrupt},
		{"one byte", []byte{0xC1}, backplane.ErrCorrupt},
		{"bad magic", mutate(func(b []byte) []byte { b[0] = 'S'; return b }), backplane.ErrCorrupt},
		{"json", []byte(`{"kind":1}`), backplane.ErrCorrupt},
		{"version 0", mutate(func(b []byte) []byte { b[2] = 0; return b }), backplane.ErrVersion},
		{"version 2", mutate(func(b []byte) []byte { b[2] = 2; return b }), backplane.ErrVersion},
		{"version 2 short", []byte{0xC1, 0x42, 2}, backplane.ErrVersion},
		{"kind 0", mutate(func(b []byte) []byte { b[3] = 0; return b }), backplane.ErrCorrupt},
		{"kind 5", mutate(func(b []byte) []byte { b[3] = 5; return b }), backplane.ErrCorrupt},
		{"short header", valid[:11], backplane.ErrCorrupt},
		{"no cache", valid[:12], backplane.ErrCorrupt},
		{"truncated cache", valid[:13], backplane.ErrCorrupt},
		{"no source", valid[:len(valid)-2], backplane.ErrCorrupt},
		{"truncated source", valid[:len(valid)-1], backplane.ErrCorrupt},
		{"trailing byte (an empty value)", append(bytes.Clone(valid), 0), backplane.ErrCorrupt},
		{"truncated value", append(bytes.Clone(valid), 5, 'a'), backplane.ErrCorrupt},
		{"bytes after the value", append(bytes.Clone(valid), 1, 'v', 0), backplane.ErrCorrupt},
		{"length beyond input", mutate(func(b []byte) []byte { b[12] = 100; return b }), backplane.ErrCorrupt},
		{"huge length", append(bytes.Clone(valid[:12]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), backplane.ErrCorrupt},
		{"length overflow", append(bytes.Clone(valid[:12]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), backplane.ErrCorrupt},
		{"varint too long", append(bytes.Clone(valid[:12]), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), backplane.ErrCorrupt},
		{"non-minimal length", append(bytes.Clone(valid[:12]), 0x81, 0x00, 'c', 1, 'k', 1, 's'), backplane.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := backplane.DecodeMessage(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeMessage(%x) error = %v, want %v", tt.in, err, tt.want)
			}
			if got != (backplane.Message{}) {
				t.Errorf("DecodeMessage(%x) = %+v with an error, want the zero Message", tt.in, got)
			}
			if !strings.HasPrefix(err.Error(), "backplane: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		k    backplane.Kind
		want string
	}{
		{backplane.KindSet, "set"},
		{backplane.KindRemove, "remove"},
		{backplane.KindExpire, "expire"},
		{backplane.KindClear, "clear"},
		{0, "kind(0)"},
		{200, "kind(200)"},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(tt.k), got, tt.want)
		}
	}
}

// FuzzDecodeMessage checks that DecodeMessage never panics, and that whatever it
// accepts re-encodes to exactly the same bytes (the encoding is canonical). The
// second argument round-trips arbitrary keys, including invalid UTF-8.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.AppendBinary(nil), m.Key)
	}
	f.Add([]byte{}, "")
	f.Add([]byte{0xC1, 0x42, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}, "\xff")
	f.Add([]byte{0xC1, 0x42, 2}, "\xc3\x28")
	f.Add([]byte{0xC1, 0x42, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "a\x00b")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		m, err := backplane.DecodeMessage(b)
		if err == nil {
			if re := m.AppendBinary(nil); !bytes.Equal(re, b) {
				t.Fatalf("re-encoding %+v = %x, want the input %x", m, re, b)
			}
		} else if !errors.Is(err, backplane.ErrCorrupt) && !errors.Is(err, backplane.ErrVersion) {
			t.Fatalf("DecodeMessage error %v is neither ErrCorrupt nor ErrVersion", err)
		}

		want := backplane.Message{Kind: backplane.KindSet, Cache: key, Key: key, Source: key, Timestamp: int64(len(b))}
		got, err := backplane.DecodeMessage(want.AppendBinary(nil))
		if err != nil || got != want {
			t.Fatalf("round trip of key %q: got %+v, %v", key, got, err)
		}
	})
}
