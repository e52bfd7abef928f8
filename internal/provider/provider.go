// Package provider is the one small interface every kind of object Floodgate edits implements,
// traffic targets and autoscalers alike: observe an object (reads only), render the changes the
// knobs need as pure data, say what the object cannot take. One writer (Write) applies rendered
// changes with the restore record, and the same render with no knobs puts an object back (see
// Registry). This file is the seam; problems.go the typed problems, changes.go the previews'
// changes, docs.go the knob table.
package provider

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/index"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/shed"
)

// Role is what a kind of object does for a policy.
type Role int

const (
	// Target carries traffic: it takes the traffic knobs.
	Target Role = iota
	// Autoscaler scales a workload: it takes the hold.
	Autoscaler
)

func (r Role) String() string {
	if r == Autoscaler {
		return "autoscaler"
	}
	return "target"
}

// Ref names an object of a kind in the policy's namespace.
type Ref struct {
	Group, Kind, Name string
}

// GroupKind is the kind the reference names.
func (r Ref) GroupKind() schema.GroupKind { return schema.GroupKind{Group: r.Group, Kind: r.Kind} }

// String names the object as messages do: "Ingress api", "ScaledObject api".
func (r Ref) String() string { return r.Kind + " " + r.Name }

// Key identifies the object among a policy's: group, kind and name.
func (r Ref) Key() string { return r.Group + "/" + r.Kind + "/" + r.Name }

// DefaultStabilizationWindow is an autoscaler's scale-down stabilization window when it sets
// none: the HPA's default, which a KEDA ScaledObject's HPA inherits.
const DefaultStabilizationWindow = 300 * time.Second

// Desired is what a policy asks of one object now: zero puts it back as it was.
type Desired struct {
	// Knobs in force: targets read the traffic knobs, autoscalers the hold and release stage.
	Knobs knobs.Knobs
	// Peak is, for an autoscaler, the minimum its hold began with (0: not known yet, read now).
	Peak int32
}

// Holds reports whether an autoscaler is to be held.
func (d Desired) Holds() bool { return d.Knobs.HoldAutoscalers }

// Observation is what a provider read about one object before any write.
type Observation struct {
	Ref   Ref
	Found bool
	// UID of the object, when found.
	UID      types.UID
	Problems []Problem
	// Status is the object's status as observed (capabilities, warnings).
	Status Status
	// StabilizationWindow is, for an autoscaler, its own scale-down stabilization window before
	// any change of Floodgate's: the gradual release never takes less.
	StabilizationWindow time.Duration
	// State is the provider's own observed objects, handed back to Render.
	State any
}

// Status is what one object reports in the policy's status: its role's part (the controller
// files it under status.targets or status.autoscalers by the provider's role) and what both
// roles report.
type Status struct {
	// Found is whether the object exists.
	Found bool
	// Target is what a target reports.
	Target TargetStatus
	// Autoscaler is what an autoscaler reports.
	Autoscaler AutoscalerStatus
	// Warnings are things worth knowing that keep nothing from the knobs.
	Warnings []string
	// RestoreRecord is the record Floodgate keeps on the object, as status copies it.
	RestoreRecord string
	// Reason and Message say what keeps the object from its knobs ("" when nothing does).
	Reason, Message string
}

// TargetStatus is what a target reports.
type TargetStatus struct {
	// Applied are the knobs the target carries.
	Applied v1alpha1.AppliedKnobs
	// Capabilities are what the target's mechanism can take.
	Capabilities *v1alpha1.Capabilities
	// Companion names the object Floodgate owns beside the target (a canary Ingress).
	Companion string
	// SharedUpstreamIngresses are other Ingresses sharing the target's upstream.
	SharedUpstreamIngresses []string
	// Unsupported names the steps the target cannot take.
	Unsupported []string
}

// AutoscalerStatus is what an autoscaler reports.
type AutoscalerStatus struct {
	// Held is whether Floodgate holds the autoscaler's floor.
	Held bool
	// HeldMinReplicas is the floor it is held at.
	HeldMinReplicas int32
	// MinReplicas is the autoscaler's floor as it is now.
	MinReplicas int32
}

