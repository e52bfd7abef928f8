// Package controllers holds the TrafficPolicy reconciler: get, finalizer, plan, observe, apply,
// status (one status patch at the end, skipped when nothing changed).
package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	"floodgate.dev/floodgate/internal/autoscaler"
	"floodgate.dev/floodgate/internal/gate"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// Finalizer keeps a policy until the originals of everything it changed are back.
const Finalizer = "traffic.floodgate.dev/restore"

const (
	indexAutoscalerNames = ".spec.autoscalerRefs.name"
)

// +kubebuilder:rbac:groups=traffic.floodgate.dev,resources=trafficpolicies,verbs=get;list;watch;patch;update
// +kubebuilder:rbac:groups=traffic.floodgate.dev,resources=trafficpolicies/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=traffic.floodgate.dev,resources=trafficpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;update;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;patch;update
// +kubebuilder:rbac:groups=apps,resources=deployments/scale;statefulsets/scale;replicasets/scale,verbs=get
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;update;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;patch;update;delete
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
	Ingress       provider.Provider
	HPA           *autoscaler.HPA
	Shed          shed.Backend
	// Gates reads the ramp steps' health gates (nil: gates are not read, as in previews).
	Gates *gate.Reader
	// Metrics records floodgate_* metrics (nil: none, as in previews).
	Metrics *Metrics
}

