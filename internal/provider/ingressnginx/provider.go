package ingressnginx

import (
	"context"
	"errors"
	"fmt"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/index"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/shed"
)

// The RBAC this provider needs (controller-gen gathers it into config/rbac/role.yaml): its
// targets and canaries (read from the cache: list and watch), and the IngressClasses: which
// exist (an Ingress of a class nobody serves makes no claim on a shed answer) and their
// controllers (an Ingress's data plane); a cluster-wide install only (cluster-scoped).
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingressclasses,verbs=list;watch

// Provider applies knobs to Ingresses through ingress-nginx canaries.
type Provider struct {
	Client client.Client
	// ReadClasses reads the cluster-scoped IngressClasses, for an Ingress's data plane (a
	// cluster-wide install; a namespaced one cannot).
	ReadClasses bool
}

var _ provider.Provider = (*Provider)(nil)

// GroupKind is networking.k8s.io Ingress.
func (p *Provider) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: v1alpha1.GroupNetworking, Kind: string(v1alpha1.TargetKindIngress)}
}

// Object is an empty object of the kind, for watches.
func (p *Provider) Object() client.Object { return &networkingv1.Ingress{} }

// Role: an Ingress carries traffic.
func (p *Provider) Role() provider.Role { return provider.Target }

// Observe reads the target Ingress and the other Ingresses of its namespace.
func (p *Provider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref, d provider.Desired) (*provider.Observation, error) {
	k := d.Knobs.Traffic()
	obs := &provider.Observation{Ref: ref, Status: provider.Status{Target: provider.TargetStatus{Capabilities: Capabilities.DeepCopy()}}}
	var target networkingv1.Ingress
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &target)
	if apierrors.IsNotFound(err) {
		return obs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Ingress %s: %w", ref.Name, err)
	}
	obs.Found, obs.Status.Found, obs.UID, obs.State = true, true, target.UID, &target

	if msg := Unsupported(policy, &target, k); msg != "" {
		obs.Problems = append(obs.Problems, provider.NewProblem(msg, provider.ErrUnsupported))
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
	return obs, p.observeNeighbours(ctx, policy, &target, k, obs)
}

// Field indexes the neighbours of a target are found through.
const (
	indexRules     = ".spec.rules.hostPath"
	indexUpstreams = ".spec.rules.backend.servicePort"
)

// Indexes: Ingresses are listed by the rules (host and path) and the upstreams (Service and
// port) they carry, and by the restore record they carry.
func (p *Provider) Indexes() []provider.Index {
	return []provider.Index{
		{Object: &networkingv1.Ingress{}, Field: indexRules, Extract: ruleKeys},
		{Object: &networkingv1.Ingress{}, Field: indexUpstreams, Extract: upstreamKeys},
		{Object: &networkingv1.Ingress{}, Field: provider.IndexRecordedBy, Extract: provider.RecordedByIndex},
	}
}

func ruleKeys(o client.Object) []string {
	rules, _ := routes(o.(*networkingv1.Ingress))
	return sets.List(rules)
}

func upstreamKeys(o client.Object) []string {
	_, upstreams := routes(o.(*networkingv1.Ingress))
	return sets.List(upstreams)
}

