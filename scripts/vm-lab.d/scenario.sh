# shellcheck shell=bash
# Single-quoted scripts run in a VM; the lab's globals are read by scripts/vm-lab.
# shellcheck disable=SC2016,SC2034
# The VM lab's Service scenario (`scripts/vm-lab test ipvs|nftables`), sourced by
# scripts/vm-lab: it uses its globals (LAB, NVMS, PROXY_MODE, ...) and helpers (vm_exec,
# boot_vms, start_weft, teardown, ...).

T_START=0
T_MODE=
T_STEP="starting"

t_ok() { echo "vm-lab: ok   $* ($((SECONDS - T_START)) s)"; }
t_fail() {
  echo "vm-lab: FAILED: $T_STEP: $*" >&2
  exit 1
}

# Runs a command on VM i and prints its output; fails the test when it fails.
t_exec() {
  local i="$1" script="$2" out rc=0
  out="$(vm_exec "$i" "${3:-90}" "$script" 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out" | tail -n 20 >&2
    t_fail "vm$i: '$script' exited $rc"
  fi
  printf '%s\n' "$out"
}

# Polls `"$@"` every second for up to $1 seconds (checking weft is alive); fails otherwise.
t_wait() {
  local seconds="$1" what="$2"
  shift 2
  wait_until "$seconds" "$what" "$@" || t_fail "waiting for $what"
}

t_manifest() {
  local pod node
  cat <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: vmlab}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: vmlab}
spec:
  type: NodePort
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: 8080}
EOF
  for pod in echo-1:node2 echo-2:node2 client:node1; do
    node="${pod#*:}"
    pod="${pod%%:*}"
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: $pod, namespace: vmlab, labels: {app: ${pod%-*}}}
spec:
  nodeName: $node
  containers:
EOF
    if [ "$pod" = client ]; then
      cat <<'EOF'
  - name: client
    image: weft/toolbox
    command: ["sleep", "infinity"]
EOF
    else
      cat <<'EOF'
  - name: echo
    image: weft/echo-server
    command: ["weft", "echo-server", "--port", "8080"]
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
EOF
    fi
  done
}

t_pods_ready() {
  local json
  json="$(vm_exec 1 60 'weftctl get pods -n vmlab -o json' 2>/dev/null)" || return 1
  jq -e '(.items | length) == 3 and all(.items[]; .status.phase == "Running" and (.status.podIP // "") != ""
           and any(.status.conditions[]?; .type == "Ready" and .status == "True"))' <<<"$json" >/dev/null 2>&1
}

# The number of ready addresses in the echo Endpoints equals $1.
t_endpoints() {
  local json
  json="$(vm_exec 1 60 'weftctl get endpoints echo -n vmlab -o json' 2>/dev/null)" || return 1
  [ "$(jq '[.subsets[]?.addresses[]?] | length' <<<"$json" 2>/dev/null)" = "$1" ]
}

# The real servers of an IPVS virtual server on VM i: "ADDR:PORT FORWARD WEIGHT" per line.
t_ipvs_reals() {
  vm_exec "$1" 30 "ipvsadm -Ln -t $2" 2>/dev/null | awk '$1 == "->" && $2 != "RemoteAddress:Port" { print $2, $3, $4 }'
}

# The kernel table on node1 sends the ClusterIP to exactly the pods $2... ($1: 'VIP').
t_table_has() {
  local vip="$1" want got
  shift
  want="$(printf '%s\n' "$@" | sort)"
  if [ "$PROXY_MODE" = ipvs ]; then
    got="$(t_ipvs_reals 1 "$vip:80" | awk '$2 == "Masq" && $3 > 0 { sub(/:8080$/, "", $1); print $1 }' | sort)"
  else
    # service-ips sends VIP . tcp . 80 to the shared chain for N endpoints, which DNATs
    # through cluster-backends-tcp (VIP . 80 . index : IP . 8080); nft may print tcp as 6.
    local table
    table="$(vm_exec 1 30 'nft list table ip weft-proxy' 2>/dev/null)" || return 1
    grep -qE "$vip \. (tcp|6) \. 80 : goto pick-cluster-tcp-[a-z]+-$#" <<<"$table" || return 1
    got="$(grep -oE "$vip \. 80 \. [0-9]+ : [0-9.]+ \. 8080" <<<"$table" | awk '{ print $7 }' | sort -u)"
  fi
  [ "$got" = "$want" ]
}

