package controlplane

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weft-mesh/weft/kube/inject"
)

// The telemetry (metrics, spans, the traffic graph) lives in each
// replica's memory, so it must all reach one replica, and the console must
// read that one: the leader. In a pod, the leader labels its own pod
// inject.LabelLeader; Service inject.LeaderServiceName selects the
// labelled pod, so the proxies' reports and the console's reads go to the
// leader alone (a Patroni-style role label). The other replicas refuse
// reports with 503 and close the connection: a proxy whose kept-alive
// connection still reaches a former leader reconnects through the Service.
// Reports are deltas the proxies keep until one is accepted, so a failover
// loses none; the new leader's graph starts from its first reports.

// leaderLabelRecheck is how often the leader checks that its pod still
// carries the label (level-triggered: someone may remove it).
const leaderLabelRecheck = 30 * time.Second

// labelsPatch is a merge patch setting (value "true") or removing (nil)
// the leader label.
func labelsPatch(set bool) []byte {
	var v any
	if set {
		v = "true"
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{inject.LabelLeader: v}}})
	return b
}

// setLeaderLabel sets or removes the leader label on this replica's pod.
func (c *ControlPlane) setLeaderLabel(ctx context.Context, set bool) error {
	pods := c.kube.Clients.Kube.CoreV1().Pods(c.kube.Namespace)
	pod, err := pods.Get(ctx, c.kube.PodName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if _, has := pod.Labels[inject.LabelLeader]; has == set {
		return nil
	}
	_, err = pods.Patch(ctx, c.kube.PodName, types.MergePatchType, labelsPatch(set), metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

// clearLeaderLabel removes a label a previous run of this pod's container
// left (the pod outlives a crashed container), before the election.
func (c *ControlPlane) clearLeaderLabel(ctx context.Context) {
	if c.kube.PodName == "" {
		return
	}
	if err := c.setLeaderLabel(ctx, false); err != nil && !apierrors.IsNotFound(err) {
		c.log.Warn("could not remove a stale leader label from this pod", "pod", c.kube.PodName, "err", err)
	}
}

// labelLeaderPod is an OnLeader writer: it labels this replica's pod for
// the term, and removes the label when the term ends.
func (c *ControlPlane) labelLeaderPod(term context.Context) {
	if c.kube.PodName == "" {
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.setLeaderLabel(ctx, false); err != nil && !apierrors.IsNotFound(err) {
			c.log.Warn("could not remove the leader label", "pod", c.kube.PodName, "err", err)
		}
	}()
	wait := time.Duration(0)
	for {
		select {
		case <-term.Done():
			return
		case <-time.After(wait):
		}
		wait = leaderLabelRecheck
		if err := c.setLeaderLabel(term, true); err != nil && term.Err() == nil {
			c.log.Warn("could not label this pod as the leader; retrying", "pod", c.kube.PodName, "err", err)
			wait = time.Second
		}
	}
}

// leaderOnlyIntake refuses telemetry reports at a replica that does not
// lead, when replicas run in pods (and so the leader's Service routes the
// reports): 503, closing the connection.
func (c *ControlPlane) leaderOnlyIntake(next http.Handler) http.Handler {
	if c.kube == nil || c.kube.PodName == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.IsLeader() {
			w.Header().Set("Connection", "close")
			http.Error(w, "this control plane replica does not lead: telemetry goes to Service "+inject.LeaderServiceName, http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}
