package serializer_test

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-cache/strata/serializer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type address struct {
	Street string
	Zip    int
}

type user struct {
	ID       int64
	Name     string
	Email    *string
	Tags     []string
	Scores   map[string]float64
	Avatar   []byte
	Created  time.Time
	Home     *address
	Disabled bool
}

var serializers = []struct {
	name string
	s    serializer.Serializer
}{
	{"msgpack", serializer.Msgpack{}},
	{"json", serializer.JSON{}},
}

// roundTrip marshals v, unmarshals it into a new T and returns the result.
func roundTrip[T any](t *testing.T, s serializer.Serializer, v T) T {
	t.Helper()
	b, err := s.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%#v): %v", v, err)
	}
	var got T
	if err := s.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(%q) into %T: %v", b, &got, err)
	}
	return got
}

// equal compares with time.Time.Equal for times, reflect.DeepEqual otherwise.
func equal(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return reflect.DeepEqual(a, b)
}

func checkRoundTrip[T any](t *testing.T, s serializer.Serializer, v T) {
	t.Helper()
	if got := roundTrip(t, s, v); !equal(got, v) {
		t.Errorf("round trip of %T: got %#v, want %#v", v, got, v)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	email := "ada@example.com"
	created := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)
	for _, tc := range serializers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.s
			t.Run("string", func(t *testing.T) {
				checkRoundTrip(t, s, "héllo, wörld")
				checkRoundTrip(t, s, "")
			})
			t.Run("int64 above 2^53", func(t *testing.T) {
				for _, v := range []int64{1<<53 + 1, math.MaxInt64, math.MinInt64, -(1<<53 + 1)} {
					checkRoundTrip(t, s, v)
				}
				checkRoundTrip(t, s, uint64(math.MaxUint64))
			})
			t.Run("float", func(t *testing.T) {
				checkRoundTrip(t, s, 3.141592653589793)
			})
			t.Run("bool", func(t *testing.T) {
				checkRoundTrip(t, s, true)
			})
			t.Run("bytes", func(t *testing.T) {
				checkRoundTrip(t, s, []byte{0, 1, 2, 0xff, 0xfe})
				checkRoundTrip(t, s, []byte("plain"))
			})
			t.Run("time", func(t *testing.T) {
				checkRoundTrip(t, s, created)
				checkRoundTrip(t, s, created.In(time.FixedZone("X", 5*3600+1800)))
				checkRoundTrip(t, s, time.Unix(0, 1))
			})
			t.Run("map", func(t *testing.T) {
				checkRoundTrip(t, s, map[string]int64{"a": 1, "big": 1<<62 + 3})
				checkRoundTrip(t, s, map[string][]string{"x": {"1", "2"}, "y": {}})
			})
			t.Run("slice", func(t *testing.T) {
				checkRoundTrip(t, s, []string{"a", "b", ""})
			})
			t.Run("pointer", func(t *testing.T) {
				v := &address{Street: "Main", Zip: 12345}
				got := roundTrip(t, s, v)
				if got == nil || *got != *v {
					t.Errorf("got %#v, want %#v", got, v)
				}
				var nilPtr *address
				if got := roundTrip(t, s, nilPtr); got != nil {
					t.Errorf("nil pointer: got %#v, want nil", got)
				}
			})
			t.Run("struct", func(t *testing.T) {
				v := user{
					ID:      1<<60 + 7,
					Name:    "Ada",
					Email:   &email,
					Tags:    []string{"admin", "ops"},
					Scores:  map[string]float64{"q1": 0.5},
					Avatar:  []byte{0x89, 'P', 'N', 'G', 0},
					Created: created,
					Home:    &address{Street: "1 Loop", Zip: 94000},
				}
				got := roundTrip(t, s, v)
				if !got.Created.Equal(v.Created) {
					t.Errorf("Created: got %v, want %v", got.Created, v.Created)
				}
				got.Created, v.Created = time.Time{}, time.Time{}
				if !reflect.DeepEqual(got, v) {
					t.Errorf("got %#v, want %#v", got, v)
				}
			})
		})
	}
}

