package gatewayapi

import (
	"context"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// Classes: a GatewayClass says a route's data plane (through its Gateways, followed for the
// shed answers already).
func (p *Provider) Classes() []client.Object { return []client.Object{&gatewayv1.GatewayClass{}} }

// ServedBy are the controllerNames of the route's parents' GatewayClasses: a parent Gateway's
// class where classes are read (a cluster-wide install), else (or when that Gateway or class
// cannot be read) the controllerName its gateway wrote in the route's status for that parent.
// A parent neither says is not counted; a route none says anything about has no known data plane.
func (p *Provider) ServedBy(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref) ([]string, error) {
	var route gatewayv1.HTTPRoute
	if err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &route); err != nil {
		return nil, nil
	}
	var out []string
	add := func(c string) {
		if c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	for _, parent := range route.Spec.ParentRefs {
		if parent.Kind != nil && *parent.Kind != "Gateway" || parent.Group != nil && *parent.Group != gatewayv1.GroupName {
			continue
		}
		ns := route.Namespace
		if parent.Namespace != nil {
			ns = string(*parent.Namespace)
		}
		if c := p.classController(ctx, ns, string(parent.Name)); c != "" {
			add(c)
			continue
		}
		for _, st := range route.Status.Parents {
			stNS := route.Namespace
			if st.ParentRef.Namespace != nil {
				stNS = string(*st.ParentRef.Namespace)
			}
			if st.ParentRef.Name == parent.Name && stNS == ns {
				add(string(st.ControllerName))
			}
		}
	}
	return out, nil
}

// classController is the controllerName of a Gateway's GatewayClass ("": classes are not read,
// or the Gateway or its class cannot be).
func (p *Provider) classController(ctx context.Context, namespace, name string) string {
	if !p.ReadClasses {
		return ""
	}
	var gw gatewayv1.Gateway
	if err := p.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &gw); err != nil {
		return ""
	}
	var class gatewayv1.GatewayClass
	if err := p.Client.Get(ctx, client.ObjectKey{Name: string(gw.Spec.GatewayClassName)}, &class); err != nil {
		return ""
	}
	return string(class.Spec.ControllerName)
}