// Reconcile runs one pass for a policy.
func (r *TrafficPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// The policy is read from the API server, not the cache: a pass starts from the status the
	// last pass wrote. From a stale copy its status write would conflict and be dropped, and with
	// it what the pass learned while writing (a field someone else changed, kept on restore).
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	var policy v1alpha1.TrafficPolicy
	if err := reader.Get(ctx, req.NamespacedName, &policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !policy.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, &policy)
	}
	// The finalizer is in place before anything is touched; the pass goes on once it is.
	if !controllerutil.ContainsFinalizer(&policy, Finalizer) {
		before := policy.DeepCopy()
		controllerutil.AddFinalizer(&policy, Finalizer)
		if err := r.Client.Patch(ctx, &policy, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}

	before := policy.DeepCopy()
	var n notices
	result, err := r.reconcile(ctx, &policy, &n)
	if perr := r.patchStatus(ctx, before, &policy); perr != nil {
		// A pass on a stale copy conflicts here and is retried; it tells nothing.
		return ctrl.Result{}, errors.Join(err, perr)
	}
	n.send()
	return result, err
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

// observation is what was read about every target and autoscaler before any write.
type observation struct {
	targets     []*provider.Observation
	autoscalers []*autoscaler.Observation
	problems    []provider.Problem
	// leftovers are the targets and autoscalers the policy changed that its spec no longer
	// names: they are put back whatever the knobs, and their problems keep nothing else from
	// being applied.
	leftoverTargets     []*provider.Observation
	leftoverAutoscalers []*autoscaler.Observation
	leftoverProblems    []provider.Problem
}

func (r *TrafficPolicyReconciler) reconcile(ctx context.Context, policy *v1alpha1.TrafficPolicy, n *notices) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	now := r.Clock.Now()
	plan, obs, err := r.planAndObserve(ctx, policy, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.readNewStepGates(ctx, policy, &plan, now)

	outcome := Outcome{Phase: plan.Phase, ShedEndpoints: -1,
		UnknownGate: gateReason(plan.Ramp, plan.UnknownGate()), StaleFor: plan.StaleFor}
	if len(obs.problems) > 0 && !plan.Knobs.Equal(knobs.Knobs{}) {
		// Nothing is half applied: the plan waits until every target can take it. Watches on
		// the targets bring the policy back when they change.
		outcome.Phase, outcome.Problems = policy.Status.Phase, obs.problems
		r.noteFound(policy, obs)
		r.setConditions(policy, outcome, n)
		log.Info("policy not applied", "reason", obs.problems[0].Reason, "message", obs.problems[0].Message)
		return ctrl.Result{}, nil
	}
	outcome.Problems, outcome.Leftovers = obs.problems, obs.leftoverProblems

	if err := r.apply(ctx, policy, plan.Knobs, obs, &outcome); err != nil {
		if staleRead(err) {
			return ctrl.Result{}, fmt.Errorf("the pass read an object older than the API server's; retrying: %w", err)
		}
		outcome.ApplyErr = err
		outcome.Phase = policy.Status.Phase
		r.setConditions(policy, outcome, n)
		return ctrl.Result{}, err
	}

	r.commit(policy, plan, outcome, n)
	if plan.RequeueAfter > 0 {
		log.V(1).Info("next look", "after", plan.RequeueAfter, "phase", plan.Phase)
	}
	return ctrl.Result{RequeueAfter: plan.RequeueAfter}, nil
}

// planAndObserve plans the policy at now and reads every target and autoscaler for that plan.
// The autoscalers' stabilization window, known only once they are read, is the default release
// time: when it differs from the assumed one the (pure) plan is made again.
func (r *TrafficPolicyReconciler) planAndObserve(ctx context.Context, policy *v1alpha1.TrafficPolicy, now time.Time) (Plan, observation, error) {
	in := PlanInput{Spec: policy.Spec, Status: policy.Status, Now: now, DefaultReleaseAfter: autoscaler.DefaultStabilizationWindow,
		Request: PendingRequest(policy), GateReadings: r.gateReadings(ctx, policy, now)}
	plan := MakePlan(in)
	obs, err := r.observe(ctx, policy, plan.Knobs)
	if err != nil {
		return plan, obs, err
	}
	if window := longestWindow(obs.autoscalers); window != in.DefaultReleaseAfter {
		in.DefaultReleaseAfter = window
		plan = MakePlan(in)
	}
	return plan, obs, nil
}

// observe reads every target and autoscaler; it writes nothing.
func (r *TrafficPolicyReconciler) observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs) (observation, error) {
	var obs observation
	for _, ref := range policy.Spec.TargetRefs {
		o, err := r.Ingress.Observe(ctx, policy, ref, k.Traffic())
		if err != nil {
			return obs, err
		}
		if !o.Found {
			obs.problems = append(obs.problems, provider.Problem{Reason: v1alpha1.ReasonTargetNotFound,
				Message: fmt.Sprintf("%s %s not found in namespace %s", ref.Kind, ref.Name, policy.Namespace)})
		}
		obs.problems = append(obs.problems, o.Problems...)
		obs.targets = append(obs.targets, o)
	}
	for _, ref := range policy.Spec.AutoscalerRefs {
		o, err := r.HPA.Observe(ctx, policy, ref, k.HoldAutoscalers)
		if err != nil {
			return obs, err
		}
		if !o.Found {
			obs.problems = append(obs.problems, provider.Problem{Reason: v1alpha1.ReasonAutoscalerNotFound,
				Message: fmt.Sprintf("HorizontalPodAutoscaler %s not found in namespace %s", ref.Name, policy.Namespace)})
		}
		obs.problems = append(obs.problems, o.Problems...)
		obs.autoscalers = append(obs.autoscalers, o)
	}
	return obs, r.observeLeftovers(ctx, policy, &obs)
}

// observeLeftovers reads the targets and autoscalers the policy changed that its spec no longer
// names: those its status lists with a restore record or companion, and those carrying its
// record. Only a record that cannot be read is a problem: another policy's record means the
// object is not this policy's to put back.
func (r *TrafficPolicyReconciler) observeLeftovers(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs *observation) error {
	refs, err := r.Ingress.Recorded(ctx, policy)
	if err != nil {
		return err
	}
	for _, t := range policy.Status.Targets {
		if t.RestoreRecord != "" || t.Companion != "" {
			refs = append(refs, v1alpha1.TargetRef{Kind: t.Kind, Name: t.Name})
		}
	}
	for _, ref := range leftover(refs, policy.Spec.TargetRefs, func(t v1alpha1.TargetRef) string { return t.Name }) {
		o, err := r.Ingress.Observe(ctx, policy, ref, knobs.Knobs{})
		if err != nil {
			return err
		}
		obs.leftoverProblems = append(obs.leftoverProblems, corrupt(o.Problems)...)
		obs.leftoverTargets = append(obs.leftoverTargets, o)
	}

	names, err := r.HPA.Recorded(ctx, policy)
	if err != nil {
		return err
	}
	for _, a := range policy.Status.Autoscalers {
		if a.RestoreRecord != "" {
			names = append(names, a.Name)
		}
	}
	var refsInSpec []string
	for _, a := range policy.Spec.AutoscalerRefs {
		refsInSpec = append(refsInSpec, a.Name)
	}
	for _, name := range leftover(names, refsInSpec, func(n string) string { return n }) {
		o, err := r.HPA.Observe(ctx, policy, v1alpha1.AutoscalerRef{Name: name}, false)
		if err != nil {
			return err
		}
		obs.leftoverProblems = append(obs.leftoverProblems, corrupt(o.Problems)...)
		obs.leftoverAutoscalers = append(obs.leftoverAutoscalers, o)
	}
	return nil
}

