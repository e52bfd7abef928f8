package plugin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/patch"
)

// change edits a policy for a verb, or says why the verb makes no sense now.
type change func(p *v1alpha1.TrafficPolicy, args []string) error

func setAction(a v1alpha1.Action) change {
	return func(p *v1alpha1.TrafficPolicy, _ []string) error {
		if a == v1alpha1.ActionRamp && (p.Spec.Ramp == nil || len(p.Spec.Ramp.Steps) == 0) {
			return fmt.Errorf("policy %s has no ramp steps (spec.ramp.steps)", p.Name)
		}
		if p.Spec.Action == a && a == v1alpha1.ActionRamp {
			return fmt.Errorf("policy %s is already ramping (phase %s); to ramp again go through shed or restore first", p.Name, p.Status.Phase)
		}
		p.Spec.Action = a
		return nil
	}
}

func setPaused(paused bool) change {
	return func(p *v1alpha1.TrafficPolicy, _ []string) error {
		if p.Spec.Action != v1alpha1.ActionRamp || p.Spec.Ramp == nil {
			return fmt.Errorf("policy %s is not ramping (action %s, phase %s)", p.Name, p.Spec.Action, p.Status.Phase)
		}
		if p.Spec.Ramp.Paused == paused {
			return fmt.Errorf("policy %s is already %s", p.Name, map[bool]string{true: "paused", false: "running (not paused)"}[paused])
		}
		p.Spec.Ramp.Paused = paused
		return nil
	}
}

func oneShot(verb string) change {
	return func(p *v1alpha1.TrafficPolicy, _ []string) error {
		ramping := p.Spec.Action == v1alpha1.ActionRamp && p.Status.Ramp != nil
		switch {
		case !ramping:
			return fmt.Errorf("%s: policy %s is not ramping (action %s, phase %s)", verb, p.Name, p.Spec.Action, p.Status.Phase)
		case verb == "next" && p.Status.Ramp.Step > p.Status.Ramp.Steps:
			return fmt.Errorf("next: the ramp of %s has no step left (phase %s)", p.Name, p.Status.Phase)
		case verb == "back" && p.Status.Ramp.Step <= 1:
			return fmt.Errorf("back: the ramp of %s is at its first step", p.Name)
		case verb == "approve" && !p.Status.Ramp.AwaitingApproval:
			return fmt.Errorf("approve: step %s of %s is not waiting for an approve", p.Status.Progress, p.Name)
		}
		return nil
	}
}

func (o *Options) leverCmd(verb, short string, edit change) *cobra.Command {
	cmd := &cobra.Command{
		Use:   verb + " POLICY",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.flip(cmd.Context(), verb, args[0], nil, edit)
		},
	}
	o.leverFlags(cmd)
	return cmd
}

func (o *Options) allowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "allow POLICY [REGION...]",
		Short: "Set the standing region allowlist (no regions: admit every region)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.flip(cmd.Context(), "allow", args[0], args[1:], func(p *v1alpha1.TrafficPolicy, regions []string) error {
				for _, r := range regions {
					if !regionCode.MatchString(r) {
						return fmt.Errorf("allow: %q is not a region code (1 to 16 characters of A-Z, 0-9 and '-', for example AU or US-CA)", r)
					}
				}
				p.Spec.AllowRegions = regions
				return nil
			})
		},
	}
	o.leverFlags(cmd)
	return cmd
}

func (o *Options) leverFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why: recorded in the policy's history")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what would change on every target object, and change nothing")
	cmd.Flags().StringVar(&o.Wait, "wait", "", "return when the controller reports the change applied (--wait), or also confirmed by probes through the data plane (--wait=confirmed)")
	cmd.Flags().Lookup("wait").NoOptDefVal = WaitApplied
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 30*time.Second, "how long --wait waits for the controller")
}

