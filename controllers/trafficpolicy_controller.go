// Package controllers holds the TrafficPolicy reconciler: get, finalizer, plan, observe, apply,
// status (one status patch at the end, skipped when nothing changed).
package controllers

import (
	"context"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/arm"
	"floodgate.dev/floodgate/internal/confirm"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/gate"
	"floodgate.dev/floodgate/internal/index"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/patch"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// Finalizer keeps a policy until the originals of everything it changed are back.
const Finalizer = "traffic.floodgate.dev/restore"

const (
	indexAutoscalerNames = ".spec.autoscalerRefs.kindName"
	// maxKeptChanges is how many kept changes status names (the CRD's MaxItems).
	maxKeptChanges = 100
)

// Least privilege: every verb below is used (test/e2e/namespaced_test.go runs a whole cycle as a
// ServiceAccount bound to nothing else and checks each one), except where a comment says why.
// Objects the manager watches are read from its cache: list and watch, no get (list is what an
// informer falls back to on an API server without streaming lists).
// +kubebuilder:rbac:groups=traffic.floodgate.dev,resources=trafficpolicies,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=traffic.floodgate.dev,resources=trafficpolicies/status,verbs=patch
// trafficpolicies/finalizers update: setting blockOwnerDeletion on a companion, where the
// OwnerReferencesPermissionEnforcement admission plugin is on.
// +kubebuilder:rbac:groups=traffic.floodgate.dev,resources=trafficpolicies/finalizers,verbs=update
// Each kind's own verbs are beside its provider (internal/provider/<name>, and the scale of what
// autoscalers scale in internal/provider/scale.go). Deployments: the workload gates.
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=list;watch
// services patch: a shed Service someone else changed is put back.
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch;create;patch;delete
// endpointslices get: the cache holds only Floodgate's slices (by label); a companion slice whose
// labels someone removed is read live.
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;patch;delete
// events patch: an Event repeated within its series.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// TrafficPolicyReconciler applies TrafficPolicies to their targets and autoscalers.
type TrafficPolicyReconciler struct {
	Client client.Client
	// APIReader reads from the API server, not the cache: the policy at the start of a pass,
	// and, when a status write conflicts, whether only the spec changed meanwhile (nil: the
	// cache is read, and such a write is retried instead).
	APIReader client.Reader
	// Clock is the time the plan is made at; drills and tests inject a fake one, which also
	// times the controller's requeues.
	Clock clock.WithDelayedExecution
	// ClockAdvanced, when set, brings every policy back after a warped clock moved.
	ClockAdvanced <-chan event.GenericEvent
	Recorder      events.EventRecorder
	// Providers edit each kind of object a policy names (Ingresses, HPAs, ScaledObjects, ...).
	Providers *provider.Registry
	Shed      shed.Backend
	// RedirectHosts are the hosts a shed answer may redirect to, as the cluster administrator
	// set them (empty: redirects off); the shed server reads the same list.
	RedirectHosts shed.RedirectHosts
	// FollowClasses reads the cluster's IngressClasses and GatewayClasses (cluster-scoped: a
	// cluster-wide install only): an Ingress of a class that does not exist makes no claim on a
	// shed answer, and a class appearing or going changes its objects' data plane. False: every
	// Ingress counts as carrying traffic, and no data plane is read from a class.
	FollowClasses bool
	// Gates reads the ramp steps' workload gates from the cache (nil: gates are not read, as in
	// previews).
	Gates *gate.Reader
	// GatePoller reads the network gates (webhook, Prometheus) apart from the reconcile pass and
	// wakes a policy when its reading arrives (nil: only the readings in status are used).
	GatePoller *gate.Poller
	// GateReadings carries the poller's wake-ups into the controller's queue.
	GateReadings <-chan event.GenericEvent
	// Metrics records floodgate_* metrics (nil: none, as in previews).
	Metrics *Metrics
	// Armer has the API server judge every lever of a policy in a dry run, apart from the pass,
	// and keeps its verdict (nil: levers are not judged, as in previews).
	Armer *arm.Armer
	// ArmVerdicts carries the armer's wake-ups (a verdict changed) into the controller's queue.
	ArmVerdicts <-chan event.GenericEvent
	// Confirmer sends probes through the data plane apart from the pass, and keeps what came
	// back (nil: levers are not confirmed, as in previews).
	Confirmer *confirm.Confirmer
	// ConfirmWakes carries the confirmer's wake-ups (what a policy would say changed).
	ConfirmWakes <-chan event.GenericEvent
	// ProbeKey makes each policy's probe token (nil: nothing is probed).
	ProbeKey []byte
	// ConfirmAddresses are the data planes' addresses probes go to, by data plane, for
	// policies whose spec.confirm names none.
	ConfirmAddresses map[string]string

	written writtenVersions
	// companionWaits are when each deleted policy began waiting for a data plane to let a
	// companion go (letGo), on Clock.
	companionWaits companionWaits
}

// Reconcile runs one pass for a policy: the lever's stages while it lives, the restore's once it
// is deleted (leverStages, restoreStages), then the one status writer (summarize).
func (r *TrafficPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	policy, err := r.readPolicy(ctx, req.NamespacedName)
	if err != nil || policy == nil {
		return ctrl.Result{}, err
	}
	r.Metrics.pass(policy)
	stages := r.leverStages()
	switch {
	case !policy.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(policy, Finalizer):
		return ctrl.Result{}, nil
	case !policy.DeletionTimestamp.IsZero():
		stages = r.restoreStages()
	case !controllerutil.ContainsFinalizer(policy, Finalizer):
		// The finalizer is in place before anything is touched; the pass goes on once it is.
		before := policy.DeepCopy()
		controllerutil.AddFinalizer(policy, Finalizer)
		if err := r.Client.Patch(ctx, policy, patch.From(before)); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
		r.written.note(policy)
	}
	s := &passState{before: policy.DeepCopy(), policy: policy, now: r.Clock.Now()}
	return r.summarize(ctx, s, runStages(ctx, s, stages))
}

// noteArmed files the armer's last verdict on the policy's levers into its status.
func (r *TrafficPolicyReconciler) noteArmed(policy *v1alpha1.TrafficPolicy) {
	if r.Armer == nil {
		return
	}
	if v, ok := r.Armer.Verdict(policy); ok {
		pass.NoteArmed(policy, &v)
	} else {
		pass.NoteArmed(policy, nil)
	}
}

// readPolicy reads the policy a pass starts from: from the cache, unless the cache is older than
// the policy as this manager last wrote it (then from the API server). A pass must start from the
// status the last pass wrote: from a stale copy its status write would conflict and be dropped,
// and with it what the pass learned while writing (a field someone else changed, kept on
// restore). nil when the policy is gone.
func (r *TrafficPolicyReconciler) readPolicy(ctx context.Context, key types.NamespacedName) (*v1alpha1.TrafficPolicy, error) {
	var policy v1alpha1.TrafficPolicy
	err := r.Client.Get(ctx, key, &policy)
	if err == nil && r.APIReader != nil && r.written.newerThan(&policy) {
		err = r.APIReader.Get(ctx, key, &policy)
	}
	if apierrors.IsNotFound(err) {
		r.written.forget(key)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the policy: %w", err)
	}
	return &policy, nil
}

// notices are the Events and metric updates of one pass, sent only once its status is written,
// so a pass that is retried tells nothing twice.
type notices []func()

func (n *notices) add(f func()) { *n = append(*n, f) }

func (n notices) send() {
	for _, f := range n {
		f()
	}
}

// pass is a pass over the policy's objects, with the reconciler's client and providers.
func (r *TrafficPolicyReconciler) pass() *pass.Pass {
	return &pass.Pass{Client: r.Client, Providers: r.Providers, Shed: r.Shed}
}

// setConditions sets the conditions and sends a Warning Event when a warning condition (Degraded,
// GateUnknown, LeverStale) turns True or changes reason.
func (r *TrafficPolicyReconciler) setConditions(policy *v1alpha1.TrafficPolicy, outcome core.Outcome, n *notices) {
	warnings := []string{v1alpha1.ConditionDegraded, v1alpha1.ConditionGateUnknown, v1alpha1.ConditionLeverStale}
	prev := map[string]metav1.Condition{}
	for _, t := range warnings {
		if c := meta.FindStatusCondition(policy.Status.Conditions, t); c != nil {
			prev[t] = *c
		}
	}
	core.SetConditions(policy, outcome)
	for _, t := range warnings {
		now := meta.FindStatusCondition(policy.Status.Conditions, t)
		was, had := prev[t]
		if now.Status == metav1.ConditionTrue && (!had || was.Status != now.Status || was.Reason != now.Reason || was.Message != now.Message) {
			reason, message := now.Reason, now.Message
			n.add(func() { r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", message) })
		}
	}
	policy.Status.ObservedGeneration = policy.Generation
}

// gateReason says which gate holds the ramp and why.
func gateReason(r *v1alpha1.RampStatus, name string) string {
	if name == "" || r == nil {
		return ""
	}
	for _, g := range r.Gates {
		if g.Name == name {
			return "gate " + name + ": " + g.Reason
		}
	}
	return "gate " + name + ": not read yet"
}

// patchStatus writes status when it changed (steady state makes no write), on the condition that
// the policy is still the one this pass read. When it is not only because its spec or metadata
// changed meanwhile (a lever flipped while the pass wrote to the targets), its status is still
// the one the pass read, and the pass's status is the truth about what it wrote: it is written
// onto the policy as it is now, with the generation the pass observed. Otherwise (the pass read
// a stale status) nothing is written and the pass is retried.
func (r *TrafficPolicyReconciler) patchStatus(ctx context.Context, before, policy *v1alpha1.TrafficPolicy) error {
	if equality.Semantic.DeepEqual(before.Status, policy.Status) {
		return nil
	}
	err := r.Client.Status().Patch(ctx, policy, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	if err == nil {
		r.written.note(policy)
	}
	if apierrors.IsConflict(err) && r.APIReader != nil {
		var now v1alpha1.TrafficPolicy
		if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(policy), &now); gerr == nil && equality.Semantic.DeepEqual(now.Status, before.Status) {
			base := now.DeepCopy()
			now.Status = policy.Status
			if err = r.Client.Status().Patch(ctx, &now, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err == nil {
				r.written.note(&now)
			}
		} else if gerr == nil {
			// The pass started from a stale copy (another manager wrote since): the retry reads
			// the API server.
			r.written.readThrough(client.ObjectKeyFromObject(policy))
		}
	}
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// SetupWithManager registers the controller, its indexes and its watches.
func (r *TrafficPolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.TrafficPolicy{}, indexAutoscalerNames, func(o client.Object) []string {
		var names []string
		for _, a := range pass.AutoscalerRefs(o.(*v1alpha1.TrafficPolicy).Spec) {
			names = append(names, a.Kind+"/"+a.Name)
		}
		return names
	}); err != nil {
		return err
	}
	// The shed answer of a host is a policy's only when no policy of another namespace claims it.
	if err := idx.IndexField(ctx, &v1alpha1.TrafficPolicy{}, indexTargetNames, targetNames); err != nil {
		return err
	}
	for _, k := range r.shedKinds() {
		if err := index.Register(ctx, mgr.GetCache(), k.Object(), indexHosts(k), hostKeys(k), index.AcrossNamespaces); err != nil {
			return err
		}
	}
	for field, fn := range map[string]client.IndexerFunc{
		indexSelecting: selecting, indexCompanionNames: companionNames(r.Providers), indexWorkloadGates: workloadGates,
	} {
		if err := idx.IndexField(ctx, &v1alpha1.TrafficPolicy{}, field, fn); err != nil {
			return err
		}
	}
	// Each provider lists its kind through indexes of its own (its targets' neighbours, the
	// objects carrying a policy's restore record), never a whole namespace; an index two
	// providers of a kind share (one per data plane) is registered once.
	registered := map[string]bool{}
	for _, role := range []provider.Role{provider.Target, provider.Autoscaler} {
		for _, p := range r.Providers.Available(role) {
			indexed, ok := p.(provider.Indexed)
			if !ok {
				continue
			}
			for _, i := range indexed.Indexes() {
				key := fmt.Sprintf("%T %s", i.Object, i.Field)
				if registered[key] {
					continue
				}
				registered[key] = true
				if err := index.Register(ctx, mgr.GetCache(), i.Object, i.Field, i.Extract, index.InOneNamespace); err != nil {
					return fmt.Errorf("indexing %T by %s: %w", i.Object, i.Field, err)
				}
			}
		}
	}
	// A policy's companions are listed by their controller ownerReference, not their label.
	for _, obj := range r.ownedKinds() {
		if err := idx.IndexField(ctx, obj, owned.IndexController, owned.ControllerUID); err != nil {
			return err
		}
	}
	if _, real := r.Clock.(clock.RealClock); !real {
		opts.UsePriorityQueue = ptr.To(false)
		opts.NewQueue = newClockedQueue(r.Clock)
	}
	b := ctrl.NewControllerManagedBy(mgr)
	// An object of a shed kind elsewhere can claim a host a policy's shed answer covers, and stop
	// or start claiming when it stops or starts carrying traffic (a gateway's verdict).
	watched := map[reflect.Type]bool{}
	everyPolicy := func(obj client.Object) {
		// Rare changes that concern objects in any namespace: every policy is looked at again.
		if t := reflect.TypeOf(obj); !watched[t] {
			watched[t] = true
			b = b.Watches(obj, handler.EnqueueRequestsFromMapFunc(r.mapPolicies(everywhere, nil)),
				builder.WithPredicates(predicate.GenerationChangedPredicate{}))
		}
	}
	for _, k := range r.shedKinds() {
		carrying := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return k.CarryingChanged(e.ObjectOld, e.ObjectNew) }}
		b = b.Watches(k.Object(), handler.EnqueueRequestsFromMapFunc(r.mapSharedHosts), builder.WithPredicates(predicate.Or(userPartChanged(), carrying)))
		// What decides whether and where its objects carry traffic (classes, Gateways).
		for _, obj := range k.Follows(r.FollowClasses) {
			everyPolicy(obj)
		}
	}
	if r.FollowClasses {
		// A class created or deleted changes its objects' data plane (a class's controller
		// cannot change).
		for _, p := range r.Providers.Kinds(provider.Target) {
			if classed, ok := p.(provider.Classed); ok {
				for _, obj := range classed.Classes() {
					everyPolicy(obj)
				}
			}
		}
	}
	if r.ClockAdvanced != nil {
		b = b.WatchesRawSource(source.Channel(r.ClockAdvanced, handler.EnqueueRequestsFromMapFunc(r.mapPolicies(everywhere, nil))))
	}
	if r.GateReadings != nil {
		b = b.WatchesRawSource(source.Channel(r.GateReadings, &handler.EnqueueRequestForObject{}))
	}
	if r.ConfirmWakes != nil {
		b = b.WatchesRawSource(source.Channel(r.ConfirmWakes, &handler.EnqueueRequestForObject{}))
	}
	if r.ArmVerdicts != nil {
		b = b.WatchesRawSource(source.Channel(r.ArmVerdicts, &handler.EnqueueRequestForObject{}))
	}
	// Every kind of autoscaler the cluster serves (HPAs; KEDA ScaledObjects where installed)
	// wakes the policies that name it.
	for _, p := range r.Providers.Kinds(provider.Autoscaler) {
		b = b.Watches(p.Object(), handler.EnqueueRequestsFromMapFunc(r.mapPolicies(namingAutoscaler(p.GroupKind().Kind), nil)))
	}
	// A target kind's object wakes the policies that name or select it, carry its record or a
	// companion of its name, or whose targets it bears on; no other.
	for _, p := range r.Providers.Kinds(provider.Target) {
		changed := userPartChanged()
		if v, ok := p.(provider.Verdicted); ok {
			changed = predicate.Or(changed, predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return v.VerdictChanged(e.ObjectOld, e.ObjectNew) }})
		}
		b = b.Watches(p.Object(), handler.EnqueueRequestsFromMapFunc(r.mapTarget(p)), builder.WithPredicates(changed))
	}
	// An object of another kind attaching itself to targets (a data plane's policy on a route)
	// wakes the policies of the targets it attaches to, when its spec or its status changes.
	for _, p := range r.Providers.Available(provider.Target) {
		if a, ok := p.(provider.Attached); ok {
			for _, obj := range a.Attachments() {
				b = b.Watches(obj, handler.EnqueueRequestsFromMapFunc(r.mapAttached(p, a)),
					builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, statusChanged())))
			}
		}
	}
	for _, obj := range r.ownedKinds() {
		b = b.Owns(obj)
	}
	return b.
		For(&v1alpha1.TrafficPolicy{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletingPredicate()))).
		Watches(&v1alpha1.TrafficPolicy{}, handler.EnqueueRequestsFromMapFunc(r.mapSharedHosts),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.mapGatedOn)).
		// A change of the shed pods wakes every policy with a shed companion, whatever its targets'
		// kind: the companion mirrors them, and status says whether the shed can be answered.
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.mapShedCompanions),
			builder.WithPredicates(predicate.NewPredicateFuncs(r.isShedBackendSlice))).
		WithOptions(opts).
		Named("trafficpolicy").
		Complete(r)
}

