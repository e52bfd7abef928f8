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

	if msg := Unsupported(policy, &target, k); msg != "" {
		obs.Problems = append(obs.Problems, provider.Problem{Reason: v1alpha1.ReasonUnsupported, Message: msg})
	}
	// The only edit to the user's Ingress is the rate limit; whether its owner allows it is a
	// limit of the target (Unsupported), not a conflict.
	_, problems := provider.EditProblems("Ingress", &target, key(policy), false)
	obs.Problems = append(obs.Problems, problems...)
	for _, rule := range target.Spec.Rules {
		if rule.HTTP == nil || len(rule.HTTP.Paths) == 0 {
			obs.Status.Warnings = append(obs.Status.Warnings, fmt.Sprintf("the rule for host %q has no paths: its traffic "+
				"(the default backend's) is not covered by the canary, so it is never shed", rule.Host))
		}
	}
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
	canaryName := CanaryName(policy.Name, target.Name)
	for i := range all.Items {
		other := &all.Items[i]
		if other.Name == target.Name || owned.IsOurs(other, policy) {
			continue
		}
		if other.Name == canaryName {
			// Someone else's object has the name of this target's canary: it is neither adopted
			// nor removed, and the target cannot get a canary while it is there.
			msg := "canary Ingress " + canaryName + ": " + (&owned.NotOursError{Kind: "Ingress", Name: canaryName}).Error()
			if needsCanary {
				obs.Problems = append(obs.Problems, provider.Problem{Reason: v1alpha1.ReasonConflict, Message: msg})
			} else {
				obs.Status.Warnings = append(obs.Status.Warnings, msg)
			}
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

// Unsupported says why the observed target cannot take the knobs ("" when it can).
func (p *Provider) Unsupported(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, k knobs.Knobs) string {
	target, _ := obs.State.(*networkingv1.Ingress)
	return Unsupported(policy, target, k)
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

// rendered is what the knobs need on one target: the canary (nil: none) and the user's Ingress
// as it should be (nil: left as it is), with what restoring kept.
type rendered struct {
	canaryName string
	canary     *networkingv1.Ingress
	main       *unstructured.Unstructured
	mainBefore *unstructured.Unstructured
	out        restore.Outcome
}

// render computes, without writing, what the knobs need on an observed target. A target that is
// gone only loses its canary; a target whose restore record cannot be read keeps its own Ingress
// as it is (the canary is Floodgate's own, so the lever still works through it).
func render(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, k knobs.Knobs, recordCopy string) (rendered, error) {
	r := rendered{canaryName: CanaryName(policy.Name, obs.Ref.Name)}
	target, ok := obs.State.(*networkingv1.Ingress)
	if !ok {
		if !k.Equal(knobs.Knobs{}) {
			return r, errors.New("ingress-nginx: knobs for an Ingress that was not observed")
		}
		return r, nil
	}
	r.canary = RenderCanary(policy, target, k)
	if provider.HasReason(obs.Problems, v1alpha1.ReasonCorruptRecord) {
		return r, nil
	}
	r.main = toUnstructured(target)
	r.mainBefore = r.main.DeepCopy()
	var err error
	if r.out, err = restore.Reconcile(r.main, key(policy), MainChanges(k), recordCopy); err != nil {
		return r, fmt.Errorf("Ingress %s: %w", target.Name, err)
	}
	return r, nil
}

// Apply creates, updates or removes the canary and edits limit-rps on the target.
func (p *Provider) Apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *provider.Observation, k knobs.Knobs, recordCopy string) (provider.Result, error) {
	res := provider.Result{Status: obs.Status}
	r, err := render(policy, obs, k, recordCopy)
	if err != nil {
		return res, err
	}
	if r.canary != nil {
		if _, err := owned.Ensure(ctx, p.Client, policy, r.canary, &networkingv1.Ingress{}, syncCanary); err != nil {
			return res, fmt.Errorf("canary Ingress %s: %w", r.canaryName, err)
		}
		res.Status.Companion = r.canaryName
	} else if _, err := owned.Delete(ctx, p.Client, policy, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: r.canaryName, Namespace: policy.Namespace}}); err != nil && !errors.As(err, new(*owned.NotOursError)) {
		// An object of that name that is not ours is not ours to remove (Observe warns of it).
		return res, fmt.Errorf("removing canary Ingress %s: %w", r.canaryName, err)
	}
	res.Status.Applied = appliedKnobs(k)
	if r.main == nil {
		res.Status.Applied.PerClientRequestsPerSecond = 0
		return res, nil
	}
	if r.out.Changed {
		if err := p.Client.Patch(ctx, r.main, client.MergeFromWithOptions(r.mainBefore, client.MergeFromWithOptimisticLock{})); err != nil {
			return res, fmt.Errorf("patching Ingress %s: %w", r.main.GetName(), err)
		}
	}
	if r.out.Record != nil {
		res.Status.RestoreRecord = r.out.Record.Encode()
	}
	res.KeptOthers = r.out.KeptOthers
	return res, nil
}

// Preview returns what Apply would write, without writing: the target and the canary.
func (p *Provider) Preview(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *provider.Observation, k knobs.Knobs, recordCopy string) ([]provider.ObjectChange, error) {
	r, err := render(policy, obs, k, recordCopy)
	if err != nil {
		return nil, err
	}
	canary := provider.ObjectChange{Kind: "Ingress", Name: r.canaryName}
	var existing networkingv1.Ingress
	switch err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: r.canaryName}, &existing); {
	case err == nil:
		canary.Before = provider.UserView(toUnstructured(&existing).Object)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading canary Ingress %s: %w", r.canaryName, err)
	}
	if r.canary != nil {
		owned.Stamp(r.canary, policy)
		canary.After = provider.UserView(toUnstructured(r.canary).Object)
	}
	if r.main == nil {
		return []provider.ObjectChange{canary}, nil
	}
	main := provider.ObjectChange{Kind: "Ingress", Name: r.main.GetName(),
		Before: provider.UserView(r.mainBefore.Object), After: provider.UserView(r.main.Object)}
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