// flip applies a verb: the spec change (if any) and the request annotations, in one patch. A
// patch refused because the policy moved meanwhile is made again on a fresh read when only the
// controller moved it (status, a request it finished): the spec and any pending request are as
// the command read them, so what the responder asked for is unambiguous. Someone else's change
// of the spec or a request of theirs is never overwritten: the command says so.
func (o *Options) flip(ctx context.Context, verb, name string, args []string, edit change) error {
	if err := o.checkWait(); err != nil {
		return err
	}
	p, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	token, who := o.token(verb), o.whoAmI(ctx)
	start := time.Now()
	var changed *v1alpha1.TrafficPolicy
	var cleared string
	for attempt := 0; ; attempt++ {
		if changed, cleared, err = o.edited(p, args, edit, verb, token, who); err != nil {
			return err
		}
		if o.DryRun {
			return o.preview(ctx, changed)
		}
		err = o.client.Patch(ctx, changed, patch.From(p))
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) || attempt == maxConflictRetries {
			return o.explain(err, "patch", name)
		}
		fresh, gerr := o.get(ctx, name)
		if gerr != nil {
			return gerr
		}
		if !movedByTheControllerOnly(p, fresh) {
			return o.explain(err, "patch", name)
		}
		p = fresh
	}
	fmt.Fprintf(o.Out, "trafficpolicy/%s: %s requested (%s)\n", name, verb, describeSpec(changed))
	if cleared != "" {
		fmt.Fprintf(o.Out, "trafficpolicy/%s: shedExpiresAt %s had already passed: cleared, so it cannot expire this ShedAll\n", name, cleared)
	}
	if o.Wait == "" {
		return nil
	}
	if err := o.waitFor(ctx, changed, token, start, leverAsked(verb, changed)); err != nil || o.Wait != WaitConfirmed {
		return err
	}
	return o.waitConfirmed(ctx, name, start)
}

// What --wait waits for.
const (
	WaitApplied   = "applied"
	WaitConfirmed = "confirmed"
)

// checkWait refuses a --wait that is neither applied nor confirmed, before anything is written.
func (o *Options) checkWait() error {
	if o.Wait != "" && o.Wait != WaitApplied && o.Wait != WaitConfirmed {
		return fmt.Errorf("--wait=%s: want --wait (applied) or --wait=confirmed", o.Wait)
	}
	return nil
}

// waitConfirmed returns once the Confirmed condition is True for the lever the controller
// acknowledged (the pass that took it started confirming it afresh), or says why not: nothing
// can be probed, or what the last probe found when the time is up.
func (o *Options) waitConfirmed(ctx context.Context, name string, start time.Time) error {
	var last *metav1.Condition
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, o.Timeout, true, func(ctx context.Context) (bool, error) {
		cur, err := o.get(ctx, name)
		if err != nil {
			return false, nil // transient: keep waiting until the timeout
		}
		last = condition(cur, v1alpha1.ConditionConfirmed)
		switch {
		case last == nil || last.ObservedGeneration < cur.Generation:
			return false, nil
		case last.Reason == v1alpha1.ReasonNotProbed:
			return false, fmt.Errorf("trafficpolicy/%s: cannot be confirmed: %s", name, last.Message)
		}
		return last.Status == metav1.ConditionTrue, nil
	})
	switch {
	case err == nil:
		fmt.Fprintf(o.Out, "trafficpolicy/%s: confirmed in %s: %s\n", name, time.Since(start).Round(time.Millisecond), last.Message)
		return nil
	case wait.Interrupted(err) && last != nil:
		return fmt.Errorf("trafficpolicy/%s: applied, but not confirmed within %s: Confirmed %s %s: %s", name, o.Timeout, last.Status, last.Reason, last.Message)
	case wait.Interrupted(err):
		return fmt.Errorf("trafficpolicy/%s: applied, but not confirmed within %s: the controller says nothing of confirmation (a manager older than --wait=confirmed?)", name, o.Timeout)
	}
	return err
}

// maxConflictRetries bounds how often a lever is made again on a fresh read.
const maxConflictRetries = 5

// movedByTheControllerOnly says whether fresh differs from read only in what the controller
// writes: the spec is the same generation, and no request was made meanwhile (the one read is
// still pending, or the controller finished it).
func movedByTheControllerOnly(read, fresh *v1alpha1.TrafficPolicy) bool {
	pending := fresh.Annotations[v1alpha1.RequestAnnotation]
	return fresh.Generation == read.Generation && (pending == "" || pending == read.Annotations[v1alpha1.RequestAnnotation])
}

