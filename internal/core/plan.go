// Package core is Floodgate's pure core: what a policy asks for at one moment (the plan, per
// action), the transitions it records, and the conditions that report an outcome. Nothing here
// reads or writes the cluster, so all of it is tested without one.
package core

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
)

// Plan is what a policy asks for at one moment: a pure function of spec, the previous status and
// the clock. The reconciler applies its knobs and writes its fields into status.
type Plan struct {
	Phase           v1alpha1.Phase
	Knobs           knobs.Knobs
	ObservedAction  v1alpha1.Action
	ActionChangedAt *metav1.Time
	Ramp            *v1alpha1.RampStatus
	HoldSince       *metav1.Time
	ReleaseAt       *metav1.Time
	LeverPulledAt   *metav1.Time
	// StaleFor is staleAfter, when the lever has been pulled longer than that ("" otherwise).
	StaleFor string
	// ExpiredLevers are the levers whose expiry time has passed.
	ExpiredLevers    []string
	ActionBeforeShed v1alpha1.Action
	Progress         string
	// ObservedAllowRegions and AllowRegionsBefore track the standing allowlist's changes, so
	// its expiry returns to the list in force before.
	ObservedAllowRegions, AllowRegionsBefore []string
	// RequeueAfter is when to look again (the next step boundary or release); 0 is never.
	RequeueAfter time.Duration
	// Transitions happened in this plan (a changed action, a new step, full traffic, release).
	Transitions []v1alpha1.Transition
	// HandledRequest is the request annotation value this plan handled ("" when none).
	HandledRequest string

	gates     gateVerdict
	wakeAfter time.Duration
}

// UnknownGate names the first gate without a trustworthy reading ("" when none).
func (p Plan) UnknownGate() string { return p.gates.unknown }

// FailingGate names the first gate whose reading does not pass ("" when none).
func (p Plan) FailingGate() string { return p.gates.failing }

// Request is a responder's request not handled yet, read from the request annotations.
type Request struct {
	// Raw is the annotation value, "VERB:TOKEN".
	Raw    string
	Verb   string
	By     string
	Reason string
}

// Request verbs that act on a ramp by themselves; the other verbs (shed, ramp, restore, pause,
// resume, allow) come with a spec change and are only recorded.
const (
	VerbNext    = "next"
	VerbBack    = "back"
	VerbApprove = "approve"
)

// PendingRequest returns the policy's request when it has not been handled yet.
func PendingRequest(p *v1alpha1.TrafficPolicy) *Request {
	raw := p.Annotations[v1alpha1.RequestAnnotation]
	if raw == "" || raw == p.Status.LastHandledRequest {
		return nil
	}
	verb, _, _ := strings.Cut(raw, ":")
	return &Request{Raw: raw, Verb: verb, By: p.Annotations[v1alpha1.RequestByAnnotation], Reason: p.Annotations[v1alpha1.RequestReasonAnnotation]}
}

// PlanInput is everything a plan depends on.
type PlanInput struct {
	Spec   v1alpha1.TrafficPolicySpec
	Status v1alpha1.TrafficPolicyStatus
	Now    time.Time
	// DefaultReleaseAfter is used when spec.autoscaling.releaseAfter is not set (the held
	// autoscalers' longest scale-down stabilization window).
	DefaultReleaseAfter time.Duration
	// Request is a responder's request not handled yet, or nil.
	Request *Request
	// GateReadings are the current step's gates as last read (fresh or from status).
	GateReadings []v1alpha1.GateStatus
	// PendingGates name the gates whose fresh reading is on its way: the step neither moves on
	// nor loses its passing streak until it arrives.
	PendingGates []string
}

// MakePlan decides phase, step and knobs: the levers' bookkeeping (allowlist changes, expiries,
// the action in force), then the plan of that action, then staleness and transitions.
func MakePlan(in PlanInput) Plan {
	now := metav1.NewTime(in.Now)
	p := carriedOver(in.Status)
	p.trackAllowRegions(in)
	action, standingList := p.expire(in)
	actionChanged := p.observeAction(in.Status, action, now)
	standingRestrict, standing := knobs.Intersect(standingList, nil)
	standingKnobs := knobs.New(standingRestrict, standing, 0, 0)

	switch action {
	case v1alpha1.ActionShedAll:
		p.planShedAll(in, now)
	case v1alpha1.ActionRamp:
		p.planRamp(in, now, actionChanged, standingKnobs)
	default:
		p.planNormal(in, now, standingKnobs)
	}

	p.stale(in, now)
	if p.wakeAfter > 0 && (p.RequeueAfter <= 0 || p.wakeAfter < p.RequeueAfter) {
		p.RequeueAfter = p.wakeAfter
	}
	p.Transitions = transitions(in.Status, p, action, actionChanged, now, in.Request)
	if in.Request != nil {
		p.HandledRequest = in.Request.Raw
	}
	return p
}

