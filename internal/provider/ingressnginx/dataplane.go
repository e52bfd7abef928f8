package ingressnginx

import (
	"context"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// DataPlane is ingress-nginx: the Ingress's annotations this provider writes are its.
const DataPlane provider.DataPlane = "ingress-nginx"

// Controller is ingress-nginx's IngressClass controller. Traefik's kubernetesIngressNGINX
// provider serves classes of this controller too, by default: a cluster that moved to it maps the
// name onto traefik (--data-plane-controllers).
const Controller = "k8s.io/ingress-nginx"

// The annotations that say which class serves an Ingress when spec.ingressClassName does not.
const (
	// AnnotationLegacyClass names an Ingress's class the way before spec.ingressClassName.
	AnnotationLegacyClass = "kubernetes.io/ingress.class"
	// AnnotationDefaultClass marks the IngressClass class-less Ingresses get.
	AnnotationDefaultClass = "ingressclass.kubernetes.io/is-default-class"
)

// DataPlane is ingress-nginx.
func (p *Provider) DataPlane() provider.DataPlane { return DataPlane }

// ControllerNames are ingress-nginx's IngressClass controller.
func (p *Provider) ControllerNames() []string { return []string{Controller} }

// Classes: an IngressClass says an Ingress's data plane.
func (p *Provider) Classes() []client.Object { return []client.Object{&networkingv1.IngressClass{}} }

// ServedBy is the controller of the Ingress's IngressClass: the one spec.ingressClassName (or
// the legacy annotation) names, else the default classes'. None when classes are not read (a
// namespaced install) or cannot be: the Ingress then gets the kind's portable provider, as it
// always did.
func (p *Provider) ServedBy(ctx context.Context, policy *v1alpha1.TrafficPolicy, ref provider.Ref) ([]string, error) {
	if !p.ReadClasses {
		return nil, nil
	}
	var ing networkingv1.Ingress
	if err := p.Client.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &ing); err != nil {
		return nil, nil
	}
	name := ing.Annotations[AnnotationLegacyClass]
	if ing.Spec.IngressClassName != nil {
		name = *ing.Spec.IngressClassName
	}
	if name != "" {
		var class networkingv1.IngressClass
		if err := p.Client.Get(ctx, client.ObjectKey{Name: name}, &class); err != nil || class.Spec.Controller == "" {
			return nil, nil
		}
		return []string{class.Spec.Controller}, nil
	}
	var classes networkingv1.IngressClassList
	if err := p.Client.List(ctx, &classes); err != nil {
		return nil, nil
	}
	var out []string
	for _, c := range classes.Items {
		if c.Annotations[AnnotationDefaultClass] == "true" && c.Spec.Controller != "" {
			out = append(out, c.Spec.Controller)
		}
	}
	return out, nil
}