// edited is p with the verb's change and its request annotations (token, the reason, who asked),
// and the ShedAll expiry it cleared ("" when none).
func (o *Options) edited(p *v1alpha1.TrafficPolicy, args []string, edit change, verb, token, who string) (*v1alpha1.TrafficPolicy, string, error) {
	changed := p.DeepCopy()
	if err := edit(changed, args); err != nil {
		return nil, "", err
	}
	if changed.Annotations == nil {
		changed.Annotations = map[string]string{}
	}
	changed.Annotations[v1alpha1.RequestAnnotation] = token
	changed.Annotations[v1alpha1.RequestReasonAnnotation] = o.Reason
	if who != "" {
		changed.Annotations[v1alpha1.RequestByAnnotation] = who
	} else {
		delete(changed.Annotations, v1alpha1.RequestByAnnotation)
	}
	// A ShedAll expiry that has already passed (left over from the last incident) would
	// expire this pull at once: it is cleared, and said so. (The controller ignores such an
	// expiry too, for a pull made another way: one not later than the pull.)
	var cleared string
	if verb == "shed" && changed.Spec.ShedExpiresAt != nil && !changed.Spec.ShedExpiresAt.After(o.Clock.Now()) {
		cleared = changed.Spec.ShedExpiresAt.UTC().Format(time.RFC3339)
		changed.Spec.ShedExpiresAt = nil
	}
	return changed, cleared, nil
}

// leverAsked is the action a verb puts in force ("" for a verb that is not a lever of its own).
func leverAsked(verb string, p *v1alpha1.TrafficPolicy) v1alpha1.Action {
	switch verb {
	case "shed", "ramp", "restore":
		return p.Spec.Action
	}
	return ""
}

// notInForce says why the lever asked for is not the one in force, or not on every target that
// status lists ("" when it is): the action the controller put in force (an expiry may have
// returned it), and each listed target that does not carry it.
func notInForce(p *v1alpha1.TrafficPolicy, asked v1alpha1.Action) string {
	if asked == "" {
		return ""
	}
	if got := p.Status.ObservedAction; got != asked {
		why := ""
		if len(p.Status.ExpiredLevers) > 0 {
			why = " (expired: " + strings.Join(p.Status.ExpiredLevers, ", ") + ")"
		}
		return fmt.Sprintf("the action in force is %s, not %s%s: phase %s", orNone(string(got)), asked, why, p.Status.Phase)
	}
	var missing []string
	for _, t := range p.Status.Targets {
		if !t.Found || t.Reason != "" {
			continue // a target with a problem is named with its reason (notApplied)
		}
		switch {
		case asked == v1alpha1.ActionShedAll && !t.Applied.Shed:
			missing = append(missing, fmt.Sprintf("%s %s is not shed", t.Kind, t.Name))
		case asked == v1alpha1.ActionNormal && (t.Applied.Shed || t.Applied.AdmitPercent > 0 || t.Applied.PerClientRequestsPerSecond > 0):
			missing = append(missing, fmt.Sprintf("%s %s still has %s", t.Kind, t.Name, describeApplied(t)))
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%s is in force, but %s", asked, strings.Join(missing, "; "))
	}
	return ""
}

// waitFor returns when the controller acknowledged the request, or says why it did not: the
// ramp holds (the step cannot be applied everywhere), or the lever was applied but not to every
// target and autoscaler (each one named, with why).
func (o *Options) waitFor(ctx context.Context, p *v1alpha1.TrafficPolicy, token string, start time.Time, asked v1alpha1.Action) error {
	var acked *v1alpha1.TrafficPolicy
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, o.Timeout, true, func(ctx context.Context) (bool, error) {
		cur, err := o.get(ctx, p.Name)
		if err != nil {
			return false, nil // transient: keep waiting until the timeout
		}
		if cur.Status.LastHandledRequest == token && cur.Status.ObservedGeneration >= cur.Generation {
			// A change counts once the data plane took it: a gateway that has not yet reported
			// on a route Floodgate changed is waited for.
			acked = cur
			return !awaitingGateway(cur), nil
		}
		if cur.Status.HeldRequest == token {
			if c := condition(cur, v1alpha1.ConditionReady); c != nil {
				return false, fmt.Errorf("trafficpolicy/%s: not applied: %s: %s", p.Name, c.Reason, c.Message)
			}
		}
		return false, nil
	})
	switch {
	case acked != nil && awaitingGateway(acked):
		return fmt.Errorf("trafficpolicy/%s: phase %s is written, but not yet taken by every gateway within %s:\n  %s", p.Name, acked.Status.Phase, o.Timeout, strings.Join(notApplied(acked), "\n  "))
	case acked != nil && notInForce(acked, asked) != "":
		// Exit 0 only when the lever asked for is the one in force, on every target.
		return fmt.Errorf("trafficpolicy/%s: %s not in force: %s", p.Name, asked, notInForce(acked, asked))
	case acked != nil:
		fmt.Fprintf(o.Out, "trafficpolicy/%s: applied in %s: phase %s%s\n", p.Name,
			time.Since(start).Round(time.Millisecond), acked.Status.Phase, progress(acked))
		if c := condition(acked, v1alpha1.ConditionReady); c != nil && c.Reason == v1alpha1.ReasonNoShedBackend {
			return fmt.Errorf("trafficpolicy/%s: %s: %s", p.Name, c.Reason, c.Message)
		}
		if missed := notApplied(acked); len(missed) > 0 {
			return fmt.Errorf("trafficpolicy/%s: phase %s is not applied to every object:\n  %s", p.Name, acked.Status.Phase, strings.Join(missed, "\n  "))
		}
		return nil
	case wait.Interrupted(err):
		return fmt.Errorf("no acknowledgement from the controller within %s: is the Floodgate manager running? (status.lastHandledRequest is not %q yet)", o.Timeout, token)
	}
	return err
}

