package backplane_test

import (
	"strings"
	"testing"

	"github.com/strata-cache/strata/backplane"
)

// hashTag returns the part of a Redis key that Redis Cluster hashes.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

func TestChannelName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, cache, want, tag string
	}{
		{"strata", "users", "strata:{users}:bp", "users"},
		{"", "users", "strata:{users}:bp", "users"},
		{"app", "a}b", "app:{a%7Db}:bp", "a%7Db"},
		{"app", "{x}", "app:{%7Bx%7D}:bp", "%7Bx%7D"},
		{"p{re}", "c", "p%7Bre%7D:{c}:bp", "c"},
		{"app", "50%", "app:{50%25}:bp", "50%25"},
		{"app", "\xff", "app:{\xff}:bp", "\xff"},
	}
	for _, tt := range tests {
		got := backplane.ChannelName(tt.prefix, tt.cache)
		if got != tt.want {
			t.Errorf("ChannelName(%q, %q) = %q, want %q", tt.prefix, tt.cache, got, tt.want)
		}
		if tag := hashTag(got); tag != tt.tag {
			t.Errorf("hash tag of %q = %q, want %q", got, tag, tt.tag)
		}
	}
}

func TestChannelNameInjective(t *testing.T) {
	t.Parallel()
	names := []string{"a", "a}", "a%7D", "a%257D", "{a", "%7Ba", "a%", "a%25", "", "}", "{}", "%"}
	seen := map[string]string{}
	for _, n := range names {
		ch := backplane.ChannelName("p", n)
		if prev, dup := seen[ch]; dup {
			t.Errorf("caches %q and %q share channel %q", prev, n, ch)
		}
		seen[ch] = n
	}
}
