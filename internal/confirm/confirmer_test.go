package confirm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/shed"
)

// app is a data plane that admits everything to an application answering 200, and counts the
// probes it got (with their token).
func app(t *testing.T) (address string, probes *atomic.Int64) {
	probes = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(shed.ProbeTokenHeader) == "token" && r.Host == "web.example.com" {
			probes.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, probes
}

// eventually polls cond until it holds, for at most 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

func leverTo(address, key string, atRest bool) Lever {
	return Lever{Key: key, Action: v1alpha1.ActionNormal, Policy: "edge/p", Token: "token", AtRest: atRest,
		Settings: Settings{Interval: time.Second, Grace: 10 * time.Second, PerSecond: 10},
		Plan:     Plan{Probes: []Probe{{Target: "Ingress/web", Address: address, Host: "web.example.com", Path: "/", Expect: ExpectAdmitted}}}}
}

func start(t *testing.T) (*Confirmer, *clocktesting.FakeClock, *atomic.Int64, *atomic.Int64) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC))
	wakes, confirmed := &atomic.Int64{}, &atomic.Int64{}
	c := New(ctx, clk, nil, func(types.NamespacedName) { wakes.Add(1) })
	c.Confirmed = func(_ v1alpha1.Action, took time.Duration) {
		if took != 0 {
			t.Errorf("took %s on a clock that did not move", took)
		}
		confirmed.Add(1)
	}
	return c, clk, wakes, confirmed
}

var key = types.NamespacedName{Namespace: "edge", Name: "p"}

func TestNormalIsProbedUntilConfirmedAndThenNotAtAll(t *testing.T) {
	c, clk, wakes, confirmed := start(t)
	address, probes := app(t)
	c.Set(key, "uid", leverTo(address, "normal", true))
	eventually(t, "the first round confirms it", func() bool { v, _ := c.Verdict(key, "uid"); return !v.ConfirmedAt.IsZero() })
	if wakes.Load() != 1 || confirmed.Load() != 1 || probes.Load() != 1 {
		t.Fatalf("wakes %d, confirmed %d, probes %d; want 1 each", wakes.Load(), confirmed.Load(), probes.Load())
	}
	v, _ := c.Verdict(key, "uid")
	if _, ok := v.TargetsConfirmedAt["Ingress/web"]; !ok {
		t.Fatalf("the target is not confirmed: %+v", v)
	}
	eventually(t, "the rounds stop", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.policies[key].running
	})
	for range 5 {
		clk.Step(time.Second)
	}
	if probes.Load() != 1 {
		t.Fatalf("%d probes at rest after the confirmation, want none more", probes.Load()-1)
	}
	c.Set(key, "uid", leverTo(address, "normal", true)) // the same lever again
	if probes.Load() != 1 || wakes.Load() != 1 {
		t.Fatalf("the same lever again sent %d probes and woke %d times", probes.Load()-1, wakes.Load()-1)
	}
}

func TestALeverInForceIsProbedEveryIntervalAndWakesThePolicyOnlyWhenAnAnswerChanges(t *testing.T) {
	c, clk, wakes, _ := start(t)
	address, probes := app(t)
	c.Set(key, "uid", leverTo(address, "shed", false))
	eventually(t, "the first round", func() bool { return probes.Load() == 1 })
	for n := int64(2); n <= 4; n++ {
		eventually(t, "the round waits for its interval", clk.HasWaiters)
		clk.Step(time.Second)
		eventually(t, "the next round", func() bool { return probes.Load() == n })
	}
	eventually(t, "the round waits for its interval", clk.HasWaiters)
	if wakes.Load() != 1 {
		t.Fatalf("woken %d times by rounds that found the same", wakes.Load())
	}
	c.Forget(key)
	clk.Step(time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := probes.Load(); n != 4 {
		t.Fatalf("%d probes after the policy was forgotten", n-4)
	}
}

func TestAFlipDropsWhatCameBackBeforeIt(t *testing.T) {
	c, _, _, confirmed := start(t)
	address, _ := app(t)
	c.Set(key, "uid", leverTo(address, "normal", true))
	eventually(t, "confirmed", func() bool { v, _ := c.Verdict(key, "uid"); return !v.ConfirmedAt.IsZero() })
	refused := leverTo("http://127.0.0.1:1", "shed", false) // nothing listens on port 1
	refused.Plan.Probes[0].Expect = ExpectShed
	c.Set(key, "uid", refused)
	if v, _ := c.Verdict(key, "uid"); v.Key != "shed" || !v.ConfirmedAt.IsZero() || !v.Results[0].At.IsZero() {
		t.Fatalf("after the flip the verdict still holds the old lever's answers: %+v", v)
	}
	eventually(t, "the new lever's answer", func() bool { v, _ := c.Verdict(key, "uid"); return !v.Results[0].At.IsZero() })
	v, _ := c.Verdict(key, "uid")
	if v.Results[0].Lands || !strings.Contains(v.Results[0].Answer.String(), "no answer") {
		t.Fatalf("a data plane that is down: %+v", v.Results[0])
	}
	if confirmed.Load() != 1 {
		t.Fatalf("confirmed %d times", confirmed.Load())
	}
	if _, ok := c.Verdict(key, "another-uid"); ok {
		t.Fatal("a verdict of another policy of the same name")
	}
}

func TestALeverNotConfirmedYetIsProbedEveryFifthOfItsIntervalWithinTheGrace(t *testing.T) {
	c, clk, _, _ := start(t)
	var probes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		probes.Add(1)
		w.WriteHeader(http.StatusOK) // the app: a lever that sheds is not in force yet
	}))
	t.Cleanup(srv.Close)
	shedding := leverTo(srv.URL, "shed", false)
	shedding.Plan.Probes[0].Expect, shedding.Plan.Probes[0].Code = ExpectShed, 503
	c.Set(key, "uid", shedding)
	eventually(t, "the first round", func() bool { return probes.Load() == 1 })
	eventually(t, "the round waits", clk.HasWaiters)
	clk.Step(MinUnconfirmedInterval - time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if probes.Load() != 1 {
		t.Fatal("a round came before a fifth of the interval")
	}
	clk.Step(time.Millisecond)
	eventually(t, "the next round a fifth of the interval later", func() bool { return probes.Load() == 2 })
	// Past the grace, a lever the data plane does not confirm is probed once an interval.
	eventually(t, "the round waits", clk.HasWaiters)
	clk.Step(10 * time.Second)
	eventually(t, "a round past the grace", func() bool { return probes.Load() == 3 })
	eventually(t, "the round waits", clk.HasWaiters)
	clk.Step(MinUnconfirmedInterval)
	time.Sleep(20 * time.Millisecond)
	if probes.Load() != 3 {
		t.Fatal("past the grace, a round came a fifth of the interval after the last")
	}
	clk.Step(time.Second - MinUnconfirmedInterval)
	eventually(t, "the next round an interval later", func() bool { return probes.Load() == 4 })
}
