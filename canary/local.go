package canary

import (
	"context"
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/store"
)

// AnnotationRetired, on the primary service a local target writes, lists
// the versions that were the primary before (comma-separated): they may
// keep running after a promotion, but are never taken for a new canary.
const AnnotationRetired = "weft.io/canary-retired"

// Local is the Target of local mode. targetRef {kind: Service or
// Deployment, name: NAME} means the instances (WorkloadEntries, as `weft
// run` registers them) labelled app=NAME in the Canary's namespace; each
// value of their version label is a revision, whose ID is that value. The
// primary and canary services are ServiceEntries NAME-primary and
// NAME-canary selecting {app: NAME, version: V}.
type Local struct {
	Store store.Store
	// Connected reports whether the sidecar with this xDS node ID is
	// connected: an instance registered by a sidecar (annotation
	// weft.io/proxy) is ready only then. nil: every instance is ready.
	Connected func(nodeID string) bool
}

var _ Target = (*Local)(nil)

// HostsOf names the services of a Canary, as Flagger does: the apex
// service spec.service.name (default targetRef.name), NAME-primary and
// NAME-canary, on spec.service.port.
func HostsOf(cd *config.Object) Hosts {
	spec := cd.Spec.(*flaggerv1beta1.Canary)
	apex := spec.GetService().GetName()
	if apex == "" {
		apex = spec.GetTargetRef().GetName()
	}
	return Hosts{Apex: apex, Primary: apex + "-primary", Canary: apex + "-canary", Port: uint32(spec.GetService().GetPort())}
}

// Observe implements Target.
func (l *Local) Observe(ctx context.Context, cd *config.Object) (Observation, error) {
	spec := cd.Spec.(*flaggerv1beta1.Canary)
	ns, app := cd.Meta.Namespace, spec.GetTargetRef().GetName()
	objs, _, err := l.Store.List(ctx, "", ns)
	if err != nil {
		return Observation{}, fmt.Errorf("read %s: %w", ns, err)
	}
	obs := Observation{Revisions: map[string]Revision{}, Hosts: HostsOf(cd)}
	var problems, candidateProblems []string
	if _, err := apexPort(objs, obs.Hosts, ns); err != nil {
		problems = append(problems, err.Error())
	}

	// Instances, by version.
	groups := map[string]*versionGroup{}
	for _, o := range objs {
		if o.Kind != config.KindWorkloadEntry {
			continue
		}
		we := o.Spec.(*networking.WorkloadEntry)
		labels := merged(o.Meta.Labels, we.GetLabels())
		if labels["app"] != app {
			continue
		}
		v, ok := labels["version"]
		if !ok || v == "" {
			candidateProblems = append(candidateProblems, fmt.Sprintf("instance %s of %s has no version label: weft tells revisions apart by it", o.Meta.Name, app))
			continue
		}
		g := groups[v]
		if g == nil {
			g = &versionGroup{}
			groups[v] = g
		}
		g.total++
		if id := o.Meta.Annotations[config.AnnotationProxy]; id != "" && l.Connected != nil && !l.Connected(id) {
			g.notReady = append(g.notReady, o.Meta.Name)
		} else {
			g.ready++
		}
		wl := labels[config.LabelWorkload]
		if wl == "" {
			wl = o.Meta.Name
		}
		g.workloads = appendNew(g.workloads, wl)
	}

	primary, retired, err := l.primary(objs, cd, obs.Hosts, groups)
	if err != nil {
		problems = append(problems, err.Error())
	}
	obs.Primary = primary
	a := spec.GetAnalysis()
	var candidates []string
	for v, g := range groups {
		threshold := a.GetCanaryReadyThreshold()
		if a.CanaryReadyThreshold == nil {
			threshold = 100
		}
		if v == primary {
			threshold = a.GetPrimaryReadyThreshold()
			if a.PrimaryReadyThreshold == nil {
				threshold = 100
			}
		} else if !retired[v] {
			candidates = append(candidates, v)
		}
		sort.Strings(g.workloads)
		r := Revision{ID: v, Instances: g.total, Workloads: g.workloads,
			MetricLabels: map[string]string{"destination_app": app, "destination_version": v, "destination_workload_namespace": ns}}
		r.Ready = g.total > 0 && g.ready*100 >= int(threshold)*g.total
		if !r.Ready {
			sort.Strings(g.notReady)
			r.NotReady = fmt.Sprintf("%d of %d instances of %s %s ready (sidecar not connected: %s; %d%% needed)",
				g.ready, g.total, app, v, strings.Join(g.notReady, ", "), threshold)
		}
		obs.Revisions[v] = r
	}
	if primary != "" {
		if _, ok := obs.Revisions[primary]; !ok {
			obs.Revisions[primary] = Revision{ID: primary, NotReady: fmt.Sprintf("no instance of %s %s (app=%s, version=%s) is registered", app, primary, app, primary),
				MetricLabels: map[string]string{"destination_app": app, "destination_version": primary, "destination_workload_namespace": ns}}
		}
	}
	sort.Strings(candidates)
	switch len(candidates) {
	case 0:
	case 1:
		obs.Candidate = candidates[0]
	default:
		candidateProblems = append(candidateProblems, fmt.Sprintf("%s has %d new versions (%s); a release takes one: stop all but one",
			app, len(candidates), strings.Join(candidates, ", ")))
	}
	obs.Problem = strings.Join(problems, "; ")
	obs.CandidateProblem = strings.Join(candidateProblems, "; ")
	return obs, nil
}

