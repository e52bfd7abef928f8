// Package shed answers shed traffic, and tells ingress controllers where that answer lives.
//
// The shed server runs as its own Deployment (`floodgate shed-server`), never inside the
// manager's pods, which the herd would take down. ingress-nginx needs a backend Service in the
// target's namespace; Floodgate creates there, per policy, a headless selector-less Service and
// an EndpointSlice that it keeps in step with the shed pods' addresses. Every canary of the policy
// routes to it (they share the policy's knobs); no two policies share one, because ingress-nginx
// builds one upstream per namespace, Service and port and gives every canary on it the first
// canary's weight and pattern. Headless: a fleet of policies takes no ClusterIP.
package shed

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
)

// ManagedBy marks EndpointSlices Floodgate maintains, so the EndpointSlice controllers leave
// them alone.
const ManagedBy = "floodgate.traffic.floodgate.dev"

// ServicePort is the port of the companion Service canaries route to.
const ServicePort int32 = 80

// Backend is where the shed pods are: their Service, whose EndpointSlices Floodgate mirrors.
type Backend struct {
	Namespace   string
	ServiceName string
	// Port is the shed pods' container port.
	Port int32
	// Live reads from the API server what the cache does not hold: the cache keeps only
	// EndpointSlices labelled as Floodgate's (nil: the client's reads only).
	Live client.Reader
}

// CompanionServiceName is the name of the policy's shed Service, in its namespace. A Service
// name is a DNS label: a policy name with dots, or too long, gets a hash of the whole name
// (owned.DNSLabel), so no two policies of a namespace share one. A policy whose Service had an
// older name has it replaced: the new one is made before its canaries route to it, and the old
// one, still the policy's, is removed after (RemoveCompanions).
func CompanionServiceName(policy string) string {
	return owned.DNSLabel("floodgate-shed", policy)
}

// Endpoints counts the shed endpoints a companion points at, as a data plane reads them.
type Endpoints struct {
	// Ready endpoints take new requests on every data plane.
	Ready int
	// Draining endpoints are terminating but still serving: Envoy sends requests to them while
	// no endpoint is ready; ingress-nginx and Traefik v3.7 never do (Traefik fences them and
	// answers 503 itself, as test/traffic measures).
	Draining int
}

// EnsureCompanion creates or updates the policy's shed Service and EndpointSlice, and returns
// what shed endpoints they point at.
func (b Backend) EnsureCompanion(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy) (counted Endpoints, err error) {
	name := CompanionServiceName(policy.Name)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: policy.Namespace},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: corev1.ClusterIPNone,
			Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: ServicePort, TargetPort: intstr.FromInt32(b.Port),
			}},
		},
	}
	// The Service and its EndpointSlice are written at once: neither needs the other first, and
	// the canary that routes to them waits for both.
	var serviceWritten errgroup.Group
	serviceWritten.Go(func() error {
		if _, err := owned.Ensure(ctx, c, policy, svc, &corev1.Service{}, func(existing, desired *corev1.Service) {
			existing.Spec.Ports = desired.Spec.Ports
			existing.Spec.Selector = nil
		}); err != nil {
			return fmt.Errorf("shed Service: %w", err)
		}
		return nil
	})
	defer func() {
		if serr := serviceWritten.Wait(); serr != nil {
			counted, err = Endpoints{}, errors.Join(serr, err)
		}
	}()

	endpoints, err := b.endpoints(ctx, c)
	if err != nil {
		return Endpoints{}, err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: policy.Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: name,
				discoveryv1.LabelManagedBy:   ManagedBy,
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   endpoints,
		Ports: []discoveryv1.EndpointPort{{
			Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(b.Port),
		}},
	}
	if _, err := owned.EnsureLive(ctx, c, b.Live, policy, slice, &discoveryv1.EndpointSlice{}, func(existing, desired *discoveryv1.EndpointSlice) {
		existing.Endpoints = desired.Endpoints
		existing.Ports = desired.Ports
		labels := existing.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range desired.Labels {
			labels[k] = v
		}
		desired.Labels = labels
	}); err != nil {
		return Endpoints{}, fmt.Errorf("shed EndpointSlice: %w", err)
	}
	return Count(endpoints), nil
}

