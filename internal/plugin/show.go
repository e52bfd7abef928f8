package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/restore"
)

var regionCode = regexp.MustCompile(v1alpha1.RegionCodePattern)

func condition(p *v1alpha1.TrafficPolicy, t string) *metav1.Condition {
	return meta.FindStatusCondition(p.Status.Conditions, t)
}

// preview prints what the change would do, computed by the controller's own code.
func (o *Options) preview(ctx context.Context, changed *v1alpha1.TrafficPolicy) error {
	p := &pass.Pass{Client: o.client, Providers: o.providers(ctx, true)}
	res, err := p.Preview(ctx, changed, o.Clock.Now())
	if err != nil {
		return fmt.Errorf("computing the preview: %w", err)
	}
	plan := res.Plan
	fmt.Fprintf(o.Out, "trafficpolicy/%s (dry run): phase %s → %s", changed.Name, orNone(string(changed.Status.Phase)), plan.Phase)
	if plan.Progress != "" && (plan.Phase == v1alpha1.PhaseRamping || plan.Phase == v1alpha1.PhasePaused) {
		fmt.Fprintf(o.Out, ", step %s", plan.Progress)
	}
	fmt.Fprintln(o.Out)
	if res.Held {
		fmt.Fprintf(o.Out, "the ramp would hold where it is (phase %s): the step cannot be applied everywhere:\n", orNone(string(changed.Status.Phase)))
	}
	for _, p := range res.Problems {
		fmt.Fprintf(o.Out, "would not be applied to it: %s: %s\n", p.Reason, p.Message)
	}
	for _, u := range res.Unsupported {
		fmt.Fprintf(o.Out, "cannot take: %s\n", u)
	}
	fmt.Fprintf(o.Out, "targets: %d%s\n", len(res.Targets), firstNames(res.Targets))
	for _, t := range res.Served {
		fmt.Fprintf(o.Out, "  %s %s: %s%s\n", t.Ref.Kind, t.Ref.Name, t.Provider, onDataPlanes(t.DataPlanes))
		if t.Warning != "" {
			fmt.Fprintf(o.Out, "    warning: %s\n", t.Warning)
		}
	}
	if c := condition(changed, v1alpha1.ConditionArmed); c != nil {
		// The API server's own verdict on every lever, from the dry runs at rest.
		fmt.Fprintf(o.Out, "armed: %s (%s) %s\n", c.Status, c.Reason, c.Message)
	}
	n := 0
	for _, c := range res.Changes {
		diff, err := diffObjects(c)
		if err != nil {
			return err
		}
		if diff != "" {
			n++
			fmt.Fprint(o.Out, diff)
		}
	}
	if n == 0 {
		fmt.Fprintln(o.Out, "no target object would change")
	}
	return nil
}

// providers are the providers built from the manager's own settings, read from the cluster, as
// the manager builds them: a preview prints what the manager would write. When the settings
// cannot be read, the defaults are used and, if warn, the preview says so.
func (o *Options) providers(ctx context.Context, warn bool) *provider.Registry {
	providers, err := registered.FromCluster(ctx, o.client, o.FloodgateNamespace)
	if err != nil && warn {
		fmt.Fprintf(o.ErrOut, "warning: the manager's settings could not be read (%v): this preview assumes the defaults "+
			"(redirects off; regex header matches on Envoy Gateway only), which may differ from what the manager writes; "+
			"pass --floodgate-namespace if the manager runs elsewhere\n", err)
	}
	return providers
}

// onDataPlanes says which data planes serve a target, after the provider's name: " on traefik",
// " on data plane not known" when none could be read.
func onDataPlanes(dataPlanes []string) string {
	if len(dataPlanes) == 0 {
		return " (data plane not known)"
	}
	return " on " + strings.Join(dataPlanes, ", ")
}

// firstNames lists the first few targets' names, and how many more there are.
func firstNames(refs []provider.Ref) string {
	const first = 10
	var names []string
	for i, r := range refs {
		if i == first {
			names = append(names, fmt.Sprintf("and %d more (kubectl floodgate status --targets)", len(refs)-first))
			break
		}
		names = append(names, r.Kind+" "+r.Name)
	}
	if len(names) == 0 {
		return ""
	}
	return ": " + strings.Join(names, ", ")
}

func diffObjects(c provider.ObjectChange) (string, error) {
	before, err := toYAML(c.Before)
	if err != nil {
		return "", err
	}
	after, err := toYAML(c.After)
	if err != nil {
		return "", err
	}
	if before == after {
		return "", nil
	}
	name := fmt.Sprintf("%s %s", c.Kind, c.Name)
	return unifiedDiff(before, after, name+" (now)", name+" (after)")
}

