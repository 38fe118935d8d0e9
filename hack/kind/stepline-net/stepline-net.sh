#!/bin/bash
# stepline-net: the pod network of our offline kind clusters (kind's kindnetd is not on the module
# proxy). One pod per node, host network, NET_ADMIN:
#   - writes /etc/cni/net.d/10-stepline.conflist for this node's spec.podCIDR (ptp + host-local +
#     portmap, plugins in the node's /opt/cni/bin), which makes the node Ready;
#   - routes every other node's podCIDR via that node's InternalIP (nodes share one docker bridge);
#   - masquerades traffic from pods to anything outside the pod subnet.
# Environment (kind fills POD_SUBNET and CONTROL_PLANE_ENDPOINT into the manifest):
#   NODE_NAME, POD_SUBNET, CONTROL_PLANE_ENDPOINT (host:port of the API server), RESYNC_SECONDS.
set -uo pipefail

sa=/var/run/secrets/kubernetes.io/serviceaccount
api="https://${CONTROL_PLANE_ENDPOINT:?CONTROL_PLANE_ENDPOINT unset}"
resync=${RESYNC_SECONDS:-10}
conf=/etc/cni/net.d/10-stepline.conflist

log() { printf '%s stepline-net: %s\n' "$(date -u +%FT%TZ)" "$*"; }

write_conflist() { # pod CIDR
  local tmp
  tmp=$(mktemp /etc/cni/net.d/.stepline.XXXXXX)
  cat >"$tmp" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "stepline",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "$1" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
CONF
  chmod 0644 "$tmp"
  if cmp -s "$tmp" "$conf"; then rm -f "$tmp"; else mv "$tmp" "$conf" && log "wrote $conf for $1"; fi
}

ensure_masquerade() {
  iptables -t nat -N STEPLINE-MASQ 2>/dev/null || true
  iptables -t nat -C STEPLINE-MASQ -d "$POD_SUBNET" -j RETURN 2>/dev/null ||
    iptables -t nat -A STEPLINE-MASQ -d "$POD_SUBNET" -j RETURN
  iptables -t nat -C STEPLINE-MASQ -j MASQUERADE 2>/dev/null ||
    iptables -t nat -A STEPLINE-MASQ -j MASQUERADE
  iptables -t nat -C POSTROUTING -s "$POD_SUBNET" -j STEPLINE-MASQ 2>/dev/null ||
    iptables -t nat -A POSTROUTING -s "$POD_SUBNET" -j STEPLINE-MASQ
}

log "node $NODE_NAME, pod subnet $POD_SUBNET, API $api"
while true; do
  if nodes=$(curl -sSf --max-time 10 --cacert "$sa/ca.crt" -H "Authorization: Bearer $(cat "$sa/token")" \
    "$api/api/v1/nodes"); then
    mine=$(jq -r --arg n "$NODE_NAME" '.items[] | select(.metadata.name == $n) | .spec.podCIDR // empty' <<<"$nodes")
    if [ -n "$mine" ]; then
      write_conflist "$mine"
    else
      log "no podCIDR on node $NODE_NAME yet"
    fi
    jq -r --arg n "$NODE_NAME" '.items[] | select(.metadata.name != $n and .spec.podCIDR != null)
        | [.spec.podCIDR, (.status.addresses[] | select(.type == "InternalIP") | .address)] | @tsv' <<<"$nodes" |
      while IFS=$'\t' read -r cidr ip; do
        [ -n "$ip" ] || continue
        if [ "$(ip route show "$cidr" | awk '{print $3}')" != "$ip" ]; then
          ip route replace "$cidr" via "$ip" && log "route $cidr via $ip"
        fi
      done
    ensure_masquerade
  else
    log "API not reachable yet"
  fi
  sleep "$resync"
done
