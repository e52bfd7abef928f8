package gate

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// MaxTimeout bounds every network gate reading, whatever an object written before the CRD's
// bounds says.
const MaxTimeout = 30 * time.Second

// DefaultPerPolicy is how many of one policy's gates are read at once.
const DefaultPerPolicy = 4

// Poller reads the network gates (webhook, Prometheus) of every policy apart from the reconcile
// pass, so that no policy's slow gate delays another policy's lever: each policy has its own
// bounded set of readers, a reading is stamped on the injected clock and kept where the pass
// reads it, and the policy is woken when a reading arrives. The pass never waits on the network.
type Poller struct {
	reader    *Reader
	clock     clock.PassiveClock
	perPolicy int
	wake      func(types.NamespacedName)
	ctx       context.Context

	mu       sync.Mutex
	policies map[types.NamespacedName]*policyReadings
}

// NewPoller reads gates with reader until ctx ends, stamps readings on clk, and calls wake with
// the policy whose reading arrived. perPolicy bounds one policy's concurrent reads (0: default).
func NewPoller(ctx context.Context, reader *Reader, clk clock.PassiveClock, perPolicy int, wake func(types.NamespacedName)) *Poller {
	if perPolicy <= 0 {
		perPolicy = DefaultPerPolicy
	}
	return &Poller{reader: reader, clock: clk, perPolicy: perPolicy, wake: wake, ctx: ctx,
		policies: map[types.NamespacedName]*policyReadings{}}
}

type policyReadings struct {
	uid   types.UID
	slots chan struct{}
	gates map[string]*gateReading
}

type gateReading struct {
	spec     string
	reading  Reading
	readAt   time.Time
	inFlight bool
}

// Result is what the poller holds for one gate.
type Result struct {
	Reading Reading
	// ReadAt is when the reading was taken (injected clock); zero when it never was.
	ReadAt time.Time
	// Pending is true while a reading is on its way.
	Pending bool
}

// IsNetwork reports whether a gate is read over the network (and so by the poller).
func IsNetwork(g v1alpha1.Gate) bool { return g.Webhook != nil || g.Prometheus != nil }

// Get returns what is held for each of the policy's network gates, by name, and asks for a fresh
// reading of every one whose last reading is older than interval, or missing, or of a gate whose
// spec changed. It never blocks on a reading.
func (p *Poller) Get(policy *v1alpha1.TrafficPolicy, gates []v1alpha1.Gate, interval time.Duration) map[string]Result {
	key := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name}
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.policies[key]
	if pr == nil || pr.uid != policy.UID {
		pr = &policyReadings{uid: policy.UID, slots: make(chan struct{}, p.perPolicy), gates: map[string]*gateReading{}}
		p.policies[key] = pr
	}
	out := map[string]Result{}
	for _, g := range gates {
		if !IsNetwork(g) {
			continue
		}
		spec := specOf(g)
		gr := pr.gates[g.Name]
		if gr == nil || gr.spec != spec {
			gr = &gateReading{spec: spec}
			pr.gates[g.Name] = gr
		}
		if !gr.inFlight && (gr.readAt.IsZero() || !now.Before(gr.readAt.Add(interval))) {
			gr.inFlight = true
			go p.read(key, pr, gr, policy.DeepCopy(), g)
		}
		out[g.Name] = Result{Reading: gr.reading, ReadAt: gr.readAt, Pending: gr.inFlight}
	}
	return out
}

// Forget drops what is held for a policy (it was deleted).
func (p *Poller) Forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.policies, key)
}

// read takes one reading in the policy's own pool, stores it and wakes the policy.
func (p *Poller) read(key types.NamespacedName, pr *policyReadings, gr *gateReading, policy *v1alpha1.TrafficPolicy, g v1alpha1.Gate) {
	select {
	case pr.slots <- struct{}{}:
	case <-p.ctx.Done():
		return
	}
	reading := p.reader.Read(p.ctx, policy, g)
	<-pr.slots
	if p.ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	gr.reading, gr.readAt, gr.inFlight = reading, p.clock.Now(), false
	current := p.policies[key] == pr && pr.gates[g.Name] == gr
	p.mu.Unlock()
	if current {
		p.wake(key)
	}
}

// specOf is a gate's spec as a comparable string: a changed gate is read afresh.
func specOf(g v1alpha1.Gate) string {
	b, _ := json.Marshal(g)
	return string(b)
}

// Timeout is how long one reading of a network gate may take (0 for other gates).
func Timeout(g v1alpha1.Gate) time.Duration {
	switch {
	case g.Webhook != nil:
		return min(durationOr(g.Webhook.Timeout, DefaultWebhookTimeout), MaxTimeout)
	case g.Prometheus != nil:
		return min(durationOr(g.Prometheus.Timeout, DefaultPrometheusTimeout), MaxTimeout)
	}
	return 0
}