// leftover keeps the items found whose name the spec does not have, once each.
func leftover[T any](found, spec []T, name func(T) string) []T {
	seen := map[string]bool{}
	for _, t := range spec {
		seen[name(t)] = true
	}
	var out []T
	for _, t := range found {
		if !seen[name(t)] {
			seen[name(t)] = true
			out = append(out, t)
		}
	}
	return out
}

// apply writes the knobs to every observed target and autoscaler. Zero knobs restore.
func (r *TrafficPolicyReconciler) apply(ctx context.Context, policy *v1alpha1.TrafficPolicy, k knobs.Knobs, obs observation, outcome *Outcome) error {
	traffic := k.Traffic()
	// Each target's shed Service is in place before its canary routes to it, and goes after.
	var shedFor []string
	if traffic.Sheds() {
		for _, o := range obs.targets {
			shedFor = append(shedFor, o.Ref.Name)
			if !o.Found || blocked(o.Problems) {
				continue
			}
			ready, err := r.Shed.EnsureCompanion(ctx, r.Client, policy, o.Ref.Name)
			if err != nil {
				return err
			}
			outcome.ShedEndpoints = ready
		}
	}
	targets := make([]v1alpha1.TargetStatus, 0, len(obs.targets))
	for _, o := range obs.targets {
		// A target that is gone is only restored (its canary removed), never given knobs.
		if blocked(o.Problems) || (!o.Found && !traffic.Equal(knobs.Knobs{})) {
			targets = append(targets, o.Status)
			continue
		}
		res, err := r.Ingress.Apply(ctx, policy, o, traffic, recordCopy(policy.Status.Targets, o.Ref.Name))
		if err != nil {
			return err
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("Ingress "+o.Ref.Name, res.KeptOthers)...)
		targets = append(targets, res.Status)
	}
	autoscalers := make([]v1alpha1.AutoscalerStatus, 0, len(obs.autoscalers))
	for _, o := range obs.autoscalers {
		if blocked(o.Problems) {
			autoscalers = append(autoscalers, v1alpha1.AutoscalerStatus{Name: o.Name, Found: o.Found})
			continue
		}
		st, kept, err := r.HPA.Apply(ctx, policy, o, holdLevel(policy.Status.Autoscalers, o.Name, k), autoscalerRecordCopy(policy.Status.Autoscalers, o.Name))
		if err != nil {
			return err
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("HorizontalPodAutoscaler "+o.Name, kept)...)
		autoscalers = append(autoscalers, st)
	}
	leftTargets, leftAutoscalers, err := r.putBackLeftovers(ctx, policy, obs, outcome)
	if err != nil {
		return err
	}
	// Shed Services go once no canary routes to them.
	if err := shed.RemoveCompanions(ctx, r.Client, policy, shedFor); err != nil {
		return err
	}
	policy.Status.Targets, policy.Status.Autoscalers = append(targets, leftTargets...), append(autoscalers, leftAutoscalers...)
	return nil
}

