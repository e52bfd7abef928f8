package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Action is the lever a responder pulls.
// +kubebuilder:validation:Enum=Normal;ShedAll;Ramp
type Action string

const (
	// ActionNormal admits traffic as usual (restricted only by the standing allowRegions).
	ActionNormal Action = "Normal"
	// ActionShedAll answers every request of every target with the shed response.
	ActionShedAll Action = "ShedAll"
	// ActionRamp admits traffic back step by step, as declared in spec.ramp.
	ActionRamp Action = "Ramp"
)

// MissingRegion says what happens to a request that carries no region header.
// +kubebuilder:validation:Enum=Admit;Shed
type MissingRegion string

const (
	// MissingRegionAdmit admits requests without the region header.
	MissingRegionAdmit MissingRegion = "Admit"
	// MissingRegionShed sheds requests without the region header while an allowlist is in force.
	MissingRegionShed MissingRegion = "Shed"
)

// TargetKind is a kind of object that carries traffic.
// +kubebuilder:validation:Enum=Ingress;HTTPRoute
type TargetKind string

const (
	// TargetKindIngress is a networking.k8s.io/v1 Ingress served by ingress-nginx (or Traefik,
	// which reads the same annotations).
	TargetKindIngress TargetKind = "Ingress"
	// TargetKindHTTPRoute is a Gateway API gateway.networking.k8s.io/v1 HTTPRoute, served by
	// any conformant implementation (Envoy Gateway, Istio, Cilium, ...).
	TargetKindHTTPRoute TargetKind = "HTTPRoute"
)

// RegionCodePattern is what a region code looks like: the values a CDN writes into the region
// header (ISO 3166 country codes such as AU, subdivisions such as US-CA, or a CDN's own codes
// such as T1). Nothing else is accepted, so nothing can be injected into a generated pattern.
const RegionCodePattern = `^[A-Z0-9-]{1,16}$`

// Group names of the kinds Floodgate edits.
const (
	GroupNetworking  = "networking.k8s.io"
	GroupAutoscaling = "autoscaling"
	GroupKEDA        = "keda.sh"
	GroupGatewayAPI  = "gateway.networking.k8s.io"
)

