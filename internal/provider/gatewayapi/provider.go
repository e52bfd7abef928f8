// Package gatewayapi carries the knobs out on a Gateway API HTTPRoute, with the core API every
// conformant implementation serves.
//
// Mechanism: the levers edit the user's route itself (a separate route of equal specificity
// would lose to the user's older one). ShedAll sends every rule to the policy's shed Service (or
// a 302 RequestRedirect); admitPercent scales the user's backendRef weights against a shed
// backendRef; a region allowlist adds one rule Floodgate owns, floodgate-<policy>, whose matches
// are copies of the user's with the region header added, so each copy outranks its original
// (Gateway API ranks more header matches first). Before the first change the user's rules are
// recorded; restore takes Floodgate's additions out of the rules as they are then, so an edit
// made during the incident is kept and reported.
package gatewayapi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/shed"
)

// ProviderName names this mechanism in status.
const ProviderName = "gateway-api"

// EnvoyGatewayController is Envoy Gateway's GatewayClass controllerName: it matches headers by
// RE2 regular expressions (Envoy's safe_regex).
const EnvoyGatewayController = "gateway.envoyproxy.io/gatewayclass-controller"

// TraefikGatewayController is Traefik's GatewayClass controllerName (its kubernetesGateway
// provider's default): it matches headers by Go's regexp (RE2), which test/traffic proves on the
// allowlist's pattern with real requests.
const TraefikGatewayController = "traefik.io/gateway-controller"

// DefaultRegexControllers are the controllerNames known to match RegularExpression header
// matches with RE2/PCRE-compatible syntax.
var DefaultRegexControllers = []string{EnvoyGatewayController, TraefikGatewayController}

// Capabilities are what core Gateway API can and cannot do, published in status.
var Capabilities = v1alpha1.Capabilities{
	Provider:              ProviderName,
	RateLimitScope:        "None",
	AdmitPercentSelection: "ImplementationSpecific",
	MissingRegionShed:     true,
	AllowlistCost: "one rule of header matches per allowlist; Exact matches where the route's limits allow, " +
		"else one RegularExpression, compiled once per configuration by the gateway (RE2 on Envoy Gateway)",
}

// The RBAC this provider needs, where Gateway API's CRDs are installed: its routes; Gateways for
// their listeners' hostnames (what a route without hostnames covers) and, with GatewayClasses, a
// route's data plane (its parents' classes' controllerName).
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=list;watch;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways;gatewayclasses,verbs=list;watch

// Provider applies knobs to HTTPRoutes.
type Provider struct {
	Client client.Client
	// RegexControllers are the gateway controllerNames a RegularExpression header match may be
	// written for.
	RegexControllers []string
	// RedirectHosts are the hosts a shed answer may redirect to (the cluster's setting).
	RedirectHosts shed.RedirectHosts
	// ReadClasses reads the cluster-scoped GatewayClasses, for a route's data plane (a
	// cluster-wide install; a namespaced one reads what the route's status says).
	ReadClasses bool
	// PerClient is the route's data plane's own per-client rate limit (nil: core Gateway API,
	// which has none).
	PerClient PerClientLimit
	// Answer is the route's data plane's own answer to a ShedAll (nil: core Gateway API, whose
	// rules can only send the herd to the shed Service, or redirect it).
	Answer ShedAnswer
}

// PerClientLimit is a data plane's own per-client rate limit on HTTPRoutes, which core Gateway
// API lacks: an ExtensionRef filter each of the user's rules gets while a step limits (Traefik's
// Middleware), or an object of the data plane's that attaches itself to the route (Envoy
// Gateway's BackendTrafficPolicy), which needs no filter. The object is the data plane provider's
// to keep: one a rule references must exist before the reference, and outlive the last one.
type PerClientLimit interface {
	// Unavailable says why the cluster cannot take the limit ("" when it can): the kind is not
	// served.
	Unavailable() string
	// Filter is the ExtensionRef filter every rule of the route gets (nil: the limit attaches to
	// the route itself).
	Filter(policy *v1alpha1.TrafficPolicy, route string) *gatewayv1.HTTPRouteFilter
}

