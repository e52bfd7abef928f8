package confirm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/shed"
)

// ProbeTimeout bounds one probe.
const ProbeTimeout = 2 * time.Second

// Lever is what the pass asks to confirm: the lever in force and its probes.
type Lever struct {
	// Key is the lever's identity: a new key is a flip, and what came back before it no
	// longer counts.
	Key    string
	Action v1alpha1.Action
	// Policy is namespace/name, as the shed server echoes it.
	Policy string
	// Generation is the policy's generation when the lever was set: the shed server's answer
	// must be made from it or a later one.
	Generation int64
	// Token is the policy's probe token.
	Token    string
	Plan     Plan
	Settings Settings
	// AtRest: rounds stop once every probe lands (Normal: at rest, nothing is probed).
	AtRest bool
}

// Result is the last answer to one probe.
type Result struct {
	Answer Answer
	// At is when it came (zero: no answer since the lever was set).
	At    time.Time
	Lands bool
}

// Verdict is what is known of a lever in the data plane.
type Verdict struct {
	Key string
	// Since is when the lever was set (the flip), on the confirmer's clock.
	Since   time.Time
	Plan    Plan
	Results []Result // one per probe of Plan, in its order
	// ConfirmedAt is since when every probe lands (zero: not, or not yet).
	ConfirmedAt time.Time
	// TargetsConfirmedAt are, by target, since when every probe of the target lands.
	TargetsConfirmedAt map[string]time.Time
}

// Confirmer sends each policy's probes apart from the reconcile pass, never more than the
// policy's rate, and keeps what came back where the pass reads it (Verdict). A policy is woken
// when what it would say changes, never on every round, so a lever that stays confirmed writes
// nothing.
type Confirmer struct {
	ctx   context.Context
	clock clock.Clock
	dial  func(ctx context.Context, network, address string) (net.Conn, error)
	wake  func(types.NamespacedName)
	// Confirmed is told, once per lever, how long the data plane took to answer as it says.
	Confirmed func(action v1alpha1.Action, took time.Duration)

	mu       sync.Mutex
	policies map[types.NamespacedName]*policyProbes
	clients  map[string]*http.Client
}

type policyProbes struct {
	uid     types.UID
	lever   Lever
	verdict Verdict
	// version counts the changes of lever: a round's results are kept only if it did not change.
	version int
	changed chan struct{}
	running bool
	gone    bool
	// pastGrace: a probe does not land and the grace after the flip is over (what the policy
	// says changes when the grace ends, not only when an answer does).
	pastGrace bool
	// confirmedKey is the last lever confirmed (the metric counts each lever once).
	confirmedKey string
}

// New sends probes until ctx ends, on clk; dial connects (nil: a plain dialer, which gates'
// egress guard may replace); wake is called with a policy whose verdict changed.
func New(ctx context.Context, clk clock.Clock, dial func(ctx context.Context, network, address string) (net.Conn, error), wake func(types.NamespacedName)) *Confirmer {
	if dial == nil {
		dial = (&net.Dialer{Timeout: ProbeTimeout}).DialContext
	}
	return &Confirmer{ctx: ctx, clock: clk, dial: dial, wake: wake,
		policies: map[types.NamespacedName]*policyProbes{}, clients: map[string]*http.Client{}}
}

// Now is the confirmer's time, which its verdicts are stamped on.
func (c *Confirmer) Now() time.Time { return c.clock.Now() }

// Set asks for the lever to be confirmed. The same lever again changes nothing (its first
// generation is kept); another key is a flip (what came back before it is dropped, and a
// round starts now); the same key with other probes starts over, keeping the flip's time.
func (c *Confirmer) Set(key types.NamespacedName, uid types.UID, lever Lever) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pp := c.policies[key]
	if pp == nil || pp.uid != uid {
		if pp != nil {
			pp.gone = true
			signal(pp.changed)
		}
		pp = &policyProbes{uid: uid, changed: make(chan struct{}, 1)}
		c.policies[key] = pp
	}
	switch {
	case pp.lever.Key != lever.Key:
		pp.verdict = Verdict{Key: lever.Key, Since: c.clock.Now()}
	case reflect.DeepEqual(pp.lever.Plan, lever.Plan) && pp.lever.Token == lever.Token && pp.lever.Settings == lever.Settings:
		return
	default:
		lever.Generation = pp.lever.Generation
		pp.verdict = Verdict{Key: lever.Key, Since: pp.verdict.Since}
	}
	pp.lever, pp.version, pp.pastGrace = lever, pp.version+1, false
	pp.verdict.Plan = lever.Plan
	pp.verdict.Results = make([]Result, len(lever.Plan.Probes))
	signal(pp.changed)
	if !pp.running && len(lever.Plan.Probes) > 0 {
		pp.running = true
		go c.run(key, pp)
	}
}