// TargetRef names an object, in the policy's namespace, that carries the traffic to control.
// +kubebuilder:validation:XValidation:rule="!has(self.group) || !has(self.kind) || (self.kind == 'Ingress' && self.group == 'networking.k8s.io') || (self.kind == 'HTTPRoute' && self.group == 'gateway.networking.k8s.io')",message="an Ingress target's group is networking.k8s.io, an HTTPRoute's is gateway.networking.k8s.io"
type TargetRef struct {
	// Group of the target's kind: networking.k8s.io for an Ingress, gateway.networking.k8s.io
	// for an HTTPRoute. Defaults to networking.k8s.io (Ingress).
	// +kubebuilder:default=networking.k8s.io
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`

	// Kind of the target: Ingress or HTTPRoute. Defaults to Ingress.
	// +kubebuilder:default=Ingress
	// +optional
	Kind TargetKind `json:"kind,omitempty"`

	// Name of the target object in the policy's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="a target's name must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (for example api-gateway)"
	Name string `json:"name"`
}

// TargetSelector selects, by label, the targets of a kind in the policy's namespace: one policy
// covers a fleet. Floodgate's own companions are never selected.
// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="targetSelector must select something: give matchLabels or matchExpressions (an empty selector would take every Ingress of the namespace)"
// +kubebuilder:validation:XValidation:rule="!has(self.group) || !has(self.kind) || (self.kind == 'Ingress' && self.group == 'networking.k8s.io') || (self.kind == 'HTTPRoute' && self.group == 'gateway.networking.k8s.io')",message="an Ingress target's group is networking.k8s.io, an HTTPRoute's is gateway.networking.k8s.io"
type TargetSelector struct {
	// Group of the kind selected: networking.k8s.io (Ingress) or gateway.networking.k8s.io
	// (HTTPRoute). Defaults to networking.k8s.io (Ingress).
	// +kubebuilder:default=networking.k8s.io
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
	// Kind selected: Ingress or HTTPRoute. Defaults to Ingress.
	// +kubebuilder:default=Ingress
	// +optional
	Kind TargetKind `json:"kind,omitempty"`
	// MatchLabels selects objects whose labels hold every one of these. Keys are label keys,
	// as apimachinery validates them; a value that is not a label value selects nothing, and is
	// reported (Degraded) without keeping the lever from the named targets.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (!k.contains('/') || size(k.split('/')[0]) <= 253))",message="targetSelector.matchLabels keys must be label keys: an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (for example app.kubernetes.io/name)"
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// MatchExpressions selects objects whose labels satisfy every one of these requirements.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	MatchExpressions []LabelRequirement `json:"matchExpressions,omitempty"`
}

// LabelRequirement is one requirement of a label selector, validated as apimachinery validates a
// LabelSelector's (metav1.LabelSelectorRequirement, with the same JSON).
// +kubebuilder:validation:XValidation:rule="(self.operator == 'In' || self.operator == 'NotIn') ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",message="targetSelector.matchExpressions: operators In and NotIn need values, Exists and DoesNotExist take none"
type LabelRequirement struct {
	// Key is the label key the requirement applies to.
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (!self.contains('/') || size(self.split('/')[0]) <= 253)",message="targetSelector.matchExpressions key must be a label key: an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (for example app.kubernetes.io/name)"
	Key string `json:"key"`
	// Operator relates the key to the values: In, NotIn, Exists or DoesNotExist.
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator metav1.LabelSelectorOperator `json:"operator"`
	// Values are label values: one of them (In) or none of them (NotIn); empty for Exists and
	// DoesNotExist.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.all(v, v.matches('^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$'))",message="targetSelector.matchExpressions values must be label values: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +optional
	Values []string `json:"values,omitempty"`
}

// AutoscalerKind is a kind of object that scales a workload.
// +kubebuilder:validation:Enum=HorizontalPodAutoscaler;ScaledObject
type AutoscalerKind string

const (
	// AutoscalerKindHPA is an autoscaling/v2 HorizontalPodAutoscaler.
	AutoscalerKindHPA AutoscalerKind = "HorizontalPodAutoscaler"
	// AutoscalerKindScaledObject is a KEDA ScaledObject (keda.sh/v1alpha1): KEDA owns the HPA it
	// generates, so the hold is put on the ScaledObject.
	AutoscalerKindScaledObject AutoscalerKind = "ScaledObject"
)

// AutoscalerRef names an autoscaler, in the policy's namespace, that must not scale its workload
// down while traffic is held off: a HorizontalPodAutoscaler (the default) or a KEDA ScaledObject.
// +kubebuilder:validation:XValidation:rule="!has(self.kind) || !has(self.apiGroup) || (self.kind == 'HorizontalPodAutoscaler' && self.apiGroup == 'autoscaling') || (self.kind == 'ScaledObject' && self.apiGroup == 'keda.sh')",message="autoscalerRefs: a HorizontalPodAutoscaler's apiGroup is autoscaling, a ScaledObject's is keda.sh"
type AutoscalerRef struct {
	// APIGroup of the autoscaler's kind: autoscaling (the default) or keda.sh.
	// +kubebuilder:default=autoscaling
	// +kubebuilder:validation:MaxLength=253
	// +optional
	APIGroup string `json:"apiGroup,omitempty"`

	// Kind of the autoscaler: HorizontalPodAutoscaler (the default) or ScaledObject.
	// +kubebuilder:default=HorizontalPodAutoscaler
	// +optional
	Kind AutoscalerKind `json:"kind,omitempty"`

	// Name of the autoscaler in the policy's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="an autoscaler's name must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (for example api-gateway)"
	Name string `json:"name"`
}

// Autoscaling says how autoscalers are held and released.
type Autoscaling struct {
	// ReleaseAfter is how long the autoscaler hold is released over after full traffic returns,
	// in stages (a bounded scale-down at once, then minReplicas lowered stepwise), so the fleet
	// does not shrink into the returning load. Never less than the longest scale-down
	// stabilization window of the held autoscalers (300s when they set none), which is also the
	// default. At most 24h.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="releaseAfter must be between 0s and 24h, written like 5m"
	// +optional
	ReleaseAfter *metav1.Duration `json:"releaseAfter,omitempty"`
}

// ShedResponse is what a shed request receives.
// +kubebuilder:validation:XValidation:rule="!has(self.redirectURL) || !has(self.statusCode) || self.statusCode == 503",message="set either statusCode or redirectURL, not both (a redirect always answers 302)"
type ShedResponse struct {
	// StatusCode answers shed requests; 400..599. Defaults to 503.
	// +kubebuilder:validation:XValidation:rule="self >= 400 && self <= 599",message="statusCode must be an HTTP error status between 400 and 599"
	// +kubebuilder:default=503
	// +optional
	StatusCode *int32 `json:"statusCode,omitempty"`

	// RetryAfterSeconds is sent as the Retry-After header, telling well-behaved clients when to
	// come back. Defaults to 120.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	// +kubebuilder:default=120
	// +optional
	RetryAfterSeconds *int32 `json:"retryAfterSeconds,omitempty"`

	// RedirectURL, when set, answers shed requests with a 302 to this https URL (a status page)
	// instead of an error status, where the cluster allows its host (the shed-redirect-hosts
	// setting). No user info, spaces, quotes or fragment.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https://[-a-zA-Z0-9.:]+(/[-a-zA-Z0-9._~%!$&*+,;=:@/?]*)?$') && isURL(self)",message="redirectURL must be an absolute https:// URL without user info (@ before the host), spaces, quotes or a #fragment, for example https://status.example.com/incident"
	// +kubebuilder:validation:XValidation:rule="self.matches('^https://[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*([:/?].*)?$') && self.matches('^https://[^/:?]{1,253}([:/?].*)?$')",message="redirectURL's host must be a lower-case DNS name of at most 253 characters (for example status.example.com): a Gateway API redirect carries no other"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^https://[^/?]*:') || self.matches('^https://[^/:?]*:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])([/?].*)?$')",message="redirectURL's port must be between 1 and 65535"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || size(url(self).getEscapedPath()) <= 1024",message="redirectURL's path must be at most 1024 characters (a Gateway API redirect's limit)"
	// +optional
	RedirectURL string `json:"redirectURL,omitempty"`
}

// Approval says how a step may end.
// +kubebuilder:validation:Enum=Auto;Manual
type Approval string

const (
	// ApprovalAuto moves on when the hold ends.
	ApprovalAuto Approval = "Auto"
	// ApprovalManual waits, after the hold, for an explicit approve.
	ApprovalManual Approval = "Manual"
)

// Request annotations: one-shot requests a responder makes (`kubectl floodgate next`, or
// `kubectl annotate`), handled once and acknowledged in status.lastHandledRequest; never deleted,
// so a GitOps re-apply does not repeat them.
const (
	// RequestAnnotation holds "VERB:TOKEN", VERB one of next, back, approve (or the verb of a spec
	// change: shed, ramp, restore, pause, resume, allow, recorded in history). A new TOKEN is a new
	// request.
	RequestAnnotation = "traffic.floodgate.dev/request"
	// RequestByAnnotation names who made the request.
	RequestByAnnotation = "traffic.floodgate.dev/request-by"
	// RequestReasonAnnotation says why.
	RequestReasonAnnotation = "traffic.floodgate.dev/request-reason"
)

// RampStep is one stage of a ramp. Steps are absolute: each one fully defines what is admitted,
// and a knob a step leaves out is unrestricted during that step.
type RampStep struct {
	// AllowRegions admits only requests whose region header holds one of these codes; the rest
	// get the shed response. Empty: every region. Combined (intersection) with spec.allowRegions.
	// +kubebuilder:validation:MaxItems=300
	// +kubebuilder:validation:items:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.matches('^[A-Z0-9-]{1,16}$'))",message="region codes are 1 to 16 characters of A-Z, 0-9 and '-', as the CDN writes them (for example AU, US-CA)"
	// +listType=set
	// +optional
	AllowRegions []string `json:"allowRegions,omitempty"`

	// PerClientRequestsPerSecond limits each client address to this many requests per second.
	// On ingress-nginx the limit is per client address and per controller replica (behind a CDN
	// the client address is the CDN edge unless real-IP is configured), and excess requests get
	// 503 without Retry-After (429 on Traefik). It is not a global limit.
	// +kubebuilder:validation:Minimum=1
	// +optional
	PerClientRequestsPerSecond *int32 `json:"perClientRequestsPerSecond,omitempty"`

	// AdmitPercent admits only this share of requests (1..100); the rest get the shed response.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	AdmitPercent *int32 `json:"admitPercent,omitempty"`

	// Hold is the least time the step stays in force before the ramp moves on (1s to 24h).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="hold must be at least 1s and at most 24h, written like 5m or 1h30m"
	Hold metav1.Duration `json:"hold"`

	// Approval Manual makes the step wait, once its hold has ended, for an explicit approve
	// (`kubectl floodgate approve`). Defaults to Auto.
	// +optional
	Approval Approval `json:"approval,omitempty"`

	// Gates are health checks that must all pass, for spec.ramp.gate.passFor, before the step
	// may end. A gate whose reading is missing, stale or failing to read is Unknown: the ramp
	// holds and says why; Unknown never counts as a pass.
	// +kubebuilder:validation:MaxItems=8
	// +listType=map
	// +listMapKey=name
	// +optional
	Gates []Gate `json:"gates,omitempty"`
}

// Gate is one health check. Exactly one of workloadReady, prometheus and webhook is set.
// +kubebuilder:validation:XValidation:rule="(has(self.workloadReady) ? 1 : 0) + (has(self.prometheus) ? 1 : 0) + (has(self.webhook) ? 1 : 0) == 1",message="a gate has exactly one of workloadReady, prometheus or webhook"
type Gate struct {
	// Name identifies the gate in status, Events and metrics.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	Name string `json:"name"`
	// WorkloadReady passes when a Deployment's available replicas reach a share of its desired replicas.
	// +optional
	WorkloadReady *WorkloadReadyGate `json:"workloadReady,omitempty"`
	// Prometheus passes when a PromQL query's value compares with a threshold.
	// +optional
	Prometheus *PrometheusGate `json:"prometheus,omitempty"`
	// Webhook passes when an HTTP GET answers 2xx (Flagger's confirm-traffic-increase pattern).
	// +optional
	Webhook *WebhookGate `json:"webhook,omitempty"`
}

// WorkloadReadyGate checks a Deployment in the policy's namespace.
type WorkloadReadyGate struct {
	// Name of the Deployment. Empty: the Deployment the first of spec.autoscalerRefs scales.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="workloadReady.name must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (for example api-gateway)"
	// +optional
	Name string `json:"name,omitempty"`
	// MinAvailablePercent is the least share of desired replicas that must be available (1..100).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=100
	// +optional
	MinAvailablePercent int32 `json:"minAvailablePercent,omitempty"`
}

// Operator compares a reading with a threshold.
// +kubebuilder:validation:Enum=LessThan;LessThanOrEqual;GreaterThan;GreaterThanOrEqual
type Operator string

// Operators.
const (
	OperatorLessThan           Operator = "LessThan"
	OperatorLessThanOrEqual    Operator = "LessThanOrEqual"
	OperatorGreaterThan        Operator = "GreaterThan"
	OperatorGreaterThanOrEqual Operator = "GreaterThanOrEqual"
)

// PrometheusGate evaluates an instant PromQL query that yields one value.
type PrometheusGate struct {
	// Address of the Prometheus HTTP API, for example http://prometheus.monitoring:9090.
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))",message="address must be an http:// or https:// URL"
	Address string `json:"address"`
	// Query is instant PromQL that returns a scalar or exactly one series, for example
	// sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m])).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`
	// Operator compares the value with the threshold: the gate passes when value OP threshold.
	Operator Operator `json:"operator"`
	// Threshold is a number, for example "0.01".
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	Threshold string `json:"threshold"`
	// MaxAge is how old the newest sample of each series the query reads may be, judged against
	// the evaluation time Prometheus reports (not the controller's clock). Older, or a series
	// that stopped reporting within the window the query reads: Unknown. Defaults to 2m; 1s to 24h.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="maxAge must be between 1s and 24h, written like 2m"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
	// Timeout bounds each reading (the query and the age check), at most 30s. Defaults to 10s.
	// Readings run apart from the controller's reconcile, so a slow Prometheus only holds this
	// policy's ramp.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1ms') && duration(self) <= duration('30s')",message="timeout must be between 1ms and 30s, written like 5s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// WebhookGate calls an HTTP endpoint.
type WebhookGate struct {
	// URL to GET; a 2xx answer passes, any other answer fails, no answer is Unknown.
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))",message="url must be an http:// or https:// URL"
	URL string `json:"url"`
	// Timeout of the call, at most 30s. Defaults to 5s. Calls run apart from the controller's
	// reconcile, so a slow webhook only holds this policy's ramp.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1ms') && duration(self) <= duration('30s')",message="timeout must be between 1ms and 30s, written like 5s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// GateSettings say how gates are judged.