// versionGroup is what Observe counts of one version's instances.
type versionGroup struct {
	total, ready        int
	notReady, workloads []string
}

// primary finds the primary version: the one the Canary's primary service
// selects, else the one the apex VirtualService sends all traffic to,
// else the only version running. It also returns the retired versions.
func (l *Local) primary(objs []*config.Object, cd *config.Object, h Hosts, groups map[string]*versionGroup) (string, map[string]bool, error) {
	retired := retiredOf(objs, cd)
	if v := selectedVersion(objs, cd, h.Primary); v != "" {
		return v, retired, nil
	}
	if v, err := routedVersion(objs, cd, h); v != "" || err != nil {
		return v, retired, err
	}
	app := cd.Spec.(*flaggerv1beta1.Canary).GetTargetRef().GetName()
	var versions []string
	for v := range groups {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	switch len(versions) {
	case 0:
		return "", retired, fmt.Errorf("no instance of %s (app=%s) is registered in namespace %s yet", app, app, cd.Meta.Namespace)
	case 1:
		return versions[0], retired, nil
	}
	return "", retired, fmt.Errorf("%s runs versions %s and no VirtualService says which one takes its traffic: route it all to one version's subset first, or stop the others",
		app, strings.Join(versions, ", "))
}

// routedVersion reads, before the takeover, the version the apex
// VirtualService sends all of the service's traffic to ("" when there is
// no such VirtualService).
func routedVersion(objs []*config.Object, cd *config.Object, h Hosts) (string, error) {
	ns := cd.Meta.Namespace
	var vss []*config.Object
	for _, o := range objs {
		if o.Kind == config.KindVirtualService {
			vss = append(vss, o)
		}
	}
	vs, owned, err := findApex(vss, cd, h)
	if err != nil || vs == nil || owned {
		return "", err
	}
	subsets := map[string]bool{}
	for _, r := range vs.Spec.(*networking.VirtualService).GetHttp() {
		for _, d := range r.GetRoute() {
			if !routesHost([]string{d.GetDestination().GetHost()}, h.Apex, ns) || (d.GetWeight() == 0 && len(r.GetRoute()) > 1) {
				continue
			}
			if d.GetDestination().GetSubset() == "" {
				return "", fmt.Errorf("VirtualService %s sends %s's traffic to every version (a destination without subset); route it all to one version's subset first", vs.Meta.Name, h.Apex)
			}
			subsets[d.GetDestination().GetSubset()] = true
		}
	}
	if len(subsets) == 0 {
		return "", nil
	}
	var names []string
	for s := range subsets {
		names = append(names, s)
	}
	sort.Strings(names)
	if len(names) > 1 {
		return "", fmt.Errorf("VirtualService %s splits %s's traffic between subsets %s; route it all to one version first", vs.Meta.Name, h.Apex, strings.Join(names, ", "))
	}
	for _, o := range objs {
		if o.Kind != config.KindDestinationRule {
			continue
		}
		dr := o.Spec.(*networking.DestinationRule)
		if !routesHost([]string{dr.GetHost()}, h.Apex, ns) {
			continue
		}
		for _, sub := range dr.GetSubsets() {
			if sub.GetName() == names[0] {
				if v := sub.GetLabels()["version"]; v != "" {
					return v, nil
				}
				return "", fmt.Errorf("subset %s of DestinationRule %s selects no version label; weft tells revisions apart by it", names[0], o.Meta.Name)
			}
		}
	}
	return "", fmt.Errorf("VirtualService %s routes %s to subset %s, which no DestinationRule defines", vs.Meta.Name, h.Apex, names[0])
}

func merged(a, b map[string]string) map[string]string {
	m := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func appendNew(s []string, x string) []string {
	for _, y := range s {
		if y == x {
			return s
		}
	}
	return append(s, x)
}

// apexPort finds the apex service's port the Canary names.
func apexPort(objs []*config.Object, h Hosts, ns string) (*networking.ServicePort, error) {
	for _, o := range objs {
		if o.Kind != config.KindServiceEntry || ownedAnnotation(o) {
			continue
		}
		se := o.Spec.(*networking.ServiceEntry)
		if o.Meta.Name != h.Apex && !routesHost(se.GetHosts(), h.Apex, ns) {
			continue
		}
		var have []string
		for _, p := range se.GetPorts() {
			if p.GetNumber() == h.Port {
				return p, nil
			}
			have = append(have, fmt.Sprint(p.GetNumber()))
		}
		return nil, fmt.Errorf("service %s has no port %d (its ports: %s); spec.service.port names the service's port", h.Apex, h.Port, strings.Join(have, ", "))
	}
	return nil, fmt.Errorf("no service %s in namespace %s yet (`weft run --service %s` registers it)", h.Apex, ns, h.Apex)
}

func ownedAnnotation(o *config.Object) bool { return o.Meta.Annotations[AnnotationOwner] != "" }

// Sync implements Target: ServiceEntries NAME-primary and NAME-canary
// selecting the two versions, with the apex service's port.
func (l *Local) Sync(ctx context.Context, cd *config.Object, primary, canary string) error {
	objs, _, err := l.Store.List(ctx, "", cd.Meta.Namespace)
	if err != nil {
		return fmt.Errorf("read %s: %w", cd.Meta.Namespace, err)
	}
	return l.write(ctx, objs, cd, primary, canary, retiredOf(objs, cd))
}

// Promote implements Target: the primary service selects revision, and the
// version it selected before is retired.
func (l *Local) Promote(ctx context.Context, cd *config.Object, revision string) error {
	objs, _, err := l.Store.List(ctx, "", cd.Meta.Namespace)
	if err != nil {
		return fmt.Errorf("read %s: %w", cd.Meta.Namespace, err)
	}
	retired := retiredOf(objs, cd)
	if old := selectedVersion(objs, cd, HostsOf(cd).Primary); old != "" && old != revision {
		retired[old] = true
	}
	delete(retired, revision)
	return l.write(ctx, objs, cd, revision, revision, retired)
}

// ScaleToZero implements Target: weft does not own local processes.
func (l *Local) ScaleToZero(context.Context, *config.Object) error { return nil }

// ScaleFromZero implements Target: weft does not own local processes.
func (l *Local) ScaleFromZero(context.Context, *config.Object) error { return nil }

func (l *Local) write(ctx context.Context, objs []*config.Object, cd *config.Object, primary, canary string, retired map[string]bool) error {
	h := HostsOf(cd)
	port, err := apexPort(objs, h, cd.Meta.Namespace)
	if err != nil {
		return err
	}
	spec := cd.Spec.(*flaggerv1beta1.Canary)
	app := spec.GetTargetRef().GetName()
	se := func(host, version string, meta *flaggerv1beta1.CustomMetadata) *config.Object {
		return owned(cd, config.KindServiceEntry, host, meta, &networking.ServiceEntry{
			Hosts:            []string{host + "." + cd.Meta.Namespace + "." + model.DomainSuffix},
			Ports:            []*networking.ServicePort{{Number: port.GetNumber(), Name: port.GetName(), Protocol: port.GetProtocol(), TargetPort: port.GetTargetPort()}},
			Location:         networking.ServiceEntry_MESH_INTERNAL,
			Resolution:       networking.ServiceEntry_STATIC,
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": app, "version": version}},
		})
	}
	p := se(h.Primary, primary, spec.GetService().GetPrimary())
	if len(retired) > 0 {
		var vs []string
		for v := range retired {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		p.Meta.Annotations[AnnotationRetired] = strings.Join(vs, ",")
	}
	return apply(ctx, l.Store, []*config.Object{p, se(h.Canary, canary, spec.GetService().GetCanary())})
}

// selectedVersion is the version the Canary's ServiceEntry name selects.
func selectedVersion(objs []*config.Object, cd *config.Object, name string) string {
	for _, o := range objs {
		if o.Kind == config.KindServiceEntry && o.Meta.Name == name && ownedBy(o, cd) {
			return o.Spec.(*networking.ServiceEntry).GetWorkloadSelector().GetLabels()["version"]
		}
	}
	return ""
}

func retiredOf(objs []*config.Object, cd *config.Object) map[string]bool {
	out := map[string]bool{}
	for _, o := range objs {
		if o.Kind == config.KindServiceEntry && o.Meta.Name == HostsOf(cd).Primary && ownedBy(o, cd) {
			for _, v := range strings.Split(o.Meta.Annotations[AnnotationRetired], ",") {
				if v != "" {
					out[v] = true
				}
			}
		}
	}
	return out
}