// Change is what one object needs for the knobs: pure data, written by Write and printed by
// Preview, so `--dry-run` shows exactly what a pass writes.
type Change struct {
	// Before is the object as read and After as it is wanted (nil: the object is not edited);
	// the restore record travels in After's annotations.
	Before, After *unstructured.Unstructured
	// KeptOthers name fields someone else changed after Floodgate: they keep their value.
	KeptOthers []string
	// Ensure are companion objects Floodgate owns, created or brought in step.
	Ensure []Companion
	// Remove are companion objects Floodgate owns that must go (named; absent ones are fine).
	Remove []client.Object
	// Status is what the object has once the change is written.
	Status Status
}

// Companion is an object Floodgate owns, as it is wanted; Sync copies the fields Floodgate
// manages from the wanted object into the existing one.
type Companion struct {
	Desired client.Object
	Sync    func(existing, desired client.Object)
}

// Provider is one kind of object Floodgate edits.
type Provider interface {
	// GroupKind is the kind of objects it edits.
	GroupKind() schema.GroupKind
	// Role says whether they carry traffic or scale a workload.
	Role() Role
	// Object is an empty object of the kind, for watches.
	Object() client.Object
	// Observe reads the object and what surrounds it, and writes nothing.
	Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref Ref, d Desired) (*Observation, error)
	// Render computes what the object needs for d, writing nothing. recordCopy is the restore
	// record kept in the policy's status for this object.
	Render(policy *v1alpha1.TrafficPolicy, obs *Observation, d Desired, recordCopy string) (Change, error)
	// Unsupported says why an observed object cannot take d ("" when it can): a limit of the
	// mechanism, not of the moment, so it is computed for every step up front.
	Unsupported(policy *v1alpha1.TrafficPolicy, obs *Observation, d Desired) string
	// Recorded lists the objects of this kind in the policy's namespace the policy changed,
	// whether or not its spec still names them (its restore record, its companions), so one
	// dropped from the spec is put back even when status lost track of it.
	Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]Ref, error)
}

// Selecting is a target provider that selects its kind's objects by label (targetSelector).
type Selecting interface {
	// Select lists the objects of the policy's namespace the selector selects, but for
	// Floodgate's own companions.
	Select(ctx context.Context, policy *v1alpha1.TrafficPolicy, selector labels.Selector) ([]Ref, error)
}

// Related is a target provider whose objects bear on each other's observation (an Ingress
// sharing an upstream or a rule with a target): a change to one concerns the policies of the
// others. Related returns those others, from the cache, read only.
type Related interface {
	Related(ctx context.Context, obj client.Object) ([]client.Object, error)
}

// Routed is a target provider whose objects carry traffic by host and path (shed.Kind: what
// any object of its kind names and carries, for the shed server's table, the host indexes and
// the claims across namespaces), and the routes an observed object carries (none when it carries
// no traffic, as its kind's carrier says).
type Routed interface {
	shed.Kind
	Routes(obs *Observation, carriers shed.Carriers) []shed.Route
}

// ProxyAnswered is a target provider whose data plane can answer some shed requests itself (a
// gateway's RequestRedirect; Envoy Gateway's direct response), with no shed pod in the herd's
// path. A provider without it sheds through the shed backend: the policy's shed Service and the
// shed pods behind it, whose readiness then decides whether the lever holds
// (ShedBackendUnavailable).
type ProxyAnswered interface {
	// ProxyAnswers reports whether the change rendered for d has the proxy answer every
	// request it sheds (none goes to the shed backend).
	ProxyAnswers(policy *v1alpha1.TrafficPolicy, obs *Observation, d Desired) bool
}

// ShedsThroughBackend reports whether an object's change under d sends requests to the shed
// backend: d sheds, and its provider does not have the proxy answer them all.
func ShedsThroughBackend(p Provider, policy *v1alpha1.TrafficPolicy, obs *Observation, d Desired) bool {
	if !d.Knobs.Sheds() {
		return false
	}
	answered, ok := p.(ProxyAnswered)
	return !ok || !answered.ProxyAnswers(policy, obs, d)
}

