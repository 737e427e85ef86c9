package bench

import "testing"

func TestRTStale(t *testing.T) {
	// Key 1: Set(2) ran 10..20, then Set(1) was called at 30 (its version was
	// taken before Set(2)'s) and returned at 40. Key 2: Set(1) 10..50 and
	// Set(2) 20..30 overlap. Key 3: Set(1) 10..20 only.
	hists := []*svcHist{{sets: []svcSet{
		{key: 1, version: 2, start: 10, end: 20},
		{key: 2, version: 2, start: 20, end: 30},
		{key: 3, version: 1, start: 10, end: 20},
	}}, {sets: []svcSet{
		{key: 1, version: 1, start: 30, end: 40},
		{key: 2, version: 1, start: 10, end: 50},
	}}}
	tests := []struct {
		name  string
		read  svcRead
		stale bool
	}{
		{"the Set called last, lower version", svcRead{key: 1, got: 1, start: 45}, false},
		{"the higher version, overtaken by a later call", svcRead{key: 1, got: 2, start: 45}, true},
		{"the higher version, before the later call returned", svcRead{key: 1, got: 2, start: 35}, false},
		{"overlapping Sets: the lower version", svcRead{key: 2, got: 1, start: 60}, false},
		{"overlapping Sets: the higher version", svcRead{key: 2, got: 2, start: 60}, false},
		{"never Set, after a Set returned", svcRead{key: 3, got: 0, start: 25}, true},
		{"never Set, while the first Set runs", svcRead{key: 3, got: 0, start: 15}, false},
		{"a version whose Set never returned", svcRead{key: 3, got: 7, start: 25}, false},
		{"a key never Set", svcRead{key: 4, got: 0, start: 25}, false},
	}
	for _, tt := range tests {
		want := 0
		if tt.stale {
			want = 1
		}
		if got := rtStale(hists, []svcRead{tt.read}); got != want {
			t.Errorf("%s: rtStale = %d, want %d", tt.name, got, want)
		}
	}
}
