package inject

import "github.com/weft-mesh/weft/xds/node"

// The names the injected pod, the install manifests and the control plane
// agree on. Every flag, environment variable, path and object name the
// injector writes is defined here and nowhere else, so aligning with the
// commands it runs (`weft iptables`, `weft proxy sidecar`, built on branch
// capture) and the control plane's Kubernetes side (branch kubesrc) is an
// edit of this file.

// Where the control plane lives (manifests, webhook lookups, xDS TLS name).
const (
	SystemNamespace = "istio-system"
	// ControlPlaneName names the control plane's Deployment and Service.
	ControlPlaneName = "istiod"
	// ControlPlaneServiceAccount is the control plane pods' identity; the
	// control plane's own xDS certificate carries its SPIFFE ID, and no
	// proxy may claim it.
	ControlPlaneServiceAccount = "weft-controlplane"
	// XDSServerName is the name on the control plane's serving
	// certificates: proxies dial the Service's ClusterIP (a cluster may
	// have no DNS) and verify this name.
	XDSServerName = ControlPlaneName + "." + SystemNamespace + ".svc"
	// RootCertConfigMap holds the mesh root (key RootCertKey) in every
	// namespace, published by the control plane's leader.
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
	// TokenAudience is the audience of the projected ServiceAccount token
	// a proxy presents to the control plane, which checks it with a
	// TokenReview.
	TokenAudience = "weft"
	// CASecret holds the self-signed mesh CA the control plane creates
	// when there is no plug-in Secret "cacerts".
	CASecret = "istio-ca-secret"
	// LeaderLease is the control plane's leader election Lease.
	LeaderLease = "weft-controlplane"
	// LabelLeader marks the leading control plane replica's pod (set by
	// the leader itself); LeaderServiceName selects it: the proxies'
	// telemetry reports and the console go to the replica that holds the
	// telemetry.
	LabelLeader       = "weft.io/leader"
	LeaderServiceName = ControlPlaneName + "-leader" // kube/webhook: the control plane's Service name + "-leader"
	// TokenExpirationSeconds is the projected token's lifetime; the
	// kubelet refreshes it at 80% of that.
	TokenExpirationSeconds = 43200
)

// The control plane's ports (container and Service).
const (
	XDSPort            = 15012 // xDS over TLS
	WebhookPort        = 15017 // admission webhooks over TLS (Service port 443)
	WebhookServicePort = 443
	APIPort            = 15080 // HTTP API, console, telemetry intake
)

// Environment of the control plane container.
const (
	// EnvProxyImage names the image the injector puts in pods (the
	// control plane's own image, set by the manifests).
	EnvProxyImage = "WEFT_PROXY_IMAGE"
)

// The injected containers and volumes.
const (
	InitContainerName  = "weft-init"
	ProxyContainerName = "weft-proxy"

	TokenVolume    = "weft-token"
	TokenDir       = "/var/run/secrets/tokens"
	TokenFile      = TokenDir + "/weft-token"
	RootCertVolume = "weft-ca-root-cert"
	RootCertDir    = "/var/run/secrets/istio"
	RootCertFile   = RootCertDir + "/" + RootCertKey
	PodInfoVolume  = "weft-podinfo"
	PodInfoDir     = "/etc/weft/pod"
	LabelsFile     = PodInfoDir + "/labels"
	TmpVolume      = "weft-tmp"
	TmpDir         = "/tmp"
)

// `weft iptables` (the capture init container): istio-iptables' long flag
// names, as branch capture settled them.
const (
	CmdIPTables              = "iptables"
	FlagProxyPort            = "--envoy-port"                   // outbound capture port, 15001
	FlagInboundCapturePort   = "--inbound-capture-port"         // 15006
	FlagProxyUID             = "--proxy-uid"                    // 1337: its traffic is never captured
	FlagIncludeOutboundCIDRs = "--outbound-ip-ranges-include"   // "*" or CIDRs
	FlagExcludeOutboundCIDRs = "--outbound-ip-ranges-exclude"   // CIDRs
	FlagIncludeInboundPorts  = "--inbound-ports"                // "*" or ports
	FlagExcludeInboundPorts  = "--local-exclude-ports"          // ports
	FlagIncludeOutboundPorts = "--outbound-ports"               // ports
	FlagExcludeOutboundPorts = "--local-outbound-ports-exclude" // ports
)

