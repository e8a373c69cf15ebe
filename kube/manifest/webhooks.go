package manifest

import (
	"sort"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/webhook"
)

// WebhookTarget says how the API server reaches the webhooks and which
// namespaces they cover. The zero value is the install: the istiod
// Service, every namespace, Istio's configuration names.
type WebhookTarget struct {
	// URL, when set, is the webhook server's base URL
	// (https://HOST:PORT) instead of the istiod Service.
	URL string
	// CABundle verifies the server; empty in the install, where the
	// control plane's leader fills it in.
	CABundle []byte
	// Namespaces, when set, limits every webhook to these namespaces
	// (tests on a shared cluster).
	Namespaces []string
	// NamePrefix is prepended to the configurations' names.
	NamePrefix string
}

func (t WebhookTarget) clientConfig(path string) admissionregv1.WebhookClientConfig {
	cc := admissionregv1.WebhookClientConfig{CABundle: t.CABundle}
	if t.URL != "" {
		u := t.URL + path
		cc.URL = &u
		return cc
	}
	port := int32(inject.WebhookServicePort)
	cc.Service = &admissionregv1.ServiceReference{Namespace: inject.SystemNamespace, Name: inject.ControlPlaneName, Path: &path, Port: &port}
	return cc
}

// limit adds the namespace restriction to a selector.
func (t WebhookTarget) limit(s *metav1.LabelSelector) *metav1.LabelSelector {
	if len(t.Namespaces) == 0 {
		return s
	}
	if s == nil {
		s = &metav1.LabelSelector{}
	}
	s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: t.Namespaces,
	})
	return s
}

// Namespaces that no injection webhook ever sees unless labelled: the
// Kubernetes system namespaces, and the control plane's own (its pods
// must start while the webhook is down).
var excludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", inject.SystemNamespace}

// Injector returns the MutatingWebhookConfiguration for sidecar
// injection, three webhooks to one handler:
//   - namespace.sidecar-injector.istio.io: namespaces labelled
//     istio-injection=enabled, pods not labelled sidecar.istio.io/inject=false;
//   - object.sidecar-injector.istio.io: pods labelled
//     sidecar.istio.io/inject=true in unlabelled namespaces (Istio);
//   - member.sidecar-injector.istio.io: the other pods of unlabelled
//     namespaces, for the annotation sidecar.istio.io/inject: "true" in
//     mesh member namespaces (Maistra; a selector cannot read annotations,
//     so the handler decides). It fails open: a control plane that is down
//     must not stop every pod in the cluster from starting.
func Injector(t WebhookTarget) *admissionregv1.MutatingWebhookConfiguration {
	fail, ignore := admissionregv1.Fail, admissionregv1.Ignore
	none := admissionregv1.SideEffectClassNone
	never := admissionregv1.NeverReinvocationPolicy
	equivalent := admissionregv1.Equivalent
	timeout := int32(10)
	rules := []admissionregv1.RuleWithOperations{{
		Operations: []admissionregv1.OperationType{admissionregv1.Create},
		Rule:       admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
	unlabelled := func() *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: inject.LabelInjection, Operator: metav1.LabelSelectorOpDoesNotExist},
			{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excludedNamespaces},
		}}
	}
	hook := func(name string, ns, obj *metav1.LabelSelector, policy *admissionregv1.FailurePolicyType) admissionregv1.MutatingWebhook {
		return admissionregv1.MutatingWebhook{
			Name: name, ClientConfig: t.clientConfig(webhook.InjectPath), Rules: rules,
			FailurePolicy: policy, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"}, ReinvocationPolicy: &never,
			NamespaceSelector: t.limit(ns), ObjectSelector: obj,
		}
	}
	return &admissionregv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: t.NamePrefix + webhook.InjectorConfig, Labels: labels(nil)},
		Webhooks: []admissionregv1.MutatingWebhook{
			hook("namespace.sidecar-injector.istio.io",
				&metav1.LabelSelector{MatchLabels: map[string]string{inject.LabelInjection: "enabled"}},
				&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: inject.LabelOrAnnotationInject, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}},
				}}, &fail),
			hook("object.sidecar-injector.istio.io", unlabelled(),
				&metav1.LabelSelector{MatchLabels: map[string]string{inject.LabelOrAnnotationInject: "true"}}, &fail),
			hook("member.sidecar-injector.istio.io", unlabelled(),
				&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: inject.LabelOrAnnotationInject, Operator: metav1.LabelSelectorOpDoesNotExist},
				}}, &ignore),
		},
	}
}

// Validator returns the ValidatingWebhookConfiguration: creates and
// updates of every kind in config.Kinds go to the validating handler,
// which refuses what `weft apply` refuses (and, as the API does, changes
// to what a Canary owns), and deletes of VirtualServices,
// DestinationRules and ServiceEntries, for the Canary guard.
func Validator(t WebhookTarget) *admissionregv1.ValidatingWebhookConfiguration {
	fail := admissionregv1.Fail
	none := admissionregv1.SideEffectClassNone
	equivalent := admissionregv1.Equivalent
	scope := admissionregv1.NamespacedScope
	timeout := int32(10)
	byGroup := map[string][]string{}
	var groups []string
	for _, k := range config.Kinds {
		if _, ok := byGroup[k.Group]; !ok {
			groups = append(groups, k.Group)
		}
		byGroup[k.Group] = append(byGroup[k.Group], k.Plural)
	}
	sort.Strings(groups)
	var rules []admissionregv1.RuleWithOperations
	for _, g := range groups {
		rules = append(rules, admissionregv1.RuleWithOperations{
			Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
			Rule:       admissionregv1.Rule{APIGroups: []string{g}, APIVersions: []string{"*"}, Resources: byGroup[g], Scope: &scope},
		})
	}
	// Deleting what a Canary owns is refused too (canary.Guard); that
	// webhook fails open: with the control plane down, deletes (a
	// namespace's, say) must not be stuck.
	ignore := admissionregv1.Ignore
	deletes := []admissionregv1.RuleWithOperations{{
		Operations: []admissionregv1.OperationType{admissionregv1.Delete},
		Rule: admissionregv1.Rule{APIGroups: []string{"networking.istio.io"}, APIVersions: []string{"*"},
			Resources: []string{"virtualservices", "destinationrules", "serviceentries"}, Scope: &scope},
	}}
	return &admissionregv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: t.NamePrefix + webhook.ValidatorConfig, Labels: labels(nil)},
		Webhooks: []admissionregv1.ValidatingWebhook{{
			Name: "validation.istio.io", ClientConfig: t.clientConfig(webhook.ValidatePath), Rules: rules,
			FailurePolicy: &fail, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: t.limit(nil),
		}, {
			Name: "canary.validation.weft.io", ClientConfig: t.clientConfig(webhook.ValidatePath), Rules: deletes,
			FailurePolicy: &ignore, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"}, NamespaceSelector: t.limit(nil),
		}},
	}
}