// ShedAnswer is a data plane's own answer to a ShedAll, which core Gateway API lacks (no direct
// response filter in Gateway API v1.6): an ExtensionRef filter that has the proxy answer every
// request of a rule itself, with no backend, so no shed pod is in the herd's path. The object it
// references is the data plane provider's to keep: it must exist before any rule references it,
// and outlive the last reference.
type ShedAnswer interface {
	// Unavailable says why the cluster cannot answer so ("" when it can): the kind is not
	// served. A ShedAll then sends the herd to the shed Service, as core Gateway API does.
	Unavailable() string
	// Filter is the ExtensionRef filter every rule of the route gets while it sheds.
	Filter(policy *v1alpha1.TrafficPolicy, route string) gatewayv1.HTTPRouteFilter
}

var _ provider.Provider = (*Provider)(nil)

// GVK is the kind's version Floodgate reads and writes.
var GVK = gatewayv1.SchemeGroupVersion.WithKind(string(v1alpha1.TargetKindHTTPRoute))

// GroupKind is gateway.networking.k8s.io HTTPRoute.
func (p *Provider) GroupKind() schema.GroupKind { return GVK.GroupKind() }

// Object is an empty object of the kind, for watches.
func (p *Provider) Object() client.Object { return &gatewayv1.HTTPRoute{} }

// Role: an HTTPRoute carries traffic.
func (p *Provider) Role() provider.Role { return provider.Target }

// Indexes: HTTPRoutes are listed by the restore record they carry.
func (p *Provider) Indexes() []provider.Index {
	return []provider.Index{{Object: &gatewayv1.HTTPRoute{}, Field: provider.IndexRecordedBy, Extract: provider.RecordedByIndex}}
}

// observed is what Observe hands Render.
type observed struct {
	route *gatewayv1.HTTPRoute
	// record is the route's restore record of this policy (nil: none on the route).
	record *restore.Record
	// lever is the policy's lever for this route, but for its knobs.
	lever Lever
	// base is the user's rules as recovered from the route and its record.
	base Stripped
	// dataPlane is what the route's data plane provider read beside the route (DataPlaneState).
	dataPlane any
}

// Observe reads the route and judges it: who else edits it, what the lever would need that it
// cannot take, and whether its gateway accepted Floodgate's last change.
func (p *Provider) Observe(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref, d provider.Desired) (*provider.Observation, error) {
	obs := &provider.Observation{Ref: ref, Status: provider.Status{Target: provider.TargetStatus{Capabilities: Capabilities.DeepCopy()}}}
	var route gatewayv1.HTTPRoute
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &route)
	if apierrors.IsNotFound(err) {
		return obs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading HTTPRoute %s: %w", ref.Name, err)
	}
	obs.Found, obs.Status.Found, obs.UID = true, true, route.UID
	rec, problems := provider.EditProblems("HTTPRoute", &route, key(policy), true)
	obs.Problems = append(obs.Problems, problems...)
	if rec != nil && rec.Policy != key(policy) {
		rec = nil
	}
	st := &observed{route: &route, record: rec, lever: p.lever(policy, &route, knobs.Knobs{})}
	var corrupt bool
	var wrote []Rule // the rules Floodgate last wrote: its own rule is one of them or none is
	st.base, wrote, corrupt = userRules(&route, rec, "", st.lever)
	if corrupt {
		obs.Problems = append(obs.Problems, provider.ProblemOf(fmt.Errorf("HTTPRoute %s: the restore record does not hold the route's rules: %w", route.Name, restore.ErrCorrupt)))
	}
	obs.State = st
	for i, r := range route.Spec.Rules {
		if r.Name == nil || !strings.HasPrefix(string(*r.Name), OwnRulePrefix) {
			continue
		}
		if string(*r.Name) != OwnRuleName(policy.Name) || !hasRule(wrote, OwnRuleName(policy.Name)) {
			obs.Problems = append(obs.Problems, provider.NewProblem(fmt.Sprintf(
				"HTTPRoute %s has a rule named %s (rule %d) that this policy did not write: Floodgate names its own rules floodgate-<policy>; rename or remove it",
				route.Name, *r.Name, i), provider.ErrForeignCanary))
		}
	}
	l := p.lever(policy, &route, d.Knobs.Traffic())
	if why := Refusal(st.base.Rules, l); why != "" {
		obs.Problems = append(obs.Problems, provider.NewProblem("HTTPRoute "+route.Name+": "+why, provider.ErrUnsupported))
	}
	if l.Knobs.Shed && policy.Spec.Shed.RedirectURL != "" && l.Redirect == nil {
		obs.Problems = append(obs.Problems, provider.NewProblem("HTTPRoute "+route.Name+": "+redirectRefusal(policy, p.RedirectHosts), provider.ErrRedirectNotTaken))
	}
	if rec != nil {
		obs.Problems = append(obs.Problems, verdictProblems(&route)...)
	}
	return obs, nil
}

