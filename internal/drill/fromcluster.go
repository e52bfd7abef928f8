package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/test/crds"
)

// Source is a live cluster's policy to rehearse.
type Source struct {
	// Config reaches the live cluster. Only get and list requests are sent to it.
	Config *rest.Config
	// Context names the cluster in the drill's name.
	Context string
	// Namespace and Policy name the TrafficPolicy.
	Namespace, Policy string
	// StripFloodgateState rehearses a policy that is not at rest: its restore records are left
	// out of the copies, and its action is Normal in the copy.
	StripFloodgateState bool
	// Runbook is a drill file whose steps (and gateway) run on the copies; "" runs the default
	// runbook: shed, ramp through every step with holds warped, Completed, exact restore.
	Runbook string
	// CRDDir is where the CRDs of other projects the copies need are written.
	CRDDir string
}

// Kinds a rehearsal copies besides the providers' kinds.
var (
	gvkService    = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	gvkDeployment = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
)

// copier reads, read-only, the objects a policy bears on from the live cluster.
type copier struct {
	c       client.Reader
	ns      string
	objects []*unstructured.Unstructured
	seen    map[string]bool
	// missing names objects the policy names that the live cluster does not have.
	missing []string
	// notScaled names what an autoscaler's scaleTargetRef names that is no scale target (a kind
	// without a scale subresource): never copied.
	notScaled []string
	// leftOut are the indexes in spec.targetRefs and spec.autoscalerRefs of what the copy of the
	// policy leaves out: missing, or (an autoscaler) scaling no scale target.
	leftOutTargets, leftOutAutoscalers []int
	// scalable says whether the live cluster serves a scale subresource for a kind.
	scalable func(schema.GroupVersionKind) (bool, error)
	// kinds are the providers' kinds: what a policy's targets and autoscalers are.
	kinds []kind
}

// get copies one object (once); nil when the cluster does not have it (or does not serve its kind).
func (cp *copier) get(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	key := gvk.Kind + " " + namespace + "/" + name
	if cp.seen[key] {
		for _, o := range cp.objects {
			if o.GetKind() == gvk.Kind && o.GetNamespace() == namespace && o.GetName() == name {
				return o, nil
			}
		}
		return nil, nil
	}
	cp.seen[key] = true
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := cp.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u)
	switch {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		cp.missing = append(cp.missing, key)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	cp.objects = append(cp.objects, u)
	return u, nil
}

