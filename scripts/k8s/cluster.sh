#!/usr/bin/env bash
# A real single-node Kubernetes for weft's cluster tests, on this machine, as root.
# Written from ../shared/k8s/RECIPE.md (each setting there was found by a failure).
#
#   scripts/k8s/cluster.sh build        # apt packages; kube-*, kubelet, kubectl v1.37.2, etcd v3.6.16,
#                                       # CoreDNS and KWOK into $WEFT_K8S_CACHE/bin (once: ~15 min cold)
#   scripts/k8s/cluster.sh up           # containerd, etcd, apiserver, kcm, scheduler, kube-proxy, kubelet
#   scripts/k8s/cluster.sh import X.tar # an OCI archive into the node's image store
#   scripts/k8s/cluster.sh env          # prints KUBECONFIG=... and the cache/workdir paths
#   scripts/k8s/cluster.sh down         # everything stopped by PID, network and mounts cleaned
#   scripts/k8s/cluster.sh running      # exit 0 when the cluster of this workdir answers
#
# Binaries are cached outside the clone ($WEFT_K8S_CACHE, default ~/.cache/weft-k8s) and rebuilt
# only when missing; run state lives in $WEFT_K8S_WORKDIR (default /tmp/weft-k8s).
# Node `wk-node`, node IP 10.250.0.1 (on lo), pods 10.244.0.0/24, services 10.96.0.0/24,
# cluster DNS 10.96.0.10 once CoreDNS is deployed. No default route in pods; forwarding from the pod
# range to any real interface is dropped, so nothing leaves the machine.
set -euo pipefail
S=$(cd "$(dirname "$0")" && pwd)
C=${WEFT_K8S_CACHE:-$HOME/.cache/weft-k8s}
W=${WEFT_K8S_WORKDIR:-/tmp/weft-k8s}
mkdir -p "$C" "$W"; C=$(cd "$C" && pwd); W=$(cd "$W" && pwd)
R=$W/run; B=$C/bin; L=$W/logs
NODE=wk-node; NODE_IP=10.250.0.1; API=https://$NODE_IP:26443; K8S=v1.37.2
COREDNS=v1.14.7; KWOK=v0.7.0
export GOMODCACHE=${WEFT_K8S_GOMODCACHE:-$C/gomod} GOCACHE=${WEFT_K8S_GOCACHE:-$C/gocache} GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
export PATH=$B:$PATH:/usr/local/go/bin
ctr_() { ctr -a "$W/containerd/containerd.sock" -n k8s.io "$@"; }
ms() { echo $(( ($(date +%s%N)-T0)/1000000 )); }

packages() {
  command -v containerd >/dev/null && command -v runc >/dev/null && [ -x /usr/lib/cni/bridge ] &&
    command -v iptables >/dev/null && command -v openssl >/dev/null && return 0
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    containerd runc containernetworking-plugins iptables openssl >/dev/null
  # The package starts its own containerd service on some machines; ours runs by hand.
  if command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then systemctl stop containerd || true; fi
}

