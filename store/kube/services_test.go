package kube

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

func ptr[T any](v T) *T { return &v }

// reviews is Bookinfo's reviews Service: a named target port, a numeric
// one, a UDP port the mesh does not proxy.
func reviewsService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Labels: map[string]string{"app": "reviews"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 9080, TargetPort: intstr.FromString("web")},
				{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9091), AppProtocol: ptr("kubernetes.io/h2c")},
				{Name: "stats", Port: 8125, Protocol: corev1.ProtocolUDP},
			},
		},
	}
}

func pod(name, rs, hash, sa string, labels map[string]string) *corev1.Pod {
	l := map[string]string{"pod-template-hash": hash}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: l,
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: rs, Controller: ptr(true)}}},
		Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: "n1"},
	}
}

func slice(name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{labelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: ports, Endpoints: eps,
	}
}

func ep(ip, podName string, ready, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready), Terminating: ptr(terminating)},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: podName, Namespace: "shop"},
	}
}

func TestServiceEntryFromService(t *testing.T) {
	pods := map[string]*corev1.Pod{
		"reviews-v1-abc-1": pod("reviews-v1-abc-1", "reviews-v1-abc", "abc", "bookinfo-reviews", map[string]string{"app": "reviews", "version": "v1"}),
		"reviews-v2-def-1": pod("reviews-v2-def-1", "reviews-v2-def", "def", "", map[string]string{"app": "reviews", "version": "v2", config.LabelTLSMode: "istio"}),
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{labelRegion: "eu", labelZone: "eu-1"}}}
	l := lookups{
		pod: func(ns, name string) *corev1.Pod {
			if ns != "shop" {
				return nil
			}
			return pods[name]
		},
		node: func(name string) *corev1.Node {
			if name == "n1" {
				return node
			}
			return nil
		},
	}
	tcp := ptr(corev1.ProtocolTCP)
	slices := []*discoveryv1.EndpointSlice{
		// v2's pods name their port "web" 8080; v1's 9080: the slice
		// controller puts them in separate slices.
		slice("reviews-b", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: tcp}, {Name: ptr("metrics"), Port: ptr(int32(9091))}},
			ep("10.244.0.9", "reviews-v2-def-1", true, false),
			ep("10.244.0.10", "gone", false, true), // terminating
		),
		slice("reviews-a", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(9080)), Protocol: tcp}, {Name: ptr("metrics"), Port: ptr(int32(9091))}},
			ep("10.244.0.5", "reviews-v1-abc-1", true, false),
			ep("10.244.0.6", "reviews-v1-abc-2", false, false), // not ready
		),
		slice("reviews-c", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: tcp}},
			ep("10.244.0.9", "reviews-v2-def-1", true, false), // listed twice while it moves between slices: once
		),
	}
	o := serviceEntry(reviewsService(), slices, l)
	if errs := config.Validate(o); len(errs) > 0 {
		t.Fatalf("synthesized ServiceEntry is invalid: %v", errs)
	}
	if o.Key() != (config.Key{Kind: config.KindServiceEntry, Namespace: "shop", Name: "reviews"}) || o.Meta.Annotations[AnnotationOrigin] != OriginKubernetes {
		t.Errorf("identity: %v %v", o.Key(), o.Meta.Annotations)
	}
	want := &networking.ServiceEntry{
		Hosts: []string{"reviews.shop.svc.cluster.local"}, Addresses: []string{"10.96.0.20"},
		Location: networking.ServiceEntry_MESH_INTERNAL, Resolution: networking.ServiceEntry_STATIC,
		Ports: []*networking.ServicePort{
			{Number: 9080, Name: "http", Protocol: "HTTP"},
			{Number: 9090, Name: "metrics", Protocol: "HTTP2", TargetPort: 9091},
		},
		Endpoints: []*networking.WorkloadEntry{
			{Address: "10.244.0.5", Ports: map[string]uint32{"http": 9080, "metrics": 9091}, ServiceAccount: "bookinfo-reviews", Locality: "eu/eu-1",
				Labels: map[string]string{"app": "reviews", "version": "v1", "pod-template-hash": "abc", config.LabelWorkload: "reviews-v1"}},
			{Address: "10.244.0.9", Ports: map[string]uint32{"http": 8080, "metrics": 9091}, ServiceAccount: "default", Locality: "eu/eu-1",
				Labels: map[string]string{"app": "reviews", "version": "v2", "pod-template-hash": "def", config.LabelWorkload: "reviews-v2", config.LabelTLSMode: "istio"}},
		},
	}
	if !proto.Equal(o.Spec, want) {
		got, _ := protojson.Marshal(o.Spec)
		exp, _ := protojson.Marshal(want)
		t.Errorf("ServiceEntry\n got %s\nwant %s", got, exp)
	}
	// The pods that get no traffic (not ready, terminating) are named for
	// their own sidecars, which keep serving their ports.
	const inactive = `[{"address":"10.244.0.10","ports":{"http":8080,"metrics":9091}},{"address":"10.244.0.6","ports":{"http":9080,"metrics":9091}}]`
	if got := o.Meta.Annotations[model.AnnotationInactiveEndpoints]; got != inactive {
		t.Errorf("inactive endpoints annotation\n got %s\nwant %s", got, inactive)
	}
	snap := model.Build(1, []*config.Object{o})
	svc := snap.Service("reviews.shop.svc.cluster.local")
	if svc == nil || len(svc.Endpoints) != 2 || len(svc.Inactive) != 2 || svc.Inactive[1].Address != "10.244.0.6" || svc.Inactive[1].PortFor(svc.Ports[0]) != 9080 {
		t.Errorf("model: %+v", svc)
	}
}

