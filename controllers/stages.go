package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/core"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/patch"
	"floodgate.dev/floodgate/internal/provider"
)

// passState is one pass over a policy: the policy as it was read (before) and as the stages
// leave it, and what each stage leaves for the next. Stages change the policy's status; the
// one writer (summarize) makes the outcome into conditions and writes status once.
type passState struct {
	before, policy *v1alpha1.TrafficPolicy
	now            time.Time
	// in is what the plan is made from; settle, when set, settles the plan once the objects
	// are read.
	in     core.PlanInput
	plan   core.Plan
	settle func(s *passState)
	obs    pass.Observation
	// outcome is what the pass found, for the conditions (nil: the pass ended before it knew
	// anything worth a condition; the conditions stay as they were).
	outcome *core.Outcome
	result  ctrl.Result
	notices notices
	// released is set once the finalizer is gone: the policy has no status left to write.
	released bool
}

// stage is one named step of a pass. An error ends the pass: a stalling one (nothing changes
// until someone acts; not retried) or any other (retried with backoff).
type stage struct {
	name string
	run  func(ctx context.Context, s *passState) error
}

// leverStages are the pass of a live policy: plan the lever in force, read every object for
// it, say what keeps the policy's shed answer its own, hold a ramp step that cannot be taken
// everywhere or apply the lever, and commit the plan to status.
func (r *TrafficPolicyReconciler) leverStages() []stage {
	return []stage{
		{"plan", r.planLever},
		{"observe", r.observe},
		{"answer", r.answer},
		{"hold-or-apply", r.holdOrApply},
		{"commit", r.commit},
	}
}

// restoreStages are the pass of a policy being deleted: the same stages with the restore as
// its plan (every object back to its original), and letting the policy go in place of commit.
func (r *TrafficPolicyReconciler) restoreStages() []stage {
	return []stage{
		{"plan", r.planRestore},
		{"observe", r.observe},
		{"hold-or-apply", r.holdOrApply},
		{"let go", r.letGo},
	}
}

// runStages runs the stages in order until one ends the pass.
func runStages(ctx context.Context, s *passState, stages []stage) error {
	for _, st := range stages {
		if err := st.run(ctx, s); err != nil {
			logf.FromContext(ctx).V(1).Info("the pass ends", "stage", st.name, "error", err.Error())
			return err
		}
	}
	return nil
}

// stallingError ends a pass that cannot progress until someone changes something (a ramp step
// some target cannot take, a restore record a human must mend). Retrying changes nothing, so it
// is not retried: the watches on the objects bring the policy back.
type stallingError struct {
	// what says what stalls, for the log.
	what    string
	problem provider.Problem
}

func (e *stallingError) Error() string { return e.what + ": " + e.problem.Message }

// stalled is the error of a pass that waits for someone to act on problem.
func stalled(what string, problem provider.Problem) error {
	return &stallingError{what: what, problem: problem}
}

// waitingError ends a pass that is retried: what it read was older than the API server, or a
// read or write failed.
type waitingError struct{ err error }

func (e *waitingError) Error() string { return e.err.Error() }
func (e *waitingError) Unwrap() error { return e.err }

// waiting is err as an error that is retried (nil when err is).
func waiting(err error) error {
	if err == nil {
		return nil
	}
	return &waitingError{err: err}
}

// planLever plans the lever in force at the pass's time, with the gate readings of the step in
// force; once the objects are read, the plan settles on their stabilization windows and reads
// the gates of a step it enters.
func (r *TrafficPolicyReconciler) planLever(_ context.Context, s *passState) error {
	readings, pending := r.gateReadings(s.policy, s.now)
	s.in = core.PlanInput{Spec: s.policy.Spec, Status: s.policy.Status, Now: s.now,
		Request: core.PendingRequest(s.policy), GateReadings: readings, PendingGates: pending}
	s.plan = pass.Plan(&s.in)
	s.settle = func(s *passState) {
		s.plan = pass.Settle(&s.in, s.plan, s.obs)
		r.readNewStepGates(s.policy, &s.plan, s.now)
	}
	return nil
}

// planRestore plans the restore of a policy being deleted: no knobs, every object back to its
// original.
func (r *TrafficPolicyReconciler) planRestore(_ context.Context, s *passState) error {
	s.plan = core.Plan{Phase: v1alpha1.PhaseRestoring}
	s.outcome = &core.Outcome{Phase: v1alpha1.PhaseRestoring, ShedEndpoints: -1}
	s.policy.Status.Phase = v1alpha1.PhaseRestoring
	return nil
}

// observe reads every object for the plan's knobs and settles the plan on them. A read that
// fails ends the pass (retried); while restoring, status says so.
func (r *TrafficPolicyReconciler) observe(ctx context.Context, s *passState) error {
	obs, err := r.pass().Observe(ctx, s.policy, s.plan.Knobs)
	if err != nil {
		if s.outcome != nil {
			s.outcome.ApplyErr = err
		}
		return waiting(err)
	}
	s.obs = obs
	if s.settle != nil {
		s.settle(s)
	}
	return nil
}