// carriedOver is the plan's starting point: what the last plan decided, from status.
func carriedOver(st v1alpha1.TrafficPolicyStatus) Plan {
	return Plan{
		ObservedAction:   st.ObservedAction,
		ActionChangedAt:  st.ActionChangedAt,
		Ramp:             st.Ramp.DeepCopy(),
		HoldSince:        st.HoldSince,
		ReleaseAt:        st.ReleaseAt,
		LeverPulledAt:    st.LeverPulledAt,
		ActionBeforeShed: st.ActionBeforeShed,

		ObservedAllowRegions: st.ObservedAllowRegions,
		AllowRegionsBefore:   st.AllowRegionsBefore,
	}
}

// trackAllowRegions notices a change of the standing allowlist, remembering the list in force
// before it (where an expiry returns).
func (p *Plan) trackAllowRegions(in PlanInput) {
	st := in.Status
	if sameRegions(in.Spec.AllowRegions, st.ObservedAllowRegions) {
		return
	}
	// What was in force is the observed list, or what it had returned to if it expired.
	p.AllowRegionsBefore = st.ObservedAllowRegions
	if slices.Contains(st.ExpiredLevers, "AllowRegions") {
		p.AllowRegionsBefore = st.AllowRegionsBefore
	}
	p.ObservedAllowRegions = in.Spec.AllowRegions
}

// observeAction records a change of the action in force, and the action a ShedAll interrupted
// (where its expiry returns). It reports whether the action changed.
func (p *Plan) observeAction(st v1alpha1.TrafficPolicyStatus, action v1alpha1.Action, now metav1.Time) bool {
	if action == st.ObservedAction {
		return false
	}
	p.ObservedAction, p.ActionChangedAt = action, &now
	if action == v1alpha1.ActionShedAll {
		p.ActionBeforeShed = st.ObservedAction
		if p.ActionBeforeShed == "" || p.ActionBeforeShed == v1alpha1.ActionShedAll {
			p.ActionBeforeShed = v1alpha1.ActionNormal
		}
	}
	return true
}

// planShedAll sheds every request and holds the autoscalers.
func (p *Plan) planShedAll(in PlanInput, now metav1.Time) {
	p.Phase, p.Knobs = v1alpha1.PhaseShedding, knobs.ShedAll()
	p.hold(in, now)
}

// planNormal admits traffic (under the standing allowlist) and releases the autoscalers.
func (p *Plan) planNormal(in PlanInput, now metav1.Time, standing knobs.Knobs) {
	p.Knobs = standing
	p.release(in, now, v1alpha1.PhaseNormal)
}

// planRamp moves a ramp run on: its step (by hold, approval, gates and requests), then the knobs
// and phase of where it now is.
func (p *Plan) planRamp(in PlanInput, now metav1.Time, actionChanged bool, standing knobs.Knobs) {
	if actionChanged || p.Ramp == nil {
		p.Ramp = &v1alpha1.RampStatus{Step: 1, StartedAt: &now, StepStartedAt: &now}
	}
	r := p.Ramp
	r.Steps = int32(len(in.Spec.Ramp.Steps))
	if r.Step > r.Steps+1 {
		r.Step = r.Steps + 1
	}
	pauseOrResume(r, in, now)
	verb := ""
	if in.Request != nil {
		verb = in.Request.Verb
	}
	gates := gateVerdict{ok: true}
	if r.Step <= r.Steps && r.ShedByGate == "" {
		gates, verb = moveOn(in, r, now, verb)
	}
	if verb == VerbBack && r.Step > 1 {
		r.Step--
		r.StepStartedAt, r.AwaitingApproval, r.FullTrafficAt = &now, false, nil
		r.Gates, r.GatesPassingSince = nil, nil
		gates = gateVerdict{ok: true}
		p.ReleaseAt = nil
	}
	switch {
	case r.ShedByGate != "":
		// A failing gate with onGateFailure ShedAll sheds until the action changes.
		p.Phase, p.Knobs = v1alpha1.PhaseShedding, knobs.ShedAll()
		p.Progress = fmt.Sprintf("%d/%d", min(r.Step, r.Steps), r.Steps)
		r.NextStepAt = nil
		p.hold(in, now)
	case r.Step <= r.Steps:
		p.planStep(in, now, gates)
	default:
		r.NextStepAt = nil
		p.Knobs = standing
		p.Progress = fmt.Sprintf("%d/%d", r.Steps, r.Steps)
		p.release(in, now, v1alpha1.PhaseCompleted)
	}
	p.gates = gates
}

