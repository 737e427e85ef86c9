package main

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"
)

// readyTimeout bounds the check of one cache's distributed tier.
const readyTimeout = 2 * time.Second

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// cacheReadiness is one cache's part of /readyz.
type cacheReadiness struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// L2 is "none" (memory only), "ok", or why the tier (or the
	// backplane's Redis) is not usable.
	L2 string `json:"l2"`
	// CircuitOpen reports that the cache skips its distributed tier.
	CircuitOpen bool `json:"circuit_open"`
	// RecoveryPending are changes waiting for the tier to come back.
	RecoveryPending int `json:"recovery_pending"`
	// Backplane is "none", or the tier the changes travel on ("redis",
	// "etcd", "postgres"), whose subscription Ping and BackplaneSubscribed
	// check.
	Backplane          string `json:"backplane"`
	BackplaneErrors    uint64 `json:"backplane_errors"`
	BackplaneGaps      uint64 `json:"backplane_gaps"`
	BackplaneReceived  uint64 `json:"backplane_received"`
	BackplanePublished uint64 `json:"backplane_published"`
}

type readiness struct {
	Ready  bool             `json:"ready"`
	Reason string           `json:"reason,omitempty"`
	Caches []cacheReadiness `json:"caches"`
}

// readyz checks every cache's distributed tier (a write, read and delete
// of a probe key) and circuit breaker.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := readiness{Ready: true}
	if s.stopping.Load() {
		rd.Ready, rd.Reason = false, "shutting down"
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.caches {
		wg.Go(func() {
			cr := c.readiness(r.Context())
			mu.Lock()
			rd.Caches = append(rd.Caches, cr)
			if !cr.Ready {
				rd.Ready = false
				if rd.Reason == "" {
					rd.Reason = "cache " + cr.Name + ": " + cr.L2
				}
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(rd.Caches, func(a, b cacheReadiness) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	if !s.serverAuthorized(r) {
		// Open to probes, but the caches' names and their tiers' errors
		// only for a caller that may list the caches.
		rd.Caches = nil
		if !rd.Ready && !s.stopping.Load() {
			rd.Reason = "a cache's distributed tier or backplane is not usable (details with the server's token)"
		}
	}
	writeJSON(w, status, rd)
}

func (c *cache) readiness(ctx context.Context) cacheReadiness {
	cr := cacheReadiness{Name: c.name, Ready: true, L2: "none", Backplane: "none"}
	if !c.hasL2 && !c.hasBackplane {
		return cr
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if c.hasL2 {
		cr.L2 = "ok"
	}
	if c.hasBackplane {
		cr.Backplane = c.tier
	}
	if err := c.c.Ping(ctx); err != nil {
		cr.Ready, cr.L2 = false, "unavailable: "+trimPrefix(err)
	}
	if c.hasBackplane && !c.c.BackplaneSubscribed() {
		cr.Ready, cr.Backplane = false, "not subscribed yet (changes made on other nodes are not heard)"
	}
	cr.CircuitOpen = c.l2Open(ctx)
	if cr.CircuitOpen && cr.Ready {
		cr.Ready, cr.L2 = false, "circuit breaker open after errors (the tier answers again; the next probe closes it)"
	}
	st := c.c.Stats()
	cr.RecoveryPending = st.RecoveryPending
	cr.BackplaneErrors, cr.BackplaneGaps = st.BackplaneErrors, st.BackplaneGaps
	cr.BackplaneReceived, cr.BackplanePublished = st.BackplaneReceived, st.BackplanePublished
	return cr
}
