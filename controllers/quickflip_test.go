package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/controllers"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/scheme"
)

func TestALeverFlippedWhileAPassWrites(t *testing.T) {
	t.Run("keeps what the pass wrote, so the hold is still released gradually", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		passesByHand(t)
		create(t, sampleIngress(ns), sampleDeployment(ns, 10), sampleHPA(ns, nil), samplePolicy(ns, v1alpha1.ActionShedAll))

		t.Log("the responder flips to Normal after the targets are written, before the status is")
		flipped := false
		direct, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme.New()})
		g.Expect(err).NotTo(HaveOccurred())
		c := interceptor.NewClient(direct, interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if sub == "status" && !flipped {
					flipped = true
					setAction(t, ns, "api-gateway", v1alpha1.ActionNormal)
				}
				return cl.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		})
		r := &controllers.TrafficPolicyReconciler{
			Client: c, APIReader: k8s, Clock: clk, Recorder: events.NewFakeRecorder(100),
			Providers: registered.Providers(c), Shed: manager.DefaultShed,
		}
		req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "api-gateway"}}
		_, err = r.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(flipped).To(BeTrue())
		p := getPolicy(t, ns, "api-gateway")
		g.Expect(p.Status.Phase).To(Equal(v1alpha1.PhaseShedding), "the status says what the pass did")
		g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation-1), "with the generation it saw")
		g.Expect(*getHPA(t, ns).Spec.MinReplicas).To(BeEquivalentTo(10))

		t.Log("the next pass sees ShedAll → Normal: a bounded scale-down first, not the originals at once")
		_, err = r.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(getPolicy(t, ns, "api-gateway").Status.Phase).To(Equal(v1alpha1.PhaseReleasing))
		h := getHPA(t, ns)
		g.Expect(h.Spec.Behavior).NotTo(BeNil())
		g.Expect(*h.Spec.Behavior.ScaleDown.SelectPolicy).To(Equal(autoscalingv2.MaxChangePolicySelect))
		// The first of 4 release stages from the peak (10) to the original (2): 2 + ⌈8·3/4⌉.
		g.Expect(*h.Spec.MinReplicas).To(BeEquivalentTo(8))
	})
}