// pauseOrResume starts or ends a pause; the time paused does not count towards the step's hold.
func pauseOrResume(r *v1alpha1.RampStatus, in PlanInput, now metav1.Time) {
	paused := in.Spec.Ramp.Paused
	switch {
	case paused && r.PausedAt == nil:
		r.PausedAt = &now
	case !paused && r.PausedAt != nil:
		if r.StepStartedAt != nil {
			shifted := metav1.NewTime(r.StepStartedAt.Add(in.Now.Sub(r.PausedAt.Time)))
			r.StepStartedAt = &shifted
		}
		r.PausedAt = nil
	}
}

// moveOn judges the step in force (hold, approval, gates, a request) and advances it by one when
// it may. A failing gate turns into a step back or a shed, as onGateFailure says. It returns the
// gates' verdict and the request verb in effect (a step back a gate asked for included).
func moveOn(in PlanInput, r *v1alpha1.RampStatus, now metav1.Time, verb string) (gateVerdict, string) {
	step := in.Spec.Ramp.Steps[r.Step-1]
	paused := in.Spec.Ramp.Paused
	holdEnded := !in.Now.Before(r.StepStartedAt.Add(step.Hold.Duration))
	manual := step.Approval == v1alpha1.ApprovalManual
	gates := judgeGates(in, r, step.Gates, now)
	if gates.failing != "" && !paused && verb == "" {
		switch in.Spec.Ramp.OnGateFailure {
		case v1alpha1.OnGateFailureStepBack:
			// Repeated failures never step back faster than the hold time.
			if r.Step > 1 && (r.LastStepBackAt == nil || !in.Now.Before(r.LastStepBackAt.Add(step.Hold.Duration))) {
				verb = VerbBack
				r.LastStepBackAt = &now
			}
		case v1alpha1.OnGateFailureShedAll:
			r.ShedByGate = gates.failing
		}
	}
	advance := r.ShedByGate == "" && (verb == VerbNext ||
		verb == VerbApprove && manual && holdEnded && gates.ok ||
		!paused && holdEnded && !manual && gates.ok)
	r.AwaitingApproval = manual && holdEnded && gates.ok && !advance
	if advance {
		// One step per reconcile, and the new step starts now: a hold is a minimum, so an
		// operator that was down never skips the steps it did not apply.
		r.Step++
		r.StepStartedAt = &now
		r.AwaitingApproval = false
		r.Gates, r.GatesPassingSince = nil, nil
		gates = gateVerdict{ok: true}
		if r.Step > r.Steps {
			r.FullTrafficAt = &now
		}
	}
	return gates, verb
}

// planStep puts the step in force: its knobs, and when to look again (the hold's end, or the
// gates' next reading).
func (p *Plan) planStep(in PlanInput, now metav1.Time, gates gateVerdict) {
	r := p.Ramp
	step := in.Spec.Ramp.Steps[r.Step-1]
	p.Knobs = knobsOfStep(in.Spec.AllowRegions, step)
	p.Phase = v1alpha1.PhaseRamping
	next := metav1.NewTime(r.StepStartedAt.Add(step.Hold.Duration))
	r.NextStepAt = &next
	switch {
	case in.Spec.Ramp.Paused:
		p.Phase = v1alpha1.PhasePaused
	case r.AwaitingApproval:
	default:
		p.RequeueAfter = max(next.Sub(in.Now), 0)
		if !gates.ok || len(step.Gates) > 0 {
			// Gates are read again at their interval until they have passed for passFor.
			wait := gates.wait
			if wait <= 0 {
				wait = GateInterval(in.Spec)
			}
			if p.RequeueAfter <= 0 || wait < p.RequeueAfter {
				p.RequeueAfter = wait
			}
		}
	}
	p.Progress = fmt.Sprintf("%d/%d", r.Step, r.Steps)
	p.hold(in, now)
}

