package ingressnginx

import (
	"context"
	"errors"
	"fmt"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
)

// Provider applies knobs to Ingresses through ingress-nginx canaries.
type Provider struct {
	Client client.Client
}

var _ provider.Provider = (*Provider)(nil)

// Observe reads the target Ingress and the other Ingresses of its namespace.
func (p *Provider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref v1alpha1.TargetRef, k knobs.Knobs) (*provider.Observation, error) {
	obs := &provider.Observation{Ref: ref, Status: v1alpha1.TargetStatus{
		Kind: ref.Kind, Name: ref.Name, Capabilities: Capabilities.DeepCopy(),
	}}
	var target networkingv1.Ingress
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &target)
	if apierrors.IsNotFound(err) {
		return obs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Ingress %s: %w", ref.Name, err)
	}
	obs.Found, obs.Status.Found, obs.State = true, true, &target

	if msg := Unsupported(policy, k); msg != "" {
		obs.Problems = append(obs.Problems, provider.Problem{Reason: v1alpha1.ReasonUnsupported, Message: msg})
	}
	// The only edit to the user's Ingress is the rate limit.
	_, problems := provider.EditProblems("Ingress", &target, key(policy), len(MainChanges(k)) > 0)
	obs.Problems = append(obs.Problems, problems...)
	if target.Annotations[AnnotationAffinity] == "cookie" {
		obs.Status.Warnings = append(obs.Status.Warnings,
			"session affinity by cookie is configured: clients holding the cookie stay on the main backend and are not shed")
	}

	var all networkingv1.IngressList
	if err := p.Client.List(ctx, &all, client.InNamespace(policy.Namespace)); err != nil {
		return nil, fmt.Errorf("listing Ingresses: %w", err)
	}
	rules, upstreams := routes(&target)
	needsCanary := RenderCanary(policy, &target, k) != nil
	var shared []string
	for i := range all.Items {
		other := &all.Items[i]
		if other.Name == target.Name || owned.IsOurs(other, policy) {
			continue
		}
		otherRules, otherUpstreams := routes(other)
		if other.Annotations[AnnotationCanary] == "true" {
			if needsCanary && rules.HasAny(otherRules.UnsortedList()...) {
				obs.Problems = append(obs.Problems, provider.Problem{Reason: v1alpha1.ReasonConflict,
					Message: fmt.Sprintf("canary Ingress %s already serves rules of Ingress %s; ingress-nginx allows one canary per rule", other.Name, ref.Name)})
			}
			continue
		}
		if sameClass(&target, other) && upstreams.HasAny(otherUpstreams.UnsortedList()...) {
			shared = append(shared, other.Name)
		}
	}
	sort.Strings(shared)
	obs.Status.SharedUpstreamIngresses = shared
	if len(shared) > 0 {
		obs.Status.Warnings = append(obs.Status.Warnings,
			"a canary applies to the whole Service and port upstream: the Ingresses in sharedUpstreamIngresses are shed too")
	}
	return obs, nil
}

// Recorded lists the Ingresses of the policy's namespace that carry its restore record, and
// those its canaries copy.
func (p *Provider) Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]v1alpha1.TargetRef, error) {
	var all networkingv1.IngressList
	if err := p.Client.List(ctx, &all, client.InNamespace(policy.Namespace)); err != nil {
		return nil, fmt.Errorf("listing Ingresses: %w", err)
	}
	var refs []v1alpha1.TargetRef
	for _, name := range provider.RecordedBy(all.Items, key(policy)) {
		refs = append(refs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: name})
	}
	for i := range all.Items {
		if target := all.Items[i].Annotations[AnnotationCanaryFor]; target != "" && owned.IsOurs(&all.Items[i], policy) {
			refs = append(refs, v1alpha1.TargetRef{Kind: v1alpha1.TargetKindIngress, Name: target})
		}
	}
	return refs, nil
}