// Routes are the host/path routes of the HTTPRoute an observation read (none: not found, or
// accepted by no parent).
func (p *Provider) Routes(obs *provider.Observation, carriers shed.Carriers) []shed.Route {
	if st, ok := obs.State.(*observed); ok && st.route != nil {
		return carriers.Routes(p.GroupKind(), st.route)
	}
	return nil
}

// ProxyAnswers: a redirected ShedAll is answered by the gateway itself (RequestRedirect); every
// other lever that sheds sends to the shed Service.
func (p *Provider) ProxyAnswers(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired) bool {
	st, ok := obs.State.(*observed)
	return ok && p.lever(policy, st.route, d.Knobs.Traffic()).ProxyAnswers()
}

// redirectRefusal says why a ShedAll on a route is answered by the shed Service, not a redirect.
func redirectRefusal(policy *v1alpha1.TrafficPolicy, hosts shed.RedirectHosts) string {
	if _, err := RedirectFilter(policy.Spec.Shed.RedirectURL); err != nil {
		return err.Error() + ": shed requests go to the shed Service instead, which answers with the policy's redirect"
	}
	return "redirectURL's host is not among the hosts this cluster allows a shed answer to redirect to (shed-redirect-hosts): shed requests get the shed Service's answer"
}

// lever is the policy's lever for a route under the knobs.
func (p *Provider) lever(policy *v1alpha1.TrafficPolicy, route *gatewayv1.HTTPRoute, k knobs.Knobs) Lever {
	l := Lever{Knobs: k, Policy: policy.Name, RegionHeader: policy.Spec.RegionHeader,
		MissingRegionShed: policy.Spec.MissingRegion == v1alpha1.MissingRegionShed,
		ShedService:       shed.CompanionServiceName(policy.Name), ShedPort: shed.ServicePort,
		RegexAllowed: regexAllowed(route, p.regexControllers())}
	if url := policy.Spec.Shed.RedirectURL; url != "" && p.RedirectHosts.Allows(url) {
		l.Redirect, _ = RedirectFilter(url)
	}
	if p.PerClient != nil {
		l.HasLimit = true
		l.Limit = p.PerClient.Filter(policy, route.Name)
		l.LimitRefusal = p.PerClient.Unavailable()
	}
	if p.Answer != nil && p.Answer.Unavailable() == "" {
		l.Answer = ptr.To(p.Answer.Filter(policy, route.Name))
	}
	return l
}

// ObservedRoute is the HTTPRoute an observation read (nil: not found).
func ObservedRoute(obs *provider.Observation) *gatewayv1.HTTPRoute {
	if st, ok := obs.State.(*observed); ok {
		return st.route
	}
	return nil
}

// DataPlaneState is what the route's data plane provider kept in an observation beside the route
// (SetDataPlaneState; nil: nothing, or the route was not found).
func DataPlaneState(obs *provider.Observation) any {
	if st, ok := obs.State.(*observed); ok {
		return st.dataPlane
	}
	return nil
}

