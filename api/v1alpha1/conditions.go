package v1alpha1

// Condition types.
const (
	// ConditionReady is True when the targets are in the state the policy asks for.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a ramp or an autoscaler release is under way.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something keeps the policy from being applied or restored.
	ConditionDegraded = "Degraded"
	// ConditionRampComplete is True once a ramp has run to its end.
	ConditionRampComplete = "RampComplete"
	// ConditionGateUnknown is True when a gate has no trustworthy reading and holds the ramp.
	ConditionGateUnknown = "GateUnknown"
	// ConditionLeverStale is True when the policy has not been Normal for longer than staleAfter.
	ConditionLeverStale = "LeverStale"
	// ConditionStepUnsupported is True when some target or autoscaler cannot take some step of
	// the policy (or its standing allowlist): the message names the step and the target. A ramp
	// holds before such a step; the per-target status lists every such limit.
	ConditionStepUnsupported = "StepUnsupported"
	// ConditionArmed is True when the API server accepted, in a server-side dry run (nothing
	// persisted), every write of every lever the policy can pull (ShedAll with its redirect,
	// the standing allowlist, each ramp step, Normal) to every target and autoscaler, and the
	// companions they need; its observedGeneration is the generation judged. False names the
	// lever, the object and the API server's own message. Judged whenever the policy or one of
	// its objects changes, never on a timer. Not Armed changes no lever: every lever that can
	// be pulled still is.
	ConditionArmed = "Armed"
	// ConditionConfirmed is True when probe requests sent through the data plane since the
	// lever in force was written land as it says (shed by this policy's shed answer, or
	// admitted), since lastTransitionTime; False names the target, the probe and what came
	// back once the grace after the flip is over; Unknown while there is no evidence yet (or
	// nothing can be probed: the message says why). Ready keeps its meaning: written.
	ConditionConfirmed = "Confirmed"
)

// Condition reasons.
const (
	ReasonApplied            = "Applied"
	ReasonRestored           = "Restored"
	ReasonShedding           = "Shedding"
	ReasonRampStep           = "RampStep"
	ReasonReleasing          = "ReleasingAutoscalers"
	ReasonIdle               = "Idle"
	ReasonRampComplete       = "RampComplete"
	ReasonRampNotComplete    = "RampNotComplete"
	ReasonTargetNotFound     = "TargetNotFound"
	ReasonAutoscalerNotFound = "AutoscalerNotFound"
	ReasonConflict           = "Conflict"
	ReasonUnsupported        = "UnsupportedSetting"
	ReasonFieldChanged       = "FieldChangedByOther"
	ReasonCorruptRecord      = "CorruptRestoreRecord"
	ReasonApplyFailed        = "ApplyFailed"
	ReasonNoShedBackend      = "ShedBackendUnavailable"
	ReasonHealthy            = "Healthy"
	ReasonPending            = "Pending"
	ReasonGatesHolding       = "GatesHolding"
	ReasonGateFailed         = "GateFailed"
	ReasonGatesTrusted       = "GatesTrusted"
	ReasonLeverStale         = "LeverPulledTooLong"
	ReasonLeverFresh         = "LeverFresh"
	ReasonRampHeld           = "RampHeld"
	ReasonAllSupported       = "AllSupported"
	ReasonRedirectNotAllowed = "RedirectNotAllowed"
	// ReasonRejectedByGateway: a gateway reported an HTTPRoute Floodgate changed as not
	// Accepted or with unresolved references, at its current generation.
	ReasonRejectedByGateway = "RejectedByGateway"
	// ReasonAwaitingGateway: a gateway has not yet reported on an HTTPRoute Floodgate changed;
	// the change is not counted as applied until it does.
	ReasonAwaitingGateway = "AwaitingGateway"
	// ReasonLeversAccepted: the API server accepted every lever's writes in a dry run (Armed).
	ReasonLeversAccepted = "LeversAccepted"
	// ReasonLeverRefused: the API server refused some lever's write in a dry run (Armed False).
	ReasonLeverRefused = "LeverRefused"
	// ReasonArming: the levers have not been judged yet (Armed Unknown).
	ReasonArming = "Arming"
	// ReasonDataPlaneAnswers: every probe landed as the lever says (Confirmed True).
	ReasonDataPlaneAnswers = "DataPlaneAnswers"
	// ReasonDataPlaneDisagrees: a probe landed where the lever does not say after the grace
	// (Confirmed False).
	ReasonDataPlaneDisagrees = "DataPlaneDisagrees"
	// ReasonConfirming: probes are on their way, or the data plane is within the grace after a
	// flip (Confirmed Unknown).
	ReasonConfirming = "Confirming"
	// ReasonNotProbed: nothing can be probed (no address, no probe key, or only admitted
	// traffic without probeApplication) (Confirmed Unknown).
	ReasonNotProbed = "NotProbed"
)