// mapPolicies maps a watched change to the policies scope lists that keep (nil: all) says it
// concerns.
func (r *TrafficPolicyReconciler) mapPolicies(scope func(client.Object) []client.ListOption, keep func(client.Object, *v1alpha1.TrafficPolicy) bool) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list v1alpha1.TrafficPolicyList
		if err := r.Client.List(ctx, &list, append(scope(obj), client.UnsafeDisableDeepCopy)...); err != nil {
			logf.FromContext(ctx).Error(err, "listing policies for a watched change")
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			if keep == nil || keep(obj, &list.Items[i]) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return out
	}
}

// everywhere lists the policies of every namespace (a clock advance carries no object).
func everywhere(client.Object) []client.ListOption { return nil }

// namingAutoscaler lists the policies of an autoscaler's namespace that hold it.
func namingAutoscaler(kind string) func(client.Object) []client.ListOption {
	return func(obj client.Object) []client.ListOption {
		return []client.ListOption{client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexAutoscalerNames: kind + "/" + obj.GetName()}}
	}
}

// mapGatedOn maps a Deployment to the policies of its namespace whose workload gates read it
// (by name, or as their HPA's target).
func (r *TrafficPolicyReconciler) mapGatedOn(ctx context.Context, obj client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, name := range []string{obj.GetName(), "*"} {
		out = append(out, r.mapPolicies(func(o client.Object) []client.ListOption {
			return []client.ListOption{client.InNamespace(o.GetNamespace()), client.MatchingFields{indexWorkloadGates: name}}
		}, nil)(ctx, obj)...)
	}
	return out
}