# Curls URL $3 $2 times from VM $1 (in the client pod's network namespace when $4 is set);
# prints the answering hostnames, one per line.
t_curl_names() {
  local i="$1" n="$2" url="$3" netns="${4:-}" pre=""
  [ -n "$netns" ] && pre="nsenter --net=/run/netns/$netns --"
  vm_exec "$i" 120 "for k in \$(seq $n); do $pre curl -s --max-time 5 $url || echo 'curl-failed'; echo; done" 2>/dev/null |
    sed -n 's/.*hostname=\([^ ]*\).*/\1/p; s/^curl-failed$/curl-failed/p'
}

t_netns_of() {
  local json uid
  json="$(vm_exec 1 60 "weftctl get pod $1 -n vmlab -o json")" || t_fail "reading pod $1"
  uid="$(jq -r .metadata.uid <<<"$json" | tr -d -)"
  echo "weft-${uid:0:12}"
}

t_cleanup() {
  local rc=$?
  # Cleanup finishes even if more signals come (Ctrl-C twice, a group-wide kill).
  trap - EXIT
  trap '' INT TERM
  exec 1>&5 2>&6
  if [ -n "${T_WATCHDOG:-}" ]; then kill "$T_WATCHDOG" 2>/dev/null || true; fi
  if [ "$rc" -ne 0 ]; then
    local i f
    for i in 1 2; do
      for f in "$LAB/vm$i/ctl/logs/"*.log "$LAB/vm$i/console.log"; do
        [ -s "$f" ] || continue
        echo "---- last lines of ${f#"$ROOT"/}" >&2
        tail -n 12 "$f" | cut -c1-400 >&2
      done
    done
  fi
  if [ "$rc" -ne 0 ] && [ "${T_KEEP:-0}" = 1 ]; then
    # Lift the die-with-parent tie: the VMs stay for inspection.
    echo "vm-lab: --keep: the failed lab stays in $LAB; remove it with WEFT_VM_LAB_DIR=$LAB scripts/vm-lab down" >&2
  else
    teardown
  fi
  if [ "$rc" -eq 0 ]; then
    echo "PASS: vm-lab test $T_MODE ($((SECONDS - T_START)) s)"
  else
    echo "FAIL: vm-lab test $T_MODE: $T_STEP ($((SECONDS - T_START)) s)"
  fi
  exit "$rc"
}

