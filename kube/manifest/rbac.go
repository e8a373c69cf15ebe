package manifest

import (
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/kube/webhook"
)

var read = []string{"get", "list", "watch"}

// ClusterRules are the control plane's cluster-wide permissions: read
// everything it watches; write what a Canary releases (Deployments,
// Services); write its kinds (its API writes to the cluster:
// `weft apply`, WorkloadEntries of joining VMs) and their status, the
// root-cert ConfigMaps it publishes in every namespace, events,
// TokenReviews, and the caBundle of its own webhook configurations. A kind
// added to config.Kinds is added here too.
func ClusterRules() []rbacv1.PolicyRule {
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "services", "endpoints", "namespaces", "nodes", "serviceaccounts"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: read},
		// The canary controller (Kubernetes target): NAME-primary and the
		// target's replicas; Services NAME, NAME-primary and NAME-canary.
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"create", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "update", "patch"}},
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: read},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}, Verbs: read},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"},
			ResourceNames: []string{webhook.InjectorConfig}, Verbs: []string{"update", "patch"}},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"},
			ResourceNames: []string{webhook.ValidatorConfig}, Verbs: []string{"update", "patch"}},
	}
	byGroup := map[string][]string{}
	for _, k := range config.Kinds {
		byGroup[k.Group] = append(byGroup[k.Group], k.Plural)
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		var status []string
		for _, p := range byGroup[g] {
			status = append(status, p+"/status")
		}
		rules = append(rules,
			rbacv1.PolicyRule{APIGroups: []string{g}, Resources: byGroup[g], Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			rbacv1.PolicyRule{APIGroups: []string{g}, Resources: status, Verbs: []string{"get", "update", "patch"}},
		)
	}
	return rules
}