// mapShedCompanions maps a change of the shed pods to the policies controlling a shed
// companion EndpointSlice (the one mechanism for every target kind: canaries and routes alike
// reach the shed pods through it).
func (r *TrafficPolicyReconciler) mapShedCompanions(ctx context.Context, _ client.Object) []reconcile.Request {
	var companions discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &companions, client.MatchingLabels{discoveryv1.LabelManagedBy: shed.ManagedBy}, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "listing the shed companions for a change of the shed pods")
		return nil
	}
	seen := map[types.NamespacedName]bool{}
	var out []reconcile.Request
	for i := range companions.Items {
		owner := metav1.GetControllerOf(&companions.Items[i])
		if owner == nil || owner.Kind != "TrafficPolicy" || owner.APIVersion != v1alpha1.GroupVersion.String() {
			continue
		}
		key := types.NamespacedName{Namespace: companions.Items[i].Namespace, Name: owner.Name}
		if !seen[key] {
			seen[key] = true
			out = append(out, reconcile.Request{NamespacedName: key})
		}
	}
	return out
}

func (r *TrafficPolicyReconciler) isShedBackendSlice(obj client.Object) bool {
	return obj.GetNamespace() == r.Shed.Namespace && obj.GetLabels()[discoveryv1.LabelServiceName] == r.Shed.ServiceName
}

// userPartChanged passes a target's creation and deletion, and the updates a pass can read:
// spec (generation), labels, annotations and owner. A status-only update (an ingress controller
// writing the load balancer's address) wakes nothing.
func userPartChanged() predicate.Predicate {
	owner := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !equality.Semantic.DeepEqual(e.ObjectOld.GetOwnerReferences(), e.ObjectNew.GetOwnerReferences())
	}}
	return predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}, owner)
}

// statusChanged passes an update whose status changed (an unstructured object's: a data plane's
// verdict on it).
func statusChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*unstructured.Unstructured)
		n, ok2 := e.ObjectNew.(*unstructured.Unstructured)
		return ok1 && ok2 && !equality.Semantic.DeepEqual(o.Object["status"], n.Object["status"])
	}}
}

func deletingPredicate() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// ownedKinds are the kinds of a policy's companions, which it owns as their controller: the shed
// Service and its EndpointSlice, and the companions target providers give targets of their kind
// (provider.Companioned).
func (r *TrafficPolicyReconciler) ownedKinds() []client.Object {
	out := []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}}
	for _, p := range r.Providers.Kinds(provider.Target) {
		if _, ok := p.(provider.Companioned); ok {
			out = append(out, p.Object())
		}
	}
	return out
}
