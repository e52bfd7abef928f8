package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Phase is where a policy is in its life.
type Phase string

const (
	// PhaseNormal: no lever is pulled beyond the standing allowlist.
	PhaseNormal Phase = "Normal"
	// PhaseShedding: every request gets the shed response.
	PhaseShedding Phase = "Shedding"
	// PhaseRamping: a ramp step is in force.
	PhaseRamping Phase = "Ramping"
	// PhasePaused: a ramp is held at its current step by the responder (spec.ramp.paused).
	PhasePaused Phase = "Paused"
	// PhaseReleasing: traffic is full again; the autoscaler hold is kept a little longer.
	PhaseReleasing Phase = "Releasing"
	// PhaseCompleted: the ramp ran to its end and every target is back to its original.
	PhaseCompleted Phase = "Completed"
	// PhaseRestoring: the originals are being put back (deletion, or a restore that has not
	// succeeded yet).
	PhaseRestoring Phase = "Restoring"
)

// RampStatus is the state of the current (or last) ramp run.
type RampStatus struct {
	// Step is the 1-based step in force; 0 before the first step, len(steps)+1 after the last.
	Step int32 `json:"step"`
	// Steps is the number of steps of the run.
	Steps int32 `json:"steps"`
	// StartedAt is when the run began (the action changed into Ramp).
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// StepStartedAt is when the current step came into force.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`
	// NextStepAt is the earliest time the ramp moves on.
	// +optional
	NextStepAt *metav1.Time `json:"nextStepAt,omitempty"`
	// FullTrafficAt is when the last step's hold ended and traffic became full.
	// +optional
	FullTrafficAt *metav1.Time `json:"fullTrafficAt,omitempty"`
	// PausedAt is when the ramp was paused (while spec.ramp.paused).
	// +optional
	PausedAt *metav1.Time `json:"pausedAt,omitempty"`
	// AwaitingApproval is true when the step's hold has ended and it waits for an approve.
	// +optional
	AwaitingApproval bool `json:"awaitingApproval,omitempty"`
	// Gates are the current step's gates, as last read.
	// +optional
	Gates []GateStatus `json:"gates,omitempty"`
	// GatesPassingSince is since when every gate of the step has passed without a break.
	// +optional
	GatesPassingSince *metav1.Time `json:"gatesPassingSince,omitempty"`
	// LastStepBackAt is when a failing gate last stepped the ramp back.
	// +optional
	LastStepBackAt *metav1.Time `json:"lastStepBackAt,omitempty"`
	// ShedByGate names the gate whose failure shed everything (onGateFailure ShedAll).
	// +optional
	ShedByGate string `json:"shedByGate,omitempty"`
}

// Verdict is what a gate's reading says.
type Verdict string

// Verdicts.
const (
	VerdictPass    Verdict = "Pass"
	VerdictFail    Verdict = "Fail"
	VerdictUnknown Verdict = "Unknown"
)

// GateStatus is the last reading of one gate.
type GateStatus struct {
	// Name of the gate.
	Name string `json:"name"`
	// Verdict of the last reading.
	Verdict Verdict `json:"verdict"`
	// Reading is what was read, for example "0.004 < 0.01" or "HTTP 200".
	// +optional
	Reading string `json:"reading,omitempty"`
	// Reason says why the verdict is Fail or Unknown.
	// +optional
	Reason string `json:"reason,omitempty"`
	// ReadAt is when the gate was read (controller clock).
	// +optional
	ReadAt *metav1.Time `json:"readAt,omitempty"`
}

// AppliedKnobs is what Floodgate has put in force on a target.
type AppliedKnobs struct {
	// Shed is true when every request gets the shed response.
	// +optional
	Shed bool `json:"shed,omitempty"`
	// AllowRegions is the region allowlist in force; absent when every region is admitted.
	// +optional
	AllowRegions []string `json:"allowRegions,omitempty"`
	// PerClientRequestsPerSecond is the per-client rate limit in force.
	// +optional
	PerClientRequestsPerSecond int32 `json:"perClientRequestsPerSecond,omitempty"`
	// AdmitPercent is the share of requests admitted, when fewer than all.
	// +optional
	AdmitPercent int32 `json:"admitPercent,omitempty"`
}