// Apply creates, updates or removes the canary and edits limit-rps on the target. A target that
// is gone can only be restored: its canary is removed.
func (p *Provider) Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *provider.Observation, k knobs.Knobs, recordCopy string) (provider.Result, error) {
	res := provider.Result{Status: obs.Status}
	canaryName := CanaryName(policy.Name, obs.Ref.Name)
	target, ok := obs.State.(*networkingv1.Ingress)
	if !obs.Found && k.Equal(knobs.Knobs{}) {
		if _, err := owned.Delete(ctx, p.Client, policy, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: canaryName, Namespace: policy.Namespace}}); err != nil {
			return res, fmt.Errorf("removing canary Ingress %s: %w", canaryName, err)
		}
		return res, nil
	}
	if !ok {
		return res, errors.New("ingress-nginx: Apply called without an observed Ingress")
	}

	if canary := RenderCanary(policy, target, k); canary != nil {
		if _, err := owned.Ensure(ctx, p.Client, policy, canary, &networkingv1.Ingress{}, syncCanary); err != nil {
			return res, fmt.Errorf("canary Ingress %s: %w", canaryName, err)
		}
		res.Status.Companion = canaryName
	} else if _, err := owned.Delete(ctx, p.Client, policy, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: canaryName, Namespace: target.Namespace}}); err != nil {
		return res, fmt.Errorf("removing canary Ingress %s: %w", canaryName, err)
	}

	u := toUnstructured(target)
	before := u.DeepCopy()
	out, err := restore.Reconcile(u, key(policy), MainChanges(k), recordCopy)
	if err != nil {
		return res, fmt.Errorf("Ingress %s: %w", target.Name, err)
	}
	if out.Changed {
		if err := p.Client.Patch(ctx, u, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return res, fmt.Errorf("patching Ingress %s: %w", target.Name, err)
		}
	}
	if out.Record != nil {
		res.Status.RestoreRecord = out.Record.Encode()
	}
	res.KeptOthers = out.KeptOthers
	res.Status.Applied = appliedKnobs(k)
	return res, nil
}

// Preview returns what Apply would write, without writing: the canary and the target.
func (p *Provider) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *provider.Observation, k knobs.Knobs, recordCopy string) ([]provider.ObjectChange, error) {
	target, ok := obs.State.(*networkingv1.Ingress)
	if !ok {
		return nil, errors.New("ingress-nginx: Preview called without an observed Ingress")
	}
	canaryName := CanaryName(policy.Name, target.Name)
	canary := provider.ObjectChange{Kind: "Ingress", Name: canaryName}
	var existing networkingv1.Ingress
	switch err := p.Client.Get(ctx, client.ObjectKey{Namespace: target.Namespace, Name: canaryName}, &existing); {
	case err == nil:
		canary.Before = provider.UserView(toUnstructured(&existing).Object)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading canary Ingress %s: %w", canaryName, err)
	}
	if desired := RenderCanary(policy, target, k); desired != nil {
		owned.Stamp(desired, policy)
		canary.After = provider.UserView(toUnstructured(desired).Object)
	}

	u := toUnstructured(target)
	before := u.DeepCopy()
	if _, err := restore.Reconcile(u, key(policy), MainChanges(k), recordCopy); err != nil {
		return nil, fmt.Errorf("Ingress %s: %w", target.Name, err)
	}
	main := provider.ObjectChange{Kind: "Ingress", Name: target.Name,
		Before: provider.UserView(before.Object), After: provider.UserView(u.Object)}
	return []provider.ObjectChange{main, canary}, nil
}

func syncCanary(existing, desired *networkingv1.Ingress) {
	existing.Annotations = desired.Annotations
	existing.Spec = desired.Spec
}

func appliedKnobs(k knobs.Knobs) v1alpha1.AppliedKnobs {
	a := v1alpha1.AppliedKnobs{Shed: k.Shed}
	if !k.Shed {
		a.AllowRegions = k.AllowRegions
		a.PerClientRequestsPerSecond = k.PerClientRequestsPerSecond
		a.AdmitPercent = k.AdmitPercent
	}
	return a
}

// routes returns the host+path rules and the Service:port upstreams of an Ingress.
func routes(ing *networkingv1.Ingress) (rules, upstreams sets.Set[string]) {
	rules, upstreams = sets.New[string](), sets.New[string]()
	addUpstream := func(b *networkingv1.IngressBackend) {
		if b != nil && b.Service != nil {
			upstreams.Insert(fmt.Sprintf("%s:%s%d", b.Service.Name, b.Service.Port.Name, b.Service.Port.Number))
		}
	}
	addUpstream(ing.Spec.DefaultBackend)
	if ing.Spec.DefaultBackend != nil {
		rules.Insert("default-backend")
	}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, path := range r.HTTP.Paths {
			rules.Insert(r.Host + path.Path)
			addUpstream(&path.Backend)
		}
	}
	return rules, upstreams
}

func sameClass(a, b *networkingv1.Ingress) bool {
	class := func(i *networkingv1.Ingress) string {
		if i.Spec.IngressClassName != nil {
			return *i.Spec.IngressClassName
		}
		return i.Annotations[annotationIngressClass]
	}
	return class(a) == class(b)
}

func key(policy *v1alpha1.TrafficPolicy) string { return policy.Namespace + "/" + policy.Name }

func toUnstructured(obj *networkingv1.Ingress) *unstructured.Unstructured {
	u, err := restore.FromTyped(obj, networkingv1.SchemeGroupVersion.WithKind("Ingress"))
	if err != nil {
		// A typed object the scheme knows always converts.
		panic(err)
	}
	return u
}
