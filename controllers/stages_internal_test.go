package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// TestTheErrorThatEndsAPassDecidesWhetherItIsRetried: a stalled pass (someone must act first)
// is not retried, a waiting one and any untyped error are, and the stages after the one that
// ended the pass do not run.
func TestTheErrorThatEndsAPassDecidesWhetherItIsRetried(t *testing.T) {
	failed := errors.New("connection refused")
	held := provider.NewProblem("Ingress api: cannot take the step", provider.ErrUnsupported)
	cases := []struct {
		name    string
		end     error
		retried bool
	}{
		{"every stage ran", nil, false},
		{"a ramp holds", stalled("ramp holds", held), false},
		{"a record a human must mend", stalled("the policy is kept until its objects can be restored", provider.ProblemOf(errors.New("corrupt"))), false},
		{"a failed write", waiting(failed), true},
		{"an untyped error", failed, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ran []string
			run := func(name string, err error) stage {
				return stage{name, func(context.Context, *passState) error { ran = append(ran, name); return err }}
			}
			policy := &v1alpha1.TrafficPolicy{}
			s := &passState{before: policy.DeepCopy(), policy: policy}
			r := &TrafficPolicyReconciler{}
			_, err := r.summarize(context.Background(), s, runStages(context.Background(), s,
				[]stage{run("first", nil), run("ends", c.end), run("after", nil)}))
			if (err != nil) != c.retried {
				t.Errorf("error %v, want retried=%v", err, c.retried)
			}
			if c.retried && !errors.Is(err, failed) {
				t.Errorf("the retried error %v does not carry %v", err, failed)
			}
			want := 3
			if c.end != nil {
				want = 2
			}
			if len(ran) != want {
				t.Errorf("stages run: %v", ran)
			}
		})
	}
}

// TestADeletedPolicyWaitsForACompanionFromItsFirstWaitOnTheControllersClock: the wait starts at
// the first pass that waits, is measured on the clock the passes are given, and starts afresh
// once forgotten.
func TestADeletedPolicyWaitsForACompanionFromItsFirstWaitOnTheControllersClock(t *testing.T) {
	var w companionWaits
	t0 := time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now  time.Time
		want time.Duration
	}{{t0, 0}, {t0.Add(10 * time.Second), 10 * time.Second}, {t0.Add(31 * time.Second), 31 * time.Second}} {
		if got := w.since("uid-a", c.now); got != c.want {
			t.Errorf("at %s: waited %s, want %s", c.now.Sub(t0), got, c.want)
		}
	}
	if got := w.since("uid-b", t0.Add(31*time.Second)); got != 0 {
		t.Errorf("another policy's wait starts at its own first pass: %s", got)
	}
	w.forget("uid-a")
	if got := w.since("uid-a", t0.Add(time.Minute)); got != 0 {
		t.Errorf("a forgotten wait starts afresh: %s", got)
	}
}