// Capabilities are what a provider can and cannot do, so nobody mistakes its limits.
type Capabilities struct {
	// Provider is the mechanism used for the target (ingress-nginx).
	Provider string `json:"provider"`
	// RateLimitScope is how far a rate limit reaches (PerClientPerReplica on ingress-nginx).
	RateLimitScope string `json:"rateLimitScope"`
	// RateLimitStatusCode is what a rate-limited request receives.
	RateLimitStatusCode int32 `json:"rateLimitStatusCode"`
	// RateLimitBurstMultiplier is how many seconds' worth of the rate a client may send at once
	// before it is limited (5 on ingress-nginx and Traefik's NGINX provider, 1 on the Middleware
	// Floodgate writes for Traefik's HTTPRoutes): the first second of a limit admits up to this
	// many times the rate on top of it. 0: no rate limit, or not known.
	// +optional
	RateLimitBurstMultiplier int32 `json:"rateLimitBurstMultiplier,omitempty"`
	// AdmitPercentSelection is how a share admitted by admitPercent is chosen: Random (each
	// request on its own, ingress-nginx), WeightedRoundRobin (exactly that share of every round,
	// Traefik), or ImplementationSpecific (core Gateway API leaves it to the gateway).
	// +optional
	// +kubebuilder:validation:Enum=Random;WeightedRoundRobin;ImplementationSpecific
	AdmitPercentSelection string `json:"admitPercentSelection,omitempty"`
	// MissingRegionShed is true when requests without the region header can be shed.
	MissingRegionShed bool `json:"missingRegionShed"`
	// MaxAllowlistPatternBytes caps the region pattern the provider generates (0: no cap); a
	// longer allowlist is refused up front with how many of its regions fit.
	// +optional
	MaxAllowlistPatternBytes int32 `json:"maxAllowlistPatternBytes,omitempty"`
	// AllowlistCost says what an allowlist costs the data plane per request.
	// +optional
	AllowlistCost string `json:"allowlistCost,omitempty"`
	// ShedAnsweredBy says who answers the requests a ShedAll sheds: ShedServer (Floodgate's shed
	// pods behind the policy's shed Service, which must absorb the herd; absent means the same) or
	// Proxy (the data plane answers them itself, as Envoy Gateway's direct response does: no pod
	// is in the herd's path). A redirected ShedAll on an HTTPRoute is the proxy's RequestRedirect.
	// +optional
	// +kubebuilder:validation:Enum=ShedServer;Proxy
	ShedAnsweredBy ShedAnsweredBy `json:"shedAnsweredBy,omitempty"`
}

// ShedAnsweredBy is who answers a ShedAll's requests.
type ShedAnsweredBy string

const (
	// ShedAnsweredByShedServer: Floodgate's shed pods, behind the policy's shed Service.
	ShedAnsweredByShedServer ShedAnsweredBy = "ShedServer"
	// ShedAnsweredByProxy: the data plane itself (a direct response).
	ShedAnsweredByProxy ShedAnsweredBy = "Proxy"
)

// TargetStatus is the state of one target.
type TargetStatus struct {
	// Group of the target's kind.
	// +optional
	Group string `json:"group,omitempty"`
	// Kind of the target.
	Kind TargetKind `json:"kind"`
	// Name of the target.
	Name string `json:"name"`
	// Found is false when the target does not exist.
	Found bool `json:"found"`
	// Applied is what Floodgate has put in force on the target.
	// +optional
	Applied AppliedKnobs `json:"applied,omitempty"`
	// DataPlanes are the data planes serving the target, as its classes' controllers say (an
	// Ingress's IngressClass, an HTTPRoute's parents' GatewayClasses): ingress-nginx, traefik,
	// envoy-gateway, or a controller's own name when Floodgate does not know it (the manager's
	// --data-plane-controllers maps more). Absent when none can be read (a namespaced install
	// reads no IngressClass). capabilities.provider says whose settings Floodgate writes.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	DataPlanes []string `json:"dataPlanes,omitempty"`
	// Capabilities of the provider for this target.
	// +optional
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	// Companion is the name of the canary Ingress Floodgate owns for this target.
	// +optional
	Companion string `json:"companion,omitempty"`
	// SharedUpstreamIngresses are other Ingresses that route to the same Service and port: a
	// canary applies to the whole upstream, so they are affected too.
	// +optional
	SharedUpstreamIngresses []string `json:"sharedUpstreamIngresses,omitempty"`
	// Warnings are known limits that apply to this target (session affinity, shared upstreams).
	// +optional
	Warnings []string `json:"warnings,omitempty"`
	// RestoreRecord is a copy of the restore record kept on the target object.
	// +optional
	RestoreRecord string `json:"restoreRecord,omitempty"`
	// Reason is set when the lever in force is not (fully) applied to this target: a condition
	// reason such as TargetNotFound, Conflict or CorruptRestoreRecord. Empty when it is.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says why the lever in force is not (fully) applied to this target, and what to do.
	// +optional
	Message string `json:"message,omitempty"`
	// Unsupported lists what this target cannot take, for every step of the policy, computed
	// whenever the policy is applied (for example "step 2: perClientRequestsPerSecond: ..."), so
	// a runbook is fixed in a drill rather than discovered mid-incident.
	// +optional
	Unsupported []string `json:"unsupported,omitempty"`
	// Armed is true when the API server accepted, in a dry run, every lever's write to this
	// target, false when it refused one (the Armed condition says which and why); unset until
	// judged.
	// +optional
	Armed *bool `json:"armed,omitempty"`
	// ArmedMessage is, when Armed is false, the lever refused and the API server's own message.
	// +optional
	ArmedMessage string `json:"armedMessage,omitempty"`
	// ConfirmedAt is when probes through the data plane last showed every route of this target
	// answering as the lever in force says (unset while they do not, or nothing is probed).
	// +optional
	ConfirmedAt *metav1.Time `json:"confirmedAt,omitempty"`
	// ConfirmMessage is, when a probe of this target lands where the lever does not say, which
	// probe, and what came back.
	// +optional
	ConfirmMessage string `json:"confirmMessage,omitempty"`
}