// unifiedDiff is a unified diff of two texts, with two lines of context.
func unifiedDiff(a, b, from, to string) (string, error) {
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: from, ToFile: to, Context: 2})
}

func toYAML(obj map[string]any) (string, error) {
	if obj == nil {
		return "", nil
	}
	b, err := yaml.Marshal(obj)
	return string(b), err
}

func (o *Options) statusCmd() *cobra.Command {
	var targets bool
	cmd := &cobra.Command{
		Use:   "status POLICY",
		Short: "Show action, phase, step and hold left, targets and what was applied, autoscalers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := o.get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if targets {
				return o.printTargets(cmd.Context(), p)
			}
			printStatus(o.Out, p, o.Clock.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&targets, "targets", false, "list every target the policy covers (named and selected), read from the cluster, with what it carries of the policy")
	return cmd
}

// printTargets lists every target of the policy, however many: status lists only those with a
// problem and the first few others when a targetSelector covers a fleet.
func (o *Options) printTargets(ctx context.Context, policy *v1alpha1.TrafficPolicy) error {
	p := &pass.Pass{Client: o.client, Providers: o.providers(ctx, false)}
	states, err := p.TargetStates(ctx, policy)
	if err != nil {
		return fmt.Errorf("reading the targets: %w", err)
	}
	problems := map[string]v1alpha1.TargetStatus{}
	for _, t := range policy.Status.Targets {
		if t.Reason != "" {
			problems[t.Name] = t
		}
	}
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Targets of %s/%s: %d\n", policy.Namespace, policy.Name, len(states))
	for _, st := range states {
		var carries []string
		switch {
		case !st.Found:
			carries = append(carries, "not found")
		case len(st.Companions) == 0 && !st.Recorded:
			carries = append(carries, "untouched")
		}
		for _, c := range st.Companions {
			carries = append(carries, "canary "+c)
		}
		if st.Recorded {
			carries = append(carries, "edited (restore record)")
		}
		if t, ok := problems[st.Ref.Name]; ok {
			carries = append(carries, fmt.Sprintf("NOT APPLIED (%s): %s", t.Reason, t.Message))
		}
		fmt.Fprintf(w, "  %s %s\t%s\n", st.Ref.Kind, st.Ref.Name, strings.Join(carries, "; "))
	}
	return w.Flush()
}