// answer says what keeps the policy's shed answer its own (answerProblems), and starts the
// outcome.
func (r *TrafficPolicyReconciler) answer(ctx context.Context, s *passState) error {
	problems, err := r.answerProblems(ctx, s.policy, s.obs)
	if err != nil {
		return waiting(err)
	}
	s.outcome = &core.Outcome{Phase: s.plan.Phase, ShedEndpoints: -1, AnswerProblems: problems,
		UnknownGate: gateReason(s.plan.Ramp, s.plan.UnknownGate()), StaleFor: s.plan.StaleFor}
	return nil
}

// holdOrApply holds a ramp step that cannot be applied everywhere, or applies the plan's knobs
// to every object. A ramp step whose write failed somewhere is not committed (the next pass tries
// it again); a lever (ShedAll, Normal, a release, the restore) goes on to commit even when some
// object failed, so status says what each object has.
func (r *TrafficPolicyReconciler) holdOrApply(ctx context.Context, s *passState) error {
	policy, o := s.policy, s.outcome
	if blockers := s.obs.RampBlockers(); pass.IsRampStep(s.plan.Phase) && len(blockers) > 0 {
		// Nothing of a ramp step is half applied: the ramp holds where it is (its previous
		// step, or the lever before the ramp) until every target and autoscaler can take it.
		// The watches on them bring the policy back when they change.
		o.Phase, o.Held, o.Problems = policy.Status.Phase, true, blockers
		pass.NoteHeld(policy, s.obs)
		if req := core.PendingRequest(policy); req != nil {
			policy.Status.HeldRequest = req.Raw
		}
		o.Unsupported = pass.UnsupportedSummary(policy.Status.Targets)
		return stalled("ramp holds", blockers[0])
	}
	err := r.pass().Apply(ctx, policy, s.plan.Knobs, s.obs, o)
	o.Unsupported = pass.UnsupportedSummary(policy.Status.Targets)
	switch {
	case err != nil && pass.StaleRead(err):
		// Nothing is wrong: no condition says anything, and the pass is tried on a fresh read.
		s.outcome = nil
		return waiting(fmt.Errorf("the pass read an object older than the API server's; retrying: %w", err))
	case err != nil && pass.IsRampStep(s.plan.Phase):
		o.ApplyErr, o.Phase = err, policy.Status.Phase
		return waiting(err)
	}
	o.ApplyErr = err
	return nil
}

// commit writes the plan into status, with a history entry and an Event per transition, and
// what others changed that Floodgate kept; the pass looks again when the plan says. A failed
// write is retried.
func (r *TrafficPolicyReconciler) commit(ctx context.Context, s *passState) error {
	policy, plan, o := s.policy, s.plan, s.outcome
	st := &policy.Status
	st.HeldRequest = ""
	prevAction := st.ObservedAction
	if plan.ObservedAction != st.ObservedAction && len(st.KeptChanges) > 0 {
		st.KeptChangesEarlier = true // kept for the record: the next change kept replaces them
	}
	plan.WriteDecisions(st)
	st.History = core.AppendHistory(st.History, plan.Transitions...)
	if plan.HandledRequest != "" {
		st.LastHandledRequest = plan.HandledRequest
	}
	for _, t := range plan.Transitions {
		note := t.Message
		if t.By != "" || t.Note != "" {
			note = fmt.Sprintf("%s (by %s: %s)", t.Message, orUnknown(t.By), t.Note)
		}
		reason := t.Reason
		s.notices.add(func() { r.Recorder.Eventf(policy, nil, corev1.EventTypeNormal, reason, "Transition", "%s", note) })
	}
	for _, f := range o.KeptOthers {
		if st.KeptChangesEarlier {
			st.KeptChanges, st.KeptChangesEarlier = nil, false
		}
		if !slices.Contains(st.KeptChanges, f) && len(st.KeptChanges) < maxKeptChanges {
			st.KeptChanges = append(st.KeptChanges, f)
			s.notices.add(func() { r.keptEvent(policy, f) })
		}
	}
	o.KeptOthers = nil
	if !st.KeptChangesEarlier {
		o.KeptOthers = st.KeptChanges
	}
	s.notices.add(func() { r.Metrics.record(policy, prevAction) })
	r.confirmLever(s)
	s.result = ctrl.Result{RequeueAfter: plan.RequeueAfter}
	if plan.RequeueAfter > 0 {
		logf.FromContext(ctx).V(1).Info("next look", "after", plan.RequeueAfter, "phase", plan.Phase)
	}
	return waiting(o.ApplyErr)
}