// +kubebuilder:validation:XValidation:rule="duration(has(self.passFor) ? self.passFor : '30s') >= duration(has(self.interval) ? self.interval : '10s')",message="passFor must be at least interval (defaults: passFor 30s, interval 10s): a gate must be read at least once while it passes"
type GateSettings struct {
	// PassFor is how long every gate of a step must pass, without a break, before the step may
	// end; at least interval, at most 24h. Defaults to 30s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="passFor must be between 1s and 24h, written like 2m"
	// +optional
	PassFor *metav1.Duration `json:"passFor,omitempty"`
	// Interval between two readings of the gates, 1s to 1h. Defaults to 10s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="interval must be between 1s and 1h, written like 15s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// OnGateFailure says what a failing gate (a reading that does not pass) does.
// +kubebuilder:validation:Enum=Hold;StepBack;ShedAll
type OnGateFailure string

// What a failing gate does.
const (
	// OnGateFailureHold keeps the current step until the gate passes.
	OnGateFailureHold OnGateFailure = "Hold"
	// OnGateFailureStepBack drops one step and waits there (at most once per hold time).
	OnGateFailureStepBack OnGateFailure = "StepBack"
	// OnGateFailureShedAll sheds every request until the action changes.
	OnGateFailureShedAll OnGateFailure = "ShedAll"
)

// Ramp is the staged return of traffic. After the last step's hold, traffic is full.
type Ramp struct {
	// Steps are run in order, from the most restrictive to the least.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Steps []RampStep `json:"steps"`

	// Paused holds the ramp at its current step until it is set back to false; the time paused
	// does not count towards the step's hold.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// Gate says how the steps' gates are judged.
	// +optional
	Gate GateSettings `json:"gate,omitempty"`

	// OnGateFailure is what a failing gate does: Hold (default), StepBack or ShedAll. An Unknown
	// gate (no trustworthy reading) always holds.
	// +kubebuilder:default=Hold
	// +optional
	OnGateFailure OnGateFailure `json:"onGateFailure,omitempty"`
}

// TrafficPolicySpec declares the levers. It belongs to the user: the controller never writes it.
// +kubebuilder:validation:XValidation:rule="self.action != 'Ramp' || (has(self.ramp) && size(self.ramp.steps) > 0)",message="action Ramp needs at least one step in spec.ramp.steps"
// +kubebuilder:validation:XValidation:rule="(has(self.targetRefs) && size(self.targetRefs) > 0) || has(self.targetSelector)",message="name the targets in targetRefs, or select them with targetSelector"
type TrafficPolicySpec struct {
	// TargetRefs are the objects that carry the traffic (in the policy's namespace), by name.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(t, self.exists_one(u, u.group == t.group && u.kind == t.kind && u.name == t.name))",message="each target may be listed only once in targetRefs"
	// +optional
	TargetRefs []TargetRef `json:"targetRefs,omitempty"`

	// TargetSelector selects targets by label in the policy's namespace, so one policy covers a
	// fleet (with targetRefs, the targets are both). There is no limit on how many it selects:
	// BENCHMARKS.md says how far it was measured.
	// +optional
	TargetSelector *TargetSelector `json:"targetSelector,omitempty"`

	// AutoscalerRefs are autoscalers held (no scale-down, the minimum raised to the current
	// replicas) while traffic is off or ramping: HorizontalPodAutoscalers, or KEDA ScaledObjects.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, b.apiGroup == a.apiGroup && b.kind == a.kind && b.name == a.name))",message="each autoscaler may be listed only once in autoscalerRefs"
	// +optional
	AutoscalerRefs []AutoscalerRef `json:"autoscalerRefs,omitempty"`

	// Autoscaling says how the autoscaler hold is released.
	// +kubebuilder:default={}
	// +optional
	Autoscaling Autoscaling `json:"autoscaling,omitempty"`

	// RegionHeader is the request header that names a request's region, set by the CDN (for
	// example CF-IPCountry). The origin must accept traffic from the CDN only, or clients can
	// forge this header.
	// +kubebuilder:default=CF-IPCountry
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9-]*$')",message="regionHeader must be an HTTP header name of letters, digits and '-' (for example CF-IPCountry)"
	// +optional
	RegionHeader string `json:"regionHeader,omitempty"`

	// MissingRegion decides requests without the region header while an allowlist is in force:
	// Admit (default) or Shed. A provider that cannot honour Shed refuses the policy with a
	// condition that says so.
	// +kubebuilder:default=Admit
	// +optional
	MissingRegion MissingRegion `json:"missingRegion,omitempty"`

	// Shed is the response shed requests receive.
	// +kubebuilder:default={}
	// +optional
	Shed ShedResponse `json:"shed,omitempty"`

	// Action is the lever: Normal, ShedAll or Ramp. A ramp run starts when the action changes
	// into Ramp; re-applying the same spec never restarts it.
	// +kubebuilder:default=Normal
	// +optional
	Action Action `json:"action,omitempty"`

	// AllowRegions is the standing region allowlist: empty means no restriction. It applies in
	// every phase but ShedAll, and is intersected with a ramp step's own list.
	// +kubebuilder:validation:MaxItems=300
	// +kubebuilder:validation:items:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.matches('^[A-Z0-9-]{1,16}$'))",message="region codes are 1 to 16 characters of A-Z, 0-9 and '-', as the CDN writes them (for example AU, US-CA)"
	// +listType=set
	// +optional
	AllowRegions []string `json:"allowRegions,omitempty"`

	// Ramp declares the steps of a ramp.
	// +optional
	Ramp *Ramp `json:"ramp,omitempty"`

	// StaleAfter flags a lever left pulled: a policy that has not been Normal (or Completed) for
	// longer than this gets the LeverStale condition, an Event and a metric. Defaults to 2h; 1m
	// to 168h.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="staleAfter must be between 1m and 168h, written like 2h"
	// +optional
	StaleAfter *metav1.Duration `json:"staleAfter,omitempty"`

	// ShedExpiresAt, with action ShedAll, returns the lever to the action it had before ShedAll at
	// this time (a Ramp restarts from its first step, the safe path), with an Event. The spec
	// keeps saying ShedAll; status says the lever expired.
	// +optional
	ShedExpiresAt *metav1.Time `json:"shedExpiresAt,omitempty"`

	// AllowRegionsExpiresAt returns the standing allowlist, at this time, to the one in force
	// before allowRegions last changed (usually none: no restriction), with an Event.
	// +optional
	AllowRegionsExpiresAt *metav1.Time `json:"allowRegionsExpiresAt,omitempty"`

	// Confirm has Floodgate confirm each lever in the data plane: marked probe requests sent
	// through the proxy show where requests land (the Confirmed condition). Without it, a
	// target is probed only where the manager has a default address for its data plane
	// (--confirm-address).
	// +optional
	Confirm *ConfirmSpec `json:"confirm,omitempty"`
}