// observeNeighbours reads the Ingresses of the namespace that bear on the target, through the
// indexes: an object holding the canary's name, a canary already serving the target's rules,
// Ingresses sharing the target's upstreams. Its cost is the target's own rules and upstreams,
// not the namespace's size.
func (p *Provider) observeNeighbours(ctx context.Context, policy *v1alpha1.TrafficPolicy, target *networkingv1.Ingress, k knobs.Knobs, obs *provider.Observation) error {
	rules, upstreams := routes(target)
	needsCanary := RenderCanary(policy, target, k) != nil
	canaryName := CanaryName(policy.Name, target.Name)

	var holder networkingv1.Ingress
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: canaryName}, &holder)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reading Ingress %s: %w", canaryName, err)
	}
	if err == nil && !owned.IsOurs(&holder, policy) {
		// Someone else's object has the name of this target's canary: it is neither adopted nor
		// removed, and the target cannot get a canary while it is there.
		err := &owned.NotOursError{Kind: "Ingress", Name: canaryName}
		msg := "canary Ingress " + canaryName + ": " + err.Error()
		if needsCanary {
			obs.Problems = append(obs.Problems, provider.NewProblem(msg, err))
		} else {
			obs.Status.Warnings = append(obs.Status.Warnings, msg)
		}
	}
	neighbour := func(other *networkingv1.Ingress) bool {
		return other.Name != target.Name && other.Name != canaryName && !owned.IsOurs(other, policy)
	}
	if needsCanary {
		foreign := sets.New[string]()
		for _, rule := range sets.List(rules) {
			var list networkingv1.IngressList
			if err := p.list(ctx, policy, &list, indexRules, rule, ruleKeys); err != nil {
				return err
			}
			for i := range list.Items {
				if other := &list.Items[i]; neighbour(other) && other.Annotations[AnnotationCanary] == "true" && !foreign.Has(other.Name) {
					foreign.Insert(other.Name)
					obs.Problems = append(obs.Problems, provider.NewProblem(
						fmt.Sprintf("canary Ingress %s already serves rules of Ingress %s; ingress-nginx allows one canary per rule", other.Name, target.Name),
						provider.ErrForeignCanary))
				}
			}
		}
	}
	shared := sets.New[string]()
	for _, upstream := range sets.List(upstreams) {
		var list networkingv1.IngressList
		if err := p.list(ctx, policy, &list, indexUpstreams, upstream, upstreamKeys); err != nil {
			return err
		}
		for i := range list.Items {
			if other := &list.Items[i]; neighbour(other) && other.Annotations[AnnotationCanary] != "true" && sameClass(target, other) {
				shared.Insert(other.Name)
			}
		}
	}
	obs.Status.Target.SharedUpstreamIngresses = sets.List(shared)
	if len(shared) > 0 {
		obs.Status.Warnings = append(obs.Status.Warnings,
			"a canary applies to the whole Service and port upstream: the Ingresses in sharedUpstreamIngresses are shed too")
	}
	return nil
}

// CompanionNames: a target's canary.
func (p *Provider) CompanionNames(policy *v1alpha1.TrafficPolicy, target string) []string {
	return []string{CanaryName(policy.Name, target)}
}

// Related are the other Ingresses of obj's namespace that share one of its rules or upstreams:
// a canary or a shared upstream appearing, changing or leaving concerns their policies.
func (p *Provider) Related(ctx context.Context, obj client.Object) ([]client.Object, error) {
	ing, ok := obj.(*networkingv1.Ingress)
	if !ok {
		return nil, nil
	}
	rules, upstreams := routes(ing)
	seen := sets.New(ing.Name)
	var out []client.Object
	for _, by := range []struct {
		field  string
		values sets.Set[string]
		fn     client.IndexerFunc
	}{{indexRules, rules, ruleKeys}, {indexUpstreams, upstreams, upstreamKeys}} {
		for _, value := range sets.List(by.values) {
			var list networkingv1.IngressList
			if err := index.List(ctx, p.Client, &list, by.field, value, by.fn, client.InNamespace(ing.Namespace), client.UnsafeDisableDeepCopy); err != nil {
				return out, fmt.Errorf("listing Ingresses by %s: %w", by.field, err)
			}
			for i := range list.Items {
				if !seen.Has(list.Items[i].Name) {
					seen.Insert(list.Items[i].Name)
					out = append(out, &list.Items[i])
				}
			}
		}
	}
	return out, nil
}

