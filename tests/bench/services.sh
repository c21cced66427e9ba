#!/bin/bash
# Services, side by side in one run (release builds):
#  - applying the rules of 1,000 services x 10 endpoints: berth's whole-table nft transaction,
#    its partial transaction for one endpoint replaced, and the same services in kube-proxy's
#    iptables layout through `iptables-restore --noflush` (chains of the bench's own that
#    nothing references: no traffic is affected);
#  - 10,000 short HTTP requests (ab, 10 at a time) through a Service's VIP vs straight to the
#    pod's address;
#  - a container's exit to its address gone from the rules (the pod monitor's resync).
# Usage: services.sh BERTH_RELEASE_BINARY
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$(realpath "$1")
N=${BENCH_SERVICES:-1000}
M=${BENCH_ENDPOINTS:-10}
runs=${BENCH_SERVICE_RUNS:-10}
P=$(mktemp -d /run/berth-bench-services.XXXXXX)
T=berth_bench_$$
export BERTH_DATA_ROOT=$P/data BERTH_LOG_ROOT=$P/logs BERTH_CNI_CONF_DIR=$P/net.d BERTH_CGROUP_PARENT=/berth-bench-services \
    BERTH_CNI_IPAM_DIR=$P/ipam BERTH_DEFAULT_BRIDGE=bs0 BERTH_DEFAULT_SUBNET=10.81.0.0/24 \
    BERTH_NFT_TABLE=${T}_live BERTH_SERVICE_CIDR=10.82.0.0/24
B="$berth --root $P/run"
cleanup() {
    for id in $(ls "$P/run/pods" 2>/dev/null); do $B pod rm -f "$id" >/dev/null 2>&1 || true; done
    $B kube delete svc web >/dev/null 2>&1 || true
    nft delete table ip "$T" 2>/dev/null || true
    nft delete table ip "${T}_live" 2>/dev/null || true
    [ -f "$P/iptables-clean.txt" ] && iptables-restore --noflush < "$P/iptables-clean.txt" 2>/dev/null || true
    ip link delete bs0 2>/dev/null || true
    rm -rf "$P"
    rmdir /sys/fs/cgroup/*/berth-bench-services 2>/dev/null || true
}
trap cleanup EXIT
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

cargo build -q --release --example service_rules --manifest-path "$top/Cargo.toml"
"$top/target/release/examples/service_rules" "$N" "$M" "$T" "$P"
echo "berth: $($berth --version | head -1); $(nft --version); $(iptables -V)"
echo "$N services x $M endpoints; $runs runs per figure, medians"
echo

# --- rules
full=() ; part=() ; ipt=()
for _ in $(seq "$runs"); do
    a=$(date +%s%N); nft -f "$P/full.nft"; b=$(date +%s%N); full+=("$(ms "$a" "$b")")
    a=$(date +%s%N); nft -f "$P/partial.nft"; b=$(date +%s%N); part+=("$(ms "$a" "$b")")
    nft -f "$P/partial-back.nft"
    a=$(date +%s%N); iptables-restore --noflush < "$P/iptables.txt"; b=$(date +%s%N); ipt+=("$(ms "$a" "$b")")
done
f=$(printf '%s\n' "${full[@]}" | median); p=$(printf '%s\n' "${part[@]}" | median); i=$(printf '%s\n' "${ipt[@]}" | median)
printf "%-58s %10s %12s\n" "apply the rules" "ms" "vs iptables"
printf "%-58s %10s %12s\n" "berth: whole table (nft -f, one transaction)" "$f" "$(awk -v a="$f" -v b="$i" 'BEGIN { printf "%.2f", a / b }')"
printf "%-58s %10s %12s\n" "berth: one endpoint replaced (partial, target <= 50 ms)" "$p" "$(awk -v a="$p" -v b="$i" 'BEGIN { printf "%.3f", a / b }')"
printf "%-58s %10s %12s\n" "kube-proxy iptables layout (iptables-restore --noflush)" "$i" "1.00"
echo

# --- a VIP vs the pod's address, and exit -> endpoint gone
$B image import --name localhost/fx "$top/rootfs-fixtures/build/images/oci" >/dev/null
cat > "$P/web.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: c
    image: localhost/fx:base
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www']
YAML
$B pod run --restart-backoff 10ms "$P/web.yaml" >/dev/null
vip=$($B service inspect web | jq -r .service.cluster_ip)
pod_ip=$($B service inspect web | jq -r '.endpoints[0].ip')
for _ in $(seq 100); do nft list table ip "${T}_live" 2>/dev/null | grep -q "$pod_ip" && break; sleep 0.05; done
ab_run() { ab -q -n 10000 -c 10 "$1" 2>/dev/null | awk '/Requests per second/ { rps = $4 } /Time per request/ && !t { t = $4 } END { print rps, t }'; }
# alternated, ROUNDS times each (default 3): medians
rvs=(); tvs=(); rps=(); tps=()
for _ in $(seq "${BENCH_AB_ROUNDS:-3}"); do
    read -r r t <<< "$(ab_run "http://$vip/index.html")"; rvs+=("$r"); tvs+=("$t")
    read -r r t <<< "$(ab_run "http://$pod_ip:8080/index.html")"; rps+=("$r"); tps+=("$t")
done
rv=$(printf '%s\n' "${rvs[@]}" | median); tv=$(printf '%s\n' "${tvs[@]}" | median)
rp=$(printf '%s\n' "${rps[@]}" | median); tp=$(printf '%s\n' "${tps[@]}" | median)
printf "%-58s %12s %14s\n" "10,000 requests (ab -c 10), medians of ${BENCH_AB_ROUNDS:-3} alternated" "requests/s" "ms/request"
printf "%-58s %12s %14s\n" "through the VIP" "$rv" "$tv"
printf "%-58s %12s %14s\n" "straight to the pod" "$rp" "$tp"
printf "%-58s %12s %14s\n" "VIP / pod (target: within 5%)" "$(awk -v a="$rv" -v b="$rp" 'BEGIN { printf "%.3f", a / b }')" "$(awk -v a="$tv" -v b="$tp" 'BEGIN { printf "%.3f", a / b }')"
echo

# exit -> address gone from the rules: kill the container's process, poll nft
gone=()
for _ in $(seq "$runs"); do
    # back after its restart (back-off from 10 ms, doubling)
    # (running, not between an exit and its resync: the rules still name an exited one then)
    for _ in $(seq 1000); do
        [ "$($B pod inspect web | jq -r '.containers[0].status.state')" = Running ] &&
            nft list table ip "${T}_live" 2>/dev/null | grep -q "$pod_ip" && break
        sleep 0.02
    done
    pid=$($B pod inspect web | jq -r '.containers[0].status.pid')
    a=$(date +%s%N)
    kill -9 "$pid"
    while nft list table ip "${T}_live" | grep -q "$pod_ip"; do :; done
    b=$(date +%s%N)
    gone+=("$(ms "$a" "$b")")
done
printf "%-58s %10s\n" "container exit -> endpoint out of the rules (target <= 100)" "$(printf '%s\n' "${gone[@]}" | median) ms"
