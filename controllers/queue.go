package controllers

import (
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// clockedQueue times RequeueAfter (AddAfter) on an injected clock, so a fake clock drives step
// boundaries and releases: advancing it 10 minutes fires every requeue due within them, and
// nothing sleeps. Error backoff (AddRateLimited) stays on the real clock, so a failed write is
// retried without anyone advancing time.
type clockedQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	clock clock.WithDelayedExecution
}

// AddAfter adds the item once the injected clock has advanced by d.
func (q *clockedQueue) AddAfter(item reconcile.Request, d time.Duration) {
	if d <= 0 {
		q.Add(item)
		return
	}
	q.clock.AfterFunc(d, func() { q.Add(item) })
}

// newClockedQueue builds the controller's queue on the injected clock.
func newClockedQueue(c clock.WithDelayedExecution) func(string, workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	return func(_ string, rl workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		return &clockedQueue{
			TypedRateLimitingInterface: workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[reconcile.Request]{}),
			clock:                      c,
		}
	}
}
