package provider

import (
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/restore"
)

// Problem is something that keeps one object from taking the knobs. It is reported on that
// object; whether the rest proceeds is the controller's decision (ShedAll and Normal always do).
// Problems are made one way, by ProblemOf or NewProblem from the typed error behind them: the
// reason is decided by that error, and code decides by matching the error (InTheWay, Unreadable,
// Unsupported, Awaiting, WriteFailed), never by comparing the reason.
type Problem struct {
	// Reason is the condition reason (v1alpha1.Reason*) the error behind the problem makes.
	Reason string
	// Message says what is wrong and what to do, without timestamps or counters.
	Message string
	// Err is the error behind the problem: what errors.Is and errors.As match.
	Err error
}

// Typed errors behind problems: conditions are decided by matching them, never by message.
var (
	// ErrControlledByOther: the object has another controller's controller ownerReference, and
	// Floodgate does not edit what another controller would undo.
	ErrControlledByOther = errors.New("controlled by another controller")
	// ErrKindNotInstalled: the kind's CustomResourceDefinition is not installed in the cluster.
	ErrKindNotInstalled = errors.New("the kind is not installed in this cluster")
	// ErrForeignCanary: a canary Floodgate does not own already serves a target's rules.
	ErrForeignCanary = errors.New("a canary Floodgate does not own serves the same rules")
	// ErrUnsupported: the mechanism cannot honour the knobs on this object; the object keeps
	// the lever in force as it was.
	ErrUnsupported = errors.New("the mechanism cannot honour the knobs on this object")
	// ErrRedirectNotTaken: the object cannot carry the policy's redirect; it is shed through the
	// shed backend instead (the lever is still written).
	ErrRedirectNotTaken = errors.New("the object cannot carry the redirect")
	// ErrRedirectNotAllowed: the manager does not allow the policy's redirect host.
	ErrRedirectNotAllowed = errors.New("the redirect host is not allowed")
	// ErrClaimedElsewhere: a route the policy's targets carry is claimed by a policy of another
	// namespace, so the shed server answers it with the neutral answer.
	ErrClaimedElsewhere = errors.New("a route is claimed by a policy of another namespace")
	// ErrTargetNotFound and ErrAutoscalerNotFound: an object the spec names does not exist.
	ErrTargetNotFound     = errors.New("target not found")
	ErrAutoscalerNotFound = errors.New("autoscaler not found")
	// ErrRejectedByDataPlane: the data plane reported Floodgate's change as not accepted.
	ErrRejectedByDataPlane = errors.New("rejected by its data plane")
	// ErrAwaitingDataPlane: the data plane has not reported on Floodgate's change yet; a change
	// under way, not a fault.
	ErrAwaitingDataPlane = errors.New("the data plane has not reported on the change yet")
	// ErrCompanionInUse: a companion that is to go may still be in use by the data plane (a
	// Middleware Traefik has not yet seen unreferenced); it goes once the data plane reports.
	// A deleted policy keeps its finalizer for it, up to MaxCompanionWait.
	ErrCompanionInUse = fmt.Errorf("a companion is still in use by the data plane: %w", ErrAwaitingDataPlane)
)

// MaxCompanionWait is how long a deleted policy keeps its finalizer for a companion still in use
// by the data plane (ErrCompanionInUse): past it, a data plane that never reports (stopped) does
// not keep the policy, and the companion goes with it by its ownerReference. Measured on the
// controller's clock from the first pass that waits.
const MaxCompanionWait = 30 * time.Second

// InUse reports whether a problem is a companion still in use by the data plane.
func InUse(p Problem) bool { return errors.Is(p.Err, ErrCompanionInUse) }

// InTheWay reports whether a problem is someone else's object in the way (a Conflict): another
// policy's record, another controller's object, a companion's name held by an object that is
// not the policy's, a canary that is not Floodgate's.
func InTheWay(p Problem) bool { return inTheWay(p.Err) }

func inTheWay(err error) bool {
	var other *restore.OwnedByOtherError
	var notOurs *owned.NotOursError
	return errors.As(err, &other) || errors.As(err, &notOurs) || isAny(ErrControlledByOther, ErrForeignCanary)(err)
}

// Unreadable reports whether a problem is a restore record that cannot be read.
func Unreadable(p Problem) bool { return errors.Is(p.Err, restore.ErrCorrupt) }