// awaitingGateway reports whether a target's gateway has not yet reported on Floodgate's change.
func awaitingGateway(p *v1alpha1.TrafficPolicy) bool {
	return slices.ContainsFunc(p.Status.Targets, func(t v1alpha1.TargetStatus) bool { return t.Reason == v1alpha1.ReasonAwaitingGateway })
}

// notApplied names each target and autoscaler the lever in force is not applied to, and why.
// A target that is gone is named only when traffic is restricted: restoring it is nothing to do.
func notApplied(p *v1alpha1.TrafficPolicy) []string {
	restricting := p.Status.Phase != v1alpha1.PhaseNormal && p.Status.Phase != v1alpha1.PhaseCompleted
	var out []string
	for _, t := range p.Status.Targets {
		if t.Reason == "" || (!t.Found && !restricting) {
			continue
		}
		what := "not applied"
		if p.Status.Phase == v1alpha1.PhaseShedding {
			what = "not shed"
		}
		out = append(out, fmt.Sprintf("%s %s %s: %s: %s", t.Kind, t.Name, what, t.Reason, t.Message))
	}
	for _, a := range p.Status.Autoscalers {
		if a.Reason == "" || (!a.Found && !restricting) {
			continue
		}
		kind := string(a.Kind)
		if kind == "" {
			kind = string(v1alpha1.AutoscalerKindHPA)
		}
		out = append(out, fmt.Sprintf("%s %s not held: %s: %s", kind, a.Name, a.Reason, a.Message))
	}
	return out
}

func describeSpec(p *v1alpha1.TrafficPolicy) string {
	parts := []string{"action " + string(p.Spec.Action)}
	if p.Spec.Ramp != nil && p.Spec.Ramp.Paused {
		parts = append(parts, "paused")
	}
	if len(p.Spec.AllowRegions) > 0 {
		parts = append(parts, "allow "+strings.Join(p.Spec.AllowRegions, ","))
	}
	return strings.Join(parts, ", ")
}

func progress(p *v1alpha1.TrafficPolicy) string {
	if p.Status.Progress == "" || !slices.Contains([]v1alpha1.Phase{v1alpha1.PhaseRamping, v1alpha1.PhasePaused}, p.Status.Phase) {
		return ""
	}
	return ", step " + p.Status.Progress
}
