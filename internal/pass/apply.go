package pass

import (
	"context"
	"errors"
	"slices"

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
		return !d.Knobs.Shed, provider.Desired{}
	}
	return true, d
}

// Apply writes the knobs to every observed object that can take them, and puts back the
// leftovers. A problem on one object never keeps the others from their knobs: it is reported on
// that object (outcome.Problems and its status entry). Write failures are collected and
// returned together, after every object was tried.
func (r *Pass) Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs, obs Observation, outcome *core.Outcome) error {
	var errs []error
	shedding, shedErr := false, error(nil)
	entries := statusEntries{}
	for _, obj := range obs.objects {
		write, d := decide(obj, desired(policy, obj, k))
		if !write {
			entries.unwritten(policy, obj, false)
			continue
		}
		ch, err := obj.provider.Render(policy, obj.obs, d, recordCopy(policy, obj))
		if err == nil && obj.role == provider.Target && d.Knobs.Sheds() && obj.obs.Found {
			// The policy's shed Service is in place before the first canary routes to it, and
			// goes after the last.
			if !shedding {
				shedding = true
				var ready int
				if ready, shedErr = r.Shed.EnsureCompanion(ctx, r.Client, policy); shedErr == nil {
					outcome.ShedEndpoints = ready
				}
			}
			err = shedErr
		}
		if err == nil {
			ch.Status, err = provider.Write(ctx, r.Client, policy, ch)
		}
		if err != nil {
			r.fail(obj, err, &errs)
			entries.unwritten(policy, obj, false)
			continue
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed(obj.ref.String(), ch.KeptOthers)...)
		entries.written(obj, ch.Status)
	}
	// Shed Services go once no canary routes to them.
	if err := shed.RemoveCompanions(ctx, r.Client, policy, shedding); err != nil {
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
