package pass

import (
	"context"
	"errors"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// decide says what one object gets under the knobs in force: whether anything is written to it,
// and what. Another policy's record or a companion that is not ours keeps a target untouched; a
// target that is gone only loses its companions; a target that cannot take an allowlist is given
// none (full traffic) rather than a different one; an autoscaler with any problem is left alone.
func decide(obj *object, d provider.Desired) (write bool, _ provider.Desired) {
	o := obj.obs
	switch {
	case obj.provider == nil:
		return false, d
	case slices.ContainsFunc(o.Problems, provider.InTheWay):
		return false, d
	case obj.role == provider.Autoscaler:
		return o.Found && len(o.Problems) == 0 || obj.leftover && o.Found && len(Corrupt(o.Problems)) == 0, d
	case !o.Found:
		return true, provider.Desired{}
	case slices.ContainsFunc(o.Problems, provider.Unsupported):
		// A setting the target cannot take never lifts the lever in force: the target keeps what
		// it carries, as a ramp step that cannot be taken holds (a tightened allowlist refused
		// must not admit everyone).
		return false, d
	}
	return true, d
}

// keptUnsupported says, on each problem of a setting obj cannot take, that it keeps the lever in
// force as it was.
func keptUnsupported(obj *object) {
	for i, p := range obj.obs.Problems {
		if provider.Unsupported(p) && !strings.HasSuffix(p.Message, keptAsItWas) {
			obj.obs.Problems[i].Message += keptAsItWas
		}
	}
}

// keptAsItWas ends the message of a setting a target cannot take.
const keptAsItWas = "; the target keeps the lever in force as it was"

// WriteParallelism is how many objects one pass writes at once; the manager's client-side
// budget (--kube-api-qps) and its APF priority level bound the rate.
const WriteParallelism = 32

// write is one object's part of a pass: what it gets, and how its write went.
type write struct {
	obj    *object
	d      provider.Desired
	change provider.Change
	err    error
	// throughBackend is true when the change sends shed requests to the shed backend.
	throughBackend bool
}

// Apply writes the knobs to every observed object that can take them, and puts back the
// leftovers. A problem on one object never keeps the others from their knobs: it is reported on
// that object (outcome.Problems and its status entry). Objects are written in parallel (up to
// WriteParallelism); failures are collected and returned together, after every object was tried.
func (r *Pass) Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs, obs Observation, outcome *core.Outcome) error {
	var errs []error
	entries := statusEntries{}
	writes := make([]*write, len(obs.objects))
	shedding, covering := false, false
	for i, obj := range obs.objects {
		if obj.role == provider.Target && !obj.leftover && obj.obs != nil && obj.obs.Found {
			covering = true
		}
		ok, d := decide(obj, desired(policy, obj, k))
		if !ok {
			if obj.obs != nil && obj.obs.Found {
				keptUnsupported(obj)
			}
			continue
		}
		w := &write{obj: obj, d: d}
		w.change, w.err = obj.provider.Render(policy, obj.obs, d, recordCopy(policy, obj))
		w.throughBackend = obj.role == provider.Target && obj.obs.Found && provider.ShedsThroughBackend(obj.provider, policy, obj.obs, d)
		if w.err == nil && w.throughBackend {
			shedding = true
		}
		writes[i] = w
	}
	// The policy's shed Service stands ready while the policy covers a target (headless, it
	// costs no ClusterIP), so pulling a lever that sheds writes only the canaries; it is in place
	// before the first canary routes to it, and goes with the policy.
	standing := covering && policy.DeletionTimestamp.IsZero()
	if standing {
		endpoints, err := r.Shed.EnsureCompanion(ctx, r.Client, policy)
		switch {
		case err == nil && shedding:
			outcome.ShedEndpoints, outcome.ShedDraining = endpoints.Ready, endpoints.Draining
		case err != nil && shedding:
			for _, w := range writes {
				if w != nil && w.err == nil && w.throughBackend {
					w.err = err
				}
			}
		case err != nil:
			// At rest it is only made ready: a lever that sheds ensures it again, and reports
			// what keeps it.
			logf.FromContext(ctx).V(1).Info("the shed Service could not be made ready ahead of a lever", "error", err.Error())
		}
	}
	var group errgroup.Group
	group.SetLimit(WriteParallelism)
	for _, w := range writes {
		if w == nil || w.err != nil {
			continue
		}
		group.Go(func() error {
			w.change.Status, w.err = provider.Write(ctx, r.Client, policy, w.change)
			return nil
		})
	}
	_ = group.Wait()
	for i, obj := range obs.objects {
		w := writes[i]
		switch {
		case w == nil:
			entries.unwritten(policy, obj, false)
		case w.err != nil:
			r.fail(obj, w.err, &errs)
			entries.unwritten(policy, obj, false)
		default:
			outcome.KeptOthers = append(outcome.KeptOthers, prefixed(obj.ref.String(), w.change.KeptOthers)...)
			entries.written(obj, w.change.Status)
		}
	}
	// Shed Services go with the policy (or its last target).
	if err := shed.RemoveCompanions(ctx, r.Client, policy, standing); err != nil {
		errs = append(errs, err)
	}
	entries.file(policy)
	outcome.Problems = append(outcome.Problems, obs.Problems()...)
	outcome.Leftovers = append(outcome.Leftovers, obs.LeftoverProblems()...)
	return errors.Join(errs...)
}

// fail records a write that failed on one object: as its problem, and as an error to retry (a
// stale read is retried without a word).
func (r *Pass) fail(obj *object, err error, errs *[]error) {
	// An object in the way (one that appeared since observe) is a Conflict; anything else but a
	// stale read is ApplyFailed. Either way the pass is retried.
	if !StaleRead(err) {
		obj.obs.Problems = append(obj.obs.Problems, provider.ProblemOf(err))
	}
	*errs = append(*errs, err)
}