// `weft proxy sidecar` and `weft proxy gateway` in a pod.
const (
	CmdProxy             = "proxy"
	CmdSidecar           = "sidecar"
	CmdGateway           = "gateway"
	FlagInterception     = "--interception"    // node.InterceptRedirect
	FlagXDS              = "--xds"             // CLUSTERIP:15012
	FlagXDSServerName    = "--xds-server-name" // the name on the control plane's certificate when --xds is an IP
	FlagCARoot           = "--ca-root"
	FlagTokenFile        = "--join-token-file" // the projected token, presented as the bearer
	FlagTelemetry        = "--telemetry"
	FlagLabelsFile       = "--pod-labels"
	FlagLogLevel         = "--log-level"
	FlagTraceSampling    = "--trace-sampling"
	FlagName             = "--name"
	FlagNamespace        = "--namespace"
	FlagLabels           = "--labels"
	FlagServiceAccount   = "--service-account"
	FlagGatewayPortMap   = "--port-map"
	FlagAdmin            = "--admin"
	EnvPodName           = "POD_NAME"
	EnvPodNamespace      = "POD_NAMESPACE"
	EnvInstanceIP        = "INSTANCE_IP"
	EnvServiceAccount    = "SERVICE_ACCOUNT"
	EnvWorkloadName      = "ISTIO_META_WORKLOAD_NAME"
	EnvAppProbers        = "ISTIO_KUBE_APP_PROBERS" // JSON: "/app-health/C/livez" -> the original probe
	EnvConcurrency       = "GOMAXPROCS"             // proxy.istio.io/config concurrency
	HealthPath           = "/healthz/ready"         // on node.HealthPort
	AppHealthPathPrefix  = "/app-health/"           // on node.StatusPort: /app-health/CONTAINER/{livez,readyz,startupz}
	StatsPortName        = "http-envoy-prom"
	StatusPortName       = "status-port"
	ProxyDefaultCPU      = "100m"
	ProxyDefaultMemory   = "128Mi"
	InterceptionRedirect = node.InterceptRedirect
)

// Labels and annotations the injector reads and writes (Istio's names).
const (
	LabelInjection           = "istio-injection" // on namespaces: enabled | disabled
	LabelOrAnnotationInject  = "sidecar.istio.io/inject"
	AnnotationStatus         = "sidecar.istio.io/status"
	AnnotationProxyCPU       = "sidecar.istio.io/proxyCPU"
	AnnotationProxyMemory    = "sidecar.istio.io/proxyMemory"
	AnnotationProxyCPULimit  = "sidecar.istio.io/proxyCPULimit"
	AnnotationProxyMemLimit  = "sidecar.istio.io/proxyMemoryLimit"
	AnnotationProxyImage     = "sidecar.istio.io/proxyImage"
	AnnotationLogLevel       = "sidecar.istio.io/logLevel"
	AnnotationInterception   = "sidecar.istio.io/interceptionMode"
	AnnotationRewriteProbes  = "sidecar.istio.io/rewriteAppHTTPProbers"
	AnnotationProxyConfig    = "proxy.istio.io/config"
	AnnotationIncludeOutIPs  = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationExcludeOutIPs  = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	AnnotationIncludeInPorts = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationExcludeInPorts = "traffic.sidecar.istio.io/excludeInboundPorts"
	AnnotationIncludeOutPort = "traffic.sidecar.istio.io/includeOutboundPorts"
	AnnotationExcludeOutPort = "traffic.sidecar.istio.io/excludeOutboundPorts"
	AnnotationKubevirtIfaces = "traffic.sidecar.istio.io/kubevirtInterfaces"
	AnnotationReadinessDelay = "readiness.status.sidecar.istio.io/initialDelaySeconds"
	AnnotationReadinessPer   = "readiness.status.sidecar.istio.io/periodSeconds"
	AnnotationReadinessFail  = "readiness.status.sidecar.istio.io/failureThreshold"
	AnnotationDefaultCtr     = "kubectl.kubernetes.io/default-container"
	LabelTLSMode             = "security.istio.io/tlsMode"
	LabelCanonicalName       = "service.istio.io/canonical-name"
	LabelCanonicalRevision   = "service.istio.io/canonical-revision"
)

// Ports of the injected proxy (Istio's conventions, defined in xds/node).
const (
	OutboundCapturePort = node.OutboundCapturePort
	InboundCapturePort  = node.InboundCapturePort
	StatusPort          = node.StatusPort
	HealthPort          = node.HealthPort
	StatsPort           = node.StatsPort
	ProxyUID            = node.ProxyUID
)