// ConfirmSpec says how a lever is confirmed by probe requests through the data plane.
type ConfirmSpec struct {
	// Address is the data plane's entry that probes are sent to, with each target's host in the
	// Host header, for example http://traefik.traefik.svc:80. Empty: the manager's default for
	// the target's data plane (--confirm-address).
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?#@]+/?$')",message="confirm.address must be http:// or https:// and a host with an optional port, and nothing else (for example http://traefik.traefik.svc:80)"
	// +optional
	Address string `json:"address,omitempty"`
	// Interval is the time between two rounds of probes while a lever is in force (default 1s,
	// 500ms to 5m). Rounds stop once Normal is confirmed: at rest nothing is probed.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('500ms') && duration(self) <= duration('5m')",message="confirm.interval must be between 500ms and 5m, written like 1s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Grace is how long after a flip a probe that lands where the lever does not say yet is
	// counted as propagation (Confirmed Unknown) rather than a failure (Confirmed False);
	// default 10s, 1s to 5m.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="size(self) <= 16 && self.matches('^([0-9]{1,6}([.][0-9]{1,9})?h|[0-9]{1,7}([.][0-9]{1,9})?(ns|us|ms|s|m))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="confirm.grace must be between 1s and 5m, written like 10s"
	// +optional
	Grace *metav1.Duration `json:"grace,omitempty"`
	// ProbeApplication also sends the probes that the lever admits, which reach your
	// application's backend (Normal; an allowed region). Off by default: only what is shed is
	// probed, and admitted traffic is left unconfirmed.
	// +optional
	ProbeApplication bool `json:"probeApplication,omitempty"`
	// MaxProbesPerSecond bounds this policy's probes (default 10, 1 to 100); a round with more
	// probes takes longer.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxProbesPerSecond *int32 `json:"maxProbesPerSecond,omitempty"`
}

