package backplane

import "strings"

// DefaultChannelPrefix is the prefix [ChannelName] uses when it is given an empty one.
const DefaultChannelPrefix = "strata"

// ChannelName returns the name of the backplane channel of a cache:
// "<prefix>:{<cache>}:bp", for example ChannelName("", "users") is "strata:{users}:bp".
// An empty prefix means [DefaultChannelPrefix].
//
// A strata.Provider passes the cache's key prefix as cache, not its name: the cache
// "users" with its default key prefix "users:" uses "strata:{users:}:bp", and that is
// the channel a Redis ACL for it must allow (&strata:{users:}:bp).
//
// The cache name is a Redis Cluster hash tag, so all of a cache's traffic maps to one
// cluster slot and sharded pub/sub (SPUBLISH/SSUBSCRIBE) works. So that no name can
// break the tag, the characters '{', '}' and '%' in prefix and cache are
// percent-encoded ("%7B", "%7D", "%25"): the first '{' of the result is always the
// tag's opening brace and the first '}' after it its closing one. The encoding is
// injective: two different (prefix, cache) pairs never share a channel. Any other byte,
// including invalid UTF-8, is kept as it is.
func ChannelName(prefix, cache string) string {
	if prefix == "" {
		prefix = DefaultChannelPrefix
	}
	var sb strings.Builder
	sb.Grow(len(prefix) + len(cache) + 8)
	escapeTo(&sb, prefix)
	sb.WriteString(":{")
	escapeTo(&sb, cache)
	sb.WriteString("}:bp")
	return sb.String()
}

func escapeTo(sb *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{':
			sb.WriteString("%7B")
		case '}':
			sb.WriteString("%7D")
		case '%':
			sb.WriteString("%25")
		default:
			sb.WriteByte(c)
		}
	}
}
