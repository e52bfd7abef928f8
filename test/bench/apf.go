package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// --- (h) ------------------------------------------------------------------------------------

// apfBefore is config/apf as it was before the manager's level admitted only Floodgate's
// ServiceAccounts: any authenticated user's get of a policy landed in it. The baseline.
const apfBefore = `apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: floodgate-responders
spec:
  priorityLevelConfiguration: {name: floodgate}
  matchingPrecedence: 1001
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects:
    - kind: Group
      group: {name: system:authenticated}
    resourceRules:
    - verbs: [get, patch, update]
      apiGroups: [traffic.floodgate.dev]
      resources: [trafficpolicies]
      namespaces: ["*"]
`

// apfFlood measures a ShedAll of a fleet by the manager running as its ServiceAccount (so API
// Priority and Fairness classifies it; the bench's admin is exempt), alone and while a user with
// no RBAC floods GETs of the policy, under the old FlowSchemas (the baseline, same run) and
// under config/apf.
func (x *b) apfFlood() error {
	x.mgr.stop() // one manager leads at a time: this row's runs as the ServiceAccount
	sa := "system:serviceaccount:floodgate-system:floodgate-manager"
	user, err := x.cp.Env.AddUser(envtest.User{Name: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:floodgate-system"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(x.bin, "manager-sa.kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	if err := x.create(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bench-manager-sa"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: sa}}}); err != nil {
		return err
	}
	mallory, err := x.cp.Env.AddUser(envtest.User{Name: "mallory"}, nil)
	if err != nil {
		return err
	}
	floodCfg := mallory.Config()

	ns := "bench-h"
	p, err := x.selectorFleet(ns, "apf", *apfFleet)
	if err != nil {
		return err
	}
	if err := x.create(p); err != nil {
		return err
	}
	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	before := filepath.Join(x.bin, "apf-before.yaml")
	if err := os.WriteFile(before, []byte(apfBefore), 0o644); err != nil {
		return err
	}
	mgr, err := x.startManagerWith(kubeconfig)
	if err != nil {
		return err
	}
	x.mgr = mgr
	if err := x.settled(ns, "fleet", v1alpha1.PhaseNormal); err != nil {
		return err
	}
	shedAll := func(flood bool) (time.Duration, int64, error) {
		events, stop, err := x.watchIngresses(ns)
		if err != nil {
			return 0, 0, err
		}
		defer stop()
		ctx, cancel := context.WithTimeout(x.ctx, 5*time.Minute)
		defer cancel()
		var sent atomic.Int64
		var wg sync.WaitGroup
		if flood {
			if err := floodGets(ctx, &wg, &sent, floodCfg, fmt.Sprintf("/apis/traffic.floodgate.dev/v1alpha1/namespaces/%s/trafficpolicies/fleet", ns)); err != nil {
				return 0, 0, err
			}
			time.Sleep(2 * time.Second) // the flood is on before the lever is pulled
		}
		start := time.Now()
		if err := x.setAction(ns, "fleet", v1alpha1.ActionShedAll); err != nil {
			return 0, 0, err
		}
		err = awaitCanaries(events, *apfFleet, true, 4*time.Minute)
		took := time.Since(start)
		cancel()
		wg.Wait()
		if err != nil {
			return 0, 0, err
		}
		if err := x.settled(ns, "fleet", v1alpha1.PhaseShedding); err != nil {
			return 0, 0, err
		}
		if err := x.setAction(ns, "fleet", v1alpha1.ActionNormal); err != nil {
			return 0, 0, err
		}
		if err := awaitCanaries(events, *apfFleet, false, 4*time.Minute); err != nil {
			return 0, 0, err
		}
		return took, sent.Load(), x.settled(ns, "fleet", v1alpha1.PhaseNormal)
	}
	type run struct {
		what  string
		apf   string
		flood bool
	}
	apf := filepath.Join(root, "config", "apf")
	runs := []run{{"before, no flood", before, false}, {"config/apf, no flood", apf, false}, {"before, flood", before, true}, {"config/apf, flood", apf, true}}
	took := map[string][]time.Duration{}
	sent := map[string]int64{}
	for range *apfReps { // interleaved, so the order of the runs favours neither
		for _, r := range runs {
			// config/apf first (the levels, the manager's schema); the baseline then puts the old
			// floodgate-responders schema (same name) in place of the new one.
			if out, err := x.kubectl("apply", "-k", apf); err != nil {
				return fmt.Errorf("applying config/apf: %v\n%s", err, out)
			}
			if r.apf == before {
				if out, err := x.kubectl("apply", "-f", before); err != nil {
					return fmt.Errorf("applying the old FlowSchema: %v\n%s", err, out)
				}
			}
			d, n, err := shedAll(r.flood)
			if err != nil {
				return fmt.Errorf("%s: %w", r.what, err)
			}
			took[r.what] = append(took[r.what], d)
			sent[r.what] += n
		}
	}
	for _, r := range runs {
		value := secs(percentile(took[r.what], 50))
		if r.flood {
			value += fmt.Sprintf(" (%d GETs per run by a user with no RBAC meanwhile)", sent[r.what]/int64(*apfReps))
		}
		x.add("h", fmt.Sprintf("ShedAll of %d Ingresses by the manager as its ServiceAccount, FlowSchemas %s (median of %d)", *apfFleet, r.what, *apfReps), value, "", true)
	}
	slow := func(k string) float64 {
		return float64(percentile(took[k+", flood"], 50)) / float64(percentile(took[k+", no flood"], 50))
	}
	x.add("h", "slowdown under the flood, before (any user's get of a policy in the manager's level)", fmt.Sprintf("%.2f×", slow("before")), "", true)
	x.add("h", "slowdown under the flood, config/apf (the manager's level admits only Floodgate's ServiceAccounts)", fmt.Sprintf("%.2f×", slow("config/apf")), "", true)
	return nil
}

// floodGets sends GETs of path as cfg's user from 64 workers until ctx ends; sent counts them.
func floodGets(ctx context.Context, wg *sync.WaitGroup, sent *atomic.Int64, cfg *rest.Config, path string) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+path, nil)
				if err != nil {
					return
				}
				res, err := hc.Do(req)
				if err != nil {
					if errors.Is(ctx.Err(), context.Canceled) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
						return
					}
					continue
				}
				_ = res.Body.Close()
				sent.Add(1)
			}
		}()
	}
	return nil
}