// putBackLeftovers restores the targets and autoscalers the spec no longer names. One that is
// put back leaves status; one that cannot be (a corrupt record) stays there with its record copy.
func (r *TrafficPolicyReconciler) putBackLeftovers(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs observation, outcome *Outcome) ([]v1alpha1.TargetStatus, []v1alpha1.AutoscalerStatus, error) {
	var targets []v1alpha1.TargetStatus
	for _, o := range obs.leftoverTargets {
		if len(corrupt(o.Problems)) > 0 {
			targets = append(targets, previousTarget(policy, o))
			continue
		}
		if blocked(o.Problems) {
			continue
		}
		// A target that is gone still has its canary removed.
		res, err := r.Ingress.Apply(ctx, policy, o, knobs.Knobs{}, recordCopy(policy.Status.Targets, o.Ref.Name))
		if err != nil {
			return nil, nil, err
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("Ingress "+o.Ref.Name, res.KeptOthers)...)
	}
	var autoscalers []v1alpha1.AutoscalerStatus
	for _, o := range obs.leftoverAutoscalers {
		if len(corrupt(o.Problems)) > 0 {
			autoscalers = append(autoscalers, v1alpha1.AutoscalerStatus{Name: o.Name, Found: o.Found,
				RestoreRecord: autoscalerRecordCopy(policy.Status.Autoscalers, o.Name)})
			continue
		}
		if !o.Found || blocked(o.Problems) {
			continue
		}
		_, kept, err := r.HPA.Apply(ctx, policy, o, autoscaler.Level{}, autoscalerRecordCopy(policy.Status.Autoscalers, o.Name))
		if err != nil {
			return nil, nil, err
		}
		outcome.KeptOthers = append(outcome.KeptOthers, prefixed("HorizontalPodAutoscaler "+o.Name, kept)...)
	}
	return targets, autoscalers, nil
}

// commit writes the plan into status, with a history entry and an Event per transition.
func (r *TrafficPolicyReconciler) commit(policy *v1alpha1.TrafficPolicy, plan Plan, outcome Outcome, n *notices) {
	st := &policy.Status
	prevAction := st.ObservedAction
	if plan.ObservedAction != st.ObservedAction {
		st.KeptChanges = nil
	}
	plan.writeDecisions(st)
	st.History = appendHistory(st.History, plan.Transitions...)
	if plan.HandledRequest != "" {
		st.LastHandledRequest = plan.HandledRequest
	}
	for _, t := range plan.Transitions {
		note := t.Message
		if t.By != "" || t.Note != "" {
			note = fmt.Sprintf("%s (by %s: %s)", t.Message, orUnknown(t.By), t.Note)
		}
		reason := t.Reason
		n.add(func() { r.Recorder.Eventf(policy, nil, corev1.EventTypeNormal, reason, "Transition", "%s", note) })
	}
	for _, f := range outcome.KeptOthers {
		if !slices.Contains(st.KeptChanges, f) {
			st.KeptChanges = append(st.KeptChanges, f)
			n.add(func() {
				r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, v1alpha1.ReasonFieldChanged, "Restore",
					"%s was changed by someone else after Floodgate; their value is kept", f)
			})
		}
	}
	outcome.KeptOthers = st.KeptChanges
	r.setConditions(policy, outcome, n)
	n.add(func() { r.Metrics.record(policy, prevAction) })
}