func printStatus(out io.Writer, p *v1alpha1.TrafficPolicy, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	st := p.Status
	fmt.Fprintf(w, "Policy:\t%s/%s\n", p.Namespace, p.Name)
	fmt.Fprintf(w, "Action:\t%s\n", p.Spec.Action)
	phase := orNone(string(st.Phase))
	if st.Ramp != nil && (st.Phase == v1alpha1.PhaseRamping || st.Phase == v1alpha1.PhasePaused) {
		phase += "   step " + st.Progress
		switch {
		case st.Ramp.AwaitingApproval:
			phase += "   waiting for approve"
		case st.Phase == v1alpha1.PhasePaused:
			phase += "   paused"
		case st.Ramp.NextStepAt != nil && st.Ramp.NextStepAt.After(now):
			phase += "   hold left " + duration.HumanDuration(st.Ramp.NextStepAt.Sub(now))
		case len(st.Ramp.Gates) > 0:
			phase += "   hold over; waiting for the gates"
		}
	}
	if st.Phase == v1alpha1.PhaseReleasing && st.ReleaseAt != nil {
		phase += "   autoscalers released in " + duration.HumanDuration(max(st.ReleaseAt.Sub(now), 0))
	}
	fmt.Fprintf(w, "Phase:\t%s\n", phase)
	if st.Ramp != nil && len(st.Ramp.Gates) > 0 && st.Phase != v1alpha1.PhaseCompleted {
		fmt.Fprintln(w, "Gates:")
		for _, g := range st.Ramp.Gates {
			read := ""
			if g.ReadAt != nil {
				read = "read " + duration.HumanDuration(max(now.Sub(g.ReadAt.Time), 0)) + " ago"
			}
			line := fmt.Sprintf("  %s\t%s  %s  %s", g.Name, g.Verdict, g.Reading, read)
			if g.Reason != "" {
				line += "  (" + g.Reason + ")"
			}
			fmt.Fprintln(w, line)
		}
		if st.Ramp.GatesPassingSince != nil {
			fmt.Fprintf(w, "  \tall passing for %s\n", duration.HumanDuration(max(now.Sub(st.Ramp.GatesPassingSince.Time), 0)))
		}
	}
	for _, t := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionDegraded, v1alpha1.ConditionProgressing,
		v1alpha1.ConditionGateUnknown, v1alpha1.ConditionLeverStale, v1alpha1.ConditionStepUnsupported, v1alpha1.ConditionArmed, v1alpha1.ConditionConfirmed} {
		if c := condition(p, t); c != nil {
			since := ""
			if t == v1alpha1.ConditionConfirmed && c.Status == metav1.ConditionTrue {
				since = " (since " + duration.HumanDuration(max(now.Sub(c.LastTransitionTime.Time), 0)) + " ago)"
			}
			fmt.Fprintf(w, "%s:\t%s (%s) %s%s\n", t, c.Status, c.Reason, c.Message, since)
		}
	}
	fmt.Fprintln(w, "Targets:")
	for _, t := range st.Targets {
		fmt.Fprintf(w, "  %s %s\t%s\n", t.Kind, t.Name, describeApplied(t))
		if t.Reason != "" {
			fmt.Fprintf(w, "  \tNOT APPLIED (%s): %s\n", t.Reason, t.Message)
		}
		for _, u := range t.Unsupported {
			fmt.Fprintf(w, "  \tcannot take %s\n", u)
		}
		fmt.Fprint(w, armedLine(t.Armed, t.ArmedMessage))
		switch {
		case t.ConfirmedAt != nil:
			fmt.Fprintf(w, "  \tconfirmed in the data plane %s ago\n", duration.HumanDuration(max(now.Sub(t.ConfirmedAt.Time), 0)))
		case t.ConfirmMessage != "":
			fmt.Fprintf(w, "  \tNOT CONFIRMED: %s\n", t.ConfirmMessage)
		}
		if c := t.Capabilities; c != nil {
			limit := "no rate limit"
			if c.RateLimitStatusCode != 0 {
				limit = fmt.Sprintf("rate limit %s, answered %d", c.RateLimitScope, c.RateLimitStatusCode)
				if c.RateLimitBurstMultiplier > 0 {
					limit += fmt.Sprintf(" after a first burst of up to %d× the rate", c.RateLimitBurstMultiplier)
				}
			}
			fmt.Fprintf(w, "  \tvia %s%s: %s; requests without the region header %s\n", c.Provider, onDataPlanes(t.DataPlanes), limit,
				map[bool]string{true: "can be shed", false: "are always admitted"}[c.MissingRegionShed])
		}
		if t.Companion != "" {
			fmt.Fprintf(w, "  \tcanary Ingress %s\n", t.Companion)
		}
		for _, warn := range t.Warnings {
			fmt.Fprintf(w, "  \twarning: %s\n", warn)
		}
		if len(t.SharedUpstreamIngresses) > 0 {
			fmt.Fprintf(w, "  \tshared upstream with: %s\n", strings.Join(t.SharedUpstreamIngresses, ", "))
		}
	}
	if len(st.Autoscalers) > 0 {
		fmt.Fprintln(w, "Autoscalers:")
		for _, a := range st.Autoscalers {
			kind := string(a.Kind)
			if kind == "" {
				kind = string(v1alpha1.AutoscalerKindHPA)
			}
			switch {
			case !a.Found:
				fmt.Fprintf(w, "  %s %s\tnot found\n", kind, a.Name)
			case a.Reason != "":
				fmt.Fprintf(w, "  %s %s\tNOT HELD (%s): %s\n", kind, a.Name, a.Reason, a.Message)
			case a.Held && st.ReleaseStage > 0:
				fmt.Fprintf(w, "  %s %s\treleasing (stage %d of %d): bounded scale-down, minimum %d (held at %d)\n",
					kind, a.Name, st.ReleaseStage, knobs.ReleaseStages, a.MinReplicas, a.HeldMinReplicas)
			case a.Held:
				fmt.Fprintf(w, "  %s %s\theld: no scale-down, minReplicas %d\n", kind, a.Name, a.HeldMinReplicas)
			default:
				fmt.Fprintf(w, "  %s %s\tnot held\n", kind, a.Name)
			}
			fmt.Fprint(w, armedLine(a.Armed, a.ArmedMessage))
		}
	}
	if len(st.KeptChanges) > 0 {
		under := ""
		if st.KeptChangesEarlier {
			under = " (under an earlier action)"
		}
		fmt.Fprintf(w, "Kept others' changes%s:\t%s\n", under, strings.Join(st.KeptChanges, ", "))
	}
	if n := len(st.History); n > 0 {
		t := st.History[n-1]
		fmt.Fprintf(w, "Last transition:\t%s %s: %s%s\n", t.Time.UTC().Format(time.RFC3339), t.Reason, t.Message, byNote(t))
	}
	_ = w.Flush()
	for _, t := range st.Targets {
		printRecordDiff(out, string(t.Kind)+" "+t.Name, t.RestoreRecord)
	}
}