// Count counts endpoints the way the EndpointSlice API defines their conditions: ready and
// serving when unset, terminating when set.
func Count(endpoints []discoveryv1.Endpoint) Endpoints {
	var n Endpoints
	for _, e := range endpoints {
		switch c := e.Conditions; {
		case ptr.Deref(c.Ready, true):
			n.Ready++
		case ptr.Deref(c.Serving, true) && ptr.Deref(c.Terminating, false):
			n.Draining++
		}
	}
	return n
}

// CompanionsNotOurs names each of the policy's shed Service and EndpointSlice names held by an
// object the policy does not control: no target can be shed through it. Such objects are never
// adopted, updated or removed.
func (b Backend) CompanionsNotOurs(ctx context.Context, c client.Reader, policy *v1alpha1.TrafficPolicy) ([]*owned.NotOursError, error) {
	name := CompanionServiceName(policy.Name)
	var out []*owned.NotOursError
	for _, obj := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}} {
		err := c.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: name}, obj)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading shed companion %s: %w", name, err)
		}
		if err == nil && !owned.IsOurs(obj, policy) {
			kind := "Service"
			if _, slice := obj.(*discoveryv1.EndpointSlice); slice {
				kind = "EndpointSlice"
			}
			out = append(out, &owned.NotOursError{Kind: kind, Name: name})
		}
	}
	return out, nil
}

// RemoveCompanions deletes the policy's shed Services and EndpointSlices, but for its current
// one when keep is set (and those of an older release, one per target, always). Only objects the
// policy controls are found (through the owned.IndexController index, so a companion whose label
// was removed is found too) and deleted.
func RemoveCompanions(ctx context.Context, c client.Client, policy *v1alpha1.TrafficPolicy, keep bool) error {
	kept := map[string]bool{CompanionServiceName(policy.Name): keep}
	var slices discoveryv1.EndpointSliceList
	if err := owned.List(ctx, c, policy, &slices); err != nil {
		return fmt.Errorf("listing shed EndpointSlices: %w", err)
	}
	var services corev1.ServiceList
	if err := owned.List(ctx, c, policy, &services); err != nil {
		return fmt.Errorf("listing shed Services: %w", err)
	}
	var stale []client.Object
	for i := range slices.Items {
		stale = append(stale, &slices.Items[i])
	}
	for i := range services.Items {
		stale = append(stale, &services.Items[i])
	}
	for _, obj := range stale {
		if kept[obj.GetName()] {
			continue
		}
		if _, err := owned.Delete(ctx, c, policy, obj); err != nil {
			return fmt.Errorf("deleting shed %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// endpoints are the shed pods' IPv4 addresses with their conditions (ready, serving and
// terminating, exactly: a data plane reads all three, and an unset one means something), from the
// shed Service's EndpointSlices, sorted so an unchanged set renders identically.
func (b Backend) endpoints(ctx context.Context, c client.Client) ([]discoveryv1.Endpoint, error) {
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace(b.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: b.ServiceName}); err != nil {
		return nil, fmt.Errorf("listing the shed backend's endpoints: %w", err)
	}
	var out []discoveryv1.Endpoint
	for _, s := range slices.Items {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, e := range s.Endpoints {
			out = append(out, discoveryv1.Endpoint{
				Addresses:  e.Addresses,
				Conditions: discoveryv1.EndpointConditions{Ready: e.Conditions.Ready, Serving: e.Conditions.Serving, Terminating: e.Conditions.Terminating},
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i].Addresses) < fmt.Sprint(out[j].Addresses) })
	return out, nil
}
