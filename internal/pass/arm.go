package pass

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// Armament is every write each lever of a policy would make, rendered from the objects as they
// are now (reads only, from the cache): what the API server is asked to judge, by server-side dry
// run, before the incident.
type Armament struct {
	// Generation is the policy's generation the levers were rendered from.
	Generation int64
	// Fingerprint identifies the writes: an armament with the same fingerprint was judged
	// already, and is not sent again (zero requests at rest).
	Fingerprint string
	// Targets and Autoscalers count the objects that exist and take the levers.
	Targets, Autoscalers int

	levers    []string
	writes    []leverWrite
	companion []string // the levers that need the policy's shed Service
}

// leverWrite is one lever's write to one object.
type leverWrite struct {
	lever  string
	obj    *object
	change provider.Change
	key    string // the object and what is written to it: equal keys are one judgement
}

// Refusal is a write the API server refused in a dry run: the lever, the object, and the API
// server's own message.
type Refusal struct {
	Lever   string
	Ref     provider.Ref
	Role    provider.Role
	Message string
}

// Verdict is what the API server said of an Armament.
type Verdict struct {
	Generation           int64
	Fingerprint          string
	Targets, Autoscalers int
	// Levers are the levers judged, in order.
	Levers []string
	// Refusals are the writes refused, in lever order; none when every lever is armed.
	Refusals []Refusal
	// Objects says, per object (Ref.Key), whether every lever's write to it was accepted.
	Objects map[string]bool
	// Requests is how many writes were submitted in dry run.
	Requests int
}

// Armed reports whether the API server accepted every lever's every write.
func (v Verdict) Armed() bool { return len(v.Refusals) == 0 }

// ErrNotJudged wraps what keeps a dry run from a verdict (a stale read, the API server out of
// reach, its rate limit): the armament is judged again later, and nothing is concluded.
var ErrNotJudged = errors.New("the levers could not be judged now")

// RenderLevers renders, for each lever, every write to every object the policy names or
// changed, reading only. A render the pass itself could not make is the pass's problem to
// report, not the API server's: it is left out.
func (r *Pass) RenderLevers(ctx context.Context, policy *v1alpha1.TrafficPolicy, levers []core.NamedKnobs) (Armament, error) {
	a := Armament{Generation: policy.Generation}
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s %s %d\n", policy.Namespace, policy.Name, policy.UID, policy.Generation)
	counted := false
	for _, lever := range levers {
		a.levers = append(a.levers, lever.Name)
		obs, err := r.Observe(ctx, policy, lever.Knobs)
		if err != nil {
			return a, err
		}
		sheds := false
		for _, obj := range obs.objects {
			if !counted && obj.obs.Found && !obj.leftover {
				if obj.role == provider.Target {
					a.Targets++
				} else {
					a.Autoscalers++
				}
			}
			ok, d := decide(obj, desired(policy, obj, lever.Knobs))
			if !ok {
				continue
			}
			ch, err := obj.provider.Render(policy, obj.obs, d, recordCopy(policy, obj))
			if err != nil {
				continue
			}
			if obj.role == provider.Target && obj.obs.Found && provider.ShedsThroughBackend(obj.provider, policy, obj.obs, d) {
				sheds = true
			}
			key, err := writeKey(obj.ref, ch)
			if err != nil {
				return a, err
			}
			fmt.Fprintf(h, "%s %s\n", lever.Name, key)
			a.writes = append(a.writes, leverWrite{lever: lever.Name, obj: obj, change: ch, key: key})
		}
		counted = true
		if sheds && policy.DeletionTimestamp.IsZero() {
			fmt.Fprintf(h, "%s shed companion\n", lever.Name)
			a.companion = append(a.companion, lever.Name)
		}
	}
	a.Fingerprint = hex.EncodeToString(h.Sum(nil))
	return a, nil
}

