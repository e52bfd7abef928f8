// Package ingressnginx carries the knobs out on an Ingress served by ingress-nginx (Traefik v3.7
// reads the same annotations).
//
// Mechanism: a companion canary Ingress per target, owned by the policy, copying every host, path
// and pathType of the target and routing them to the policy's shed Service: canary-weight sheds
// a share (100 for ShedAll), canary-by-header with a generated canary-by-header-pattern sheds every
// region outside the allowlist. The only edit to the user's Ingress is limit-rps, recorded first.
package ingressnginx

import (
	"fmt"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/restore"
	"floodgate.dev/floodgate/internal/shed"
)

// ingress-nginx annotations.
const (
	prefix                 = "nginx.ingress.kubernetes.io/"
	AnnotationCanary       = prefix + "canary"
	AnnotationWeight       = prefix + "canary-weight"
	AnnotationByHeader     = prefix + "canary-by-header"
	AnnotationByHeaderPat  = prefix + "canary-by-header-pattern"
	AnnotationLimitRPS     = prefix + "limit-rps"
	AnnotationAffinity     = prefix + "affinity"
	annotationIngressClass = "kubernetes.io/ingress.class"
)

// AnnotationCanaryFor names, on a canary, the target Ingress it copies: a canary whose target
// left the spec is found and removed even when the policy's status lost track of it.
const AnnotationCanaryFor = "traffic.floodgate.dev/canary-for"

// ProviderName names this mechanism in status.
const ProviderName = "ingress-nginx"

// Capabilities are what ingress-nginx can and cannot do, published in status.
var Capabilities = v1alpha1.Capabilities{
	Provider:                 ProviderName,
	RateLimitScope:           "PerClientPerReplica",
	RateLimitStatusCode:      503,
	RateLimitBurstMultiplier: 5, // limit-burst-multiplier's default
	AdmitPercentSelection:    "Random",
	MissingRegionShed:        false,
	MaxAllowlistPatternBytes: MaxPatternBytes,
	AllowlistCost:            AllowlistCost,
}

// AllowlistCost is what a region allowlist costs ingress-nginx per request: PCRE compiles the
// pattern anew for every request that carries the header (ngx.re.match without the "o" flag).
// Measured with `pcre2test -t 5000` (PCRE2 10.42, 2 cores; docs/reliability.md).
const AllowlistCost = "PCRE compiles the pattern on every request carrying the region header: " +
	"about 0.02 ms for every ISO country (1 KB), 0.06 ms at 2 KB, 0.08 ms at the 4 KB cap"

// CanaryName is the name of the canary Ingress a policy owns for a target.
func CanaryName(policy, target string) string {
	return owned.Name(253, target, "floodgate", policy)
}

// Unsupported says why the knobs cannot be honoured on ingress-nginx for the target (nil: for
// any target), or "" when they can.
func Unsupported(policy *v1alpha1.TrafficPolicy, target *networkingv1.Ingress, k knobs.Knobs) string {
	if k.RestrictRegions && !k.Shed && policy.Spec.MissingRegion == v1alpha1.MissingRegionShed {
		return "missingRegion: Shed cannot be honoured on ingress-nginx: a request without the " +
			"region header falls through to the weight rule and is admitted; use missingRegion: " +
			"Admit, or shed requests without the header at the CDN"
	}
	if k.RestrictRegions && !k.Shed {
		if n := len(ComplementPattern(k.AllowRegions)); n > MaxPatternBytes {
			return fmt.Sprintf("an allowlist of %d regions makes a canary-by-header-pattern of %d bytes, over the %d-byte cap "+
				"(ingress-nginx compiles it on every request, and fails open when PCRE cannot): %d of these regions fit "+
				"(the first %d in sorted order); shorten the list, or restrict the rest at the CDN",
				len(k.AllowRegions), n, MaxPatternBytes, RegionsThatFit(k.AllowRegions), RegionsThatFit(k.AllowRegions))
		}
	}
	if target != nil && k.Sheds() && RenderCanary(policy, target, k) == nil {
		return fmt.Sprintf("Ingress %s has no path a canary can cover (only rules without paths, and no default "+
			"backend): ingress-nginx cannot shed it", target.Name)
	}
	if target == nil || len(MainChanges(k)) == 0 {
		return ""
	}
	if owner := metav1.GetControllerOf(target); owner != nil {
		return fmt.Sprintf("perClientRequestsPerSecond needs limit-rps on Ingress %s itself, which is "+
			"controlled by %s %s; Floodgate does not edit objects another controller owns (it would "+
			"undo the change): use a step without perClientRequestsPerSecond for this target, or "+
			"rate-limit in the controller that owns it", target.Name, owner.Kind, owner.Name)
	}
	return ""
}

// RenderCanary returns the canary Ingress the knobs need for the target, or nil when they need
// none (nothing is shed, or the target has no path a canary can cover).
func RenderCanary(policy *v1alpha1.TrafficPolicy, target *networkingv1.Ingress, k knobs.Knobs) *networkingv1.Ingress {
	ann := map[string]string{AnnotationCanary: "true"}
	switch {
	case k.Shed:
		ann[AnnotationWeight] = "100"
	default:
		if k.AdmitPercent > 0 {
			ann[AnnotationWeight] = strconv.Itoa(int(100 - k.AdmitPercent))
		}
		if k.RestrictRegions {
			ann[AnnotationByHeader] = policy.Spec.RegionHeader
			ann[AnnotationByHeaderPat] = ComplementPattern(k.AllowRegions)
		}
	}
	if len(ann) == 1 {
		return nil
	}
	if class, ok := target.Annotations[annotationIngressClass]; ok {
		ann[annotationIngressClass] = class
	}
	ann[AnnotationCanaryFor] = target.Name

	backend := &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: shed.CompanionServiceName(policy.Name),
		Port: networkingv1.ServiceBackendPort{Number: shed.ServicePort},
	}}
	canary := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name:        CanaryName(policy.Name, target.Name),
			Namespace:   target.Namespace,
			Annotations: ann,
		},
		Spec: networkingv1.IngressSpec{IngressClassName: target.Spec.IngressClassName},
	}
	if target.Spec.DefaultBackend != nil {
		canary.Spec.DefaultBackend = backend.DeepCopy()
	}
	for _, rule := range target.Spec.Rules {
		// A rule without paths is never copied: ingress-nginx ranges over a canary rule's paths
		// without a nil check, and a host-only canary rule crashes its sync loop and its admission
		// webhook. Its traffic (the default backend's) is not covered; Observe says so.
		if rule.HTTP == nil || len(rule.HTTP.Paths) == 0 {
			continue
		}
		r := networkingv1.IngressRule{Host: rule.Host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
		for _, path := range rule.HTTP.Paths {
			r.HTTP.Paths = append(r.HTTP.Paths, networkingv1.HTTPIngressPath{
				Path: path.Path, PathType: path.PathType, Backend: *backend.DeepCopy(),
			})
		}
		canary.Spec.Rules = append(canary.Spec.Rules, r)
	}
	if len(canary.Spec.Rules) == 0 && canary.Spec.DefaultBackend == nil {
		return nil
	}
	return canary
}

// MainChanges are the edits the knobs need on the user's Ingress itself: only the rate limit,
// which ingress-nginx reads from the main Ingress.
func MainChanges(k knobs.Knobs) []restore.Change {
	if k.Shed || k.PerClientRequestsPerSecond == 0 {
		return nil
	}
	return []restore.Change{{
		Path:  []string{"metadata", "annotations", AnnotationLimitRPS},
		Value: strconv.Itoa(int(k.PerClientRequestsPerSecond)),
	}}
}
