package drill

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// availableDeployments are steps that play the Deployment controller (a drill runs none): every
// copied Deployment reports all its replicas available, as a workload gate reads them.
func (cp *copier) availableDeployments() []Step {
	var steps []Step
	for _, o := range cp.objects {
		if o.GetKind() != "Deployment" {
			continue
		}
		replicas, found, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
		if !found {
			replicas = 1
		}
		steps = append(steps, Step{Name: "the copied Deployment " + o.GetName() + " is available (the rehearsal plays its controller)",
			Patch: &Patch{Ref: Ref{APIVersion: "apps/v1", Kind: "Deployment", Namespace: o.GetNamespace(), Name: o.GetName()}, Subresource: "status",
				Patch: map[string]any{"status": map[string]any{"observedGeneration": int64(1), "replicas": replicas, "availableReplicas": replicas,
					"readyReplicas": replicas, "updatedReplicas": replicas}}}})
	}
	return steps
}

// defaultRunbook is shed, then a ramp through every step with its hold warped (a step whose
// gates the rehearsal cannot read, or that waits for a manual approve, is stepped on by hand),
// then Completed and the exact-restore check of every copied target and autoscaler.
func defaultRunbook(policy *v1alpha1.TrafficPolicy, cp *copier) []Step {
	ns, name := policy.Namespace, policy.Name
	ref := Ref{APIVersion: gvkPolicy.GroupVersion().String(), Kind: gvkPolicy.Kind, Namespace: ns, Name: name}
	lever := func(title, args string) Step {
		return Step{Name: title, Run: fmt.Sprintf("kubectl floodgate %s %s -n %s %s", strings.Fields(args)[0], name, ns, strings.Join(strings.Fields(args)[1:], " "))}
	}
	steps := []Step{
		{Expect: &Expect{Ref: ref, Fields: map[string]any{"status.phase": string(v1alpha1.PhaseNormal)}}},
		// The API server (the live cluster's CRDs, copied) judges every lever before any is
		// pulled: a refusal fails the rehearsal and names the lever, the object and the message.
		{Name: "every lever armed", Expect: &Expect{Ref: ref, Conditions: map[string]string{v1alpha1.ConditionArmed: string(metav1.ConditionTrue)}}},
		lever("Shed everything", `shed --reason rehearsal --wait`),
		{Advance: &metav1.Duration{Duration: time.Minute}},
	}
	var rampSteps []v1alpha1.RampStep
	if policy.Spec.Ramp != nil {
		rampSteps = policy.Spec.Ramp.Steps
	}
	if len(rampSteps) == 0 {
		steps = append(steps, lever("Back to Normal", `restore --reason rehearsal --wait`))
	} else {
		steps = append(steps, lever("Ramp back", `ramp --reason rehearsal --wait`))
		for i, s := range rampSteps {
			steps = append(steps, Step{Name: fmt.Sprintf("hold of step %d", i+1), Advance: &metav1.Duration{Duration: s.Hold.Duration}})
			var unreadable []string
			workload := false
			for _, g := range s.Gates {
				if g.WorkloadReady != nil {
					workload = true
				} else {
					unreadable = append(unreadable, g.Name)
				}
			}
			switch {
			case len(unreadable) > 0:
				steps = append(steps, lever(fmt.Sprintf("gates %s cannot be read from the rehearsal: step on by hand", strings.Join(unreadable, ", ")), `next --reason rehearsal`))
			case s.Approval == v1alpha1.ApprovalManual:
				steps = append(steps, lever(fmt.Sprintf("step %d waits for an approve", i+1), `approve --reason rehearsal`))
			case workload:
				// Workload gates read the copied Deployments: they must pass for passFor.
				steps = append(steps, Step{Advance: &metav1.Duration{Duration: time.Minute}}, Step{Advance: &metav1.Duration{Duration: time.Minute}})
			}
			if i+1 < len(rampSteps) {
				steps = append(steps, Step{Expect: &Expect{Ref: ref, Fields: map[string]any{"status.progress": fmt.Sprintf("%d/%d", i+2, len(rampSteps))}}})
			}
		}
	}
	release := 5 * time.Minute
	if policy.Spec.Autoscaling.ReleaseAfter != nil {
		release = policy.Spec.Autoscaling.ReleaseAfter.Duration
	}
	for range 5 {
		steps = append(steps, Step{Advance: &metav1.Duration{Duration: max(release/4, time.Minute)}})
	}
	done := v1alpha1.PhaseCompleted
	if len(rampSteps) == 0 {
		done = v1alpha1.PhaseNormal
	}
	steps = append(steps, Step{Name: "the lever is back at rest", Expect: &Expect{Ref: ref, Fields: map[string]any{"status.phase": string(done)}}})
	var kept []*unstructured.Unstructured
	for _, o := range cp.objects {
		if _, ok := cp.kindOf(o); ok { // what the policy's levers change
			kept = append(kept, o)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].GetKind()+kept[i].GetName() < kept[j].GetKind()+kept[j].GetName() })
	for _, o := range kept {
		steps = append(steps, Step{Name: "exact restore", Expect: &Expect{Ref: Ref{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}, SameAsSetup: true}})
	}
	return append(steps, Step{Run: fmt.Sprintf("kubectl floodgate history %s -n %s", name, ns)})
}