// writeKey identifies an object and what a change writes to it (its wanted form but for what the
// API server keeps for itself, its companions, what it removes).
func writeKey(ref provider.Ref, ch provider.Change) (string, error) {
	var after map[string]any
	if ch.After != nil && ch.Before != nil && !equality.Semantic.DeepEqual(ch.Before.Object, ch.After.Object) {
		after = ch.After.DeepCopy().Object
		unstructured.RemoveNestedField(after, "status")
		unstructured.RemoveNestedField(after, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(after, "metadata", "managedFields")
	}
	var ensure, remove []any
	for _, c := range ch.Ensure {
		ensure = append(ensure, c.Desired)
	}
	for _, o := range ch.Remove {
		remove = append(remove, o.GetName())
	}
	b, err := json.Marshal([]any{after, ensure, remove})
	if err != nil {
		return "", fmt.Errorf("fingerprinting the write to %s: %w", ref, err)
	}
	sum := sha256.Sum256(b)
	return ref.Key() + "@" + hex.EncodeToString(sum[:8]), nil
}

// DryRunParallelism is how many dry-run writes one armament sends at once.
const DryRunParallelism = 8

// DryRun submits every write of the armament with server-side dry run (dryRun=All): schema,
// CEL rules, size and label limits and admission webhooks judge it, and nothing is persisted. A
// write the same object already had judged in this armament (two levers writing the same) is
// sent once. Companions are created in dry run too. An error that is no verdict (a stale read,
// a timeout, the API server's rate limit) is ErrNotJudged.
func (r *Pass) DryRun(ctx context.Context, policy *v1alpha1.TrafficPolicy, a Armament) (Verdict, error) {
	v := Verdict{Generation: a.Generation, Fingerprint: a.Fingerprint, Targets: a.Targets, Autoscalers: a.Autoscalers,
		Levers: a.levers, Objects: map[string]bool{}}
	dry := client.NewDryRunClient(r.Client)
	var (
		mu       sync.Mutex
		judged   = map[string]bool{}
		refusals = map[int]Refusal{} // by the write's index, for lever order
		notNow   []error
		group    errgroup.Group
	)
	group.SetLimit(DryRunParallelism)
	judge := func(i int, lever string, ref provider.Ref, role provider.Role, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			if _, seen := v.Objects[ref.Key()]; !seen {
				v.Objects[ref.Key()] = true
			}
		case Refused(err):
			refusals[i] = Refusal{Lever: lever, Ref: ref, Role: role, Message: err.Error()}
			v.Objects[ref.Key()] = false
		default:
			notNow = append(notNow, err)
		}
	}
	for i, w := range a.writes {
		if judged[w.key] {
			continue
		}
		judged[w.key] = true
		v.Requests++
		group.Go(func() error {
			_, err := provider.Write(ctx, dry, policy, w.change)
			judge(i, w.lever, w.obj.ref, w.obj.role, err)
			return nil
		})
	}
	if len(a.companion) > 0 {
		i := len(a.writes)
		v.Requests++
		group.Go(func() error {
			_, err := r.Shed.EnsureCompanion(ctx, dry, policy)
			judge(i, a.companion[0], shedServiceRef(policy), provider.Target, err)
			return nil
		})
	}
	_ = group.Wait()
	if len(notNow) > 0 {
		return v, fmt.Errorf("%w: %w", ErrNotJudged, errors.Join(notNow...))
	}
	order := make([]int, 0, len(refusals))
	for i := range refusals {
		order = append(order, i)
	}
	sort.Ints(order)
	for _, i := range order {
		v.Refusals = append(v.Refusals, refusals[i])
	}
	delete(v.Objects, shedServiceRef(policy).Key())
	return v, nil
}

// shedServiceRef names the policy's shed Service, for refusals.
func shedServiceRef(policy *v1alpha1.TrafficPolicy) provider.Ref {
	return provider.Ref{Kind: "Service", Name: shed.CompanionServiceName(policy.Name)}
}

// Refused reports whether a write failed because the API server judged it (invalid, too large,
// refused by admission or RBAC): the real write would be refused the same way. A conflict, a
// missing object, a timeout or a rate limit is no verdict on the write.
func Refused(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	switch code := status.Status().Code; {
	case code == 404, code == 408, code == 409, code == 429:
		return false
	default:
		return code >= 400 && code < 500
	}
}

// NoteArmed files a verdict on the policy's levers into its status: the Armed condition, its
// observedGeneration the generation judged, and on each listed target and autoscaler whether its
// writes were accepted. nil is no verdict yet.
func NoteArmed(policy *v1alpha1.TrafficPolicy, v *Verdict) {
	a, generation := core.Arming{}, policy.Generation
	if v != nil {
		a = core.Arming{Judged: true, Levers: v.Levers, Targets: v.Targets, Autoscalers: v.Autoscalers}
		for _, r := range v.Refusals {
			a.Refusals = append(a.Refusals, fmt.Sprintf("%s on %s: %s", r.Lever, r.Ref, r.Message))
		}
		generation = v.Generation
	}
	c := core.ArmedCondition(a)
	c.ObservedGeneration = generation
	if prev := meta.FindStatusCondition(policy.Status.Conditions, v1alpha1.ConditionArmed); prev != nil &&
		prev.Status == c.Status && prev.Reason == c.Reason && prev.Message == c.Message && prev.ObservedGeneration > 0 {
		// The same verdict at a later generation (a flip: the levers are the same) is not a
		// status write of its own: observedGeneration is the generation the verdict was reached.
		c.ObservedGeneration = prev.ObservedGeneration
	}
	meta.SetStatusCondition(&policy.Status.Conditions, c)
	armed := func(ref provider.Ref) (*bool, string) {
		if v == nil {
			return nil, ""
		}
		ok, judged := v.Objects[ref.Key()]
		if !judged {
			return nil, ""
		}
		for _, r := range v.Refusals {
			if r.Ref == ref {
				return &ok, r.Lever + ": " + r.Message
			}
		}
		return &ok, ""
	}
	for i := range policy.Status.Targets {
		t := &policy.Status.Targets[i]
		t.Armed, t.ArmedMessage = armed(targetRef(t.Group, string(t.Kind), t.Name))
	}
	for i := range policy.Status.Autoscalers {
		s := &policy.Status.Autoscalers[i]
		s.Armed, s.ArmedMessage = armed(autoscalerRef(s.APIGroup, string(s.Kind), s.Name))
	}
}
