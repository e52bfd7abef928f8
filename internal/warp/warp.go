// Package warp is a time-warped clock for drills and tests: a fake clock that only moves when
// told to, and that tells the controller when it did, so every policy is looked at again at the
// new time and nothing ever sleeps through a hold.
package warp

import (
	"sync"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// Clock is a fake clock with subscribers.
type Clock struct {
	*clocktesting.FakeClock
	mu   sync.Mutex
	subs []chan event.GenericEvent
}

// New starts a clock at t.
func New(t time.Time) *Clock {
	return &Clock{FakeClock: clocktesting.NewFakeClock(t)}
}

// Advance moves the clock forward by d, fires every timer due, and notifies the subscribers.
func (c *Clock) Advance(d time.Duration) {
	c.Step(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.subs {
		select {
		case ch <- event.GenericEvent{}:
		default: // a notification is already pending; one is enough
		}
	}
}

// Subscribe returns a channel that receives an event after every Advance.
func (c *Clock) Subscribe() <-chan event.GenericEvent {
	ch := make(chan event.GenericEvent, 1)
	c.mu.Lock()
	c.subs = append(c.subs, ch)
	c.mu.Unlock()
	return ch
}
