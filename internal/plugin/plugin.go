// Package plugin is `kubectl floodgate`: one short command per runbook step. Drills run the same
// commands in-process, so a rehearsal exercises the code a responder runs.
package plugin

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/internal/version"
)

// Options are shared by every verb.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	// Clock is the time requests are stamped and previews are planned at (a drill warps it).
	Clock clock.PassiveClock

	// FloodgateNamespace is where the manager runs, and its settings' ConfigMap (floodgate-config)
	// is, which a preview builds its providers from.
	FloodgateNamespace string

	Reason string
	DryRun bool
	// Wait is what a lever waits for: "" nothing, "applied" (written, and taken by every
	// gateway that reports), "confirmed" (and probes through the data plane land as it says).
	Wait    string
	Timeout time.Duration
	// Fleet says which clusters a command runs on, when more than one.
	Fleet Fleet

	client    client.WithWatch
	namespace string
}

// NewCommand builds `kubectl floodgate` and its verbs.
func NewCommand(streams genericiooptions.IOStreams, clk clock.PassiveClock) *cobra.Command {
	if clk == nil {
		clk = clock.RealClock{}
	}
	o := &Options{ConfigFlags: genericclioptions.NewConfigFlags(true), IOStreams: streams, Clock: clk}
	root := &cobra.Command{
		Use:   "kubectl-floodgate",
		Short: "Pull Floodgate's levers: shed, ramp, step, pause, restore",
		Long: "kubectl floodgate flips the levers of a TrafficPolicy, one short command per runbook step.\n" +
			"Every change is recorded with --reason and your identity in the policy's history.\n" +
			"On many clusters at once: --context a,b,c, --all-contexts, or --clusters-file with\n" +
			"--cluster-selector; one row per cluster, exit 0 only when every cluster succeeded.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Fleet.resolve(o.ConfigFlags); err != nil || o.Fleet.contexts != nil {
				return err // a fleet's clusters are reached each by a command of its own
			}
			return o.complete()
		},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.ConfigFlags.AddFlags(root.PersistentFlags())
	o.Fleet.addFlags(root.PersistentFlags())
	root.PersistentFlags().StringVar(&o.FloodgateNamespace, "floodgate-namespace", "floodgate-system",
		"namespace of the Floodgate manager, whose settings (ConfigMap floodgate-config) a --dry-run preview is built from")

	root.AddCommand(
		o.leverCmd("shed", "Shed every request of every target (action ShedAll)", setAction(v1alpha1.ActionShedAll)),
		o.leverCmd("ramp", "Start a ramp: admit traffic back step by step (action Ramp)", setAction(v1alpha1.ActionRamp)),
		o.leverCmd("restore", "Return to Normal: traffic at once, originals restored (ShedAll → Ramp is the safe path)", setAction(v1alpha1.ActionNormal)),
		o.leverCmd("pause", "Hold the ramp at its current step", setPaused(true)),
		o.leverCmd("resume", "Let a paused ramp move on", setPaused(false)),
		o.leverCmd("next", "Go to the next ramp step now", oneShot("next")),
		o.leverCmd("back", "Go back one ramp step", oneShot("back")),
		o.leverCmd("approve", "Approve a step that waits for a manual approve", oneShot("approve")),
		o.allowCmd(),
		o.statusCmd(),
		o.historyCmd(),
		o.listCmd(),
		o.watchCmd(),
		version.Command("kubectl-floodgate"),
	)
	o.fanningOut(root)
	return root
}

func (o *Options) complete() error {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("reading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	if o.client, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()}); err != nil {
		return fmt.Errorf("connecting to the cluster: %w", err)
	}
	if o.namespace, _, err = o.ConfigFlags.ToRawKubeConfigLoader().Namespace(); err != nil {
		return fmt.Errorf("reading the namespace: %w", err)
	}
	return nil
}

// get reads a policy, with errors a responder can act on.
func (o *Options) get(ctx context.Context, name string) (*v1alpha1.TrafficPolicy, error) {
	var p v1alpha1.TrafficPolicy
	err := o.client.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: name}, &p)
	return &p, o.explain(err, "read", name)
}

func (o *Options) explain(err error, verb, name string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("trafficpolicy %q not found in namespace %q (kubectl floodgate list shows the policies)", name, o.namespace)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed to %s trafficpolicy %q in namespace %q: a responder needs the floodgate-responder role (aggregated into edit): %w", verb, name, o.namespace, err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("trafficpolicy %q changed while this command ran; run it again: %w", name, err)
	}
	return fmt.Errorf("%s trafficpolicy %q: %w", verb, name, err)
}

// whoAmI asks the API server who the caller is (SelfSubjectReview); "" when it cannot say.
func (o *Options) whoAmI(ctx context.Context) string {
	review := &authenticationv1.SelfSubjectReview{}
	if err := o.client.Create(ctx, review); err != nil {
		return ""
	}
	return review.Status.UserInfo.Username
}

func (o *Options) token(verb string) string {
	return verb + ":" + strconv.FormatInt(o.Clock.Now().UnixNano(), 36)
}