// setConditions sets the conditions and sends a Warning Event when a warning condition (Degraded,
// GateUnknown, LeverStale) turns True or changes reason.
func (r *TrafficPolicyReconciler) setConditions(policy *v1alpha1.TrafficPolicy, outcome Outcome, n *notices) {
	warnings := []string{v1alpha1.ConditionDegraded, v1alpha1.ConditionGateUnknown, v1alpha1.ConditionLeverStale}
	prev := map[string]metav1.Condition{}
	for _, t := range warnings {
		if c := meta.FindStatusCondition(policy.Status.Conditions, t); c != nil {
			prev[t] = *c
		}
	}
	setConditions(policy, outcome)
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

// noteFound records which targets exist, keeping what was applied before (and the targets the
// spec no longer names, which are not put back either while nothing is applied).
func (r *TrafficPolicyReconciler) noteFound(policy *v1alpha1.TrafficPolicy, obs observation) {
	targets := make([]v1alpha1.TargetStatus, 0, len(obs.targets)+len(obs.leftoverTargets))
	for _, o := range obs.targets {
		targets = append(targets, previousTarget(policy, o))
	}
	for _, o := range obs.leftoverTargets {
		targets = append(targets, previousTarget(policy, o))
	}
	policy.Status.Targets = targets
}

// previousTarget is a target's observed status with what status said was applied to it.
func previousTarget(policy *v1alpha1.TrafficPolicy, o *provider.Observation) v1alpha1.TargetStatus {
	st := o.Status
	for _, prev := range policy.Status.Targets {
		if prev.Name == o.Ref.Name {
			st.Applied, st.Companion, st.RestoreRecord = prev.Applied, prev.Companion, prev.RestoreRecord
		}
	}
	return st
}

// finalize restores every target and autoscaler, then lets the policy go. The finalizer is
// removed only after the restore succeeded.
func (r *TrafficPolicyReconciler) finalize(ctx context.Context, policy *v1alpha1.TrafficPolicy) error {
	if !controllerutil.ContainsFinalizer(policy, Finalizer) {
		return nil
	}
	before := policy.DeepCopy()
	obs, err := r.observe(ctx, policy, knobs.Knobs{})
	outcome := Outcome{Phase: v1alpha1.PhaseRestoring, ShedEndpoints: -1}
	if err == nil {
		outcome.Problems = append(corrupt(obs.problems), obs.leftoverProblems...)
		if len(outcome.Problems) == 0 {
			err = r.apply(ctx, policy, knobs.Knobs{}, obs, &outcome)
		}
	}
	if err != nil && staleRead(err) {
		return fmt.Errorf("restoring before deletion read an object older than the API server's; retrying: %w", err)
	}
	if err != nil || len(outcome.Problems) > 0 {
		outcome.ApplyErr = err
		policy.Status.Phase = v1alpha1.PhaseRestoring
		var n notices
		r.setConditions(policy, outcome, &n)
		if perr := r.patchStatus(ctx, before, policy); perr != nil {
			err = errors.Join(err, perr)
		} else {
			n.send()
		}
		if err == nil {
			return nil // a corrupt record needs a human; the target's watch brings us back
		}
		return fmt.Errorf("restoring before deletion: %w", err)
	}
	controllerutil.RemoveFinalizer(policy, Finalizer)
	if err := r.Client.Patch(ctx, policy, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	for _, f := range outcome.KeptOthers {
		r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, v1alpha1.ReasonFieldChanged, "Restore",
			"%s was changed by someone else after Floodgate; their value is kept", f)
	}
	r.Recorder.Eventf(policy, nil, corev1.EventTypeNormal, v1alpha1.ReasonRestored, "Delete", "every target is back to its original; the policy can go")
	r.Metrics.forget(policy)
	return nil
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
	if apierrors.IsConflict(err) && r.APIReader != nil {
		var now v1alpha1.TrafficPolicy
		if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(policy), &now); gerr == nil && equality.Semantic.DeepEqual(now.Status, before.Status) {
			base := now.DeepCopy()
			now.Status = policy.Status
			err = r.Client.Status().Patch(ctx, &now, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
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
		for _, a := range o.(*v1alpha1.TrafficPolicy).Spec.AutoscalerRefs {
			names = append(names, a.Name)
		}
		return names
	}); err != nil {
		return err
	}
	if _, real := r.Clock.(clock.RealClock); !real {
		opts.UsePriorityQueue = ptr.To(false)
		opts.NewQueue = newClockedQueue(r.Clock)
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.ClockAdvanced != nil {
		b = b.WatchesRawSource(source.Channel(r.ClockAdvanced, handler.EnqueueRequestsFromMapFunc(r.mapPolicies(everywhere, nil))))
	}
	return b.
		For(&v1alpha1.TrafficPolicy{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletingPredicate()))).
		Owns(&networkingv1.Ingress{}).
		Owns(&corev1.Service{}).
		Owns(&discoveryv1.EndpointSlice{}).
		// Any Ingress of a namespace can be a target, a conflicting canary or a shared upstream.
		Watches(&networkingv1.Ingress{}, handler.EnqueueRequestsFromMapFunc(r.mapPolicies(sameNamespace, nil))).
		Watches(&autoscalingv2.HorizontalPodAutoscaler{}, handler.EnqueueRequestsFromMapFunc(r.mapPolicies(namingAutoscaler, nil))).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.mapPolicies(sameNamespace, gatedOn))).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.mapPolicies(everywhere, routingToShed)),
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
		if err := r.Client.List(ctx, &list, scope(obj)...); err != nil {
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

// sameNamespace lists the policies of the object's namespace.
func sameNamespace(obj client.Object) []client.ListOption {
	return []client.ListOption{client.InNamespace(obj.GetNamespace())}
}

// namingAutoscaler lists the policies of the object's namespace that hold it.
func namingAutoscaler(obj client.Object) []client.ListOption {
	return []client.ListOption{client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexAutoscalerNames: obj.GetName()}}
}