func TestServiceEntryShapes(t *testing.T) {
	headless := reviewsService()
	headless.Spec.ClusterIP, headless.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
	if se := serviceEntry(headless, nil, lookups{}).Spec.(*networking.ServiceEntry); len(se.Addresses) != 0 || se.Resolution != networking.ServiceEntry_STATIC {
		t.Errorf("headless: addresses %v resolution %v", se.Addresses, se.Resolution)
	}

	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com", Ports: []corev1.ServicePort{{Name: "tcp-pg", Port: 5432}}}}
	o := serviceEntry(ext, nil, lookups{})
	se := o.Spec.(*networking.ServiceEntry)
	if se.Resolution != networking.ServiceEntry_DNS || se.Location != networking.ServiceEntry_MESH_EXTERNAL || se.Endpoints[0].GetAddress() != "db.example.com" || se.Ports[0].Protocol != "TCP" {
		t.Errorf("ExternalName: %v", se)
	}
	if errs := config.Validate(o); len(errs) > 0 {
		t.Errorf("ExternalName ServiceEntry invalid: %v", errs)
	}

	// kube-dns: the same port number over UDP and TCP; only TCP stays,
	// and port 53 is TCP without a protocol prefix.
	dns := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP}}}}
	o = serviceEntry(dns, nil, lookups{})
	if errs := config.Validate(o); len(errs) > 0 {
		t.Fatalf("kube-dns ServiceEntry invalid: %v", errs)
	}
	if ports := o.Spec.(*networking.ServiceEntry).Ports; len(ports) != 1 || ports[0].Protocol != "TCP" || ports[0].Name != "dns-tcp" {
		t.Errorf("kube-dns ports: %v", ports)
	}

	// One unnamed port with a named target port: the number the slices
	// agree on becomes the ServiceEntry's target port.
	one := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.21", Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("web")}}}}
	o = serviceEntry(one, []*discoveryv1.EndpointSlice{slice("s", []discoveryv1.EndpointPort{{Name: ptr(""), Port: ptr(int32(8080))}}, ep("10.244.0.3", "p", true, false))}, lookups{})
	if errs := config.Validate(o); len(errs) > 0 {
		t.Fatalf("unnamed-port ServiceEntry invalid: %v", errs)
	}
	se = o.Spec.(*networking.ServiceEntry)
	if se.Ports[0].TargetPort != 8080 || len(se.Endpoints) != 1 || se.Endpoints[0].Labels != nil {
		t.Errorf("unnamed port: %v (a pod not in the cache gives an endpoint without labels)", se)
	}
}

func TestProtocolOf(t *testing.T) {
	for _, c := range []struct {
		name, app string
		port      int32
		want      string
	}{
		{"http", "", 80, "HTTP"}, {"http-web", "", 80, "HTTP"}, {"HTTP2-x", "", 80, "HTTP2"}, {"grpc", "", 80, "GRPC"},
		{"grpc-web", "", 80, "GRPC-WEB"}, {"grpc-web-x", "", 80, "GRPC-WEB"}, {"tcp-db", "", 80, "TCP"}, {"tls", "", 443, "TLS"},
		{"https-x", "", 443, "HTTPS"}, {"mongo", "", 80, "MONGO"}, {"redis-c", "", 80, "REDIS"}, {"mysql", "", 80, "MYSQL"},
		{"web", "", 80, ""}, {"", "", 8080, ""}, {"", "", 3306, "TCP"}, {"web", "", 27017, "TCP"}, {"", "", 25, "TCP"},
		{"tcp", "http", 80, "HTTP"}, {"http", "kubernetes.io/h2c", 80, "HTTP2"}, {"", "kubernetes.io/ws", 80, "HTTP"},
		{"", "kubernetes.io/wss", 443, "HTTPS"}, {"http", "grpc", 80, "GRPC"}, {"http", "example.com/custom", 80, ""},
	} {
		p := corev1.ServicePort{Name: c.name, Port: c.port}
		if c.app != "" {
			p.AppProtocol = ptr(c.app)
		}
		if got := protocolOf(p); got != c.want {
			t.Errorf("protocolOf(name %q, appProtocol %q, port %d) = %q, want %q", c.name, c.app, c.port, got, c.want)
		}
	}
}

func TestWorkloadName(t *testing.T) {
	owned := func(kind, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-1", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{Kind: "Other", Name: "not-controller"}, {Kind: kind, Name: name, Controller: ptr(true)}}}}
	}
	for _, c := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{owned("ReplicaSet", "reviews-v1-5d8c9b7f4", map[string]string{labelPodTemplate: "5d8c9b7f4"}), "reviews-v1"},
		{owned("ReplicaSet", "bare-rs", nil), "bare-rs"},
		{owned("StatefulSet", "db", nil), "db"},
		{owned("VirtualMachineInstance", "vm1", map[string]string{labelVirtualMachine: "rhel9"}), "rhel9"},
		{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lonely"}}, "lonely"},
	} {
		if got := workloadName(c.pod); got != c.want {
			t.Errorf("workloadName(%v) = %q, want %q", c.pod.OwnerReferences, got, c.want)
		}
	}
}

func TestLocality(t *testing.T) {
	n := func(l map[string]string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: l}} }
	for _, c := range []struct {
		node *corev1.Node
		zone string
		want string
	}{
		{nil, "", ""}, {nil, "z", "/z"}, {n(map[string]string{labelRegion: "r"}), "", "r"},
		{n(map[string]string{labelRegion: "r", labelZone: "z"}), "other", "r/z"},
		{n(map[string]string{labelRegion: "r", labelZone: "z", labelSubzone: "s"}), "", "r/z/s"},
	} {
		if got := locality(c.node, c.zone); got != c.want {
			t.Errorf("locality(%v, %q) = %q, want %q", c.node, c.zone, got, c.want)
		}
	}
}
