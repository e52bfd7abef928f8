// Package arm judges every lever a policy can pull before the incident, apart from the reconcile
// pass: whenever a pass saw the policy or its objects (so only on change), the levers are
// rendered for every object from the cache, and when what they would write differs from what was
// judged last, each write is submitted with server-side dry run. The API server (schema, CEL,
// size and label limits, admission) is the judge; its verdict is kept where the pass reads it,
// and the policy is woken when the verdict changes. At rest nothing is sent.
//
// The armer has a client of its own (its own request budget), so arming a large fleet never
// delays a lever; and a pass never waits for it.
package arm

import (
	"context"
	"reflect"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/pass"
)

// DefaultWorkers is how many policies are armed at once.
const DefaultWorkers = 2

// Armer arms policies in the background.
type Armer struct {
	pass    *pass.Pass
	reader  client.Reader
	wake    func(types.NamespacedName)
	workers int
	queue   workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu       sync.Mutex
	verdicts map[types.NamespacedName]held
}

type held struct {
	uid     types.UID
	verdict pass.Verdict
}

// New arms with p (whose client carries the armer's own request budget), reading policies from
// reader, and calls wake with a policy whose verdict changed.
func New(p *pass.Pass, reader client.Reader, workers int, wake func(types.NamespacedName)) *Armer {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](50*time.Millisecond, 30*time.Second)
	return &Armer{pass: p, reader: reader, wake: wake, workers: workers,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "floodgate-arm"}),
		verdicts: map[types.NamespacedName]held{}}
}

// Poke asks for the policy to be armed again if what its levers would write changed. It never
// blocks; pokes of one policy coalesce.
func (a *Armer) Poke(policy *v1alpha1.TrafficPolicy) {
	a.queue.Add(client.ObjectKeyFromObject(policy))
}

// Verdict is the last verdict on the policy's levers (false: none yet).
func (a *Armer) Verdict(policy *v1alpha1.TrafficPolicy) (pass.Verdict, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.verdicts[client.ObjectKeyFromObject(policy)]
	if !ok || h.uid != policy.UID {
		return pass.Verdict{}, false
	}
	return h.verdict, true
}

// Forget drops what is held for a policy that is gone.
func (a *Armer) Forget(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.verdicts, key)
}

// Start arms until ctx ends (a manager Runnable: only the leader arms).
func (a *Armer) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range a.workers {
		wg.Go(func() {
			for a.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	a.queue.ShutDown()
	wg.Wait()
	return nil
}

func (a *Armer) next(ctx context.Context) bool {
	key, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(key)
	switch err := a.arm(ctx, key); {
	case err == nil:
		a.queue.Forget(key)
	case ctx.Err() != nil:
	default:
		logf.FromContext(ctx).V(1).Info("arming again later", "policy", key.String(), "error", err.Error())
		a.queue.AddRateLimited(key)
	}
	return true
}

// arm renders the policy's levers and, when that is not what was judged last, has the API
// server judge them.
func (a *Armer) arm(ctx context.Context, key types.NamespacedName) error {
	var policy v1alpha1.TrafficPolicy
	if err := a.reader.Get(ctx, key, &policy); client.IgnoreNotFound(err) != nil {
		return err
	} else if err != nil || !policy.DeletionTimestamp.IsZero() {
		a.Forget(key)
		return nil
	}
	armament, err := a.pass.RenderLevers(ctx, &policy, core.Levers(policy.Spec))
	if err != nil {
		return err
	}
	if v, ok := a.Verdict(&policy); ok && v.Fingerprint == armament.Fingerprint {
		return nil
	}
	verdict, err := a.pass.DryRun(ctx, &policy, armament)
	if err != nil {
		return err // not judged now (pass.ErrNotJudged): again later, with a backoff
	}
	a.mu.Lock()
	prev, had := a.verdicts[key]
	a.verdicts[key] = held{uid: policy.UID, verdict: verdict}
	a.mu.Unlock()
	if !had || prev.uid != policy.UID || !sameVerdict(prev.verdict, verdict) {
		a.wake(key)
	}
	return nil
}

// sameVerdict reports whether two verdicts say the same of the levers. A verdict that differs
// only in the generation judged (a flip of the action: the levers are the same) wakes nothing,
// so a flip costs no second status write; the next pass files the newer generation.
func sameVerdict(a, b pass.Verdict) bool {
	a.Fingerprint, b.Fingerprint = "", ""
	a.Generation, b.Generation = 0, 0
	a.Requests, b.Requests = 0, 0
	return reflect.DeepEqual(a, b)
}