// list lists the Ingresses of the policy's namespace whose index field holds value, without
// copying them: they are only read.
func (p *Provider) list(ctx context.Context, policy *v1alpha1.TrafficPolicy, list *networkingv1.IngressList, field, value string, fn client.IndexerFunc) error {
	if err := index.List(ctx, p.Client, list, field, value, fn, client.InNamespace(policy.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing Ingresses by %s: %w", field, err)
	}
	return nil
}

// Unsupported says why the observed target cannot take the knobs ("" when it can).
func (p *Provider) Unsupported(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired) string {
	target, _ := obs.State.(*networkingv1.Ingress)
	return Unsupported(policy, target, d.Knobs.Traffic())
}

// Select lists the Ingresses of the policy's namespace the selector selects; a companion (an
// object a TrafficPolicy controls) is never a target.
func (p *Provider) Select(ctx context.Context, policy *v1alpha1.TrafficPolicy, selector labels.Selector) ([]provider.Ref, error) {
	var list networkingv1.IngressList
	if err := p.Client.List(ctx, &list, client.InNamespace(policy.Namespace), client.MatchingLabelsSelector{Selector: selector},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Ingresses by targetSelector: %w", err)
	}
	refs := make([]provider.Ref, 0, len(list.Items))
	for i := range list.Items {
		if shed.IsCompanion(&list.Items[i]) {
			continue
		}
		refs = append(refs, provider.Ref{Group: v1alpha1.GroupNetworking, Kind: string(v1alpha1.TargetKindIngress), Name: list.Items[i].Name})
	}
	return refs, nil
}

// Recorded lists the Ingresses of the policy's namespace that carry its restore record, and
// those its canaries copy.
func (p *Provider) Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]provider.Ref, error) {
	var all networkingv1.IngressList
	if err := provider.ListRecorded(ctx, p.Client, policy, &all); err != nil {
		return nil, fmt.Errorf("listing Ingresses by restore record: %w", err)
	}
	var ours networkingv1.IngressList
	if err := owned.List(ctx, p.Client, policy, &ours); err != nil {
		return nil, fmt.Errorf("listing canary Ingresses: %w", err)
	}
	gk := p.GroupKind()
	refs := provider.RecordedRefs(all.Items, policy, gk)
	for i := range ours.Items {
		if target := ours.Items[i].Annotations[AnnotationCanaryFor]; target != "" {
			refs = append(refs, provider.Ref{Group: gk.Group, Kind: gk.Kind, Name: target})
		}
	}
	return refs, nil
}

// Render computes, without writing, what the knobs need on an observed target: its canary (or
// the canary's removal) and the edit of the user's Ingress (limit-rps, with the restore record).
// A target that is gone only loses its canary; a target whose restore record cannot be read
// keeps its own Ingress as it is (the canary is Floodgate's own, so the lever still works).
func (p *Provider) Render(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired, recordCopy string) (provider.Change, error) {
	k := d.Knobs.Traffic()
	ch := provider.Change{Status: obs.Status}
	canaryName := CanaryName(policy.Name, obs.Ref.Name)
	target, ok := obs.State.(*networkingv1.Ingress)
	if !ok {
		if !k.Equal(knobs.Knobs{}) {
			return ch, errors.New("ingress-nginx: knobs for an Ingress that was not observed")
		}
		ch.Remove = []client.Object{&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: canaryName, Namespace: policy.Namespace}}}
		return ch, nil
	}
	if canary := RenderCanary(policy, target, k); canary != nil {
		ch.Ensure = []provider.Companion{{Desired: canary, Sync: syncCanary}}
		ch.Status.Target.Companion = canaryName
	} else {
		ch.Remove = []client.Object{&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: canaryName, Namespace: policy.Namespace}}}
		ch.Status.Target.Companion = ""
	}
	ch.Status.Target.Applied = appliedKnobs(k)
	if slices.ContainsFunc(obs.Problems, provider.Unreadable) {
		ch.Status.Target.Applied.PerClientRequestsPerSecond = 0
		return ch, nil
	}
	main := toUnstructured(target)
	ch.Before, ch.After = main.DeepCopy(), main
	out, err := restore.Reconcile(ch.After, key(policy), MainChanges(k), recordCopy)
	if err != nil {
		return ch, fmt.Errorf("Ingress %s: %w", target.Name, err)
	}
	ch.Status.RestoreRecord = ""
	if out.Record != nil {
		ch.Status.RestoreRecord = out.Record.Encode()
	}
	ch.KeptOthers = out.KeptOthers
	return ch, nil
}

func syncCanary(existingObj, desiredObj client.Object) {
	existing, desired := existingObj.(*networkingv1.Ingress), desiredObj.(*networkingv1.Ingress)
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

// Routes are the host/path routes of the Ingress an observation read (none: not found, or of a
// class nobody serves).
func (p *Provider) Routes(obs *provider.Observation, carriers shed.Carriers) []shed.Route {
	if ing, ok := obs.State.(*networkingv1.Ingress); ok {
		return carriers.Routes(p.GroupKind(), ing)
	}
	return nil
}
