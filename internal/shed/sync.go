package shed

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"floodgate.dev/floodgate/internal/owned"
)

// SyncTable keeps the server's table in step with Floodgate's canary Ingresses (those with the
// policy label), cluster-wide, until ctx ends.
func SyncTable(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, s *Server) error {
	hasPolicy, err := labels.NewRequirement(owned.PolicyLabel, selection.Exists, nil)
	if err != nil {
		return err
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&networkingv1.Ingress{}: {Label: labels.NewSelector().Add(*hasPolicy)},
	}})
	if err != nil {
		return fmt.Errorf("creating the Ingress cache: %w", err)
	}
	informer, err := c.GetInformer(ctx, &networkingv1.Ingress{})
	if err != nil {
		return fmt.Errorf("watching Ingresses: %w", err)
	}
	log := logf.FromContext(ctx)
	rebuild := func() {
		var list networkingv1.IngressList
		if err := c.List(ctx, &list); err != nil {
			log.Error(err, "listing canary Ingresses")
			return
		}
		var canaries []networkingv1.Ingress
		for _, ing := range list.Items {
			if ing.Annotations[AnnotationPolicy] != "" {
				canaries = append(canaries, ing)
			}
		}
		s.SetTable(TableFrom(canaries))
		log.V(1).Info("shed table rebuilt", "canaries", len(canaries))
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { rebuild() },
		UpdateFunc: func(any, any) { rebuild() },
		DeleteFunc: func(any) { rebuild() },
	}); err != nil {
		return err
	}
	return c.Start(ctx)
}
