package config

import (
	"testing"
)

// decodeSpec decodes one object of kind with the given spec (YAML, indented
// by two spaces) and returns its errors: decodeKind's errors alone.
func decodeSpec(t *testing.T, kind Kind, spec string) ErrorList {
	t.Helper()
	_, errs := decodeKind(t, kind, spec)
	return errs
}

func TestValidateAcceptsValid(t *testing.T) {
	tests := []struct {
		kind Kind
		spec string
	}{
		{KindVirtualService, `  hosts: [reviews, "*.example.com"]
  gateways: [mesh, web/ingress, local-gw]
  http:
  - name: canary
    match:
    - uri: {regex: "^/api/v[0-9]+"}
      headers: {x-user: {exact: jason}, cookie: {regex: ".*canary.*"}}
      queryParams: {debug: {prefix: "1"}}
      authority: {regex: "shop\\..*"}
      port: 8080
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 25
    - destination: {host: reviews.other.svc.cluster.local}
      weight: 75
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 500ms}
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 10.5}}
      abort: {httpStatus: 503, percentage: {value: 100}}
    headers:
      request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
      response: {set: {x-d: "3"}}
    mirror: {host: shadow}
    mirrorPercentage: {value: 50}
  - redirect: {uri: /new, redirectCode: 301}
  - directResponse: {status: 204}
  - fault: {abort: {grpcStatus: UNAVAILABLE}}
    route: [{destination: {host: grpc}, headers: {request: {set: {x-e: "4"}}}}]
  tcp:
  - match: [{port: 3306}]
    route: [{destination: {host: mysql}}]
  tls:
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: a.example.com}}]
`},
		{KindDestinationRule, `  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}
    connectionPool: {tcp: {connectTimeout: 100ms}, http: {idleTimeout: 1m}}
    portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: LEAST_REQUEST}}]
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}}
`},
		// A subset without labels is every endpoint of the host, under
		// the subset's own policy, as in Istio's tunneling configuration.
		{KindDestinationRule, `  host: forward-proxy.external.svc.cluster.local
  subsets:
  - name: via-proxy
    trafficPolicy: {tunnel: {targetHost: example.com, targetPort: 443}}
  - {name: plain}
`},
		{KindGateway, `  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*", "*.example.com", "shop/catalog.example.com", "./a.com", "*/b.com"]
  - port: {number: 443, name: https, protocol: https}
    hosts: [secure.example.com]
    tls: {mode: SIMPLE, credentialName: cert}
`},
		{KindServiceEntry, `  hosts: [catalog.shop.svc.cluster.local, "*.wiki.org"]
  addresses: [10.0.0.1, 10.1.0.0/16]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.5, ports: {http: 8081}, labels: {version: v1}}
  - {address: "unix:///var/run/app.sock"}
`},
		{KindWorkloadEntry, `  address: 10.0.0.7
  ports: {http: 8080}
  labels: {app: catalog}
  weight: 3
`},
		{KindWorkloadEntry, "  network: remote\n"},
	}
	for _, tt := range tests {
		if errs := decodeSpec(t, tt.kind, tt.spec); len(errs) > 0 {
			t.Errorf("%s: unexpected errors:\n%v", tt.kind, errs)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	const route = "  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n"
	tests := []struct {
		name  string
		kind  Kind
		spec  string
		field string
		msg   string
	}{
		{"vs no hosts", KindVirtualService, "  http: [{route: [{destination: {host: a}}]}]\n", "spec.hosts", "at least one host"},
		{"vs mesh wildcard", KindVirtualService, "  hosts: ['*']\n  http: [{route: [{destination: {host: a}}]}]\n", "spec.hosts[0]", "wildcard host *"},
		{"vs bad host", KindVirtualService, "  hosts: [a_b]\n  http: [{route: [{destination: {host: a}}]}]\n", "spec.hosts[0]", "invalid host"},
		{"vs empty gateway", KindVirtualService, "  hosts: [a]\n  gateways: ['']\n  http: [{route: [{destination: {host: a}}]}]\n", "spec.gateways[0]", "must not be empty"},
		{"vs no routes", KindVirtualService, "  hosts: [a]\n", "spec", "at least one of http, tcp or tls"},
		{"http nothing", KindVirtualService, "  hosts: [a]\n  http: [{timeout: 1s}]\n", "spec.http[0]", "one of route, redirect or directResponse"},
		{"route and redirect", KindVirtualService, route + "    redirect: {uri: /x}\n", "spec.http[0].redirect", "together with route"},
		{"no destination", KindVirtualService, "  hosts: [a]\n  http: [{route: [{weight: 100}]}]\n", "spec.http[0].route[0].destination", "required"},
		{"no host", KindVirtualService, "  hosts: [a]\n  http: [{route: [{destination: {subset: v1}}]}]\n", "spec.http[0].route[0].destination.host", "required"},
		{"weight", KindVirtualService, "  hosts: [a]\n  http: [{route: [{destination: {host: a}, weight: -1}]}]\n", "spec.http[0].route[0].weight", "must be between 0 and 100, got -1"},
		{"dest port", KindVirtualService, "  hosts: [a]\n  http: [{route: [{destination: {host: a, port: {number: 70000}}}]}]\n", "spec.http[0].route[0].destination.port.number", "between 1 and 65535"},
		{"timeout", KindVirtualService, route + "    timeout: 500us\n", "spec.http[0].timeout", "at least 1ms"},
		{"per try", KindVirtualService, route + "    retries: {attempts: 2, perTryTimeout: 0s}\n", "spec.http[0].retries.perTryTimeout", "at least 1ms"},
		{"fixed delay", KindVirtualService, route + "    fault: {delay: {fixedDelay: 0.1ms}}\n", "spec.http[0].fault.delay.fixedDelay", "at least 1ms"},
		{"delay percentage", KindVirtualService, route + "    fault: {delay: {fixedDelay: 1s, percentage: {value: 101}}}\n", "spec.http[0].fault.delay.percentage.value", "between 0 and 100"},
		{"abort status", KindVirtualService, route + "    fault: {abort: {httpStatus: 600}}\n", "spec.http[0].fault.abort.httpStatus", "between 200 and 599, got 600"},
		{"empty fault", KindVirtualService, route + "    fault: {}\n", "spec.http[0].fault", "delay or abort"},
		{"uri regex", KindVirtualService, route + "    match: [{uri: {regex: '(a'}}]\n", "spec.http[0].match[0].uri.regex", "invalid regular expression"},
		{"lookahead", KindVirtualService, route + "    match: [{uri: {regex: '(?!x)'}}]\n", "spec.http[0].match[0].uri.regex", "invalid regular expression"},
		{"header regex", KindVirtualService, route + "    match: [{}, {headers: {x-a: {regex: '['}}}]\n", "spec.http[0].match[1].headers[x-a].regex", "invalid"},
		{"query regex", KindVirtualService, route + "    match: [{queryParams: {q: {regex: '*'}}}]\n", "spec.http[0].match[0].queryParams[q].regex", "invalid"},
		{"authority regex", KindVirtualService, route + "    match: [{authority: {regex: 'a{2,1}'}}]\n", "spec.http[0].match[0].authority.regex", "invalid"},
		{"match port", KindVirtualService, route + "    match: [{port: 65536}]\n", "spec.http[0].match[0].port", "between 1 and 65535"},
		{"redirect code", KindVirtualService, "  hosts: [a]\n  http: [{redirect: {uri: /b, redirectCode: 200}}]\n", "spec.http[0].redirect.redirectCode", "3xx"},
		{"direct status", KindVirtualService, "  hosts: [a]\n  http: [{directResponse: {status: 99}}]\n", "spec.http[0].directResponse.status", "between 200 and 599"},
		{"header set name", KindVirtualService, route + "    headers: {request: {set: {'': x}}}\n", "spec.http[0].headers.request.set", "must not be empty"},
		{"header remove name", KindVirtualService, route + "    headers: {response: {remove: [ok, '']}}\n", "spec.http[0].headers.response.remove[1]", "must not be empty"},
		{"dest header add name", KindVirtualService, "  hosts: [a]\n  http: [{route: [{destination: {host: a}, headers: {request: {add: {' ': x}}}}]}]\n", "spec.http[0].route[0].headers.request.add", "must not be empty"},
		{"grpc status", KindVirtualService, route + "    fault: {abort: {grpcStatus: NOPE}}\n", "spec.http[0].fault.abort.grpcStatus", "unknown gRPC status"},
		{"redirect 4xx", KindVirtualService, "  hosts: [a]\n  http: [{redirect: {uri: /b, redirectCode: 400}}]\n", "spec.http[0].redirect.redirectCode", "3xx"},
		{"direct status high", KindVirtualService, "  hosts: [a]\n  http: [{directResponse: {status: 600}}]\n", "spec.http[0].directResponse.status", "between 200 and 599"},
		{"abort percentage", KindVirtualService, route + "    fault: {abort: {httpStatus: 500, percentage: {value: 100.5}}}\n", "spec.http[0].fault.abort.percentage.value", "between 0 and 100"},
		{"legacy delay percent", KindVirtualService, route + "    fault: {delay: {fixedDelay: 1s, percent: 101}}\n", "spec.http[0].fault.delay.percent", "between 0 and 100"},
		{"mirror percentage", KindVirtualService, route + "    mirror: {host: b}\n    mirrorPercentage: {value: -5}\n", "spec.http[0].mirrorPercentage.value", "between 0 and 100"},
		{"tcp no route", KindVirtualService, "  hosts: [a]\n  tcp: [{match: [{port: 5}]}]\n", "spec.tcp[0].route", "at least one destination"},
		{"tls no sni", KindVirtualService, "  hosts: [a]\n  tls: [{match: [{port: 443}], route: [{destination: {host: a}}]}]\n", "spec.tls[0].match[0].sniHosts", "at least one SNI host"},

		{"dr no host", KindDestinationRule, "  subsets: [{name: v1, labels: {v: '1'}}]\n", "spec.host", "required"},
		{"subset no name", KindDestinationRule, "  host: a\n  subsets: [{labels: {v: '1'}}]\n", "spec.subsets[0].name", "required"},
		{"subset dup", KindDestinationRule, "  host: a\n  subsets: [{name: v1, labels: {v: '1'}}, {name: v1, labels: {v: '2'}}]\n", "spec.subsets[1].name", `duplicate subset name "v1" (also subsets[0])`},
		{"consistent hash", KindDestinationRule, "  host: a\n  trafficPolicy: {loadBalancer: {consistentHash: {minimumRingSize: 10}}}\n", "spec.trafficPolicy.loadBalancer.consistentHash", "exactly one hash key"},
		{"consistent hash two", KindDestinationRule, "  host: a\n  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, httpHeaderName: x}}}\n", "spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp", "only one of them"},
		{"cookie name", KindDestinationRule, "  host: a\n  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}}\n", "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name", "required"},
		{"ring size", KindDestinationRule, "  host: a\n  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, ringHash: {minimumRingSize: 9000000}}}}\n", "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize", "at most 8388608"},
		{"ejection", KindDestinationRule, "  host: a\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}\n", "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "between 0 and 100, got 101"},
		{"dr duration", KindDestinationRule, "  host: a\n  subsets: [{name: v1, labels: {a: b}, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}}]\n", "spec.subsets[0].trafficPolicy.connectionPool.tcp.connectTimeout", "at least 1ms"},
		{"port level", KindDestinationRule, "  host: a\n  trafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}\n", "spec.trafficPolicy.portLevelSettings[0].port", "required"},

		{"gw no servers", KindGateway, "  selector: {a: b}\n", "spec.servers", "at least one server"},
		{"gw no port", KindGateway, "  servers: [{hosts: ['*']}]\n", "spec.servers[0].port", "required"},
		{"gw protocol", KindGateway, "  servers: [{port: {number: 80, protocol: SPDY}, hosts: ['*']}]\n", "spec.servers[0].port.protocol", `unknown protocol "SPDY"`},
		{"gw no protocol", KindGateway, "  servers: [{port: {number: 80}, hosts: ['*']}]\n", "spec.servers[0].port.protocol", "required"},
		{"gw port", KindGateway, "  servers: [{port: {number: 0, protocol: HTTP}, hosts: ['*']}]\n", "spec.servers[0].port.number", "between 1 and 65535"},
		{"gw no hosts", KindGateway, "  servers: [{port: {number: 80, protocol: HTTP}}]\n", "spec.servers[0].hosts", "at least one host"},
		{"gw host ns", KindGateway, "  servers: [{port: {number: 80, protocol: HTTP}, hosts: ['A B/x.com']}]\n", "spec.servers[0].hosts[0]", "invalid namespace"},
		{"gw host", KindGateway, "  servers: [{port: {number: 80, protocol: HTTP}, hosts: ['a.*.com']}]\n", "spec.servers[0].hosts[0]", "invalid host"},
		{"gw https tls", KindGateway, "  servers: [{port: {number: 443, protocol: HTTPS}, hosts: [a.com]}]\n", "spec.servers[0].tls", "required for protocol HTTPS"},

		{"se no hosts", KindServiceEntry, "  ports: [{number: 80, name: http, protocol: HTTP}]\n", "spec.hosts", "at least one host"},
		{"se star", KindServiceEntry, "  hosts: ['*']\n", "spec.hosts[0]", "not allowed"},
		{"se port", KindServiceEntry, "  hosts: [a.com]\n  ports: [{number: 0, name: http, protocol: HTTP}]\n", "spec.ports[0].number", "between 1 and 65535"},
		{"se protocol", KindServiceEntry, "  hosts: [a.com]\n  ports: [{number: 80, name: http, protocol: FTP}]\n", "spec.ports[0].protocol", "unknown protocol"},
		{"se dup name", KindServiceEntry, "  hosts: [a.com]\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http, protocol: HTTP}]\n", "spec.ports[1].name", "duplicate port name"},
		{"se dup number", KindServiceEntry, "  hosts: [a.com]\n  ports: [{number: 80, name: a, protocol: HTTP}, {number: 80, name: b, protocol: TCP}]\n", "spec.ports[1].number", "duplicate port number 80"},
		{"se selector and endpoints", KindServiceEntry, "  hosts: [a.com]\n  workloadSelector: {labels: {app: a}}\n  endpoints: [{address: 1.2.3.4}]\n", "spec.workloadSelector", "together with endpoints"},
		{"se endpoint address", KindServiceEntry, "  hosts: [a.com]\n  endpoints: [{ports: {http: 80}}]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n", "spec.endpoints[0].address", "required"},
		{"se endpoint port", KindServiceEntry, "  hosts: [a.com]\n  endpoints: [{address: 1.2.3.4, ports: {web: 80}}]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n", "spec.endpoints[0].ports[web]", "not one of the ServiceEntry's ports"},
		{"se static address", KindServiceEntry, "  hosts: [a.com]\n  resolution: STATIC\n  endpoints: [{address: db.example.com}]\n", "spec.endpoints[0].address", "needs an IP address"},
		{"se addresses", KindServiceEntry, "  hosts: [a.com]\n  addresses: [not-an-ip]\n", "spec.addresses[0]", "invalid address"},

		{"we no address", KindWorkloadEntry, "  labels: {app: a}\n", "spec.address", "required"},
		{"we port", KindWorkloadEntry, "  address: 1.2.3.4\n  ports: {http: 0}\n", "spec.ports[http]", "between 1 and 65535"},
		{"we port too big", KindWorkloadEntry, "  address: 1.2.3.4\n  ports: {http: 70000}\n", "spec.ports[http]", "between 1 and 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrorAt(t, decodeSpec(t, tt.kind, tt.spec), tt.kind, tt.field, tt.msg)
		})
	}
}

func TestValidateObjectWithoutName(t *testing.T) {
	objs := mustDecode(t, seedYAML)
	o := *objs[0]
	o.Meta.Name = ""
	errs := Validate(&o)
	if len(errs) != 1 || errs[0].Field != "metadata.name" {
		t.Errorf("errs = %v", errs)
	}
}