// SetDataPlaneState keeps v in an observation of a found route, for the data plane provider's
// Render and Unsupported (objects of its own it read beside the route).
func SetDataPlaneState(obs *provider.Observation, v any) {
	if st, ok := obs.State.(*observed); ok {
		st.dataPlane = v
	}
}

func (p *Provider) regexControllers() []string {
	if p.RegexControllers == nil {
		return DefaultRegexControllers
	}
	return p.RegexControllers
}

// regexAllowed reports whether every gateway serving the route (its status says which) is known
// to support RegularExpression header matches; a route no gateway has reported on is not.
func regexAllowed(route *gatewayv1.HTTPRoute, controllers []string) bool {
	if len(route.Status.Parents) == 0 {
		return false
	}
	for _, parent := range route.Status.Parents {
		if !slices.Contains(controllers, string(parent.ControllerName)) {
			return false
		}
	}
	return true
}

// userRules recovers the user's rules from the route: its rules as they are when it carries no
// record of the policy; else without Floodgate's additions (Strip). wrote are the rules Floodgate
// last wrote, as the record holds them (none without a readable one); corrupt is true when the
// record does not hold rules.
func userRules(route *gatewayv1.HTTPRoute, rec *restore.Record, recordCopy string, l Lever) (base Stripped, wrote []Rule, corrupt bool) {
	if rec == nil && recordCopy != "" {
		// The annotation was removed while Floodgate's rules are still on the route: the copy
		// in the policy's status stands in for it.
		if copied, err := restore.Decode(recordCopy); err == nil && copied.Describes(route) {
			if orig, set, ok := recordedRules(copied); ok && sameJSON(route.Spec.Rules, set) {
				return Stripped{Rules: orig}, set, false
			}
		}
	}
	if rec == nil {
		return Stripped{Rules: cloneRules(route.Spec.Rules)}, nil, false
	}
	orig, set, ok := recordedRules(rec)
	if !ok {
		return Stripped{Rules: cloneRules(route.Spec.Rules)}, nil, true
	}
	return Strip(route.Spec.Rules, orig, set, l), set, false
}

// rulesPath is where the rules are, the one field a route's restore record holds.
var rulesPath = []string{"spec", "rules"}

// recordedRules are the user's rules and Floodgate's as the record holds them.
func recordedRules(rec *restore.Record) (orig, set []Rule, ok bool) {
	for _, f := range rec.Fields {
		if !slices.Equal(f.Path, rulesPath) || f.Absent {
			continue
		}
		if json.Unmarshal(f.Original, &orig) != nil || json.Unmarshal(f.Set, &set) != nil {
			return nil, nil, false
		}
		return orig, set, true
	}
	return nil, nil, false
}

// Unsupported says why the observed route cannot take d ("" when it can).
func (p *Provider) Unsupported(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired) string {
	st, ok := obs.State.(*observed)
	if !ok {
		return ""
	}
	return Refusal(st.base.Rules, p.lever(policy, st.route, d.Knobs.Traffic()))
}