// LabelSelector is the selector's labels as a labels.Selector.
func (s *TargetSelector) LabelSelector() (labels.Selector, error) {
	sel := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: r.Key, Operator: r.Operator, Values: r.Values})
	}
	return metav1.LabelSelectorAsSelector(sel)
}

// GroupKind is the group and kind a reference names, defaulted as the CRD defaults them (a policy
// built in Go may leave them empty): Ingress of networking.k8s.io; an HTTPRoute's group is
// gateway.networking.k8s.io.
func (r TargetRef) GroupKind() (group, kind string) {
	group, kind = r.Group, string(r.Kind)
	if kind == "" {
		kind = string(TargetKindIngress)
	}
	switch {
	case group == "" && kind == string(TargetKindIngress):
		group = GroupNetworking
	case group == "" && kind == string(TargetKindHTTPRoute):
		group = GroupGatewayAPI
	}
	return group, kind
}

// GroupKind is the group and kind a reference names, defaulted as the CRD defaults them (a policy
// built in Go may leave them empty): HorizontalPodAutoscaler of autoscaling; a ScaledObject's
// group is keda.sh.
func (r AutoscalerRef) GroupKind() (group, kind string) {
	group, kind = r.APIGroup, string(r.Kind)
	if kind == "" {
		kind = string(AutoscalerKindHPA)
	}
	if group == "" {
		group = GroupAutoscaling
		if kind == string(AutoscalerKindScaledObject) {
			group = GroupKEDA
		}
	}
	return group, kind
}

// GroupKind is the group and kind the selector selects (its defaults: networking.k8s.io Ingress).
func (s *TargetSelector) GroupKind() (group, kind string) {
	group, kind = s.Group, string(s.Kind)
	if group == "" {
		group = GroupNetworking
	}
	if kind == "" {
		kind = string(TargetKindIngress)
	}
	return group, kind
}

// SelectsKind says whether the selector selects objects of the group and kind.
func (s *TargetSelector) SelectsKind(group, kind string) bool {
	g, k := s.GroupKind()
	return g == group && k == kind
}
