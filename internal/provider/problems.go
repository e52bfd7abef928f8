package provider

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/restore"
)

// Problem is something that keeps one object from taking the knobs. It is reported on that
// object; whether the rest proceeds is the controller's decision (ShedAll and Normal always do).
type Problem struct {
	// Reason is a condition reason (v1alpha1.Reason*).
	Reason string
	// Message says what is wrong and what to do, without timestamps or counters.
	Message string
	// Err is the error behind the problem, when there is one: what errors.Is and errors.As match.
	Err error
}

// HasReason reports whether one of the problems has the reason.
func HasReason(problems []Problem, reason string) bool {
	for _, p := range problems {
		if p.Reason == reason {
			return true
		}
	}
	return false
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
	// ErrUnsupported: the mechanism cannot honour the knobs on this object.
	ErrUnsupported = errors.New("the mechanism cannot honour the knobs on this object")
)

// InTheWay reports whether a problem is someone else's object in the way (a Conflict): another
// policy's record, another controller's object, a companion's name held by an object that is
// not the policy's, a canary that is not Floodgate's.
func InTheWay(p Problem) bool {
	var other *restore.OwnedByOtherError
	var notOurs *owned.NotOursError
	return errors.As(p.Err, &other) || errors.As(p.Err, &notOurs) ||
		errors.Is(p.Err, ErrControlledByOther) || errors.Is(p.Err, ErrForeignCanary)
}

// Unreadable reports whether a problem is a restore record that cannot be read.
func Unreadable(p Problem) bool { return errors.Is(p.Err, restore.ErrCorrupt) }

// Unsupported reports whether a problem is a limit of the mechanism.
func Unsupported(p Problem) bool { return errors.Is(p.Err, ErrUnsupported) }

// ProblemOf turns an error into the problem it causes, the condition reason decided by the
// error's type: an unreadable record is CorruptRestoreRecord, someone else's object in the way is
// Conflict, a limit of the mechanism or a kind not installed is UnsupportedSetting, anything else
// is ApplyFailed (retried).
func ProblemOf(err error) Problem {
	p := Problem{Reason: v1alpha1.ReasonApplyFailed, Message: err.Error(), Err: err}
	switch {
	case Unreadable(p):
		p.Reason = v1alpha1.ReasonCorruptRecord
	case InTheWay(p):
		p.Reason = v1alpha1.ReasonConflict
	case Unsupported(p), errors.Is(err, ErrKindNotInstalled):
		p.Reason = v1alpha1.ReasonUnsupported
	}
	return p
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