// printRecordDiff shows what Floodgate changed on a target, from its restore record: each field
// as the user had it and as Floodgate set it (an HTTPRoute's rules, an Ingress's limit-rps).
func printRecordDiff(out io.Writer, name, record string) {
	if record == "" {
		return
	}
	rec, err := restore.Decode(record)
	if err != nil {
		fmt.Fprintf(out, "%s: the restore record cannot be read: %v\n", name, err)
		return
	}
	for _, f := range rec.Fields {
		var before, after any
		if !f.Absent {
			_ = json.Unmarshal(f.Original, &before)
		}
		_ = json.Unmarshal(f.Set, &after)
		a, _ := yaml.Marshal(map[string]any{f.PathString(): before})
		b, _ := yaml.Marshal(map[string]any{f.PathString(): after})
		if f.Absent {
			a = nil
		}
		diff, _ := unifiedDiff(string(a), string(b), name+" "+f.PathString()+" (yours)", name+" "+f.PathString()+" (Floodgate's, in force)")
		fmt.Fprint(out, diff)
	}
}

// armedLine says what the API server said of an object's levers in a dry run ("" not judged).
func armedLine(armed *bool, message string) string {
	switch {
	case armed == nil:
		return ""
	case *armed:
		return "  \tarmed: the API server accepts every lever\n"
	}
	return "  \tNOT ARMED: the API server refuses " + message + "\n"
}

func describeApplied(t v1alpha1.TargetStatus) string {
	if !t.Found {
		return "not found"
	}
	a := t.Applied
	var parts []string
	if a.Shed {
		return "every request shed"
	}
	if len(a.AllowRegions) > 0 {
		parts = append(parts, "admit regions "+strings.Join(a.AllowRegions, ","))
	}
	if a.AdmitPercent > 0 {
		parts = append(parts, fmt.Sprintf("admit %d%%", a.AdmitPercent))
	}
	if a.PerClientRequestsPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%d requests/s per client per replica", a.PerClientRequestsPerSecond))
	}
	if len(parts) == 0 {
		return "full traffic (nothing applied)"
	}
	return strings.Join(parts, "; ")
}

func byNote(t v1alpha1.Transition) string {
	switch {
	case t.By != "" && t.Note != "":
		return fmt.Sprintf(" (by %s: %s)", t.By, t.Note)
	case t.By != "":
		return " (by " + t.By + ")"
	case t.Note != "":
		return " (" + t.Note + ")"
	}
	return ""
}

func (o *Options) historyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history POLICY",
		Short: "Show the last transitions the controller kept in status (Events expire after an hour)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := o.get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TIME\tACTION\tPHASE\tSTEP\tREASON\tBY\tNOTE\tMESSAGE")
			for _, t := range p.Status.History {
				step := "-"
				if t.Step > 0 {
					step = fmt.Sprint(t.Step)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Time.UTC().Format(time.RFC3339), t.Action, t.Phase, step,
					t.Reason, orNone(t.By), orNone(t.Note), t.Message)
			}
			return w.Flush()
		},
	}
}

func (o *Options) listCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the TrafficPolicies and where each stands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list v1alpha1.TrafficPolicyList
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(o.namespace))
			}
			if err := o.client.List(cmd.Context(), &list, opts...); err != nil {
				return o.explain(err, "list", "")
			}
			w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAMESPACE\tNAME\tACTION\tPHASE\tSTEP\tREADY\tSINCE")
			for _, p := range list.Items {
				ready, since := "-", "-"
				if c := condition(&p, v1alpha1.ConditionReady); c != nil {
					ready = string(c.Status)
				}
				if p.Status.ActionChangedAt != nil {
					since = duration.HumanDuration(o.Clock.Since(p.Status.ActionChangedAt.Time))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, p.Spec.Action, orNone(string(p.Status.Phase)),
					orNone(p.Status.Progress), ready, since)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the policies of every namespace")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