// letGo removes the finalizer once every object is back to its original. What keeps the
// policy: a failed write (retried) or a record that cannot be read (a human must mend it; the
// target's watch brings the policy back).
func (r *TrafficPolicyReconciler) letGo(ctx context.Context, s *passState) error {
	policy, o := s.policy, s.outcome
	unread := append(pass.Corrupt(s.obs.Problems()), s.obs.LeftoverProblems()...)
	if o.ApplyErr != nil || len(unread) > 0 {
		o.Problems, o.Leftovers = unread, nil
		if o.ApplyErr != nil {
			return waiting(fmt.Errorf("restoring before deletion: %w", o.ApplyErr))
		}
		return stalled("the policy is kept until its objects can be restored", unread[0])
	}
	// A companion the data plane may still use goes before the policy does (it is part of the
	// restore), unless the data plane keeps silent past MaxCompanionWait.
	inUse := append(slices.Clone(s.obs.Problems()), s.obs.LeftoverProblems()...)
	if i := slices.IndexFunc(inUse, provider.InUse); i >= 0 && r.companionWaits.since(policy.UID, s.now) < provider.MaxCompanionWait {
		logf.FromContext(ctx).V(1).Info("the policy is kept until the data plane lets a companion go", "problem", inUse[i].Message)
		s.result = ctrl.Result{RequeueAfter: time.Second}
		return nil
	}
	r.companionWaits.forget(policy.UID)
	controllerutil.RemoveFinalizer(policy, Finalizer)
	if err := r.Client.Patch(ctx, policy, patch.From(s.before)); client.IgnoreNotFound(err) != nil {
		s.outcome = nil
		return waiting(fmt.Errorf("removing finalizer: %w", err))
	}
	s.released = true
	for _, f := range o.KeptOthers {
		s.notices.add(func() { r.keptEvent(policy, f) })
	}
	s.notices.add(func() {
		r.Recorder.Eventf(policy, nil, corev1.EventTypeNormal, v1alpha1.ReasonRestored, "Delete", "every target is back to its original; the policy can go")
		r.Metrics.forget(policy)
		if r.Armer != nil {
			r.Armer.Forget(client.ObjectKeyFromObject(policy))
		}
		if r.GatePoller != nil {
			r.GatePoller.Forget(client.ObjectKeyFromObject(policy))
		}
		if r.Confirmer != nil {
			r.Confirmer.Forget(client.ObjectKeyFromObject(policy))
		}
	})
	return nil
}

// companionWaits are when each deleted policy began waiting for a companion still in use, on the
// controller's clock (a wait survives no restart: a new manager waits afresh, at most
// MaxCompanionWait).
type companionWaits struct {
	mu    sync.Mutex
	began map[types.UID]time.Time
}

// since is how long the policy has waited by now (0 at its first wait).
func (w *companionWaits) since(uid types.UID, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.began == nil {
		w.began = map[types.UID]time.Time{}
	}
	began, ok := w.began[uid]
	if !ok {
		w.began[uid] = now
		return 0
	}
	return now.Sub(began)
}

func (w *companionWaits) forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.began, uid)
}

// keptEvent tells that a field someone else changed after Floodgate keeps their value.
func (r *TrafficPolicyReconciler) keptEvent(policy *v1alpha1.TrafficPolicy, field string) {
	r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, v1alpha1.ReasonFieldChanged, "Restore",
		"%s was changed by someone else after Floodgate; their value is kept", field)
}

// summarize is the one writer of a pass. It makes the outcome into conditions, files the armer's
// verdict, writes status once (only when it changed), and only then sends the pass's Events and
// metrics, so a pass that is retried tells nothing twice. A stalled pass is not retried; any
// other error is.
func (r *TrafficPolicyReconciler) summarize(ctx context.Context, s *passState, err error) (ctrl.Result, error) {
	if s.released {
		s.notices.send()
		return ctrl.Result{}, nil
	}
	live := s.policy.DeletionTimestamp.IsZero()
	if s.outcome != nil {
		r.setConditions(s.policy, *s.outcome, &s.notices)
	}
	if live {
		r.noteArmed(s.policy)
		r.noteConfirmed(s.policy)
	}
	if perr := r.patchStatus(ctx, s.before, s.policy); perr != nil {
		// A pass on a stale copy conflicts here and is retried; it tells nothing.
		return ctrl.Result{}, errors.Join(err, perr)
	}
	s.notices.send()
	if live && r.Armer != nil {
		// What the levers would write may have changed with what this pass saw: the armer
		// renders them again, and asks the API server only when they differ.
		r.Armer.Poke(s.policy)
	}
	var stall *stallingError
	if errors.As(err, &stall) {
		logf.FromContext(ctx).Info(stall.what, "reason", stall.problem.Reason, "message", stall.problem.Message)
		return s.result, nil
	}
	return s.result, err
}