// Render computes the route's rules under the knobs, and its restore record: the user's rules
// (as recovered now) and the rules written. No knobs put the user's rules back and drop the
// record. A route whose record cannot be read is left as it is.
func (p *Provider) Render(policy *v1alpha1.TrafficPolicy, obs *provider.Observation, d provider.Desired, recordCopy string) (provider.Change, error) {
	k := d.Knobs.Traffic()
	ch := provider.Change{Status: obs.Status}
	st, ok := obs.State.(*observed)
	if !ok {
		return ch, nil
	}
	if slices.ContainsFunc(obs.Problems, provider.Unreadable) {
		return ch, nil
	}
	l := p.lever(policy, st.route, k)
	base := st.base // what Observe recovered; only a status copy standing in for a lost record changes it
	if st.record == nil && recordCopy != "" {
		base, _, _ = userRules(st.route, st.record, recordCopy, l)
	}
	rules := Render(base.Rules, l)
	ch.KeptOthers = base.Kept
	ch.Status.Target.Applied = appliedKnobs(l)

	u, err := restore.FromTyped(st.route, GVK)
	if err != nil {
		return ch, err
	}
	ch.Before, ch.After = u.DeepCopy(), u
	ch.Status.RestoreRecord = ""
	if k.Equal(knobs.Knobs{}) {
		if err := setRules(u, base.Rules); err != nil {
			return ch, err
		}
		restore.Drop(u)
		return ch, nil
	}
	if err := setRules(u, rules); err != nil {
		return ch, err
	}
	origJSON, err := json.Marshal(base.Rules)
	if err != nil {
		return ch, err
	}
	setJSON, err := json.Marshal(rules)
	if err != nil {
		return ch, err
	}
	rec := &restore.Record{Policy: key(policy), Kind: GVK.Kind, UID: st.route.UID,
		Fields: []restore.Field{{Path: rulesPath, Original: origJSON, Set: setJSON}}}
	if st.record != nil && sameRecord(st.record, rec) {
		// The record already says this (in the API server's stored form): nothing to write.
		rec = st.record
	}
	restore.Put(u, rec)
	ch.Status.RestoreRecord = rec.Encode()
	return ch, nil
}

// sameRecord compares two records of the route's rules as values.
func sameRecord(a, b *restore.Record) bool {
	ao, as, okA := recordedRules(a)
	bo, bs, okB := recordedRules(b)
	return okA && okB && sameJSON(ao, bo) && sameJSON(as, bs)
}

func setRules(u *unstructured.Unstructured, rules []Rule) error {
	raw, err := json.Marshal(rules)
	if err != nil {
		return err
	}
	var v []any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	if len(v) == 0 {
		unstructured.RemoveNestedField(u.Object, rulesPath...)
		return nil
	}
	return unstructured.SetNestedSlice(u.Object, v, rulesPath...)
}

// appliedKnobs are the knobs the lever writes into the route (a per-client limit only where the
// data plane has one).
func appliedKnobs(l Lever) v1alpha1.AppliedKnobs {
	k := l.Knobs
	a := v1alpha1.AppliedKnobs{Shed: k.Shed}
	if !k.Shed {
		a.AllowRegions = k.AllowRegions
		a.AdmitPercent = k.AdmitPercent
	}
	if l.Limits() && l.HasLimit && l.LimitRefusal == "" {
		a.PerClientRequestsPerSecond = k.PerClientRequestsPerSecond
	}
	return a
}

// Select lists the HTTPRoutes of the policy's namespace the selector selects.
func (p *Provider) Select(ctx context.Context, policy *v1alpha1.TrafficPolicy, selector labels.Selector) ([]provider.Ref, error) {
	var list gatewayv1.HTTPRouteList
	if err := p.Client.List(ctx, &list, client.InNamespace(policy.Namespace), client.MatchingLabelsSelector{Selector: selector},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing HTTPRoutes by targetSelector: %w", err)
	}
	gk := p.GroupKind()
	refs := make([]provider.Ref, 0, len(list.Items))
	for i := range list.Items {
		refs = append(refs, provider.Ref{Group: gk.Group, Kind: gk.Kind, Name: list.Items[i].Name})
	}
	return refs, nil
}

// Recorded lists the HTTPRoutes of the policy's namespace that carry its restore record.
func (p *Provider) Recorded(ctx context.Context, policy *v1alpha1.TrafficPolicy) ([]provider.Ref, error) {
	var list gatewayv1.HTTPRouteList
	if err := provider.ListRecorded(ctx, p.Client, policy, &list); err != nil {
		return nil, fmt.Errorf("listing HTTPRoutes by restore record: %w", err)
	}
	return provider.RecordedRefs(list.Items, policy, p.GroupKind()), nil
}

func key(policy *v1alpha1.TrafficPolicy) string { return policy.Namespace + "/" + policy.Name }

// AddToScheme installs Gateway API v1's Go types (the scheme the manager, the shed server, the
// plugin and the drills share takes them from here).
func (*Provider) AddToScheme(s *runtime.Scheme) error { return gatewayv1.Install(s) }
