// Package gate reads a ramp step's health gates. A reading that cannot be trusted (missing,
// stale, an error) is Unknown, which holds the ramp and says why; it never counts as a pass.
package gate

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// Reading is one gate's verdict with what was read and why.
type Reading struct {
	Verdict v1alpha1.Verdict
	Reading string
	Reason  string
}

func unknown(format string, args ...any) Reading {
	return Reading{Verdict: v1alpha1.VerdictUnknown, Reason: fmt.Sprintf(format, args...)}
}

// Reader reads gates.
type Reader struct {
	// Client reads workloads (from the manager's cache).
	Client client.Client
	// HTTP calls webhooks and Prometheus.
	HTTP *http.Client
	// Autoscalers are the providers of the autoscalers' kinds: a workloadReady gate without a
	// name reads the Deployment the first autoscaler scales, as its provider tells.
	Autoscalers *provider.Registry
}

// DefaultMaxAge is how old a Prometheus sample may be unless the gate says otherwise.
const DefaultMaxAge = 2 * time.Minute

// DefaultWebhookTimeout bounds a webhook call unless the gate says otherwise.
const DefaultWebhookTimeout = 5 * time.Second

// DefaultPrometheusTimeout bounds a Prometheus reading unless the gate says otherwise.
const DefaultPrometheusTimeout = 10 * time.Second

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}

// Read reads one gate of a policy.
func (r *Reader) Read(ctx context.Context, policy *v1alpha1.TrafficPolicy, g v1alpha1.Gate) Reading {
	switch {
	case g.WorkloadReady != nil:
		name, err := r.workloadName(ctx, policy, g.WorkloadReady)
		if err != "" {
			return unknown("%s", err)
		}
		return r.workload(ctx, policy.Namespace, name, g.WorkloadReady.MinAvailablePercent)
	case g.Prometheus != nil:
		return r.prometheus(ctx, g.Prometheus)
	case g.Webhook != nil:
		return r.webhook(ctx, g.Webhook)
	}
	return unknown("the gate has no check")
}

// workloadName is the gate's Deployment: named, or the one the first held autoscaler scales.
func (r *Reader) workloadName(ctx context.Context, policy *v1alpha1.TrafficPolicy, w *v1alpha1.WorkloadReadyGate) (string, string) {
	if w.Name != "" {
		return w.Name, ""
	}
	if len(policy.Spec.AutoscalerRefs) == 0 {
		return "", "workloadReady names no Deployment and the policy holds no autoscaler"
	}
	a := policy.Spec.AutoscalerRefs[0]
	group, kind := a.GroupKind()
	if r.Autoscalers == nil {
		return "", fmt.Sprintf("workloadReady names no Deployment and this reader knows no autoscaler kinds to read %s %s", kind, a.Name)
	}
	p, err := r.Autoscalers.For(provider.Ref{Group: group, Kind: kind, Name: a.Name})
	if err != nil {
		return "", fmt.Sprintf("reading %s %s: %v", kind, a.Name, err)
	}
	scaled, ok := p.(scaleTargeted)
	if !ok {
		return "", fmt.Sprintf("workloadReady names no Deployment and a %s names no workload it scales", kind)
	}
	targetKind, target, err := scaled.ScaleTarget(ctx, policy.Namespace, a.Name)
	if err != nil {
		return "", fmt.Sprintf("reading %s %s: %v", kind, a.Name, err)
	}
	if targetKind != "Deployment" {
		return "", fmt.Sprintf("%s %s scales a %s; workloadReady reads Deployments", kind, a.Name, targetKind)
	}
	return target, ""
}

// scaleTargeted is an autoscaler provider that says which workload an autoscaler of its kind
// scales: the Deployment a workloadReady gate without a name reads.
type scaleTargeted interface {
	ScaleTarget(ctx context.Context, namespace, name string) (kind, target string, err error)
}

func (r *Reader) workload(ctx context.Context, namespace, name string, minPercent int32) Reading {
	var d appsv1.Deployment
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &d)
	switch {
	case apierrors.IsNotFound(err):
		return unknown("Deployment %s not found", name)
	case err != nil:
		return unknown("reading Deployment %s: %v", name, err)
	case d.Status.ObservedGeneration < d.Generation:
		return unknown("the status of Deployment %s is not up to date (generation %d, observed %d)", name, d.Generation, d.Status.ObservedGeneration)
	}
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	if desired == 0 {
		return unknown("Deployment %s wants 0 replicas", name)
	}
	if minPercent == 0 {
		minPercent = 100
	}
	available := d.Status.AvailableReplicas
	reading := fmt.Sprintf("%d/%d available (need %d%%)", available, desired, minPercent)
	if int64(available)*100 >= int64(minPercent)*int64(desired) {
		return Reading{Verdict: v1alpha1.VerdictPass, Reading: reading}
	}
	return Reading{Verdict: v1alpha1.VerdictFail, Reading: reading, Reason: fmt.Sprintf("fewer than %d%% of Deployment %s's replicas are available", minPercent, name)}
}