build() {
  packages
  mkdir -p "$B" "$C/src"
  if [ ! -x "$B/kubelet" ] || [ ! -x "$B/kubectl" ]; then
    mkdir -p "$C/src/k8s"
    cp "$S/k8s-go.mod.txt" "$C/src/k8s/go.mod"; cp "$S/k8s-tools.go.txt" "$C/src/k8s/tools.go"
    local ld="-s -w" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean -X $p.buildDate=2025-01-01T00:00:00Z"; done
    (cd "$C/src/k8s" && go mod download k8s.io/kubernetes && { go mod tidy >/dev/null 2>&1 || true; } &&
      nice -n 10 go build -ldflags "$ld" -o "$B/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet \
        k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)
  fi
  if [ ! -x "$B/etcd" ]; then
    mkdir -p "$C/src/etcd"
    cp "$S/etcd-go.mod.txt" "$C/src/etcd/go.mod"; cp "$S/etcd-main.go.txt" "$C/src/etcd/main.go"
    (cd "$C/src/etcd" && go mod tidy && nice -n 10 go build -ldflags "-s -w" -o "$B/etcd" .)
  fi
  if [ ! -x "$B/coredns" ]; then
    mkdir -p "$C/src/coredns"
    (cd "$C/src/coredns" && rm -f go.mod && go mod init weft.local/coredns >/dev/null 2>&1 &&
      printf 'package main\n\nimport "github.com/coredns/coredns/coremain"\nimport _ "github.com/coredns/coredns/core/plugin"\n\nfunc main() { coremain.Run() }\n' >main.go &&
      go get github.com/coredns/coredns@$COREDNS >/dev/null && go mod tidy >/dev/null &&
      CGO_ENABLED=0 nice -n 10 go build -ldflags "-s -w" -o "$B/coredns" .)
  fi
  if [ ! -x "$B/kwok" ]; then
    mkdir -p "$C/src/kwok"
    (cd "$C/src/kwok" && rm -f go.mod && go mod init weft.local/kwok >/dev/null 2>&1 &&
      printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/kwok/cmd/kwok"\n' >tools.go &&
      go get sigs.k8s.io/kwok@$KWOK >/dev/null && go mod tidy >/dev/null &&
      CGO_ENABLED=0 nice -n 10 go build -ldflags "-s -w" -o "$B/kwok" sigs.k8s.io/kwok/cmd/kwok)
  fi
  if [ ! -f "$C/images/pause.tar" ]; then
    mkdir -p "$C/images/pause-root"
    (cd "$S/images-src/pause" && CGO_ENABLED=0 go build -o "$C/images/pause-root/pause" .)
    "$S/mkimage.sh" "$C/images/pause-root" docker.io/local/pause:1 "$C/images/pause.tar" '["/pause"]' >/dev/null
  fi
  if [ ! -f "$C/images/coredns.tar" ]; then
    mkdir -p "$C/images/coredns-root"
    cp "$B/coredns" "$C/images/coredns-root/coredns"
    "$S/mkimage.sh" "$C/images/coredns-root" docker.io/local/coredns:1 "$C/images/coredns.tar" '["/coredns"]' >/dev/null
  fi
  ls "$B"
}

built() { local b; for b in kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy kubectl etcd coredns kwok; do
  [ -x "$B/$b" ] || return 1; done; [ -f "$C/images/pause.tar" ] && [ -f "$C/images/coredns.tar" ]; }

prepare() {
  mkdir -p "$R" "$L" "$W/containerd" "$W/cni/net.d" "$W/kubelet/volume-plugins" "$W/podlogs"
  [ -f "$R/sa.key" ] || { openssl genrsa -out "$R/sa.key" 2048 2>/dev/null; openssl rsa -in "$R/sa.key" -pubout -out "$R/sa.pub" 2>/dev/null; }
  printf '%s\n' "wk-admin-token,admin,admin,system:masters" \
    "wk-node-token,system:node:$NODE,kubelet,\"system:nodes,system:masters\"" \
    "wk-kcm-token,system:kube-controller-manager,kcm,system:masters" \
    "wk-sched-token,system:kube-scheduler,sched,system:masters" \
    "wk-proxy-token,system:kube-proxy,proxy,system:masters" >"$R/tokens.csv"
  local who
  for who in admin node kcm sched proxy; do
    printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: wk\n  cluster: {server: "%s", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: wk-%s-token}\ncontexts:\n- name: c\n  context: {cluster: wk, user: u}\ncurrent-context: c\n' "$API" "$who" >"$R/$who.kubeconfig"
  done
  sed "s|\${WORKDIR}|$W|g" "$S/containerd-config.toml" >"$W/containerd/config.toml"
  sed "s|\${WORKDIR}|$W|g" "$S/cni.conflist" >"$W/cni/net.d/10-wk.conflist"
  sed "s|\${WORKDIR}|$W|g" "$S/kubelet-config.yaml" >"$R/kubelet-config.yaml"
}

start() { # NAME CMD... : background, pid in run/NAME.pid
  local n=$1; shift; nohup "$@" >"$L/$n.log" 2>&1 & echo $! >"$R/$n.pid"; }

wait_for() { # WHAT PIDNAME TIMEOUT_S CMD...: poll CMD until it succeeds; fail naming WHAT with the log tail
  local what=$1 pn=$2 t=$3; shift 3; local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pn" ] && ! kill -0 "$(cat "$R/$pn.pid")" 2>/dev/null; then
      echo "cluster.sh: $pn exited while waiting for $what" >&2; tail -30 "$L/$pn.log" >&2; exit 1; fi
    if [ "$(date +%s)" -ge $end ]; then
      echo "cluster.sh: $what not ready after ${t}s" >&2; [ -n "$pn" ] && tail -30 "$L/$pn.log" >&2; exit 1; fi
    sleep 0.1
  done
}

up() {
  T0=$(date +%s%N)
  built || { echo "cluster.sh: binaries missing in $B: run '$0 build' first" >&2; exit 1; }
  [ ! -f "$R/kube-apiserver.pid" ] || ! kill -0 "$(cat "$R/kube-apiserver.pid")" 2>/dev/null || {
    echo "cluster.sh: a cluster already runs from $W (run '$0 down' first)" >&2; exit 1; }
  prepare
  [ -f "$R/ip_forward.orig" ] || sysctl -n net.ipv4.ip_forward >"$R/ip_forward.orig"
  ip addr show dev lo | grep -q "$NODE_IP/32" || ip addr add "$NODE_IP/32" dev lo
  local dev; for dev in $(ip -o link show | awk -F': ' '$2 !~ /^(lo|wk0|veth.*)$/ {print $2}' | cut -d@ -f1); do
    iptables -C FORWARD -s 10.244.0.0/16 -o "$dev" -j DROP 2>/dev/null || iptables -I FORWARD -s 10.244.0.0/16 -o "$dev" -j DROP
    iptables -C FORWARD -d 10.244.0.0/16 -i "$dev" -j DROP 2>/dev/null || iptables -I FORWARD -d 10.244.0.0/16 -i "$dev" -j DROP
  done
  start containerd /usr/bin/containerd --config "$W/containerd/config.toml"
  wait_for containerd containerd 30 ctr_ version
  ctr_ images import "$C/images/pause.tar" >/dev/null
  ctr_ images import "$C/images/coredns.tar" >/dev/null
  rm -rf "$R/etcd-data" "$R/certs"
  start etcd "$B/etcd" --name wk --data-dir "$R/etcd-data" --listen-client-urls http://127.0.0.1:23790 \
    --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
    --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster wk=http://127.0.0.1:23800 --unsafe-no-fsync
  wait_for etcd etcd 30 curl -sf http://127.0.0.1:23790/health
  start kube-apiserver "$B/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 --bind-address=$NODE_IP \
    --advertise-address=$NODE_IP --secure-port=26443 --cert-dir="$R/certs" --service-cluster-ip-range=10.96.0.0/24 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-account-key-file="$R/sa.pub" \
    --service-account-signing-key-file="$R/sa.key" --token-auth-file="$R/tokens.csv" --authorization-mode=AlwaysAllow \
    --allow-privileged=true --kubelet-preferred-address-types=InternalIP
  wait_for "the API server" kube-apiserver 60 sh -c "[ \"\$(curl -sk -H 'Authorization: Bearer wk-admin-token' $API/readyz)\" = ok ]"
  echo "api server ready: $(ms) ms"
  start kube-controller-manager "$B/kube-controller-manager" --kubeconfig="$R/kcm.kubeconfig" \
    --authentication-kubeconfig="$R/kcm.kubeconfig" --authorization-kubeconfig="$R/kcm.kubeconfig" --bind-address=127.0.0.1 \
    --secure-port=10257 --service-account-private-key-file="$R/sa.key" --root-ca-file="$R/certs/apiserver.crt" \
    --use-service-account-credentials=false --controllers='*,-node-ipam-controller' --leader-elect=false \
    --flex-volume-plugin-dir="$W/kubelet/volume-plugins" --service-cluster-ip-range=10.96.0.0/24
  start kube-scheduler "$B/kube-scheduler" --kubeconfig="$R/sched.kubeconfig" --authentication-kubeconfig="$R/sched.kubeconfig" \
    --authorization-kubeconfig="$R/sched.kubeconfig" --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
  start kube-proxy "$B/kube-proxy" --kubeconfig="$R/proxy.kubeconfig" --hostname-override=$NODE --cluster-cidr=10.244.0.0/24 \
    --proxy-mode=iptables --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
    --conntrack-max-per-core=0 --oom-score-adj=0
  start kubelet "$B/kubelet" --config="$R/kubelet-config.yaml" --kubeconfig="$R/node.kubeconfig" --root-dir="$W/kubelet" \
    --hostname-override=$NODE --node-ip=$NODE_IP --volume-plugin-dir="$W/kubelet/volume-plugins"
  export KUBECONFIG=$R/admin.kubeconfig
  wait_for "node Ready" kubelet 120 sh -c "kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  wait_for "the default ServiceAccount" kube-controller-manager 60 kubectl get sa default
  dns
  echo "node Ready, DNS deployed: $(ms) ms; KUBECONFIG=$R/admin.kubeconfig"
}

# dns runs CoreDNS as the cluster DNS (Service kube-system/kube-dns at 10.96.0.10), as real clusters
# do: the kubelet gives pods that nameserver (clusterDNS). It answers cluster names only; nothing is
# forwarded off the machine.
dns() {
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            endpoint $API
            kubeconfig /etc/coredns/kubeconfig c
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
        loop
        reload
    }
  kubeconfig: |
$(sed 's/^/    /' "$R/admin.kubeconfig")
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
      - name: coredns
        image: docker.io/local/coredns:1
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports: [{containerPort: 53, protocol: UDP, name: dns}, {containerPort: 53, protocol: TCP, name: dns-tcp}]
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        volumeMounts: [{name: config, mountPath: /etc/coredns}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: 10.96.0.10
  selector: {k8s-app: kube-dns}
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
EOF
}

down() {
  # Best effort throughout: whatever is already gone (no mounts, no rules) is
  # not a failure, and one step that fails must not stop the ones after it.
  set +e +o pipefail
  export KUBECONFIG=$R/admin.kubeconfig
  if [ -f "$R/kube-apiserver.pid" ] && kill -0 "$(cat "$R/kube-apiserver.pid")" 2>/dev/null; then
    timeout 40 kubectl delete deploy,rs,ds,sts,job,pod --all --all-namespaces --wait=true --timeout=30s >/dev/null 2>&1 || true
  fi
  local p
  for p in kwok kubelet kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$R/$p.pid" ] && { kill "$(cat "$R/$p.pid")" 2>/dev/null || true; for i in $(seq 50); do kill -0 "$(cat "$R/$p.pid")" 2>/dev/null || break; sleep 0.1; done; kill -9 "$(cat "$R/$p.pid")" 2>/dev/null || true; rm -f "$R/$p.pid"; }
  done
  if [ -f "$R/containerd.pid" ]; then
    for t in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s KILL "$t" 2>/dev/null || true; done; sleep 1
    for t in $(ctr_ task ls -q 2>/dev/null); do ctr_ task rm -f "$t" >/dev/null 2>&1 || true; done
    for c in $(ctr_ c ls -q 2>/dev/null); do ctr_ c rm "$c" >/dev/null 2>&1 || true; done
    kill "$(cat "$R/containerd.pid")" 2>/dev/null || true; sleep 1; rm -f "$R/containerd.pid"
  fi
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $W/" 2>/dev/null || true
  [ -x "$B/kube-proxy" ] && "$B/kube-proxy" --cleanup >/dev/null 2>&1 || true
  findmnt -rn -o TARGET | grep "^$W" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  ip link del wk0 2>/dev/null || true
  iptables -S FORWARD | grep -- '-s 10.244.0.0/16\|-d 10.244.0.0/16' | sed 's/^-A/-D/' | while read -r r; do eval iptables $r; done
  ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  [ -f "$R/ip_forward.orig" ] && { sysctl -qw net.ipv4.ip_forward="$(cat "$R/ip_forward.orig")"; rm -f "$R/ip_forward.orig"; }
  for h in /sys/fs/cgroup/*/kubepods; do [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  local ipt t ch
  for ipt in iptables ip6tables; do for t in filter nat mangle; do
    $ipt -t $t -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' | sed 's/^-A/-D/' | while read -r r; do eval $ipt -t $t $r; done
    for ch in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -F "$ch"; done
    for ch in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -X "$ch" 2>/dev/null || true; done
  done; done
  rm -rf "$W/cni/ipam"
  return 0
}

# running: exit 0 when this workdir's API server answers.
running() {
  [ -f "$R/kube-apiserver.pid" ] && kill -0 "$(cat "$R/kube-apiserver.pid")" 2>/dev/null &&
    [ "$(curl -sk -m 2 -H 'Authorization: Bearer wk-admin-token' $API/readyz 2>/dev/null)" = ok ]
}

case "${1:-}" in
  build) build ;; up) up ;; down) down ;; built) built ;; running) running ;;
  import) shift; for f in "$@"; do ctr_ images import "$f"; done ;;
  env) echo "KUBECONFIG=$R/admin.kubeconfig"; echo "WEFT_K8S_BIN=$B"; echo "WEFT_K8S_WORKDIR=$W"; echo "WEFT_K8S_LOGS=$L" ;;
  *) echo "usage: $0 build|up|import FILE.tar...|env|down|built|running" >&2; exit 2 ;;
esac