// knobsOfStep is what a ramp step puts in force, under a standing allowlist.
func knobsOfStep(standing []string, step v1alpha1.RampStep) knobs.Knobs {
	restrict, regions := knobs.Intersect(standing, step.AllowRegions)
	return knobs.New(restrict, regions, deref(step.PerClientRequestsPerSecond), deref(step.AdmitPercent))
}

// NamedKnobs are the knobs of one stage of a policy, named for messages ("step 2").
type NamedKnobs struct {
	Name  string
	Knobs knobs.Knobs
}

// StepKnobs are the knobs of every stage the policy can put in force besides ShedAll (which
// every provider takes): its standing allowlist, and each ramp step. What a target cannot take
// among them is known before the incident.
func StepKnobs(spec v1alpha1.TrafficPolicySpec) []NamedKnobs {
	var out []NamedKnobs
	if len(spec.AllowRegions) > 0 {
		restrict, regions := knobs.Intersect(spec.AllowRegions, nil)
		out = append(out, NamedKnobs{"standing allowRegions", knobs.New(restrict, regions, 0, 0)})
	}
	if spec.Ramp != nil {
		for i, step := range spec.Ramp.Steps {
			out = append(out, NamedKnobs{fmt.Sprintf("step %d", i+1), knobsOfStep(spec.AllowRegions, step)})
		}
	}
	return out
}

// Lever names for what a policy can put in force, as Levers lists them.
const (
	LeverShedAll = "ShedAll"
	LeverNormal  = "Normal"
)

// Levers are the knobs of every lever a policy can pull, in the order a runbook meets them:
// ShedAll (with the redirect, when the spec sets one), the standing allowlist, each ramp step,
// and Normal (every object put back). Each holds the autoscalers where the plan would; what the
// API server thinks of each is known before the incident (Armed).
func Levers(spec v1alpha1.TrafficPolicySpec) []NamedKnobs {
	hold := len(spec.AutoscalerRefs) > 0
	shed := knobs.ShedAll()
	shed.HoldAutoscalers = hold
	out := []NamedKnobs{{LeverShedAll, shed}}
	for _, s := range StepKnobs(spec) {
		if strings.HasPrefix(s.Name, "step ") {
			s.Knobs.HoldAutoscalers = hold
		}
		out = append(out, s)
	}
	return append(out, NamedKnobs{LeverNormal, knobs.Knobs{}})
}

// expire applies the levers' expiry times: the action and standing allowlist in force now.
func (p *Plan) expire(in PlanInput) (v1alpha1.Action, []string) {
	action := in.Spec.Action
	if action == "" {
		action = v1alpha1.ActionNormal
	}
	standing := in.Spec.AllowRegions
	if at := in.Spec.ShedExpiresAt; at != nil && action == v1alpha1.ActionShedAll && !stalePull(in, at.Time) {
		if in.Now.Before(at.Time) {
			p.wakeAt(in, at.Time)
		} else {
			p.ExpiredLevers = append(p.ExpiredLevers, "ShedAll")
			action = p.ActionBeforeShed
			if action == "" || action == v1alpha1.ActionShedAll {
				action = v1alpha1.ActionNormal
			}
		}
	}
	if at := in.Spec.AllowRegionsExpiresAt; at != nil && len(standing) > 0 {
		if in.Now.Before(at.Time) {
			p.wakeAt(in, at.Time)
		} else {
			p.ExpiredLevers = append(p.ExpiredLevers, "AllowRegions")
			standing = p.AllowRegionsBefore
		}
	}
	return action, standing
}

// stalePull reports whether a ShedAll expiry had already passed when ShedAll was pulled (one
// left over from the last incident): a pull of the lever is never expired by it, and it is
// ignored until the next pull. The moment of the pull is when the controller saw the action
// become ShedAll (status.actionChangedAt), or now when this pass is the pull; a ShedAll that
// expired and whose spec still says ShedAll is not pulled again.
func stalePull(in PlanInput, at time.Time) bool {
	st := in.Status
	switch {
	case st.ObservedAction == v1alpha1.ActionShedAll && st.ActionChangedAt != nil:
		return !at.After(st.ActionChangedAt.Time)
	case slices.Contains(st.ExpiredLevers, "ShedAll"):
		return false
	default:
		return !at.After(in.Now)
	}
}