// AutoscalerStatus is the state of one held autoscaler.
type AutoscalerStatus struct {
	// APIGroup of the autoscaler's kind.
	// +optional
	APIGroup string `json:"apiGroup,omitempty"`
	// Kind of the autoscaler.
	// +optional
	Kind AutoscalerKind `json:"kind,omitempty"`
	// Name of the autoscaler.
	Name string `json:"name"`
	// Found is false when the autoscaler does not exist.
	Found bool `json:"found"`
	// Held is true while Floodgate keeps the autoscaler from scaling down.
	// +optional
	Held bool `json:"held,omitempty"`
	// HeldMinReplicas is the minReplicas the hold began with: the workload's replicas when the
	// hold began, never above maxReplicas.
	// +optional
	HeldMinReplicas int32 `json:"heldMinReplicas,omitempty"`
	// MinReplicas is the minReplicas Floodgate has set now (lowered stepwise while releasing).
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`
	// RestoreRecord is a copy of the restore record kept on the autoscaler.
	// +optional
	RestoreRecord string `json:"restoreRecord,omitempty"`
	// Reason is set when the hold in force is not applied to this autoscaler: a condition reason
	// such as AutoscalerNotFound or Conflict. Empty when it is.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says why the hold in force is not applied to this autoscaler, and what to do.
	// +optional
	Message string `json:"message,omitempty"`
	// Warnings are known limits of the hold on this autoscaler (for example the KEDA version a
	// mechanism needs).
	// +optional
	Warnings []string `json:"warnings,omitempty"`
	// Armed is true when the API server accepted, in a dry run, every lever's hold and release
	// of this autoscaler, false when it refused one (the Armed condition says which and why);
	// unset until judged.
	// +optional
	Armed *bool `json:"armed,omitempty"`
	// ArmedMessage is, when Armed is false, the lever refused and the API server's own message.
	// +optional
	ArmedMessage string `json:"armedMessage,omitempty"`
	// ConfirmedAt is when probes through the data plane last showed every route of this target
	// answering as the lever in force says (unset while they do not, or nothing is probed).
	// +optional
	ConfirmedAt *metav1.Time `json:"confirmedAt,omitempty"`
	// ConfirmMessage is, when a probe of this target lands where the lever does not say, which
	// probe, and what came back.
	// +optional
	ConfirmMessage string `json:"confirmMessage,omitempty"`
}

// Transition is one entry of the policy's history.
type Transition struct {
	// Time of the transition.
	Time metav1.Time `json:"time"`
	// Phase entered.
	Phase Phase `json:"phase"`
	// Step in force after the transition (0 when not ramping).
	// +optional
	Step int32 `json:"step,omitempty"`
	// Action that was in the spec.
	Action Action `json:"action"`
	// Reason is a CamelCase word for why.
	Reason string `json:"reason"`
	// Message says what happened.
	// +optional
	Message string `json:"message,omitempty"`
	// By is who made the request that caused it, where known.
	// +optional
	By string `json:"by,omitempty"`
	// Note is the reason the responder gave.
	// +optional
	Note string `json:"note,omitempty"`
}

// MaxHistory is how many transitions status keeps.
const MaxHistory = 20

// TrafficPolicyStatus is what the controller has observed and decided.
type TrafficPolicyStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +kubebuilder:default=-1
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase is where the policy is.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// ObservedAction is the last action the controller acted on; a change of spec.action against
	// it is a transition (a new ramp run starts when it changes into Ramp).
	// +optional
	ObservedAction Action `json:"observedAction,omitempty"`
	// ActionChangedAt is when ObservedAction last changed.
	// +optional
	ActionChangedAt *metav1.Time `json:"actionChangedAt,omitempty"`
	// LastHandledRequest is the last request annotation value handled ("VERB:TOKEN").
	// +optional
	LastHandledRequest string `json:"lastHandledRequest,omitempty"`
	// HeldRequest is a request ("VERB:TOKEN") the controller has seen but not applied yet,
	// because the ramp holds: its next step cannot be applied to every target and autoscaler
	// (the Ready condition says why). It is handled once the step can be applied.
	// +optional
	HeldRequest string `json:"heldRequest,omitempty"`
	// Progress is the step shown by kubectl get, for example 2/3.
	// +optional
	Progress string `json:"progress,omitempty"`
	// Ramp is the state of the current or last ramp run.
	// +optional
	Ramp *RampStatus `json:"ramp,omitempty"`
	// HoldSince is when the autoscaler hold began.
	// +optional
	HoldSince *metav1.Time `json:"holdSince,omitempty"`
	// LeverPulledAt is when the policy left Normal (absent at rest): what staleAfter and the
	// lever-age metric count from.
	// +optional
	LeverPulledAt *metav1.Time `json:"leverPulledAt,omitempty"`
	// ReleaseStage is how far the gradual release of the autoscaler hold has gone (0 before it
	// starts; ReleaseStages when done).
	// +optional
	ReleaseStage int32 `json:"releaseStage,omitempty"`
	// ExpiredLevers name levers whose expiry time has passed (ShedAll, AllowRegions).
	// +optional
	ExpiredLevers []string `json:"expiredLevers,omitempty"`
	// ActionBeforeShed is the action in force before the last ShedAll, where a ShedAll expiry returns.
	// +optional
	ActionBeforeShed Action `json:"actionBeforeShed,omitempty"`
	// ObservedAllowRegions is spec.allowRegions as last seen, so a change to it is noticed.
	// +optional
	ObservedAllowRegions []string `json:"observedAllowRegions,omitempty"`
	// AllowRegionsBefore is the standing allowlist that was in force before spec.allowRegions
	// last changed (empty: no restriction), where an allowlist expiry returns.
	// +optional
	AllowRegionsBefore []string `json:"allowRegionsBefore,omitempty"`
	// ReleaseAt is when the autoscaler hold will be released (phase Releasing).
	// +optional
	ReleaseAt *metav1.Time `json:"releaseAt,omitempty"`
	// TargetCount is how many targets the policy covers (named and selected).
	// +optional
	TargetCount int32 `json:"targetCount,omitempty"`
	// TargetsNotListed is how many of them status.targets leaves out: with a targetSelector it
	// lists the first 50 targets with a problem and the first 10 others, so status fits however
	// large the fleet (`kubectl floodgate status --targets` lists every one).
	// +optional
	TargetsNotListed int32 `json:"targetsNotListed,omitempty"`
	// Targets are the per-target states.
	// +optional
	Targets []TargetStatus `json:"targets,omitempty"`
	// Autoscalers are the per-autoscaler states.
	// +optional
	Autoscalers []AutoscalerStatus `json:"autoscalers,omitempty"`
	// KeptChanges name fields someone else changed after Floodgate: their value was kept rather
	// than Floodgate's original or Floodgate's own. The list is that of the last action that kept
	// any (a restore's survive the next action change: the live objects still carry those values);
	// the first change kept under a later action replaces it.
	// +kubebuilder:validation:MaxItems=100
	// +optional
	KeptChanges []string `json:"keptChanges,omitempty"`
	// KeptChangesEarlier is true when keptChanges were kept under an action before the one in
	// force: they are kept for the record and no longer make the policy Degraded.
	// +optional
	KeptChangesEarlier bool `json:"keptChangesEarlier,omitempty"`
	// History keeps the last 20 transitions (Events expire after an hour).
	// +optional
	History []Transition `json:"history,omitempty"`
	// Conditions: Ready, Progressing, Degraded, RampComplete, GateUnknown, LeverStale,
	// StepUnsupported and Armed.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
