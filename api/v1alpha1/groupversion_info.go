// Package v1alpha1 contains the TrafficPolicy API: the levers an incident responder pulls during
// saturation (shed all traffic, admit only some regions, ramp traffic back in stages, hold
// autoscalers) declared as a Kubernetes object.
// +kubebuilder:object:generate=true
// +groupName=traffic.floodgate.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the TrafficPolicy API.
	GroupVersion = schema.GroupVersion{Group: "traffic.floodgate.dev", Version: "v1alpha1"}

	// SchemeBuilder adds the API types to a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the API types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