test_cmd() {
  T_MODE="${1:-}"
  shift || true
  case "$T_MODE" in
    ipvs | nftables) ;;
    *) die "usage: scripts/vm-lab test ipvs|nftables [--keep]" ;;
  esac
  T_KEEP=0
  [ "${1:-}" = --keep ] && T_KEEP=1
  need_root test
  T_START=$SECONDS
  if [ ! -f "$INITRD" ] || [ ! -f "$CACHE/accel" ]; then prepare; fi
  sweep_stale
  LAB="$CACHE/test.$$"
  NVMS=2 NET=udp PROXY_MODE="$T_MODE" BARE=0
  # The report goes to the test's own stdout/stderr (fds 5, 6) even when a signal lands
  # while some step's output is redirected. A signal in a subshell ($(...)) ends only that
  # subshell; the main shell gets its own (Ctrl-C and kill of the group reach both).
  exec 5>&1 6>&2
  trap t_cleanup EXIT
  trap 'if [ "$BASHPID" != "$$" ]; then exit 130; fi; T_STEP="$T_STEP (interrupted)"; exit 130' INT
  trap 'if [ "$BASHPID" != "$$" ]; then exit 143; fi; T_STEP="$T_STEP (terminated)"; exit 143' TERM
  local limit="${WEFT_VM_TEST_TIMEOUT:-480}"
  # The watchdog ends within a second of the test; its sleeps hold no output pipe open.
  (
    for ((k = 0; k < limit; k++)); do
      sleep 1 >/dev/null 2>&1
      kill -0 $$ 2>/dev/null || exit 0
    done
    echo "vm-lab: the test ran past ${limit}s (WEFT_VM_TEST_TIMEOUT); stopping it" >&2
    kill -TERM $$
  ) &
  T_WATCHDOG=$!
  echo "vm-lab: test $T_MODE: 2 VMs, weft proxy --proxy-mode $T_MODE (lab dir $LAB)"

  T_STEP="booting 2 VMs"
  mkdir -p "$LAB"
  pick_profile
  snapshot_bins
  if [ "$T_KEEP" = 1 ]; then DIE_WITH_PARENT=0 boot_vms 256 192; else DIE_WITH_PARENT=1 boot_vms 256 192; fi
  t_ok "2 VMs booted, kernel $(cat "$KDIR/version"), $(accel_args | cut -d' ' -f2), binaries from $(bin_desc)"

  T_STEP="starting weft (API server on vm1; node and proxy on both)"
  start_weft >/dev/null || t_fail "weft did not come up"
  t_ok "API server on vm1, node1 and node2 Ready (weft node + weft proxy --proxy-mode $T_MODE on each)"

  T_STEP="applying the Service and pods"
  t_manifest >"$LAB/vm1/ctl/scenario.yaml"
  t_exec 1 'weftctl apply -f /ctl/scenario.yaml' >/dev/null
  t_wait 180 "the pods to be Running and Ready" t_pods_ready
  t_wait 60 "Endpoints echo with 2 addresses" t_endpoints 2
  local svc vip nodeport pods ip1 ip2 client_ns
  svc="$(t_exec 1 'weftctl get svc echo -n vmlab -o json')"
  vip="$(jq -r .spec.clusterIP <<<"$svc")"
  nodeport="$(jq -r '.spec.ports[0].nodePort' <<<"$svc")"
  pods="$(t_exec 1 'weftctl get pods -n vmlab -o json')"
  ip1="$(jq -r '.items[] | select(.metadata.name == "echo-1") | .status.podIP' <<<"$pods")"
  ip2="$(jq -r '.items[] | select(.metadata.name == "echo-2") | .status.podIP' <<<"$pods")"
  client_ns="$(t_netns_of client)"
  t_ok "Service vmlab/echo $vip:80 (NodePort $nodeport), echo-1 $ip1 and echo-2 $ip2 on node2, client on node1"

  T_STEP="the kernel table on node1"
  t_wait 60 "node1's table to send $vip:80 to $ip1 and $ip2" t_table_has "$vip" "$ip1" "$ip2"
  if [ "$T_MODE" = ipvs ]; then
    t_exec 1 "ipvsadm -Ln -t $vip:80"
    local np_reals
    np_reals="$(t_ipvs_reals 1 "$(vm_ip 1):$nodeport" | awk '$2 == "Masq"' | wc -l)"
    [ "$np_reals" = 2 ] || t_fail "ipvsadm -Ln -t $(vm_ip 1):$nodeport shows $np_reals Masq real servers, not 2"
    t_ok "ipvsadm -Ln on node1: virtual server $vip:80 with two Masq real servers ($ip1, $ip2); NodePort $(vm_ip 1):$nodeport too"
  else
    t_exec 1 "nft list table ip weft-proxy | grep -E '$vip|pick-cluster'"
    t_ok "nft list table ip weft-proxy on node1: $vip . tcp . 80 -> pick-cluster-tcp-*-2, cluster-backends-tcp DNATs to $ip1 and $ip2"
  fi

  if [ "$T_MODE" = ipvs ]; then
    # kube-ipvs0 makes every ClusterIP a local address: a node process listening on all
    # addresses must still not answer on a ClusterIP (the input filter over the sets).
    T_STEP="a node process is not reachable through a ClusterIP"
    vm_exec 1 10 "setsid socat TCP-LISTEN:19999,fork,reuseaddr SYSTEM:'echo node-process' </dev/null >/dev/null 2>&1 &" >/dev/null
    t_wait 10 "a node process listening on node1:19999" \
      vm_exec 1 5 "socat -T2 - TCP:$(vm_ip 1):19999 </dev/null | grep -q node-process"
    local refused
    refused="$(vm_exec 1 10 "nsenter --net=/run/netns/$client_ns -- socat -T2 - TCP:$vip:19999 </dev/null 2>&1" || true)"
    vm_exec 1 5 "pkill -f 'socat TCP-LISTEN:19999' || true" >/dev/null
    grep -q 'Connection refused' <<<"$refused" ||
      t_fail "client pod -> $vip:19999 (a port no Service has) should be refused, got: $refused"
    t_ok "client pod -> $vip:19999 refused, though a node process listens on node1:19999 (all addresses)"
  fi

  T_STEP="curl the ClusterIP from the client pod"
  local names
  names="$(t_curl_names 1 10 "http://$vip/" "$client_ns")"
  printf '%s\n' "$names" | sort | uniq -c | sed 's/^/    /'
  { grep -qx echo-1 <<<"$names" && grep -qx echo-2 <<<"$names"; } ||
    t_fail "10 curls from the client pod to http://$vip/ were not answered by both echo-1 and echo-2"
  grep -q curl-failed <<<"$names" && t_fail "some curls to http://$vip/ failed"
  t_ok "client pod (node1) -> http://$vip/ x10: answered by echo-1 and echo-2"

  T_STEP="the NodePort from the other node"
  names="$(t_curl_names 2 2 "http://$(vm_ip 1):$nodeport/")"
  grep -qE '^echo-[12]$' <<<"$names" || t_fail "node2 -> http://$(vm_ip 1):$nodeport/ (node1's NodePort) got no answer"
  names="$(t_curl_names 1 2 "http://$(vm_ip 2):$nodeport/")"
  grep -qE '^echo-[12]$' <<<"$names" || t_fail "node1 -> http://$(vm_ip 2):$nodeport/ (node2's NodePort) got no answer"
  t_ok "NodePort $nodeport answers: node2 -> node1:$nodeport and node1 -> node2:$nodeport"

  T_STEP="a connection held through the ClusterIP across a proxy restart"
  local req='GET / HTTP/1.1\r\nHost: echo\r\n\r\n'
  t_exec 1 "rm -f /tmp/held.*; nsenter --net=/run/netns/$client_ns -- bash -c '{ printf \"$req\"; while [ ! -f /tmp/held.go ]; do sleep 0.2; done; printf \"$req\"; sleep 2; } | socat -t 10 - TCP:$vip:80 >/tmp/held.out 2>&1; echo \$? >/tmp/held.rc' </dev/null >/dev/null 2>&1 &" >/dev/null
  local deadline=$((SECONDS + 30))
  until vm_exec 1 10 'grep -q hostname= /tmp/held.out' >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || t_fail "no first answer on the held connection: $(vm_exec 1 10 'cat /tmp/held.*' 2>&1 | tail -n 5)"
    sleep 0.5
  done
  t_exec 1 'kill -TERM $(cat /run/proxy.pid); for k in $(seq 100); do kill -0 $(cat /run/proxy.pid) 2>/dev/null || exit 0; sleep 0.1; done; echo still running; exit 1' >/dev/null
  local old_pid
  old_pid="$(vm_exec 1 10 'cat /run/proxy.pid')"
  start_proxy 1
  [ "$(vm_exec 1 10 'cat /run/proxy.pid')" != "$old_pid" ] || t_fail "weft proxy did not restart"
  sleep 3
  check_weft_alive || t_fail "the restarted weft proxy exited"
  t_wait 60 "the restarted proxy's table to send $vip:80 to $ip1 and $ip2" t_table_has "$vip" "$ip1" "$ip2"
  t_exec 1 'touch /tmp/held.go' >/dev/null
  deadline=$((SECONDS + 30))
  until vm_exec 1 10 '[ -f /tmp/held.rc ]' >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || t_fail "the held connection did not finish"
    sleep 0.5
  done
  local held clients
  held="$(t_exec 1 'cat /tmp/held.out')"
  clients="$(sed -n 's/.*hostname=\([^ ]*\) .*client=\([^ ]*\).*/\1 \2/p' <<<"$held")"
  printf '%s\n' "$clients" | sed 's/^/    answer: /'
  { [ "$(wc -l <<<"$clients")" = 2 ] && [ "$(sort -u <<<"$clients" | wc -l)" = 1 ]; } ||
    t_fail "the connection did not survive the proxy restart (want two answers from the same backend to the same client port): $held"
  t_ok "proxy on node1 killed and restarted: the TCP connection through $vip:80 still answered, same backend and client port"

  T_STEP="deleting echo-2"
  t_exec 1 'weftctl delete pod echo-2 -n vmlab' >/dev/null
  t_wait 120 "Endpoints echo with 1 address" t_endpoints 1
  t_wait 60 "node1's table to send $vip:80 to $ip1 only" t_table_has "$vip" "$ip1"
  if [ "$T_MODE" = ipvs ]; then
    t_exec 1 "ipvsadm -Ln -t $vip:80"
  fi
  names="$(t_curl_names 1 6 "http://$vip/" "$client_ns")"
  [ "$(sort -u <<<"$names")" = echo-1 ] || t_fail "after deleting echo-2, curls to $vip answered: $(tr '\n' ' ' <<<"$names")"
  t_ok "echo-2 deleted: the table holds only $ip1 and every curl is answered by echo-1"
  local i mem=""
  for i in 1 2; do
    mem="$mem vm$i $(vm_exec "$i" 30 "free -m | awk '/^Mem:/ { print \$3 \"/\" \$2 }'; ps -o rss,args | awk '/weft (apiserver|node|proxy)/ && !/awk/ { printf \" %s=%s\", \$3, \$1 }'" 2>/dev/null | tr -d '\n') MB;"
  done
  t_ok "memory used (MB, of the VM's; weft RSS):$mem"
  T_STEP="powering off"
}