// Verdict is what is known of the policy's lever (false: nothing was asked).
func (c *Confirmer) Verdict(key types.NamespacedName, uid types.UID) (Verdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pp := c.policies[key]
	if pp == nil || pp.uid != uid {
		return Verdict{}, false
	}
	v := pp.verdict
	v.Results = append([]Result(nil), v.Results...)
	v.TargetsConfirmedAt = make(map[string]time.Time, len(pp.verdict.TargetsConfirmedAt))
	for k, t := range pp.verdict.TargetsConfirmedAt {
		v.TargetsConfirmedAt[k] = t
	}
	return v, true
}

// Forget stops probing for a policy (it was deleted).
func (c *Confirmer) Forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pp := c.policies[key]; pp != nil {
		pp.gone = true
		signal(pp.changed)
		delete(c.policies, key)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run sends the policy's rounds: one now, then one per interval, until the lever has no probes,
// is at rest and confirmed, or the policy is forgotten.
func (c *Confirmer) run(key types.NamespacedName, pp *policyProbes) {
	for {
		c.mu.Lock()
		lever, version := pp.lever, pp.version
		done := pp.gone || len(lever.Plan.Probes) == 0 || lever.AtRest && !pp.verdict.ConfirmedAt.IsZero()
		if done {
			pp.running = false
		}
		c.mu.Unlock()
		if done || c.ctx.Err() != nil {
			return
		}
		// Drop a signal of a change this round already has.
		select {
		case <-pp.changed:
		default:
		}
		start := c.clock.Now()
		results, complete := c.round(pp, lever, version)
		c.mu.Lock()
		woke, confirmed, took := false, false, time.Duration(0)
		if complete && pp.version == version && !pp.gone {
			now := c.clock.Now()
			woke, confirmed = pp.note(results, now)
			took = now.Sub(pp.verdict.Since)
		}
		c.mu.Unlock()
		if confirmed && c.Confirmed != nil {
			c.Confirmed(lever.Action, took)
		}
		if woke {
			c.wake(key)
		}
		if c.atRest(pp, version) {
			return
		}
		wait := c.interval(pp, lever) - c.clock.Since(start)
		if wait > 0 {
			select {
			case <-c.clock.After(wait):
			case <-pp.changed:
			case <-c.ctx.Done():
				return
			}
		}
	}
}

// MinUnconfirmedInterval is the shortest time between two rounds of a lever not confirmed yet.
const MinUnconfirmedInterval = 200 * time.Millisecond

// interval is the time from one round's start to the next: within the grace after a flip and
// until the lever is confirmed, a fifth of the lever's interval (at least
// MinUnconfirmedInterval), so a flip is confirmed soon after the data plane takes it; else the
// interval. Within a round, probes keep to the policy's rate.
func (c *Confirmer) interval(pp *policyProbes, lever Lever) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pp.verdict.ConfirmedAt.IsZero() && c.clock.Since(pp.verdict.Since) < lever.Settings.Grace {
		return max(lever.Settings.Interval/5, MinUnconfirmedInterval)
	}
	return lever.Settings.Interval
}

// atRest reports, and then marks the rounds stopped, whether the lever (of version) is at rest
// and confirmed: nothing more is probed.
func (c *Confirmer) atRest(pp *policyProbes, version int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pp.version != version || !pp.lever.AtRest || pp.verdict.ConfirmedAt.IsZero() {
		return false
	}
	pp.running = false
	return true
}

