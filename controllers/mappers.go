package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/index"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/shed"
)

// Field indexes over TrafficPolicies that map a watched change to the policies it concerns, and
// to no other: an unrelated Ingress changing in a namespace of a hundred policies wakes none.
const (
	// indexSelecting holds the group/kind a policy's targetSelector selects.
	indexSelecting = ".spec.targetSelector.groupKind"
	// indexCompanionNames holds the names of the companions a policy's targets have or would
	// have (an object holding one keeps that target from its lever).
	indexCompanionNames = ".status.targets.companionNames"
	// indexWorkloadGates holds the Deployments a policy's workload gates read ("*": the HPA's
	// target).
	indexWorkloadGates = ".spec.ramp.steps.gates.workloadReady.name"
)

func selecting(o client.Object) []string {
	sel := o.(*v1alpha1.TrafficPolicy).Spec.TargetSelector
	if sel == nil {
		return nil
	}
	group, kind := sel.GroupKind()
	return []string{kind + "." + group}
}

// companionNames is the indexCompanionNames index function of a registry's providers.
func companionNames(providers *provider.Registry) client.IndexerFunc {
	return func(o client.Object) []string {
		policy := o.(*v1alpha1.TrafficPolicy)
		refs := pass.TargetRefs(policy.Spec)
		for _, t := range policy.Status.Targets {
			refs = append(refs, provider.Ref{Group: t.Group, Kind: string(t.Kind), Name: t.Name})
		}
		var names []string
		for _, ref := range refs {
			p, err := providers.For(ref)
			if err != nil {
				continue
			}
			if c, ok := p.(provider.Companioned); ok {
				names = append(names, c.CompanionNames(policy, ref.Name)...)
			}
		}
		return names
	}
}

func workloadGates(o client.Object) []string {
	p := o.(*v1alpha1.TrafficPolicy)
	if p.Spec.Ramp == nil {
		return nil
	}
	var names []string
	for _, step := range p.Spec.Ramp.Steps {
		for _, g := range step.Gates {
			if g.WorkloadReady == nil {
				continue
			}
			name := g.WorkloadReady.Name
			if name == "" {
				name = "*"
			}
			names = append(names, name)
		}
	}
	return names
}

// policiesTargeting are the policies of an object's namespace that name it as a target or
// select it (never a companion); gk is its kind.group. They are the cache's own copies: read only.
func (r *TrafficPolicyReconciler) policiesTargeting(ctx context.Context, gk string, o client.Object) ([]*v1alpha1.TrafficPolicy, error) {
	ns := client.InNamespace(o.GetNamespace())
	var named, selectors v1alpha1.TrafficPolicyList
	if err := index.List(ctx, r.Client, &named, indexTargetNames, o.GetName(), targetNames, ns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing policies by target: %w", err)
	}
	var out []*v1alpha1.TrafficPolicy
	for i := range named.Items {
		out = append(out, &named.Items[i])
	}
	if shed.IsCompanion(o) {
		return out, nil
	}
	if err := index.List(ctx, r.Client, &selectors, indexSelecting, gk, selecting, ns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing policies by targetSelector: %w", err)
	}
	for i := range selectors.Items {
		if p := &selectors.Items[i]; selects(p, o) && !slices.ContainsFunc(out, func(q *v1alpha1.TrafficPolicy) bool { return q.Name == p.Name }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// mapTarget maps a change to an object of a target kind to the policies it concerns: those that
// name or select it, the one whose restore record it carries, those whose companion's name it
// holds, and, through the provider, those of the objects it bears on (an Ingress sharing an
// upstream or a rule with a target).
func (r *TrafficPolicyReconciler) mapTarget(p provider.Provider) handler.MapFunc {
	gk := p.GroupKind()
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		log := logf.FromContext(ctx)
		concerned := map[types.NamespacedName]bool{}
		objects := []client.Object{obj}
		if related, ok := p.(provider.Related); ok {
			more, err := related.Related(ctx, obj)
			if err != nil {
				log.Error(err, "finding the objects a watched change bears on")
			}
			objects = append(objects, more...)
		}
		for _, o := range objects {
			if rec, err := restore.Read(o); err == nil && rec != nil {
				if ns, name, ok := splitKey(rec.Policy); ok && ns == o.GetNamespace() {
					concerned[types.NamespacedName{Namespace: ns, Name: name}] = true
				}
			}
			if err := r.policiesConcernedBy(ctx, gk.Kind+"."+gk.Group, o, concerned); err != nil {
				log.Error(err, "listing the policies a watched change concerns")
			}
		}
		out := make([]reconcile.Request, 0, len(concerned))
		for key := range concerned {
			out = append(out, reconcile.Request{NamespacedName: key})
		}
		return out
	}
}

// mapAttached maps a change to an object attaching itself to targets (a data plane's policy on a
// route) to the policies concerned by the targets it attaches to.
func (r *TrafficPolicyReconciler) mapAttached(p provider.Provider, a provider.Attached) handler.MapFunc {
	gk := p.GroupKind()
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		targets, err := a.AttachedTo(ctx, r.Client, obj)
		if err != nil {
			logf.FromContext(ctx).Error(err, "finding the targets a watched object attaches to")
		}
		concerned := map[types.NamespacedName]bool{}
		for _, o := range targets {
			if err := r.policiesConcernedBy(ctx, gk.Kind+"."+gk.Group, o, concerned); err != nil {
				logf.FromContext(ctx).Error(err, "listing the policies a watched change concerns")
			}
		}
		out := make([]reconcile.Request, 0, len(concerned))
		for key := range concerned {
			out = append(out, reconcile.Request{NamespacedName: key})
		}
		return out
	}
}

// policiesConcernedBy adds to concerned the policies of o's namespace that name it, select it
// (gk is its kind.group), or have a companion of its name.
func (r *TrafficPolicyReconciler) policiesConcernedBy(ctx context.Context, gk string, o client.Object, concerned map[types.NamespacedName]bool) error {
	targeting, err := r.policiesTargeting(ctx, gk, o)
	if err != nil {
		return err
	}
	for _, p := range targeting {
		concerned[client.ObjectKeyFromObject(p)] = true
	}
	var companions v1alpha1.TrafficPolicyList
	if err := index.List(ctx, r.Client, &companions, indexCompanionNames, o.GetName(), companionNames(r.Providers),
		client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing policies by companion: %w", err)
	}
	for i := range companions.Items {
		concerned[client.ObjectKeyFromObject(&companions.Items[i])] = true
	}
	return nil
}

// selects says whether the policy's targetSelector selects the object by its labels.
func selects(policy *v1alpha1.TrafficPolicy, o client.Object) bool {
	selector, err := policy.Spec.TargetSelector.LabelSelector()
	return err == nil && selector.Matches(labels.Set(o.GetLabels()))
}

func splitKey(key string) (namespace, name string, ok bool) {
	return strings.Cut(key, "/")
}