// FromCluster builds a drill that rehearses a live cluster's TrafficPolicy on copies of what it
// bears on: its targets (Ingresses, HTTPRoutes), its autoscalers (HPAs, ScaledObjects), their
// scale targets and the Deployments its gates read, the Services the targets route to, and the
// HTTPRoutes' Gateways and GatewayClasses. Status, uid, resourceVersion, managedFields and
// ownerReferences are left out. The live cluster receives only get and list requests. A policy
// that is not at rest is refused with the reason, unless StripFloodgateState.
func FromCluster(ctx context.Context, src Source) (*File, error) {
	c, err := client.New(src.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, fmt.Errorf("connecting to the live cluster: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(src.Config)
	if err != nil {
		return nil, fmt.Errorf("connecting to the live cluster: %w", err)
	}
	// Discovery is asked once per group version, however many autoscalers scale that kind.
	cp := &copier{c: c, ns: src.Namespace, seen: map[string]bool{}, scalable: scaleSubresource(memory.NewMemCacheClient(dc)),
		kinds: providerKinds(c)}
	policyU, err := cp.get(ctx, gvkPolicy, src.Namespace, src.Policy)
	if err != nil {
		return nil, err
	}
	if policyU == nil {
		return nil, fmt.Errorf("trafficpolicy %s/%s not found in the live cluster", src.Namespace, src.Policy)
	}
	var policy v1alpha1.TrafficPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: src.Namespace, Name: src.Policy}, &policy); err != nil {
		return nil, err
	}
	if err := cp.copyTargets(ctx, &policy); err != nil {
		return nil, err
	}
	if err := cp.copyAutoscalers(ctx, &policy); err != nil {
		return nil, err
	}
	if err := cp.copyGateWorkloads(ctx, &policy); err != nil {
		return nil, err
	}
	why, err := cp.notAtRest(ctx, &policy)
	if err != nil {
		return nil, err
	}
	if len(why) > 0 && !src.StripFloodgateState {
		return nil, fmt.Errorf("trafficpolicy %s/%s is not at rest: %s; rehearse it once it is, or pass --strip-floodgate-state to copy it without Floodgate's state",
			src.Namespace, src.Policy, strings.Join(why, "; "))
	}
	for _, o := range cp.objects {
		sanitize(o)
	}
	if err := cp.leaveOut(policyU, &policy); err != nil {
		return nil, err
	}
	if len(why) > 0 {
		_ = unstructured.SetNestedField(policyU.Object, string(v1alpha1.ActionNormal), "spec", "action")
	}

	f := &File{Name: fmt.Sprintf("rehearsal of trafficpolicy %s/%s from %s", src.Namespace, src.Policy, orDefault(src.Context, "the live cluster")),
		Description: fmt.Sprintf("Copied read-only: %s.", strings.Join(cp.names(), ", "))}
	if len(cp.missing) > 0 {
		f.Description += " Not in the live cluster (the copy of the policy leaves them out): " + strings.Join(cp.missing, ", ") + "."
	}
	if len(cp.notScaled) > 0 {
		f.Description += " Not copied, no scale target (a kind without a scale subresource; the copy of the policy leaves its autoscaler out): " + strings.Join(cp.notScaled, ", ") + "."
	}
	sets, verdicted := cp.rehearsalNeeds()
	if verdicted {
		f.Gateway = &Gateway{} // the drill plays the controllers whose verdict those objects wait for
	}
	if f.CRDs, err = crds.Write(src.CRDDir, sets...); err != nil {
		return nil, err
	}
	f.setup = cp.objects
	f.Steps = cp.availableDeployments()
	if src.Runbook != "" {
		rb, err := Load(src.Runbook)
		if err != nil {
			return nil, err
		}
		f.Steps = append(f.Steps, rb.Steps...)
		if rb.Gateway != nil {
			f.Gateway = rb.Gateway
		}
	} else {
		f.Steps = append(f.Steps, defaultRunbook(&policy, cp)...)
	}
	f.path = src.Runbook
	return f, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// rehearsalNeeds are the CRD sets the copied objects' kinds need, and whether any of them
// waits for a controller's verdict in its status (provider.Verdicted).
func (cp *copier) rehearsalNeeds() (sets []string, verdicted bool) {
	for _, o := range cp.objects {
		k, ok := cp.kindOf(o)
		if !ok {
			continue
		}
		if c, ok := k.provider.(crdSetted); ok && !slices.Contains(sets, c.CRDSet()) {
			sets = append(sets, c.CRDSet())
		}
		if _, ok := k.provider.(provider.Verdicted); ok {
			verdicted = true
		}
	}
	return sets, verdicted
}

// kindOf is the provider's kind of a copied object, when a provider edits its kind.
func (cp *copier) kindOf(o *unstructured.Unstructured) (kind, bool) {
	gvk := o.GroupVersionKind()
	return kindNamed(cp.kinds, gvk.Group, gvk.Kind)
}

func (cp *copier) names() []string {
	var out []string
	for _, o := range cp.objects {
		out = append(out, o.GetKind()+" "+objKey(o))
	}
	return out
}

// copyTargets copies the policy's targets (named and selected) and what they route through.
func (cp *copier) copyTargets(ctx context.Context, policy *v1alpha1.TrafficPolicy) error {
	refs := pass.TargetRefs(policy.Spec)
	if sel := policy.Spec.TargetSelector; sel != nil {
		group, kind := sel.GroupKind()
		selector, err := sel.LabelSelector()
		if err != nil {
			return err
		}
		k, ok := kindNamed(cp.kinds, group, kind)
		if !ok {
			return fmt.Errorf("the targetSelector selects %s of group %s, which no provider edits", kind, group)
		}
		gvk := k.gvk
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := cp.c.List(ctx, list, client.InNamespace(cp.ns), client.MatchingLabelsSelector{Selector: selector}); err != nil && !meta.IsNoMatchError(err) {
			return fmt.Errorf("listing the %s targetSelector selects: %w", kind, err)
		}
		for _, o := range list.Items {
			if owner := metav1.GetControllerOf(&o); owner == nil || owner.Kind != "TrafficPolicy" {
				refs = append(refs, provider.Ref{Group: group, Kind: kind, Name: o.GetName()})
			}
		}
	}
	for i, ref := range refs {
		k, ok := kindNamed(cp.kinds, ref.Group, ref.Kind)
		if !ok {
			continue // a kind no provider edits: the pass says so; nothing to copy
		}
		target, err := cp.get(ctx, k.gvk, cp.ns, ref.Name)
		if err != nil {
			return err
		}
		if target == nil {
			cp.leaveOutTarget(i, policy) // named in missing; the other targets are still copied
			continue
		}
		if r, ok := k.provider.(rehearsed); ok {
			if err := r.CopyNeighbours(ctx, target, cp.get); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyAutoscalers copies the policy's autoscalers and what they scale.
func (cp *copier) copyAutoscalers(ctx context.Context, policy *v1alpha1.TrafficPolicy) error {
	for i, ref := range pass.AutoscalerRefs(policy.Spec) {
		k, ok := kindNamed(cp.kinds, ref.Group, ref.Kind)
		if !ok {
			continue // a kind no provider edits: the pass says so; nothing to copy
		}
		gvk := k.gvk
		a, err := cp.get(ctx, gvk, cp.ns, ref.Name)
		if err != nil {
			return err
		}
		if a == nil {
			cp.leftOutAutoscalers = append(cp.leftOutAutoscalers, i) // named in missing
			continue
		}
		target, _, _ := unstructured.NestedMap(a.Object, "spec", "scaleTargetRef")
		apiVersion, _ := target["apiVersion"].(string)
		kind, _ := target["kind"].(string)
		name, _ := target["name"].(string)
		gv, err := schema.ParseGroupVersion(orDefault(apiVersion, "apps/v1"))
		if err != nil || name == "" {
			continue
		}
		scaled := gv.WithKind(orDefault(kind, "Deployment"))
		scalable, err := cp.scalable(scaled)
		if err != nil {
			return err
		}
		if !scalable {
			cp.notScaled = append(cp.notScaled, fmt.Sprintf("%s %s/%s (scaleTargetRef of %s %s)", scaled.Kind, cp.ns, name, gvk.Kind, ref.Name))
			cp.leftOutAutoscalers = append(cp.leftOutAutoscalers, i)
			cp.drop(a)
			continue
		}
		if _, err := cp.get(ctx, scaled, cp.ns, name); err != nil {
			return err
		}
	}
	return nil
}

// leaveOutTarget leaves target i of the spec out of the copy when it is one the spec names (a
// selected one is only listed).
func (cp *copier) leaveOutTarget(i int, policy *v1alpha1.TrafficPolicy) {
	if i < len(policy.Spec.TargetRefs) {
		cp.leftOutTargets = append(cp.leftOutTargets, i)
	}
}

// drop takes a copied object back out of the copies.
func (cp *copier) drop(o *unstructured.Unstructured) {
	cp.objects = slices.DeleteFunc(cp.objects, func(c *unstructured.Unstructured) bool { return c == o })
}

// leaveOut removes from the copy of the policy the targets and autoscalers the rehearsal has no
// copy of, so its levers run on what the live cluster has; the drill's description names them.
// A policy none of whose targets the live cluster has is refused: there is nothing to rehearse.
func (cp *copier) leaveOut(policyU *unstructured.Unstructured, policy *v1alpha1.TrafficPolicy) error {
	if len(cp.leftOutTargets) > 0 && len(cp.leftOutTargets) == len(policy.Spec.TargetRefs) && policy.Spec.TargetSelector == nil {
		return fmt.Errorf("trafficpolicy %s/%s: none of its targets is in the live cluster (%s): there is nothing to rehearse",
			policy.Namespace, policy.Name, strings.Join(cp.missing, ", "))
	}
	for _, f := range []struct {
		field string
		drop  []int
	}{{"targetRefs", cp.leftOutTargets}, {"autoscalerRefs", cp.leftOutAutoscalers}} {
		if len(f.drop) == 0 {
			continue
		}
		items, _, _ := unstructured.NestedSlice(policyU.Object, "spec", f.field)
		var kept []any
		for i, it := range items {
			if !slices.Contains(f.drop, i) {
				kept = append(kept, it)
			}
		}
		if len(kept) == 0 {
			unstructured.RemoveNestedField(policyU.Object, "spec", f.field)
		} else if err := unstructured.SetNestedSlice(policyU.Object, kept, "spec", f.field); err != nil {
			return fmt.Errorf("leaving %s out of the copy: %w", f.field, err)
		}
	}
	return nil
}

// scaleSubresource says, from the live cluster's discovery (read-only), whether a kind has a
// scale subresource: only such kinds are an autoscaler's scale target, so a scaleTargetRef naming
// anything else (a Role, a ControllerRevision) never copies it.
func scaleSubresource(dc discovery.DiscoveryInterface) func(schema.GroupVersionKind) (bool, error) {
	return func(gvk schema.GroupVersionKind) (bool, error) {
		list, err := dc.ServerResourcesForGroupVersion(gvk.GroupVersion().String())
		if apierrors.IsNotFound(err) || errors.Is(err, memory.ErrCacheNotFound) { // a group version the cluster does not serve
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading the live cluster's %s resources: %w", gvk.GroupVersion(), err)
		}
		names := map[string]bool{}
		for _, r := range list.APIResources {
			names[r.Name] = true
		}
		for _, r := range list.APIResources {
			if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") && names[r.Name+"/scale"] {
				return true, nil
			}
		}
		return false, nil
	}
}

// copyGateWorkloads copies the Deployments the policy's workload gates read.
func (cp *copier) copyGateWorkloads(ctx context.Context, policy *v1alpha1.TrafficPolicy) error {
	if policy.Spec.Ramp == nil {
		return nil
	}
	for _, s := range policy.Spec.Ramp.Steps {
		for _, g := range s.Gates {
			if g.WorkloadReady != nil && g.WorkloadReady.Name != "" {
				if _, err := cp.get(ctx, gvkDeployment, cp.ns, g.WorkloadReady.Name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// notAtRest says what keeps the policy from being at rest: its lever, its phase, restore
// records on what it changed, companions of its own.
func (cp *copier) notAtRest(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]string, error) {
	var why []string
	if a := policy.Spec.Action; a != "" && a != v1alpha1.ActionNormal {
		why = append(why, "its action is "+string(a))
	}
	if ph := policy.Status.Phase; ph != "" && ph != v1alpha1.PhaseNormal && ph != v1alpha1.PhaseCompleted {
		why = append(why, "its phase is "+string(ph))
	}
	for _, o := range cp.objects {
		if _, ok := o.GetAnnotations()[restore.Annotation]; ok && o.GetKind() != gvkPolicy.Kind {
			why = append(why, fmt.Sprintf("%s %s carries a restore record (%s)", o.GetKind(), o.GetName(), restore.Annotation))
		}
	}
	// Floodgate's companions: the shed Service, and those of the providers that give targets some.
	companionKinds := []schema.GroupVersionKind{gvkService}
	for _, k := range cp.kinds {
		if _, ok := k.provider.(provider.Companioned); ok {
			companionKinds = append(companionKinds, k.gvk)
		}
	}
	for _, gvk := range companionKinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := cp.c.List(ctx, list, client.InNamespace(cp.ns), client.MatchingLabels{"traffic.floodgate.dev/policy": policy.Name}); meta.IsNoMatchError(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("listing the policy's companions: %w", err)
		}
		for _, o := range list.Items {
			if owner := metav1.GetControllerOf(&o); owner != nil && owner.Kind == "TrafficPolicy" && owner.Name == policy.Name {
				why = append(why, fmt.Sprintf("companion %s %s is present", gvk.Kind, o.GetName()))
			}
		}
	}
	return why, nil
}