// Companioned is a target provider that gives a target companion objects of its own kind: their
// names, so an object holding one wakes the policy.
type Companioned interface {
	CompanionNames(policy *v1alpha1.TrafficPolicy, target string) []string
}

// Attached is a target provider whose objects' meaning depends on objects of other kinds that
// attach themselves to them (Envoy Gateway's BackendTrafficPolicies, targeting routes): a change
// to one, its spec or its status, wakes the policies of the objects it attaches to, and no other.
type Attached interface {
	// Attachments are empty objects of the attaching kinds the cluster serves, for watches.
	Attachments() []client.Object
	// AttachedTo are the objects of the provider's kind, in obj's namespace, that obj attaches to,
	// read from c (the cache).
	AttachedTo(ctx context.Context, c client.Reader, obj client.Object) ([]client.Object, error)
}

// Verdicted is a target provider whose objects' status carries a verdict on Floodgate's change
// (a gateway's, on an HTTPRoute): a change of that verdict wakes the policies editing the
// object; other status changes wake nothing.
type Verdicted interface {
	VerdictChanged(old, new client.Object) bool
}

// Index is a field index of the manager's cache a provider lists its kind through, so a pass
// reads the objects it needs, never a whole namespace. It serves lists in one namespace (the
// policy's) only.
type Index struct {
	Object  client.Object
	Field   string
	Extract client.IndexerFunc
}

// Indexed is a provider that lists through field indexes; the controller registers them.
// Without them (a direct client: previews, drills' checks) the lists still work, unindexed.
type Indexed interface {
	Indexes() []Index
}

// IndexRecordedBy is the name of a field index over the policy ("namespace/name") whose restore
// record an object carries as its own.
const IndexRecordedBy = ".metadata.annotations.restoreRecordPolicy"

// RecordedByIndex is the IndexRecordedBy index function.
func RecordedByIndex(obj client.Object) []string {
	if metav1.GetControllerOf(obj) != nil {
		return nil
	}
	if rec, err := restore.Read(obj); err == nil && rec != nil {
		return []string{rec.Policy}
	}
	return nil
}

// ListRecorded lists into list the objects of the policy's namespace carrying its restore record,
// through the IndexRecordedBy index.
func ListRecorded(ctx context.Context, c client.Reader, policy *v1alpha1.TrafficPolicy, list client.ObjectList) error {
	return index.List(ctx, c, list, IndexRecordedBy, policy.Namespace+"/"+policy.Name, RecordedByIndex,
		client.InNamespace(policy.Namespace), client.UnsafeDisableDeepCopy)
}

// RecordedBy returns the names of the objects that carry the restore record of policy
// ("namespace/name") as their own: a record that cannot be read names no policy, a record copied
// from another object does not describe this one, and an object another controller controls is
// that controller's (its record is a copy of its owner's), so none of those is listed.
func RecordedBy[T any, PT interface {
	*T
	metav1.Object
}](objects []T, policy string) []string {
	var names []string
	for i := range objects {
		obj := PT(&objects[i])
		if metav1.GetControllerOf(obj) != nil {
			continue
		}
		if rec, err := restore.Read(obj); err == nil && rec != nil && rec.Policy == policy && rec.Describes(obj) {
			names = append(names, obj.GetName())
		}
	}
	return names
}

// RecordedRefs are the references, of kind gk, of the objects that carry the restore record of
// policy as their own (RecordedBy).
func RecordedRefs[T any, PT interface {
	*T
	metav1.Object
}](objects []T, policy *v1alpha1.TrafficPolicy, gk schema.GroupKind) []Ref {
	var refs []Ref
	for _, name := range RecordedBy[T, PT](objects, policy.Namespace+"/"+policy.Name) {
		refs = append(refs, Ref{Group: gk.Group, Kind: gk.Kind, Name: name})
	}
	return refs
}
