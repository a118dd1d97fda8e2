#!/usr/bin/env bash
# lab.sh: a throwaway XMPP server (Prosody) and Redis on 127.0.0.1 for kith's
# integration tests and for `kith demo`.
#
#   lab.sh start DIR          certificates, config, accounts; start Prosody
#   lab.sh stop DIR [--clean] stop that Prosody (and its Redis); --clean
#                             removes DIR afterwards
#   lab.sh start-redis DIR    start a redis-server for DIR (no persistence)
#   lab.sh stop-redis DIR     stop it
#   lab.sh status DIR         exit 0 if DIR's Prosody is running
#
# Everything lives in DIR; DIR/lab.env lists what a test needs (KEY=VALUE).
# Nothing listens anywhere but 127.0.0.1, and the ports are picked free at
# start, never the well-known XMPP ones, so a lab runs beside a system
# Prosody or another lab. The script is quiet unless something fails, in
# which case it says what and shows the tail of the server's log.
#
# Environment: LAB_LOG_LEVEL (Prosody log level, default "debug"),
# LAB_START_TIMEOUT (seconds to wait for the ports, default 20).
set -euo pipefail

PY=/usr/bin/python3
PROSODY=/usr/bin/prosody
PROSODYCTL=/usr/bin/prosodyctl
REDIS_SERVER=/usr/bin/redis-server
START_TIMEOUT=${LAB_START_TIMEOUT:-20}
LOG_LEVEL=${LAB_LOG_LEVEL:-debug}

# The test accounts: name on localhost, password NAME-secret.
USERS=(alice bob carol dave)
# Extra virtual hosts, each with one account alice@HOST (alice-secret):
#   sha256.localhost  stores SCRAM-SHA-256 credentials, so it offers
#                     SCRAM-SHA-256 instead of SCRAM-SHA-1;
#   tls12.localhost   caps TLS at 1.2, so tls-unique exists and it offers
#                     SCRAM-SHA-1-PLUS (Prosody 0.12 binds only tls-unique).
EXTRA_HOSTS=(sha256.localhost tls12.localhost)

die() {
  echo "lab.sh: $*" >&2
  exit 1
}

# Show the last lines of a log file on stderr, if it exists.
show_tail() {
  local file=$1
  if [[ -s $file ]]; then
    echo "---- last lines of $file ----" >&2
    tail -n 40 "$file" >&2
    echo "----" >&2
  fi
}

# Absolute path without requiring it to exist; refuse whitespace because
# lab.env is read as plain KEY=VALUE lines.
abs_dir() {
  local d
  d=$(realpath -m -- "$1")
  [[ $d =~ [[:space:]] ]] && die "DIR must not contain whitespace: $d"
  [[ $d == / ]] && die "refusing DIR=/"
  printf '%s\n' "$d"
}