// Unsupported reports whether a problem is a limit of the mechanism that keeps the object from
// the knobs.
func Unsupported(p Problem) bool { return errors.Is(p.Err, ErrUnsupported) }

// Awaiting reports whether a problem is a data plane that has not reported on a change yet.
func Awaiting(p Problem) bool { return errors.Is(p.Err, ErrAwaitingDataPlane) }

// WriteFailed reports whether a problem is an error no type explains (a failed read or write,
// ApplyFailed): it is retried.
func WriteFailed(p Problem) bool {
	_, typed := reasonOf(p.Err)
	return p.Err != nil && !typed
}

// isAny matches an error that is one of targets.
func isAny(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// reasons are the typed errors and the condition reason each makes, in the order they are
// matched; an error none of them matches is ApplyFailed.
var reasons = []struct {
	is     func(error) bool
	reason string
}{
	{isAny(restore.ErrCorrupt), v1alpha1.ReasonCorruptRecord},
	{func(err error) bool { return inTheWay(err) || errors.Is(err, ErrClaimedElsewhere) }, v1alpha1.ReasonConflict},
	{isAny(ErrUnsupported, ErrKindNotInstalled, ErrRedirectNotTaken), v1alpha1.ReasonUnsupported},
	{isAny(ErrRedirectNotAllowed), v1alpha1.ReasonRedirectNotAllowed},
	{isAny(ErrTargetNotFound), v1alpha1.ReasonTargetNotFound},
	{isAny(ErrAutoscalerNotFound), v1alpha1.ReasonAutoscalerNotFound},
	{isAny(ErrRejectedByDataPlane), v1alpha1.ReasonRejectedByGateway},
	{isAny(ErrAwaitingDataPlane), v1alpha1.ReasonAwaitingGateway},
}

// reasonOf is the condition reason err makes, and whether a type explains it (else it is
// ApplyFailed).
func reasonOf(err error) (string, bool) {
	for _, r := range reasons {
		if r.is(err) {
			return r.reason, true
		}
	}
	return v1alpha1.ReasonApplyFailed, false
}

// ProblemOf turns an error into the problem it causes, the condition reason decided by the
// error's type (reasons): an unreadable record is CorruptRestoreRecord, someone else's object in
// the way is Conflict, a limit of the mechanism or a kind not installed is UnsupportedSetting,
// anything no type explains is ApplyFailed (retried).
func ProblemOf(err error) Problem {
	reason, _ := reasonOf(err)
	return Problem{Reason: reason, Message: err.Error(), Err: err}
}

// problem is a problem with a message of its own and the typed error behind it.
func problem(message string, err error) Problem {
	p := ProblemOf(err)
	p.Message = message
	return p
}

// NewProblem is a problem with a message of its own, the reason decided by err's type.
func NewProblem(message string, err error) Problem { return problem(message, err) }

// EditProblems reads the restore record on an object Floodgate edits (or may edit) and says what
// keeps this policy from editing it: a record that cannot be read, another policy's record, or,
// when edits are wanted, another controller's ownership. A record copied from another object
// (its UID is not this one's: KEDA copies a ScaledObject's annotations onto its HPA) is not a
// record of this object at all.
func EditProblems(kind string, obj metav1.Object, policy string, edits bool) (*restore.Record, []Problem) {
	var problems []Problem
	rec, err := restore.Read(obj)
	switch {
	case err != nil:
		err = fmt.Errorf("%s %s: the restore record cannot be read (%w); fix or remove the %s annotation by hand", kind, obj.GetName(), err, restore.Annotation)
		problems = append(problems, ProblemOf(err))
	case rec != nil && !rec.Describes(obj):
		rec = nil
	case rec != nil && rec.Policy != policy:
		problems = append(problems, problem(fmt.Sprintf("%s %s is already changed by policy %s; one policy per object", kind, obj.GetName(), rec.Policy),
			&restore.OwnedByOtherError{Owner: rec.Policy}))
	}
	if owner := metav1.GetControllerOf(obj); owner != nil && edits {
		problems = append(problems, problem(fmt.Sprintf("%s %s is controlled by %s %s; Floodgate does not edit objects another controller owns", kind, obj.GetName(), owner.Kind, owner.Name),
			ErrControlledByOther))
	}
	return rec, problems
}
