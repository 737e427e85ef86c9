package hybrid

import (
	"fmt"
	"testing"
)

// BenchmarkL1NewKeysDrained writes 2^18 new keys into a memory tier of
// 2^17 (it fills up halfway), then drains ristretto's buffer inside the
// timer: the whole cost of the writes, also the part ristretto's goroutine
// does after Set returned (a benchmark that closes the cache with writes
// still buffered leaves that part out). ns/set is per write; flushes/op
// counts the flushes of ristretto's buffer that the writes made (2^18 new
// keys per op).
func BenchmarkL1NewKeysDrained(b *testing.B) {
	keys := make([]string, 1<<18)
	for i := range keys {
		keys[i] = fmt.Sprintf("new:%07d", i)
	}
	far := nowNano() + 1e12
	var flushes uint64
	for b.Loop() {
		m, _ := newL1(1 << 17)
		for i, k := range keys {
			m.set(&entry{key: k, ts: int64(i + 1), value: i, physUntil: far})
		}
		flushes += m.epoch.Load() // flushes of the buffer that set began
		m.rc.Wait()
		m.close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/set")
	b.ReportMetric(float64(flushes)/float64(b.N), "flushes/op")
}
