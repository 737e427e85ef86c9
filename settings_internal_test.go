package strata

import (
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strata-cache/strata/hybrid"
)

// TestClientSettingsFailFast: the clients the provider creates give up on
// a dead Redis within the production L2 timeouts: one dial attempt of
// 500 ms (go-redis's default is five, with back-off) and one retry.
func TestClientSettingsFailFast(t *testing.T) {
	for _, r := range []*RedisSettings{{URL: "redis://127.0.0.1:1"}, {Addrs: []string{"127.0.0.1:1"}}} {
		c, owned, err := r.newClient()
		if err != nil || !owned {
			t.Fatalf("newClient: %v, %v", owned, err)
		}
		var dial time.Duration
		var retries, maxRetries int
		switch c := c.(type) {
		case *redis.Client:
			o := c.Options()
			dial, retries, maxRetries = o.DialTimeout, o.DialerRetries, o.MaxRetries
		case *redis.ClusterClient:
			o := c.Options()
			dial, retries, maxRetries = o.DialTimeout, o.DialerRetries, o.MaxRetries
		}
		c.Close()
		if dial != clientDialTimeout || retries != 1 || maxRetries != 1 {
			t.Errorf("%+v: dial %v, dialer retries %d, max retries %d", r, dial, retries, maxRetries)
		}
		// One dial and one retry fit in the production L2 soft timeout.
		if worst := time.Duration(maxRetries+1) * dial; worst > ProductionDefaults().Entry.L2SoftTimeout {
			t.Errorf("worst case %v exceeds the L2 soft timeout", worst)
		}
	}
	// A URL's own parameters win.
	c, _, err := (&RedisSettings{URL: "redis://127.0.0.1:1?max_retries=3&dial_timeout=2s"}).newClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if o := c.(*redis.Client).Options(); o.MaxRetries != 3 || o.DialTimeout != 2*time.Second {
		t.Errorf("URL parameters lost: %d, %v", o.MaxRetries, o.DialTimeout)
	}
}

// Every field of CacheSettings that hybrid.Options has too (same name, a
// plain kind: bool, number, string, duration) reaches the cache's options.
// A new setting that options forgets to copy fails here.
func TestCacheSettingsReachOptions(t *testing.T) {
	var s CacheSettings
	sv := reflect.ValueOf(&s).Elem()
	ot := reflect.TypeOf(hybrid.Options{})
	var names []string
	for i := range sv.NumField() {
		f := sv.Type().Field(i)
		of, ok := ot.FieldByName(f.Name)
		if !ok || of.Type != f.Type {
			continue
		}
		v := sv.Field(i)
		switch v.Kind() {
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int64:
			v.SetInt(7)
		case reflect.String:
			v.SetString("x:")
		default:
			continue
		}
		names = append(names, f.Name)
	}
	if len(names) < 10 {
		t.Fatalf("only %d fields compared: %v", len(names), names)
	}
	o := reflect.ValueOf(s.options("c"))
	for _, n := range names {
		if got, want := o.FieldByName(n).Interface(), sv.FieldByName(n).Interface(); got != want {
			t.Errorf("CacheSettings.%s = %v reaches hybrid.Options as %v", n, want, got)
		}
	}
}