// WriteDecisions writes what the plan decided into status: the state the next plan starts from.
// History, requests, conditions and per-object state are the reconciler's to write.
func (p Plan) WriteDecisions(st *v1alpha1.TrafficPolicyStatus) {
	st.Phase, st.ObservedAction, st.ActionChangedAt = p.Phase, p.ObservedAction, p.ActionChangedAt
	st.Ramp, st.HoldSince, st.ReleaseAt, st.Progress = p.Ramp, p.HoldSince, p.ReleaseAt, p.Progress
	st.ReleaseStage, st.LeverPulledAt, st.ExpiredLevers, st.ActionBeforeShed = p.Knobs.ReleaseStage, p.LeverPulledAt, p.ExpiredLevers, p.ActionBeforeShed
	st.ObservedAllowRegions, st.AllowRegionsBefore = p.ObservedAllowRegions, p.AllowRegionsBefore
}

// sameRegions reports whether two allowlists admit the same regions.
func sameRegions(a, b []string) bool {
	return sets.New(a...).Equal(sets.New(b...))
}

// DefaultStaleAfter is how long a lever may stay pulled before it is flagged stale.
const DefaultStaleAfter = 2 * time.Hour

// stale tracks since when the lever is pulled and whether that is too long.
func (p *Plan) stale(in PlanInput, now metav1.Time) {
	if p.Phase == v1alpha1.PhaseNormal || p.Phase == v1alpha1.PhaseCompleted {
		p.LeverPulledAt = nil
		return
	}
	if p.LeverPulledAt == nil {
		p.LeverPulledAt = &now
	}
	after := DefaultStaleAfter
	if in.Spec.StaleAfter != nil {
		after = in.Spec.StaleAfter.Duration
	}
	staleAt := p.LeverPulledAt.Add(after)
	if in.Now.Before(staleAt) {
		p.wakeAt(in, staleAt)
		return
	}
	p.StaleFor = after.String()
}

// wakeAt makes the plan look again at t at the latest.
func (p *Plan) wakeAt(in PlanInput, t time.Time) {
	d := t.Sub(in.Now)
	if d > 0 && (p.wakeAfter == 0 || d < p.wakeAfter) {
		p.wakeAfter = d
	}
}

// releaseAfter is how long the autoscaler hold is released over: spec.autoscaling.releaseAfter,
// but never less than the held autoscalers' scale-down stabilization window.
func releaseAfter(in PlanInput) time.Duration {
	if ra := in.Spec.Autoscaling.ReleaseAfter; ra != nil {
		return max(ra.Duration, in.DefaultReleaseAfter)
	}
	return in.DefaultReleaseAfter
}

// hold keeps the autoscalers held from now on (when there are any).
func (p *Plan) hold(in PlanInput, now metav1.Time) {
	p.ReleaseAt = nil
	if len(in.Spec.AutoscalerRefs) == 0 {
		p.HoldSince = nil
		return
	}
	p.Knobs.HoldAutoscalers = true
	if p.HoldSince == nil {
		p.HoldSince = &now
	}
}

// release counts the autoscaler hold down from the moment traffic became full, then enters the
// resting phase.
func (p *Plan) release(in PlanInput, now metav1.Time, resting v1alpha1.Phase) {
	p.Phase = resting
	if p.HoldSince == nil || len(in.Spec.AutoscalerRefs) == 0 {
		p.HoldSince, p.ReleaseAt = nil, nil
		return
	}
	if p.ReleaseAt == nil {
		at := metav1.NewTime(in.Now.Add(releaseAfter(in)))
		p.ReleaseAt = &at
	}
	if in.Now.Before(p.ReleaseAt.Time) {
		// Released in stages over releaseAfter: a bounded scale-down at once, then minReplicas
		// lowered stepwise, so the fleet does not shrink into the returning load.
		p.Phase = v1alpha1.PhaseReleasing
		p.Knobs.HoldAutoscalers = true
		after := max(releaseAfter(in), p.ReleaseAt.Sub(in.Now))
		start := p.ReleaseAt.Add(-after)
		stageLen := after / knobs.ReleaseStages
		stage := int32(1)
		if stageLen > 0 {
			stage = min(int32(in.Now.Sub(start)/stageLen)+1, knobs.ReleaseStages)
		}
		p.Knobs.ReleaseStage = stage
		p.RequeueAfter = p.ReleaseAt.Sub(in.Now)
		if next := start.Add(time.Duration(stage) * stageLen); stage < knobs.ReleaseStages && next.After(in.Now) {
			p.RequeueAfter = next.Sub(in.Now)
		}
		return
	}
	p.HoldSince, p.ReleaseAt = nil, nil
}

func deref(v *int32) int32 {
	if v == nil {
		return 0
	}
	return *v
}
