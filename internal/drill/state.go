package drill

import (
	"context"
	"k8s.io/apimachinery/pkg/api/meta"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// State is what the drill's policy has in force after a step: what the report charts.
type State struct {
	Policy string
	Action v1alpha1.Action
	Phase  v1alpha1.Phase
	// Step and Steps are the ramp step in force and the ramp's length (0: not ramping).
	Step, Steps int32
	// Applied is what the first target carries of the policy.
	Applied v1alpha1.AppliedKnobs
	// Autoscaler is the first autoscaler's kind and name, its minimum replicas and whether its
	// scale-down is off (held).
	Autoscaler        string
	MinReplicas       int64
	ScaleDownDisabled bool
	Gates             []v1alpha1.GateStatus
	History           []v1alpha1.Transition
	// Armed is the policy's Armed condition ("" while it has none): whether the API server has
	// accepted every lever, and its message.
	Armed, ArmedMessage string
	// Confirmed is the policy's Confirmed condition ("" while it has none): whether probes
	// through the data plane land as the lever says, and its message.
	Confirmed, ConfirmedMessage string
}

// state reads the first policy of the watched namespaces (by namespace and name) and its first
// autoscaler; nil when there is no policy.
func (r *runner) state(ctx context.Context) *State {
	var all []v1alpha1.TrafficPolicy
	for ns := range r.watched {
		var list v1alpha1.TrafficPolicyList
		if err := r.env.Client.List(ctx, &list, client.InNamespace(ns)); err == nil {
			all = append(all, list.Items...)
		}
	}
	if len(all) == 0 {
		return nil
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Namespace+"/"+all[i].Name < all[j].Namespace+"/"+all[j].Name })
	p := &all[0]
	s := &State{Policy: p.Namespace + "/" + p.Name, Action: p.Spec.Action, Phase: p.Status.Phase, History: p.Status.History}
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionArmed); c != nil {
		s.Armed, s.ArmedMessage = string(c.Status), c.Message
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionConfirmed); c != nil {
		s.Confirmed, s.ConfirmedMessage = string(c.Status), c.Message
	}
	if p.Status.Ramp != nil {
		s.Step, s.Steps = p.Status.Ramp.Step, p.Status.Ramp.Steps
		s.Gates = p.Status.Ramp.Gates
	}
	if len(p.Status.Targets) > 0 {
		s.Applied = p.Status.Targets[0].Applied
	}
	if len(p.Status.Autoscalers) > 0 {
		a := p.Status.Autoscalers[0]
		group, kindName := v1alpha1.AutoscalerRef{APIGroup: a.APIGroup, Kind: a.Kind}.GroupKind()
		k, ok := kindNamed(r.kinds, group, kindName)
		if !ok {
			return s
		}
		s.Autoscaler = k.gvk.Kind + " " + a.Name
		obj := r.object(Ref{APIVersion: k.gvk.GroupVersion().String(), Kind: k.gvk.Kind, Namespace: p.Namespace, Name: a.Name})
		if h, ok := k.provider.(held); ok {
			if err := r.env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err == nil {
				s.MinReplicas, s.ScaleDownDisabled = h.Hold(obj)
			}
		}
	}
	return s
}