// gatedOn keeps the policies whose workload gates read the Deployment (named, or the HPA's target).
func gatedOn(obj client.Object, p *v1alpha1.TrafficPolicy) bool {
	if p.Spec.Ramp == nil {
		return false
	}
	for _, step := range p.Spec.Ramp.Steps {
		for _, g := range step.Gates {
			if g.WorkloadReady != nil && (g.WorkloadReady.Name == obj.GetName() || g.WorkloadReady.Name == "") {
				return true
			}
		}
	}
	return false
}

// routingToShed keeps the policies whose canaries route to the shed pods.
func routingToShed(_ client.Object, p *v1alpha1.TrafficPolicy) bool {
	return slices.ContainsFunc(p.Status.Targets, func(t v1alpha1.TargetStatus) bool { return t.Companion != "" })
}

func (r *TrafficPolicyReconciler) isShedBackendSlice(obj client.Object) bool {
	return obj.GetNamespace() == r.Shed.Namespace && obj.GetLabels()[discoveryv1.LabelServiceName] == r.Shed.ServiceName
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

// staleRead reports whether a write failed only because the pass read an object from the cache
// before the cache had caught up with the API server (often with this controller's own previous
// write): a resourceVersion conflict, or creating a companion that already exists. Nothing is
// wrong, so no condition says so; the pass is retried on a fresh read.
func staleRead(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// corrupt keeps the problems that say a restore record cannot be read.
func corrupt(problems []provider.Problem) []provider.Problem {
	var out []provider.Problem
	for _, p := range problems {
		if p.Reason == v1alpha1.ReasonCorruptRecord {
			out = append(out, p)
		}
	}
	return out
}

func blocked(problems []provider.Problem) bool {
	for _, p := range problems {
		if p.Reason == v1alpha1.ReasonConflict || p.Reason == v1alpha1.ReasonCorruptRecord {
			return true
		}
	}
	return false
}

func longestWindow(obs []*autoscaler.Observation) time.Duration {
	longest := time.Duration(0)
	for _, o := range obs {
		longest = max(longest, o.StabilizationWindow)
	}
	if longest == 0 {
		return autoscaler.DefaultStabilizationWindow
	}
	return longest
}

// recordCopy is the copy of a target's restore record kept in status.
func recordCopy(targets []v1alpha1.TargetStatus, name string) string {
	if i := slices.IndexFunc(targets, func(t v1alpha1.TargetStatus) bool { return t.Name == name }); i >= 0 {
		return targets[i].RestoreRecord
	}
	return ""
}

// holdLevel is how hard an autoscaler is held, with the peak its hold began with.
func holdLevel(autoscalers []v1alpha1.AutoscalerStatus, name string, k knobs.Knobs) autoscaler.Level {
	level := autoscaler.Level{Hold: k.HoldAutoscalers, Stage: k.ReleaseStage}
	for _, a := range autoscalers {
		if a.Name == name && a.Held {
			level.Peak = a.HeldMinReplicas
		}
	}
	return level
}

// autoscalerRecordCopy is the copy of an autoscaler's restore record kept in status.
func autoscalerRecordCopy(autoscalers []v1alpha1.AutoscalerStatus, name string) string {
	if i := slices.IndexFunc(autoscalers, func(a v1alpha1.AutoscalerStatus) bool { return a.Name == name }); i >= 0 {
		return autoscalers[i].RestoreRecord
	}
	return ""
}

func prefixed(prefix string, fields []string) []string {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		out = append(out, prefix+" "+strings.TrimPrefix(f, "metadata."))
	}
	return out
}