func TestUnmarshalWrongType(t *testing.T) {
	t.Parallel()
	for _, tc := range serializers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.s
			mustMarshal := func(v any) []byte {
				t.Helper()
				b, err := s.Marshal(v)
				if err != nil {
					t.Fatalf("Marshal(%#v): %v", v, err)
				}
				return b
			}
			cases := []struct {
				name string
				data []byte
				into any
			}{
				{"struct into int", mustMarshal(address{Street: "x", Zip: 1}), new(int)},
				{"string into int64", mustMarshal("hello"), new(int64)},
				{"string into struct", mustMarshal("hello"), new(address)},
				{"map into slice", mustMarshal(map[string]int{"a": 1}), new([]int)},
				{"slice into map", mustMarshal([]string{"a"}), new(map[string]int)},
				{"int into string", mustMarshal(42), new(string)},
				{"bool into time", mustMarshal(true), new(time.Time)},
				{"garbage", []byte{0xc1, 0xff, '{', 0x00}, new(address)},
				{"empty input", nil, new(string)},
				{"truncated", mustMarshal(address{Street: "Main street", Zip: 1})[:5], new(address)},
				{"not a pointer", mustMarshal(1), 0},
				{"nil", mustMarshal(1), nil},
				{"typed nil pointer", mustMarshal(1), (*int)(nil)},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					var err error
					func() {
						defer func() {
							if r := recover(); r != nil {
								t.Fatalf("Unmarshal panicked: %v", r)
							}
						}()
						err = s.Unmarshal(c.data, c.into)
					}()
					if err == nil {
						t.Fatalf("Unmarshal(%q, %T) = nil, want an error", c.data, c.into)
					}
					if !strings.HasPrefix(err.Error(), "serializer: ") {
						t.Errorf("error %q lacks the package prefix", err)
					}
				})
			}
		})
	}
}

func TestMarshalError(t *testing.T) {
	t.Parallel()
	for _, tc := range serializers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.s.Marshal(make(chan int))
			if err == nil {
				t.Fatal("Marshal(chan) = nil error, want an error")
			}
			if !strings.HasPrefix(err.Error(), "serializer: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestJSONTraps pins the lossy behaviours documented on JSON, and checks that
// Msgpack does not share them.
func TestJSONTraps(t *testing.T) {
	t.Parallel()
	invalid := "a\xffb"
	if got := roundTrip(t, serializer.JSON{}, invalid); got == invalid {
		t.Errorf("json: invalid UTF-8 survived (%q); the documented trap no longer holds", got)
	}
	if got := roundTrip(t, serializer.Msgpack{}, invalid); got != invalid {
		t.Errorf("msgpack: invalid UTF-8: got %q, want %q", got, invalid)
	}

	const big = int64(1<<53 + 1)
	b, err := serializer.JSON{}.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	var anyV any
	if err := (serializer.JSON{}).Unmarshal(b, &anyV); err != nil {
		t.Fatal(err)
	}
	if f, ok := anyV.(float64); !ok || int64(f) == big {
		t.Errorf("json into any: got %T %v, want a rounded float64", anyV, anyV)
	}
}

func TestMarshalDoesNotAliasInput(t *testing.T) {
	t.Parallel()
	for _, tc := range serializers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.s.Marshal([]byte("payload"))
			if err != nil {
				t.Fatal(err)
			}
			keep := bytes.Clone(b)
			var got []byte
			if err := tc.s.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for i := range b {
				b[i] = 0
			}
			if string(got) != "payload" {
				t.Errorf("decoded value changed after the input was reused: %q (input was %q)", got, keep)
			}
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	v := user{ID: 42, Name: "Ada", Tags: []string{"a", "b"}, Created: time.Unix(1700000000, 0)}
	for _, tc := range serializers {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.s.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	v := user{ID: 42, Name: "Ada", Tags: []string{"a", "b"}, Created: time.Unix(1700000000, 0)}
	for _, tc := range serializers {
		b.Run(tc.name, func(b *testing.B) {
			data, err := tc.s.Marshal(v)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				var got user
				if err := tc.s.Unmarshal(data, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