# Print N distinct free TCP ports on 127.0.0.1, one per line. They are
# picked at random below the kernel's ephemeral range (so an outgoing
# connection cannot grab one meanwhile), never a well-known XMPP/Redis
# port, and checked by binding all of them at once.
pick_ports() {
  "$PY" - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
avoid = {5222, 5223, 5269, 5270, 5280, 5281, 5347, 5582, 6379}
held, ports = [], []
for _ in range(1000):
    if len(ports) == n:
        break
    port = random.randint(20000, 32000)
    if port in avoid or port in ports:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    held.append(s)
    ports.append(port)
for s in held:
    s.close()
if len(ports) != n:
    sys.exit("no free ports found")
print("\n".join(map(str, ports)))
EOF
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when the XMPP server on 127.0.0.1:$1 answers a stream header for
# localhost with stream features: an open port alone only shows that
# listen() ran, while Prosody may still be setting up its hosts.
xmpp_ready() {
  "$PY" - "$1" <<'EOF'
import socket, sys, time
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
              b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
    got, deadline = b"", time.monotonic() + 2
    while b"</stream:features>" not in got and time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    sys.exit(0 if b"</stream:features>" in got else 1)
except OSError:
    sys.exit(1)
EOF
}

# True when $1 is a live process whose command line mentions $2.
pid_matches() {
  local pid=$1 needle=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

# Send TERM, wait up to 10 s, then KILL; wait until the process is gone.
kill_and_wait() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "lab.sh: process $pid did not exit" >&2
  return 1
}

# Value of KEY in DIR/lab.env, or empty.
env_get() {
  local file=$1/lab.env key=$2
  [[ -f $file ]] || return 0
  sed -n "s/^$key=//p" "$file" | tail -n 1
}

# Set KEY=VALUE in DIR/lab.env, replacing an earlier value.
env_set() {
  local file=$1/lab.env key=$2 value=$3
  touch "$file"
  sed -i "/^$key=/d" "$file"
  printf '%s=%s\n' "$key" "$value" >>"$file"
}

# ---- certificates ---------------------------------------------------------

# A CA and a server certificate for localhost signed by it, plus a second,
# unrelated CA for "unknown CA" tests. EC P-256 keys: instant to generate.
make_certs() {
  local dir=$1 log=$1/openssl.log
  local ossl=(openssl)
  : >"$log"
  {
    "${ossl[@]}" req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 365 -sha256 \
      -subj "/O=kith test lab/CN=kith test CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      "${ossl[@]}" req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" -days 365 -sha256 \
        -subj "/O=kith test lab/CN=kith unrelated CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      "${ossl[@]}" req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/server.key" -out "$dir/server.csr" \
        -subj "/O=kith test lab/CN=localhost" &&
      cat >"$dir/server.ext" <<EOF &&
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:*.localhost,DNS:bot.localhost,DNS:gw.localhost,DNS:sha256.localhost,DNS:tls12.localhost,IP:127.0.0.1
EOF
      "${ossl[@]}" x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" \
        -CAkey "$dir/ca.key" -CAcreateserial -out "$dir/server.pem" \
        -days 365 -sha256 -extfile "$dir/server.ext"
  } >>"$log" 2>&1 || {
    show_tail "$log"
    die "certificate generation failed"
  }
  rm -f "$dir/server.csr" "$dir/ca.srl"
  chmod 600 "$dir"/*.key
}

# ---- prosody --------------------------------------------------------------

write_prosody_config() {
  local dir=$1 c2s=$2 comp=$3 tls=$4 bot_secret=$5 gw_secret=$6
  cat >"$dir/prosody.cfg.lua" <<EOF
-- Generated by tests/lab/lab.sh: a throwaway Prosody for kith's tests.
-- Listens on 127.0.0.1 only; no s2s, no HTTP, no registration.

-- The lab runs as whoever starts it, root included (CI runs as root).
-- Without this, mod_posix shuts Prosody down as root, and prosodyctl
-- switches to the 'prosody' user, which cannot write into DIR.
run_as_root = true
daemonize = false
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
plugin_paths = { }
-- Certificates are named per host below; this only stops Prosody from
-- looking in /etc/prosody/certs.
certificates = "$dir/certs"
log = {
  { levels = { min = "$LOG_LEVEL" }, to = "file", filename = "$dir/prosody.log" };
}

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $c2s }
c2s_direct_tls_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { $tls }
component_interfaces = { "127.0.0.1" }
component_ports = { $comp }
legacy_ssl_ports = { }
http_ports = { }
https_ports = { }

-- Only what a roster client needs. roster versioning (XEP-0237) and
-- subscription pre-approval are built into mod_roster and mod_presence.
modules_enabled = {
  "roster"; "saslauth"; "tls"; "disco"; "ping"; "presence";
}
-- s2s is autoloaded; switch it (and its helpers) off.
modules_disabled = { "s2s"; "s2s_auth_certs"; "dialback"; "register" }
allow_registration = false

authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
-- Low iteration count keeps account creation and logins fast.
default_iteration_count = 4096

ssl = {
  certificate = "$dir/server.pem";
  key = "$dir/server.key";
}

VirtualHost "localhost"
  ssl = {
    certificate = "$dir/server.pem";
    key = "$dir/server.key";
  }

VirtualHost "sha256.localhost"
  password_hash = "SHA-256"

VirtualHost "tls12.localhost"
  ssl = {
    certificate = "$dir/server.pem";
    key = "$dir/server.key";
    protocol = "tlsv1_2";
  }

Component "bot.localhost"
  component_secret = "$bot_secret"

Component "gw.localhost"
  component_secret = "$gw_secret"
EOF
}

prosodyctl_lab() {
  local dir=$1
  shift
  "$PROSODYCTL" --config "$dir/prosody.cfg.lua" "$@"
}

# Create the accounts; prosodyctl takes ~0.2 s each, so run them together
# (each writes its own file).
create_accounts() {
  local dir=$1 u h pids=() rc=0
  for u in "${USERS[@]}"; do
    prosodyctl_lab "$dir" register "$u" localhost "$u-secret" \
      >"$dir/prosodyctl-$u@localhost.log" 2>&1 &
    pids+=($!)
  done
  for h in "${EXTRA_HOSTS[@]}"; do
    prosodyctl_lab "$dir" register alice "$h" alice-secret \
      >"$dir/prosodyctl-alice@$h.log" 2>&1 &
    pids+=($!)
  done
  for u in "${pids[@]}"; do
    wait "$u" || rc=1
  done
  for u in "${USERS[@]}"; do
    [[ -f $dir/data/localhost/accounts/$u.dat ]] || rc=1
  done
  if ((rc != 0)); then
    for u in "$dir"/prosodyctl-*.log; do show_tail "$u"; done
    die "creating the lab accounts with prosodyctl failed"
  fi
  rm -f "$dir"/prosodyctl-*.log
}

# Stop a Prosody left over from an earlier start of the same DIR.
stop_stale_prosody() {
  local dir=$1 pid
  pid=$(env_get "$dir" PROSODY_PID)
  [[ -z $pid && -f $dir/prosody.pid ]] && pid=$(cat "$dir/prosody.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && pid_matches "$pid" "$dir/prosody.cfg.lua"; then
    kill_and_wait "$pid"
  fi
  return 0
}

# Start Prosody on the given ports. Return 0 when both ports accept
# connections, 2 when a port was taken meanwhile (caller retries with new
# ports), 1 on any other failure.
launch_prosody() {
  local dir=$1 c2s=$2 comp=$3 tls=$4 pid i deadline
  : >"$dir/prosody.log"
  rm -f "$dir/prosody.pid"
  # setsid: the server must not share the caller's process group (ctest
  # and shells signal groups), and it must not hold the caller's stdout
  # open, or ctest would wait for it.
  setsid "$PROSODY" -F --config "$dir/prosody.cfg.lua" \
    </dev/null >>"$dir/prosody.stdout" 2>&1 &
  pid=$!
  deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      return 1
    fi
    if grep -q "Failed to open server port" "$dir/prosody.log"; then
      if grep -q "Failed to open server port.*in use" "$dir/prosody.log"; then
        kill_and_wait "$pid"
        return 2
      fi
      kill_and_wait "$pid"
      return 1
    fi
    if port_open "$c2s" && port_open "$comp" && port_open "$tls" &&
      xmpp_ready "$c2s"; then
      LAUNCHED_PID=$pid
      return 0
    fi
    sleep 0.05
  done
  kill_and_wait "$pid" || true
  echo "lab.sh: Prosody did not accept connections within ${START_TIMEOUT}s" >&2
  return 1
}

cmd_start() {
  local dir c2s comp tls ports attempt rc bot_secret gw_secret
  dir=$(abs_dir "$1")
  for cmd in "$PY" "$PROSODY" "$PROSODYCTL" openssl setsid; do
    command -v "$cmd" >/dev/null || die "$cmd not found (run scripts/setup.sh)"
  done
  mkdir -p "$dir"
  stop_stale_prosody "$dir"
  # A fresh server state every time: accounts, rosters, logs.
  rm -rf "$dir/data" "$dir/prosody.log" "$dir/prosody.stdout" "$dir/prosody.pid" \
    "$dir/lab.env"
  mkdir -p "$dir/data" "$dir/certs"
  chmod 700 "$dir/data"
  make_certs "$dir"
  bot_secret="bot-$(openssl rand -hex 8)"
  gw_secret="gw-$(openssl rand -hex 8)"

  for attempt in 1 2 3; do
    ports=$(pick_ports 3) || die "could not pick free ports"
    {
      read -r c2s
      read -r comp
      read -r tls
    } <<<"$ports"
    write_prosody_config "$dir" "$c2s" "$comp" "$tls" "$bot_secret" "$gw_secret"
    ((attempt == 1)) && create_accounts "$dir"
    rc=0
    launch_prosody "$dir" "$c2s" "$comp" "$tls" || rc=$?
    ((rc == 2)) && continue
    break
  done
  if ((rc != 0)); then
    show_tail "$dir/prosody.stdout"
    show_tail "$dir/prosody.log"
    die "Prosody failed to start (config $dir/prosody.cfg.lua)"
  fi

  {
    echo "# Written by tests/lab/lab.sh start; read by the integration tests."
    echo "LAB_DIR=$dir"
    echo "XMPP_HOST=127.0.0.1"
    echo "C2S_PORT=$c2s"
    echo "C2S_DIRECT_TLS_PORT=$tls"
    echo "COMPONENT_PORT=$comp"
    echo "DOMAIN=localhost"
    echo "CA_FILE=$dir/ca.pem"
    echo "OTHER_CA_FILE=$dir/other-ca.pem"
    echo "COMPONENT_DOMAIN=bot.localhost"
    echo "COMPONENT_SECRET=$bot_secret"
    echo "GW_COMPONENT_DOMAIN=gw.localhost"
    echo "GW_COMPONENT_SECRET=$gw_secret"
    local u U
    for u in "${USERS[@]}"; do
      U=${u^^}
      echo "${U}_JID=$u@localhost"
      echo "${U}_PASSWORD=$u-secret"
    done
    echo "SHA256_DOMAIN=sha256.localhost"
    echo "SHA256_JID=alice@sha256.localhost"
    echo "SHA256_PASSWORD=alice-secret"
    echo "TLS12_DOMAIN=tls12.localhost"
    echo "TLS12_JID=alice@tls12.localhost"
    echo "TLS12_PASSWORD=alice-secret"
    echo "PROSODY_LOG=$dir/prosody.log"
    echo "PROSODY_PID=$LAUNCHED_PID"
  } >"$dir/lab.env.tmp"
  mv "$dir/lab.env.tmp" "$dir/lab.env"
}

cmd_stop() {
  local dir pid rc=0
  dir=$(abs_dir "$1")
  local clean=${2:-}
  [[ -z $clean || $clean == --clean ]] || die "unknown option: $clean"
  if [[ -d $dir ]]; then
    cmd_stop_redis "$dir" || rc=1
    pid=$(env_get "$dir" PROSODY_PID)
    [[ -z $pid && -f $dir/prosody.pid ]] && pid=$(cat "$dir/prosody.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && pid_matches "$pid" "$dir/prosody.cfg.lua"; then
      kill_and_wait "$pid" || rc=1
    fi
    if [[ $clean == --clean ]]; then
      # Only remove what looks like a lab directory (or an empty one, as
      # left by a start that failed early).
      if [[ -f $dir/prosody.cfg.lua || -f $dir/lab.env || -f $dir/openssl.log ||
        -f $dir/redis.log || -z $(ls -A "$dir") ]]; then
        rm -rf -- "$dir"
      else
        echo "lab.sh: $dir does not look like a lab; not removed" >&2
        rc=1
      fi
    fi
  fi
  return $rc
}

cmd_status() {
  local dir pid
  dir=$(abs_dir "$1")
  pid=$(env_get "$dir" PROSODY_PID)
  [[ -n $pid ]] && pid_matches "$pid" "$dir/prosody.cfg.lua"
}

# ---- redis ----------------------------------------------------------------

cmd_start_redis() {
  local dir port pid attempt deadline ok=0
  dir=$(abs_dir "$1")
  [[ -x $REDIS_SERVER ]] || die "$REDIS_SERVER not found (run scripts/setup.sh)"
  mkdir -p "$dir/redis"
  cmd_stop_redis "$dir"
  for attempt in 1 2 3; do
    port=$(pick_ports 1) || die "could not pick a free port"
    : >"$dir/redis.log"
    # No persistence, loopback only; the pid file doubles as our marker.
    setsid "$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --save '' \
      --appendonly no --daemonize no --protected-mode yes \
      --dir "$dir/redis" --logfile "$dir/redis.log" \
      --pidfile "$dir/redis.pid" </dev/null >/dev/null 2>&1 &
    pid=$!
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
      kill -0 "$pid" 2>/dev/null || break
      if port_open "$port"; then
        ok=1
        break
      fi
      sleep 0.05
    done
    ((ok)) && break
    kill_and_wait "$pid" || true
    grep -q "Address already in use" "$dir/redis.log" || break
  done
  if ((!ok)); then
    show_tail "$dir/redis.log"
    die "redis-server failed to start"
  fi
  env_set "$dir" REDIS_HOST 127.0.0.1
  env_set "$dir" REDIS_PORT "$port"
  env_set "$dir" REDIS_PID "$pid"
}

cmd_stop_redis() {
  local dir pid rc=0
  dir=$(abs_dir "$1")
  pid=$(env_get "$dir" REDIS_PID)
  if [[ -n $pid ]] && pid_matches "$pid" redis-server; then
    kill_and_wait "$pid" || rc=1
  fi
  if [[ -f $dir/lab.env ]]; then
    sed -i '/^REDIS_\(HOST\|PORT\|PID\)=/d' "$dir/lab.env"
  fi
  return $rc
}

usage() {
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

(($# >= 2)) || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" "${3:-}" ;;
status) cmd_status "$2" ;;
start-redis) cmd_start_redis "$2" ;;
stop-redis) cmd_stop_redis "$2" ;;
*) usage ;;
esac