// note keeps a round's results; it reports whether what the policy would say changed, and
// whether the lever was confirmed for the first time. Called with c.mu held.
func (pp *policyProbes) note(results []Result, now time.Time) (changed, firstConfirmed bool) {
	v := &pp.verdict
	for i, r := range results {
		prev := v.Results[i]
		if prev.At.IsZero() || prev.Lands != r.Lands || prev.Answer.String() != r.Answer.String() {
			changed = true
		}
		v.Results[i] = r
	}
	all := true
	byTarget := map[string]bool{}
	for i, p := range v.Plan.Probes {
		lands := v.Results[i].Lands
		if _, ok := byTarget[p.Target]; !ok {
			byTarget[p.Target] = true
		}
		byTarget[p.Target] = byTarget[p.Target] && lands
		all = all && lands
	}
	if v.TargetsConfirmedAt == nil {
		v.TargetsConfirmedAt = map[string]time.Time{}
	}
	for t, ok := range byTarget {
		_, was := v.TargetsConfirmedAt[t]
		switch {
		case ok && !was:
			v.TargetsConfirmedAt[t], changed = now, true
		case !ok && was:
			delete(v.TargetsConfirmedAt, t)
			changed = true
		}
	}
	if past := !all && now.Sub(v.Since) >= pp.lever.Settings.Grace; past != pp.pastGrace {
		pp.pastGrace, changed = past, true
	}
	switch {
	case all && v.ConfirmedAt.IsZero():
		firstConfirmed = !pp.confirmedOnce()
		v.ConfirmedAt, changed = now, true
	case !all && !v.ConfirmedAt.IsZero():
		v.ConfirmedAt, changed = time.Time{}, true
	}
	return changed, firstConfirmed
}

// confirmedOnce reports whether the lever was confirmed before (the metric counts the first).
func (pp *policyProbes) confirmedOnce() bool {
	if pp.lever.Key == "" {
		return false
	}
	was := pp.lever.Key == pp.confirmedKey
	pp.confirmedKey = pp.lever.Key
	return was
}

// round sends every probe of the lever, paced at its rate; complete is false when the lever
// changed meanwhile (what came back is then not kept).
func (c *Confirmer) round(pp *policyProbes, lever Lever, version int) ([]Result, bool) {
	out := make([]Result, len(lever.Plan.Probes))
	pace := time.Second / time.Duration(max(lever.Settings.PerSecond, 1))
	for i, p := range lever.Plan.Probes {
		if i > 0 {
			select {
			case <-c.clock.After(pace):
			case <-c.ctx.Done():
				return nil, false
			}
		}
		c.mu.Lock()
		stale := pp.version != version || pp.gone
		c.mu.Unlock()
		if stale {
			return nil, false
		}
		a := c.send(p, lever.Token)
		out[i] = Result{Answer: a, At: c.clock.Now(), Lands: Lands(p, a, lever.Policy, lever.Generation)}
	}
	return out, true
}

// send sends one probe and reads what came back (the body is not read).
func (c *Confirmer) send(p Probe, token string) Answer {
	ctx, cancel := context.WithTimeout(c.ctx, ProbeTimeout)
	defer cancel()
	u, err := url.Parse(p.Address)
	if err != nil {
		return Answer{Err: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Scheme+"://"+p.Host+p.Path, nil)
	if err != nil {
		return Answer{Err: err.Error()}
	}
	req.Header.Set(shed.ProbeTokenHeader, token)
	req.Header.Set("User-Agent", "floodgate-probe")
	if p.Header != "" && p.Region != "" {
		req.Header.Set(p.Header, p.Region)
	}
	res, err := c.client(u).Do(req)
	if err != nil {
		return Answer{Err: errorOf(err)}
	}
	defer res.Body.Close()
	return AnswerOf(res)
}

// errorOf is why a probe got no answer, without the request's URL (the target's host is in the
// probe already).
func errorOf(err error) string {
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// client is the HTTP client of a data plane's address: every connection goes to the address
// whatever host the request names (TLS then checks the target's host), redirects are answers.
func (c *Confirmer) client(u *url.URL) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc := c.clients[u.Host+u.Scheme]; hc != nil {
		return hc
	}
	hostPort := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		hostPort = net.JoinHostPort(u.Hostname(), port)
	}
	dial := c.dial
	hc := &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         func(ctx context.Context, network, _ string) (net.Conn, error) { return dial(ctx, network, hostPort) },
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.clients[u.Host+u.Scheme] = hc
	return hc
}