func (r *Reader) prometheus(ctx context.Context, p *v1alpha1.PrometheusGate) Reading {
	threshold, err := strconv.ParseFloat(p.Threshold, 64)
	if err != nil {
		return unknown("threshold %q is not a number", p.Threshold)
	}
	c, err := promapi.NewClient(promapi.Config{Address: p.Address, Client: r.HTTP})
	if err != nil {
		return unknown("Prometheus address %s: %v", p.Address, err)
	}
	api := promv1.NewAPI(c)
	ctx, cancel := context.WithTimeout(ctx, Timeout(v1alpha1.Gate{Prometheus: p}))
	defer cancel()
	value, _, _, err := api.Query(ctx, p.Query, time.Time{})
	if err != nil {
		return unknown("querying Prometheus at %s: %v", p.Address, err)
	}
	v, evaluatedAt, isVector, why := single(value)
	if why != "" {
		return unknown("%s", why)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return unknown("the query returned %v", v)
	}
	maxAge := DefaultMaxAge
	if p.MaxAge != nil {
		maxAge = p.MaxAge.Duration
	}
	if why, err := r.stale(ctx, api, p.Query, evaluatedAt, maxAge, isVector); err != nil {
		return unknown("%v", err)
	} else if why != "" {
		return unknown("%s", why)
	}
	reading := fmt.Sprintf("%s %s %s", strconv.FormatFloat(v, 'g', 6, 64), symbol(p.Operator), p.Threshold)
	if compare(v, p.Operator, threshold) {
		return Reading{Verdict: v1alpha1.VerdictPass, Reading: reading}
	}
	return Reading{Verdict: v1alpha1.VerdictFail, Reading: reading, Reason: "the query's value is outside the threshold"}
}

// stale says why the samples behind a reading cannot be trusted ("" when they can): the age of
// each series the query reads (see staleInput). A query this parser cannot read (newer syntax
// than it knows) falls back to the age of the result's own sample, which is the sample's for a
// plain selector and the evaluation time for a computed expression.
func (r *Reader) stale(ctx context.Context, api promv1.API, query string, at time.Time, maxAge time.Duration, isVector bool) (string, error) {
	if ins, err := inputs(query); err == nil {
		return staleInput(ctx, api, ins, at, maxAge)
	}
	if !isVector {
		return "", nil
	}
	sampleAt, found, err := queryOne(ctx, api, "timestamp("+query+")", at)
	if err != nil {
		return "", fmt.Errorf("querying the age of the samples: %w", err)
	}
	if old := tooOld(sampleAt, at, maxAge); found && old != "" {
		return "the newest sample is " + old, nil
	}
	return "", nil
}

// single extracts the one value of a query result.
func single(v model.Value) (value float64, evaluatedAt time.Time, isVector bool, why string) {
	switch r := v.(type) {
	case *model.Scalar:
		return float64(r.Value), r.Timestamp.Time(), false, ""
	case model.Vector:
		switch len(r) {
		case 0:
			return 0, time.Time{}, true, "the query returned no data (missing or stale series)"
		case 1:
			return float64(r[0].Value), r[0].Timestamp.Time(), true, ""
		default:
			return 0, time.Time{}, true, fmt.Sprintf("the query returned %d series; a gate needs exactly one (aggregate it)", len(r))
		}
	}
	return 0, time.Time{}, false, fmt.Sprintf("the query returned a %s; a gate needs a scalar or one series", v.Type())
}

func compare(v float64, op v1alpha1.Operator, t float64) bool {
	switch op {
	case v1alpha1.OperatorLessThan:
		return v < t
	case v1alpha1.OperatorLessThanOrEqual:
		return v <= t
	case v1alpha1.OperatorGreaterThan:
		return v > t
	case v1alpha1.OperatorGreaterThanOrEqual:
		return v >= t
	}
	return false
}

func symbol(op v1alpha1.Operator) string {
	return map[v1alpha1.Operator]string{
		v1alpha1.OperatorLessThan: "<", v1alpha1.OperatorLessThanOrEqual: "<=",
		v1alpha1.OperatorGreaterThan: ">", v1alpha1.OperatorGreaterThanOrEqual: ">=",
	}[op]
}

func (r *Reader) webhook(ctx context.Context, w *v1alpha1.WebhookGate) Reading {
	ctx, cancel := context.WithTimeout(ctx, Timeout(v1alpha1.Gate{Webhook: w}))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.URL, nil)
	if err != nil {
		return unknown("webhook %s: %v", w.URL, err)
	}
	req.Header.Set("User-Agent", "floodgate-gate")
	res, err := r.HTTP.Do(req)
	if err != nil {
		return unknown("calling webhook %s: %v", w.URL, err)
	}
	_ = res.Body.Close()
	reading := fmt.Sprintf("HTTP %d", res.StatusCode)
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return Reading{Verdict: v1alpha1.VerdictPass, Reading: reading}
	}
	return Reading{Verdict: v1alpha1.VerdictFail, Reading: reading, Reason: "the webhook did not answer 2xx"}
}
