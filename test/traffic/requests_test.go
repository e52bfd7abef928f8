package traffic

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"floodgate.dev/floodgate/test/trafficenv"
)

// answer, request and app are the environment's (trafficenv), in the suite's words.
type (
	answer  = trafficenv.Answer
	request = trafficenv.Request
)

const app = trafficenv.App

func get(host string) request { return trafficenv.Get(host) }

// do sends one request through the suite's Traefik.
func do(r request) answer { return trafficenv.Do(proxy, r) }

// shedAnswer is the shed server's answer with a status code and a Retry-After.
func shedAnswer(code, retryAfter int) answer { return trafficenv.ShedAnswer(code, retryAfter) }

// tally counts answers.
type tally map[answer]int

func (t tally) String() string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, t[answer(k)]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// total is how many requests the tally counts.
func (t tally) total() int {
	n := 0
	for _, c := range t {
		n += c
	}
	return n
}

// send sends n requests through the proxy and counts what they got.
func send(r request, n int) tally {
	got := tally{}
	for range n {
		got[do(r)]++
	}
	return got
}

// settle waits, up to a minute, until a batch of 20 requests all get want: the proxy has
// programmed what Floodgate wrote. Then the counts that follow measure a settled data plane.
func settle(t *testing.T, r request, want answer) {
	t.Helper()
	settleWhen(t, r, fmt.Sprintf("all got %q", want), func(got tally) bool { return got[want] == got.total() })
}

// settleWhen waits, up to a minute, until a batch of 20 requests satisfies settled (what says it
// in a failure).
func settleWhen(t *testing.T, r request, what string, settled func(tally) bool) {
	t.Helper()
	var last tally
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last = send(r, 20); settled(last) {
			return
		}
	}
	t.Fatalf("requests to %s%s %v never %s within a minute; the last 20 got %v", r.Host, r.Path, r.Header, what, last)
}

// all sends n requests and fails unless every one got want.
func all(t *testing.T, r request, n int, want answer) {
	t.Helper()
	if got := send(r, n); got[want] != n {
		t.Fatalf("%d requests to %s%s %v: want all %q, got %v", n, r.Host, r.Path, r.Header, want, got)
	}
}

// during runs flip while a client sends requests in a loop (one at a time, at most 20,000 and for
// at most two minutes), then waits until they all get settled, and fails if any request in
// between got something other than an answer in allowed: a connection error, a 404 or a 502
// mid-flip is what a responder must never cause.
func during(t *testing.T, r request, allowed []answer, settled answer, flip func()) {
	t.Helper()
	duringUntil(t, r, allowed, func() { settle(t, r, settled) }, flip)
}

// duringUntil is during, settled when settle returns.
func duringUntil(t *testing.T, r request, allowed []answer, settle func(), flip func()) {
	t.Helper()
	stop, done := make(chan struct{}), make(chan tally)
	go func() {
		got := tally{}
		for deadline := time.Now().Add(2 * time.Minute); got.total() < 20000 && time.Now().Before(deadline); {
			select {
			case <-stop:
				done <- got
				return
			default:
				got[do(r)]++
			}
		}
		<-stop
		done <- got
	}()
	var got tally
	stopLoop := sync.OnceFunc(func() { close(stop); got = <-done })
	defer stopLoop() // a flip or a settle that fails still ends the loop
	flip()
	settle()
	stopLoop()
	for a, n := range got {
		if !slices.Contains(allowed, a) {
			t.Errorf("during the flip, %d of %d requests got %q (only %q are answers): %v", n, got.total(), a, allowed, got)
		}
	}
	t.Logf("during the flip: %v", got)
}
