package canary

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/store"
)

// Guard checks a user's write (objects to apply, keys to delete) against
// the Canaries in st: an object a Canary owns (AnnotationOwner naming a
// Canary that exists) is the Canary's to write while it exists, and two
// Canaries may not release the same workload. A refusal is returned as a
// message naming the Canary and what to do instead; err is for failures to
// read the store. The API calls it before writing; in Kubernetes the
// validating webhook does.
func Guard(ctx context.Context, st store.Store, writes []*config.Object, deletes []config.Key) (refusal string, err error) {
	var msgs []string
	owner := func(k config.Key) (string, error) {
		o, err := st.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		name := o.Meta.Annotations[AnnotationOwner]
		if name == "" {
			return "", nil
		}
		if _, err := st.Get(ctx, config.Key{Kind: config.KindCanary, Namespace: k.Namespace, Name: name}); errors.Is(err, store.ErrNotFound) {
			return "", nil // the Canary is gone: the object is the user's again
		} else if err != nil {
			return "", err
		}
		return name, nil
	}
	check := func(k config.Key, verb string) error {
		switch k.Kind {
		case config.KindVirtualService, config.KindDestinationRule, config.KindServiceEntry:
		default:
			return nil
		}
		name, err := owner(k)
		if err != nil || name == "" {
			return err
		}
		msgs = append(msgs, fmt.Sprintf("%s %s/%s is managed by Canary %s/%s: weft writes it while the Canary exists, so it cannot be %s; change the Canary's spec.service instead, or delete the Canary first",
			k.Kind, k.Namespace, k.Name, k.Namespace, name, verb))
		return nil
	}
	targets := map[string]string{} // namespace/target -> canary, this batch
	for _, o := range writes {
		if err := check(o.Key(), "changed"); err != nil {
			return "", err
		}
		if o.Kind != config.KindCanary {
			continue
		}
		target := o.Meta.Namespace + "/" + o.Spec.(*flaggerv1beta1.Canary).GetTargetRef().GetName()
		if other, dup := targets[target]; dup {
			msgs = append(msgs, fmt.Sprintf("Canaries %s and %s both release %s; one Canary per workload", other, o.Meta.Name, target))
			continue
		}
		targets[target] = o.Meta.Name
		existing, _, err := st.List(ctx, config.KindCanary, o.Meta.Namespace)
		if err != nil {
			return "", err
		}
		for _, e := range existing {
			if e.Meta.Name != o.Meta.Name && e.Spec.(*flaggerv1beta1.Canary).GetTargetRef().GetName() == o.Spec.(*flaggerv1beta1.Canary).GetTargetRef().GetName() {
				msgs = append(msgs, fmt.Sprintf("Canary %s/%s already releases %s; one Canary per workload", e.Meta.Namespace, e.Meta.Name, target))
			}
		}
	}
	for _, k := range deletes {
		if err := check(k, "deleted"); err != nil {
			return "", err
		}
	}
	return strings.Join(msgs, "\n"), nil
}
