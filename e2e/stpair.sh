#!/usr/bin/env bash
# stpair.sh - rowdrop's end-to-end harness: two real Syncthing instances on
# one machine, syncing one folder between two local directories, inside a
# private network namespace that has ONLY a loopback interface.
# (Derived from the checked shared tool syncthing-pair.sh; all of its
# isolation checks are kept unchanged.  Added: pause, resume, latency.)
#
#   stpair.sh up DIR_A DIR_B     start both, wait until connected + in sync
#   stpair.sh wait-idle [SECS] [noscan]  rescan both (unless noscan), block until
#                                both idle + in sync; rc 1 on timeout (default 60 s)
#   stpair.sh pause [SECS]       pause the A<->B link (each side pauses the other
#                                device); block until both report disconnected
#   stpair.sh resume [SECS]      undo pause; block until both report connected
#   stpair.sh latency [N]        N times (default 10): write a small new file
#                                under a unique dot-name in DIR_A, time until it
#                                is whole in DIR_B; prints one line to stdout:
#                                median_ms=M min_ms=.. max_ms=.. n=N samples_ms=a,b,..
#   stpair.sh down               stop everything this work dir started
#   stpair.sh status             pids, device ids, folder state
#   stpair.sh api A|B METHOD PATH [curl args]   raw REST call (API key added)
#
# All state (keys, config, database, logs, pids) lives under $STPAIR_WORK
# (default ${TMPDIR:-/tmp}/rowdrop-stpair); give each parallel run its own.
# The only thing written into DIR_A/DIR_B besides synced data is Syncthing's
# folder marker directory ".stfolder" (and, during `latency`, its probes).
#
# Tunables (env): STPAIR_FOLDER_ID=shared STPAIR_RESCAN_S=10
#   STPAIR_WATCH_DELAY_S=1 (int >= 1 in 1.19) STPAIR_PORT_A=22001
#   STPAIR_PORT_B=22002 STPAIR_GUI_A=18384 STPAIR_GUI_B=18385
#   STPAIR_UP_TIMEOUT=120 STPAIR_SYNCTHING=/usr/bin/syncthing
#   STPAIR_LATENCY_TIMEOUT=60 (per sample) STPAIR_LATENCY_GAP_S=0.2
# Ports are inside the private namespace, so they never clash with the host
# or with other pairs (each work dir gets its own namespace): the fixed
# defaults are safe for parallel runs as long as STPAIR_WORK differs.
# Latency probe files are named .stpair-latency-* (rowdrop ignores dot-files)
# and are deleted again afterwards.
#
# Needs: syncthing (tested 1.19.2), util-linux unshare/nsenter/setsid,
# iproute2 (ip), curl, jq.  Root, root-in-a-userns, or an unprivileged user
# with user namespaces enabled (falls back to `unshare -r -n`).
# shellcheck disable=SC2015,SC2016 # `A && B || die` is meant; '$x' code runs in a child bash
set -euo pipefail

WORK=${STPAIR_WORK:-${TMPDIR:-/tmp}/rowdrop-stpair}
case "$WORK" in /*) ;; *) WORK="$PWD/$WORK" ;; esac
if [ -d "$WORK" ]; then WORK=$(cd "$WORK" && pwd -P); fi
FOLDER_ID=${STPAIR_FOLDER_ID:-shared}
RESCAN_S=${STPAIR_RESCAN_S:-10}
WATCH_DELAY_S=${STPAIR_WATCH_DELAY_S:-1}
PORT_A=${STPAIR_PORT_A:-22001}
PORT_B=${STPAIR_PORT_B:-22002}
GUI_A=${STPAIR_GUI_A:-18384}
GUI_B=${STPAIR_GUI_B:-18385}
UP_TIMEOUT=${STPAIR_UP_TIMEOUT:-120}
LATENCY_TIMEOUT=${STPAIR_LATENCY_TIMEOUT:-60}
LATENCY_GAP_S=${STPAIR_LATENCY_GAP_S:-0.2}
STATE="$WORK/state.env"

die() { echo "stpair: ERROR: $*" >&2; exit 1; }
log() { echo "stpair: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing command: $1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

# ---------------------------------------------------------------- state ----
save_state() {
	local tmp="$STATE.tmp" v
	: >"$tmp"
	for v in NS_MODE HOST_NETNS NETNS_ID HOLDER_TAG HOLDER_PID PID_A PID_B ID_A ID_B KEY_A KEY_B \
		DIR_A DIR_B PORT_A PORT_B GUI_A GUI_B FOLDER_ID ST_BIN; do
		printf '%s=%q\n' "$v" "${!v-}" >>"$tmp"
	done
	mv "$tmp" "$STATE"
}
load_state() {
	[ -f "$STATE" ] || die "no state in $WORK (run 'up' first, or set STPAIR_WORK)"
	# shellcheck disable=SC1090
	. "$STATE"
}

# ------------------------------------------------------ process identity ----
pid_netns() { readlink "/proc/$1/ns/net" 2>/dev/null || true; }
pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# Identity of a recorded PID = its exact cmdline (which contains this work
# dir) AND its network namespace.  The *_alive checks accept an unreadable
# netns link (e.g. `down` run from a sibling user namespace) and are used
# only to decide what to stop; the *_ok checks demand a readable, matching
# netns and gate everything that enters the namespace.
ns_same_or_unreadable() { local ns; ns=$(pid_netns "$1"); [ -z "$ns" ] || [ "$ns" = "$NETNS_ID" ]; }
holder_alive() {
	[ -n "${HOLDER_PID:-}" ] && [ -d "/proc/$HOLDER_PID" ] || return 1
	[ "$(pid_cmdline "$HOLDER_PID")" = "$HOLDER_TAG infinity " ] && ns_same_or_unreadable "$HOLDER_PID"
}
holder_ok() { # HOLDER_PID is verifiably our loopback-only namespace holder
	holder_alive || return 1
	local ns; ns=$(pid_netns "$HOLDER_PID")
	[ -n "$ns" ] && [ "$ns" = "$NETNS_ID" ] && [ "$ns" != "$HOST_NETNS" ]
}
st_pid() { if [ "$1" = A ]; then echo "${PID_A:-}"; else echo "${PID_B:-}"; fi; }
st_alive() { # side
	local pid home; home="$WORK/$(tr AB ab <<<"$1")/home"; pid=$(st_pid "$1")
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
	[[ "$(pid_cmdline "$pid")" == "$ST_BIN serve --home=$home "* ]] && ns_same_or_unreadable "$pid"
}
st_ok() { st_alive "$1" && [ "$(pid_netns "$(st_pid "$1")")" = "$NETNS_ID" ]; }

in_our_ns() { [ -n "${NETNS_ID:-}" ] && [ "$(pid_netns "$1")" = "$NETNS_ID" ] && [ "$NETNS_ID" != "${HOST_NETNS:-}" ]; }
ns_pids() { # PIDs whose network namespace is our private one
	local d
	[ -n "${NETNS_ID:-}" ] || return 0
	for d in /proc/[0-9]*; do
		[ "$(readlink "$d/ns/net" 2>/dev/null)" = "$NETNS_ID" ] && echo "${d#/proc/}"
	done
	return 0
}

# Run a command inside the isolated namespace (refuses if holder is not ours).
nsrun() {
	if ! holder_ok; then
		log "namespace holder (pid ${HOLDER_PID:-?}) is gone or not ours; refusing to run '$1'"
		return 97
	fi
	if [ "$NS_MODE" = userns ]; then
		nsenter -t "$HOLDER_PID" -U -n --preserve-credentials -- "$@"
	else
		nsenter -t "$HOLDER_PID" -n -- "$@"
	fi
}

# Start a detached process; prints its PID (bash writes $$ then execs, so the
# PID is the final program's PID).
spawn() { # pidfile logfile cmd...
	local pidfile=$1 logfile=$2; shift 2
	rm -f "$pidfile"
	setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
		</dev/null >>"$logfile" 2>&1 &
	for _ in $(seq 200); do [ -s "$pidfile" ] && break; sleep 0.025; done
	[ -s "$pidfile" ] || die "could not start: $*"
	cat "$pidfile"
}

stop_pid() { # pid label checkfn...  (TERM, then KILL; only if check still passes)
	local pid=$1 label=$2; shift 2
	"$@" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
	if [ -d "/proc/$pid" ] && "$@"; then
		log "$label (pid $pid) ignored SIGTERM; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
	fi
	log "stopped $label (pid $pid)"
}

# ------------------------------------------------------------ namespace ----
start_holder() {
	HOST_NETNS=$(readlink /proc/self/ns/net)
	HOLDER_TAG="stpair-netns-holder:$WORK"
	local uflag=()
	if unshare -n true 2>/dev/null; then
		NS_MODE=netns
	elif unshare -r -n true 2>/dev/null; then
		NS_MODE=userns; uflag=(-r)
	else
		die "cannot create a network namespace (need root/CAP_SYS_ADMIN or unprivileged user namespaces). NOT starting syncthing."
	fi
	HOLDER_PID=$(spawn "$WORK/holder.pid" "$WORK/holder.log" unshare "${uflag[@]}" -n -- \
		bash -c 'ip link set lo up || exit 1; exec -a "$0" sleep infinity' "$HOLDER_TAG")
	for _ in $(seq 200); do
		[ "$(pid_cmdline "$HOLDER_PID")" = "$HOLDER_TAG infinity " ] && break
		[ -d "/proc/$HOLDER_PID" ] || die "namespace holder died: $(cat "$WORK/holder.log")"
		sleep 0.025
	done
	NETNS_ID=$(pid_netns "$HOLDER_PID")
	save_state
	[ -n "$NETNS_ID" ] && [ "$NETNS_ID" != "$HOST_NETNS" ] \
		|| die "holder is not in a separate network namespace ($NETNS_ID vs $HOST_NETNS)"
	holder_ok || die "namespace holder did not come up: $(cat "$WORK/holder.log")"
}

# Before any syncthing runs: the namespace must have no non-loopback address,
# no other interface UP, and no route that is not via dev lo.
verify_isolation() {
	local f="$WORK/netns-check.txt" links addrs r4 r6 bad
	links=$(nsrun ip -o link show) || die "cannot list links in namespace"
	addrs=$(nsrun ip -o addr show) || die "cannot list addresses in namespace"
	r4=$(nsrun ip -4 route show table all) || die "cannot list IPv4 routes in namespace"
	r6=$(nsrun ip -6 route show table all) || die "cannot list IPv6 routes in namespace"
	printf '# mode=%s host_netns=%s isolated_netns=%s holder_pid=%s\n## ip -o link\n%s\n## ip -o addr\n%s\n## ip -4 route show table all\n%s\n## ip -6 route show table all\n%s\n' \
		"$NS_MODE" "$HOST_NETNS" "$NETNS_ID" "$HOLDER_PID" "$links" "$addrs" "$r4" "$r6" >"$f"
	grep -Eq '^[0-9]+: lo: <[^>]*\bUP\b' <<<"$links" || die "lo is not up in namespace"
	grep -Eq '^[0-9]+: +lo +inet 127\.0\.0\.1/8 ' <<<"$addrs" || die "lo has no 127.0.0.1 in namespace"
	bad=$(awk '$2 != "lo"' <<<"$addrs")
	[ -z "$bad" ] || die "non-loopback address in namespace: $bad"
	bad=$(awk -F': ' '$2 != "lo" && $3 ~ /[<,]UP[,>]/' <<<"$links")
	[ -z "$bad" ] || die "non-loopback interface UP in namespace: $bad"
	bad=$(printf '%s\n%s\n' "$r4" "$r6" | grep -Ev -e '^$' -e ' dev lo( |$)' || true)
	[ -z "$bad" ] || die "non-loopback route in namespace: $bad"
	log "namespace $NETNS_ID verified loopback-only (details: $f)"
}

# --------------------------------------------------------------- config ----
st_env() { # home -> ST_ENV array: clean env for syncthing, nothing outside home
	local h=$1
	ST_ENV=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"HOME=$h/userhome" "XDG_CONFIG_HOME=$h/userhome/.config" \
		"XDG_DATA_HOME=$h/userhome/.local/share" "XDG_STATE_HOME=$h/userhome/.local/state" \
		"XDG_CACHE_HOME=$h/userhome/.cache" LANG=C.UTF-8 \
		STNOUPGRADE=1 STNODEFAULTFOLDER=1 STNORESTART=1 GODEBUG=netdns=go \
		STMONITORED=yes) # run as ONE process (no monitor/child pair), so our PID is the real one
}

write_config() { # home myid myname myport gui key peerid peername peerport dir
	local home=$1 myid=$2 myname=$3 myport=$4 gui=$5 key=$6 peerid=$7 peername=$8 peerport=$9 dir=${10}
	cat >"$home/config.xml" <<EOF
<configuration version="36">
    <folder id="$FOLDER_ID" label="$FOLDER_ID" path="$dir" type="sendreceive" rescanIntervalS="$RESCAN_S" fsWatcherEnabled="true" fsWatcherDelayS="$WATCH_DELAY_S" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="$myid" introducedBy=""></device>
        <device id="$peerid" introducedBy=""></device>
        <minDiskFree unit="%">1</minDiskFree>
        <markerName>.stfolder</markerName>
        <maxConflicts>10</maxConflicts>
        <paused>false</paused>
    </folder>
    <device id="$myid" name="$myname" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>tcp://127.0.0.1:$myport</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <device id="$peerid" name="$peername" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>tcp://127.0.0.1:$peerport</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <gui enabled="true" tls="false" debugging="false">
        <address>127.0.0.1:$gui</address>
        <apikey>$key</apikey>
        <theme>default</theme>
    </gui>
    <options>
        <listenAddress>tcp://127.0.0.1:$myport</listenAddress>
        <globalAnnounceServer></globalAnnounceServer>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <reconnectionIntervalS>5</reconnectionIntervalS>
        <relaysEnabled>false</relaysEnabled>
        <startBrowser>false</startBrowser>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <urSeen>3</urSeen>
        <urURL></urURL>
        <restartOnWakeup>false</restartOnWakeup>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <upgradeToPreReleases>false</upgradeToPreReleases>
        <releasesURL></releasesURL>
        <crashReportingEnabled>false</crashReportingEnabled>
        <crashReportingURL></crashReportingURL>
        <stunKeepaliveStartS>0</stunKeepaliveStartS>
        <stunKeepaliveMinS>0</stunKeepaliveMinS>
        <stunServer></stunServer>
        <announceLANAddresses>false</announceLANAddresses>
        <setLowPriority>false</setLowPriority>
        <keepTemporariesH>24</keepTemporariesH>
    </options>
    <defaults>
        <device id="" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
            <address>tcp://127.0.0.1:1</address>
            <autoAcceptFolders>false</autoAcceptFolders>
        </device>
    </defaults>
</configuration>
EOF
	chmod 600 "$home/config.xml"
}

# ------------------------------------------------------------------ api ----
api() { # side method path [curl args]
	local side=$1 method=$2 path=$3 port key; shift 3
	if [ "$side" = A ]; then port=$GUI_A; key=$KEY_A; else port=$GUI_B; key=$KEY_B; fi
	nsrun curl -sS --fail --noproxy '*' --max-time "${API_MAX_TIME:-30}" -X "$method" \
		-H "X-API-Key: $key" "http://127.0.0.1:$port$path" "$@"
}

wait_api() { # side deadline
	local side=$1 deadline=$2
	until API_MAX_TIME=2 api "$side" GET /rest/system/ping >/dev/null 2>&1; do
		st_ok "$side" || die "syncthing $side exited; see $WORK/$(tr AB ab <<<"$side")/syncthing.log"
		[ "$(date +%s)" -lt "$deadline" ] || die "timeout waiting for REST API of $side"
		sleep 0.1
	done
}

# Assert the running config is the locked-down one (belt and braces).
check_effective_config() { # side
	local side=$1 opts sys bad
	opts=$(api "$side" GET /rest/config/options)
	bad=$(jq -r '[
		(if .globalAnnounceEnabled then "globalAnnounceEnabled" else empty end),
		(if .localAnnounceEnabled then "localAnnounceEnabled" else empty end),
		(if .relaysEnabled then "relaysEnabled" else empty end),
		(if .natEnabled then "natEnabled" else empty end),
		(if .urAccepted != -1 then "urAccepted" else empty end),
		(if .autoUpgradeIntervalH != 0 then "autoUpgradeIntervalH" else empty end),
		(if .crashReportingEnabled then "crashReportingEnabled" else empty end),
		(if (.stunKeepaliveStartS != 0 or .stunKeepaliveMinS != 0) then "stun" else empty end),
		(.listenAddresses[] | select(startswith("tcp://127.0.0.1:") | not))
	] | join(",")' <<<"$opts")
	[ -z "$bad" ] || die "$side effective options not locked down: $bad"
	bad=$(api "$side" GET /rest/config/devices | jq -r '.[] | .addresses[] | select(startswith("tcp://127.0.0.1:") | not)')
	[ -z "$bad" ] || die "$side has non-loopback device address: $bad"
	sys=$(api "$side" GET /rest/system/status)
	bad=$(jq -r '(.connectionServiceStatus // {}) | keys[] | select(startswith("tcp://127.0.0.1:") | not)' <<<"$sys")
	[ -z "$bad" ] || die "$side listens on non-loopback: $bad"
	[ "$(jq -r '.discoveryEnabled // false' <<<"$sys")" = false ] || die "$side has discovery enabled"
}

# --------------------------------------------------------- sync checks ----
# One line "ok" or a reason, for side $1 with peer id $2.
side_summary() { # side peerid
	local side=$1 peer=$2 conn st comp
	conn=$(api "$side" GET /rest/system/connections | jq -r --arg p "$peer" '.connections[$p].connected // false')
	st=$(api "$side" GET "/rest/db/status?folder=$FOLDER_ID")
	comp=$(api "$side" GET "/rest/db/completion?folder=$FOLDER_ID&device=$peer")
	jq -nr --argjson st "$st" --argjson c "$comp" --arg conn "$conn" '
		"conn=\($conn) state=\($st.state) need=\($st.needTotalItems) errors=\($st.errors) peerCompletion=\($c.completion) peerNeed=\($c.needItems + $c.needDeletes) global=\($st.globalFiles)f/\($st.globalDirectories)d/\($st.globalSymlinks)s/\($st.globalBytes)B"'
}
summary_ok() { [[ "$1" == "conn=true state=idle need=0 errors=0 peerCompletion=100 peerNeed=0 "* ]]; }

wait_in_sync() { # timeout_s [noscan]
	local timeout=$1 noscan=${2:-} t0 deadline sa sb good=0
	t0=$(now); deadline=$(( $(date +%s) + timeout ))
	if [ -z "$noscan" ]; then # pick up anything written but not yet seen by the watcher
		local side left # (a scan request blocks while that side is pulling; stay within budget)
		for side in A B; do
			left=$(( deadline - $(date +%s) )); [ "$left" -ge 1 ] || left=1
			API_MAX_TIME=$left api "$side" POST "/rest/db/scan?folder=$FOLDER_ID" >/dev/null 2>&1 || true
		done
	fi
	while :; do
		st_ok A || die "syncthing A is not running (or not verifiable from this user namespace)"
		st_ok B || die "syncthing B is not running (or not verifiable from this user namespace)"
		sa=$(side_summary A "$ID_B" 2>/dev/null || echo "api-error")
		sb=$(side_summary B "$ID_A" 2>/dev/null || echo "api-error")
		if summary_ok "$sa" && summary_ok "$sb" && [ "${sa##* global=}" = "${sb##* global=}" ]; then
			good=$((good + 1))
			if [ "$good" -ge 2 ]; then
				log "in sync after $(elapsed "$t0")s: ${sa##* }"
				return 0
			fi
		else
			good=0
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			log "NOT in sync after ${timeout}s"
			log "  A: $sa"
			log "  B: $sb"
			return 1
		fi
		sleep 0.25
	done
}

# ---------------------------------------------------------------- cmds ----
cleanup_partial() {
	local rc=$?
	if [ "$rc" -ne 0 ] && [ -f "$STATE" ]; then
		log "up failed (rc=$rc); stopping what was started"
		cmd_down || true
	fi
}

cmd_up() {
	[ $# -eq 2 ] || die "usage: $0 up DIR_A DIR_B"
	need syncthing; need unshare; need nsenter; need setsid; need ip; need curl; need jq
	ST_BIN=${STPAIR_SYNCTHING:-$(command -v syncthing)}
	local t0; t0=$(now)
	mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd -P); STATE="$WORK/state.env"
	if [ -f "$STATE" ]; then
		( load_state; holder_alive || st_alive A || st_alive B ) && die "already up in $WORK (run down first)"
		rm -f "$STATE"
	fi
	mkdir -p "$1" "$2"
	DIR_A=$(cd "$1" && pwd -P); DIR_B=$(cd "$2" && pwd -P)
	case "$DIR_A$DIR_B" in *[\&\<\>\"\']*) die "directory names must not contain & < > \" '";; esac
	[ "$DIR_A" != "$DIR_B" ] || die "DIR_A and DIR_B are the same directory"
	case "$DIR_A/" in "$DIR_B/"*) die "DIR_A is inside DIR_B";; esac
	case "$DIR_B/" in "$DIR_A/"*) die "DIR_B is inside DIR_A";; esac
	case "$DIR_A/" in "$WORK/a/"* | "$WORK/b/"*) die "DIR_A is inside the work dir's state";; esac
	case "$DIR_B/" in "$WORK/a/"* | "$WORK/b/"*) die "DIR_B is inside the work dir's state";; esac
	rm -rf "$WORK/a" "$WORK/b"     # fresh identities and databases every time
	mkdir -p "$WORK/a/home/userhome" "$WORK/b/home/userhome"
	chmod 700 "$WORK/a" "$WORK/b"
	PID_A=; PID_B=; ID_A=; ID_B=; KEY_A=; KEY_B=
	trap cleanup_partial EXIT

	# 1. isolated namespace, verified BEFORE syncthing runs at all
	start_holder
	verify_isolation

	# 2. keys + handwritten config (generate runs inside the namespace too)
	local side home
	for side in a b; do
		home="$WORK/$side/home"; st_env "$home"
		nsrun "${ST_ENV[@]}" "$ST_BIN" generate --home="$home" --no-default-folder \
			--skip-port-probing >>"$WORK/$side/syncthing.log" 2>&1
	done
	st_env "$WORK/a/home"; ID_A=$(nsrun "${ST_ENV[@]}" "$ST_BIN" serve --home="$WORK/a/home" --device-id)
	st_env "$WORK/b/home"; ID_B=$(nsrun "${ST_ENV[@]}" "$ST_BIN" serve --home="$WORK/b/home" --device-id)
	[[ "$ID_A" =~ ^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$ && "$ID_B" =~ ^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$ ]] \
		|| die "could not read device ids ('$ID_A' / '$ID_B')"
	KEY_A=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	KEY_B=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	write_config "$WORK/a/home" "$ID_A" A "$PORT_A" "$GUI_A" "$KEY_A" "$ID_B" B "$PORT_B" "$DIR_A"
	write_config "$WORK/b/home" "$ID_B" B "$PORT_B" "$GUI_B" "$KEY_B" "$ID_A" A "$PORT_A" "$DIR_B"
	mkdir -p "$DIR_A/.stfolder" "$DIR_B/.stfolder"
	save_state

	# 3. start both inside the namespace
	local nsopts=(-t "$HOLDER_PID" -n)
	[ "$NS_MODE" = userns ] && nsopts=(-t "$HOLDER_PID" -U -n --preserve-credentials)
	for side in A B; do
		home="$WORK/$(tr AB ab <<<"$side")/home"
		holder_ok || die "namespace holder vanished"
		st_env "$home"
		local pid; pid=$(spawn "${home%/home}/syncthing.pid" "${home%/home}/syncthing.log" \
			nsenter "${nsopts[@]}" -- "${ST_ENV[@]}" "$ST_BIN" serve --home="$home" \
			--no-browser --no-restart --no-upgrade --logflags=7)
		if [ "$side" = A ]; then PID_A=$pid; else PID_B=$pid; fi
		save_state
	done
	local deadline=$(( $(date +%s) + UP_TIMEOUT ))
	for side in A B; do # identity + namespace check of the running processes
		for _ in $(seq 100); do st_ok "$side" && break; sleep 0.05; done
		st_ok "$side" || die "syncthing $side not running inside namespace $NETNS_ID"
	done
	wait_api A "$deadline"; wait_api B "$deadline"
	check_effective_config A; check_effective_config B
	log "both REST APIs up after $(elapsed "$t0")s; waiting for connection + sync"
	wait_in_sync $(( deadline - $(date +%s) )) || die "pair did not reach sync within ${UP_TIMEOUT}s"
	trap - EXIT
	log "up in $(elapsed "$t0")s: A=$DIR_A (pid $PID_A) <-> B=$DIR_B (pid $PID_B), folder '$FOLDER_ID', work $WORK"
}

cmd_wait_idle() { # [timeout_s] [noscan]
	load_state
	[[ "${1:-60}" =~ ^[0-9]+$ ]] || die "usage: $0 wait-idle [TIMEOUT_S] [noscan]"
	wait_in_sync "${1:-60}" "${2:-}"
}

cmd_down() {
	if [ ! -f "$STATE" ]; then log "nothing to stop in $WORK"; return 0; fi
	load_state
	local side pid p left=
	for side in A B; do
		st_alive "$side" || continue
		pid=$(st_pid "$side")
		API_MAX_TIME=5 api "$side" POST /rest/system/shutdown >/dev/null 2>&1 || true
		for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
		if [ -d "/proc/$pid" ]; then stop_pid "$pid" "syncthing $side" st_alive "$side"
		else log "stopped syncthing $side (pid $pid) via REST shutdown"; fi
	done
	# Anything else still inside OUR private namespace was started by us (only
	# this script enters it): stop those too, by PID, holder last.  Only while
	# the holder is verifiably alive, so the netns id cannot have been recycled.
	if holder_ok; then
		for p in $(ns_pids); do
			[ "$p" = "$HOLDER_PID" ] && continue
			stop_pid "$p" "leftover '$(pid_cmdline "$p")'" in_our_ns "$p"
		done
	fi
	stop_pid "${HOLDER_PID:-0}" "namespace holder" holder_alive
	holder_alive && left+=" holder:$HOLDER_PID"
	st_alive A && left+=" A:$PID_A"
	st_alive B && left+=" B:$PID_B"
	if [ -n "$left" ]; then
		log "WARNING: still running:$left -- state kept in $STATE (run down as the user that ran up)"
		return 1
	fi
	mv "$STATE" "$WORK/state.down.env"
	log "down; logs kept under $WORK"
}

cmd_status() {
	load_state
	echo "work=$WORK mode=$NS_MODE netns=$NETNS_ID holder=$HOLDER_PID($(holder_ok && echo alive || echo dead))"
	echo "A: pid=$PID_A($(st_ok A && echo alive || echo dead)) id=$ID_A dir=$DIR_A listen=tcp://127.0.0.1:$PORT_A gui=127.0.0.1:$GUI_A key=$KEY_A"
	echo "B: pid=$PID_B($(st_ok B && echo alive || echo dead)) id=$ID_B dir=$DIR_B listen=tcp://127.0.0.1:$PORT_B gui=127.0.0.1:$GUI_B key=$KEY_B"
	if holder_ok; then
		echo "A: $(side_summary A "$ID_B" 2>/dev/null || echo api-error)"
		echo "B: $(side_summary B "$ID_A" 2>/dev/null || echo api-error)"
	fi
}

# ------------------------------------------------------ pause / resume ----
conn_of() { # side peerid -> true|false|api-error
	api "$1" GET /rest/system/connections 2>/dev/null \
		| jq -r --arg p "$2" '.connections[$p].connected // false' 2>/dev/null || echo api-error
}
paused_of() { # side peerid -> configured paused flag of the peer device
	api "$1" GET "/rest/config/devices/$2" 2>/dev/null | jq -r '.paused' 2>/dev/null || echo api-error
}
wait_conn() { # want(true|false) timeout_s
	local want=$1 deadline=$(( $(date +%s) + $2 )) t0 a b
	t0=$(now)
	while :; do
		st_ok A || die "syncthing A is not running (or not verifiable from this user namespace)"
		st_ok B || die "syncthing B is not running (or not verifiable from this user namespace)"
		a=$(conn_of A "$ID_B"); b=$(conn_of B "$ID_A")
		if [ "$a" = "$want" ] && [ "$b" = "$want" ]; then
			log "connected=$want on both sides after $(elapsed "$t0")s"
			return 0
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			log "timeout waiting for connected=$want (A sees B: $a, B sees A: $b)"
			return 1
		fi
		sleep 0.1
	done
}

cmd_pause() { # [timeout_s]
	load_state
	[[ "${1:-30}" =~ ^[0-9]+$ ]] || die "usage: $0 pause [TIMEOUT_S]"
	st_ok A && st_ok B || die "pair is not running"
	api A POST "/rest/system/pause?device=$ID_B" >/dev/null || die "A: pause of device B failed"
	api B POST "/rest/system/pause?device=$ID_A" >/dev/null || die "B: pause of device A failed"
	[ "$(paused_of A "$ID_B")" = true ] && [ "$(paused_of B "$ID_A")" = true ] \
		|| die "pause did not stick in the config"
	wait_conn false "${1:-30}" || die "link still up after pause"
	log "paused"
}

cmd_resume() { # [timeout_s]
	load_state
	[[ "${1:-60}" =~ ^[0-9]+$ ]] || die "usage: $0 resume [TIMEOUT_S]"
	st_ok A && st_ok B || die "pair is not running"
	api A POST "/rest/system/resume?device=$ID_B" >/dev/null || die "A: resume of device B failed"
	api B POST "/rest/system/resume?device=$ID_A" >/dev/null || die "B: resume of device A failed"
	[ "$(paused_of A "$ID_B")" = false ] && [ "$(paused_of B "$ID_A")" = false ] \
		|| die "resume did not stick in the config"
	check_effective_config A; check_effective_config B # config was rewritten: re-check
	wait_conn true "${1:-60}" || die "link did not come back after resume"
	log "resumed"
}

# ------------------------------------------------------------- latency ----
usec() { local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t))"; } # wall clock in microseconds

cmd_latency() { # [N]
	load_state
	local n=${1:-10}
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "usage: $0 latency [N]"
	[ -n "${EPOCHREALTIME:-}" ] || die "bash >= 5 needed (EPOCHREALTIME)"
	st_ok A && st_ok B || die "pair is not running"
	[ "$(conn_of A "$ID_B")" = true ] && [ "$(conn_of B "$ID_A")" = true ] \
		|| die "A and B are not connected (paused?)"
	local tag="$$-$RANDOM$RANDOM" i name src dst content t0 t1 ms deadline
	local samples=()
	for ((i = 1; i <= n; i++)); do
		name=".stpair-latency-$tag-$i"; src="$DIR_A/$name"; dst="$DIR_B/$name"
		content="stpair latency probe $tag $i $(usec)"
		[ ! -e "$src" ] && [ ! -e "$dst" ] || die "probe name $name already exists"
		deadline=$(( $(date +%s) + LATENCY_TIMEOUT ))
		t0=$(usec)
		printf '%s\n' "$content" >"$src" # one small write, well below one block
		until [ -f "$dst" ] && [ "$(cat "$dst" 2>/dev/null)" = "$content" ]; do
			if [ "$(date +%s)" -ge "$deadline" ]; then
				rm -f "$DIR_A"/.stpair-latency-"$tag"-*
				die "sample $i: $name not in DIR_B after ${LATENCY_TIMEOUT}s"
			fi
			sleep 0.01
		done
		t1=$(usec)
		ms=$(( (t1 - t0 + 500) / 1000 ))
		samples+=("$ms")
		log "latency sample $i/$n: ${ms} ms"
		sleep "$LATENCY_GAP_S"
	done
	rm -f "$DIR_A"/.stpair-latency-"$tag"-*
	deadline=$(( $(date +%s) + 30 )) # let the deletions reach B (best effort)
	while compgen -G "$DIR_B/.stpair-latency-$tag-*" >/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "WARNING: probe deletions not yet on B"; break; }
		sleep 0.1
	done
	local sorted med
	mapfile -t sorted < <(printf '%s\n' "${samples[@]}" | sort -n)
	if (( n % 2 )); then med=${sorted[n / 2]}
	else med=$(( (sorted[n / 2 - 1] + sorted[n / 2] + 1) / 2 )); fi
	local IFS=,
	echo "median_ms=$med min_ms=${sorted[0]} max_ms=${sorted[n - 1]} n=$n samples_ms=${samples[*]}"
}

main() {
	local cmd=${1:-}; shift || true
	case "$cmd" in
	up) cmd_up "$@" ;;
	wait-idle) cmd_wait_idle "$@" ;;
	down) cmd_down ;;
	status) cmd_status ;;
	pause) cmd_pause "$@" ;;
	resume) cmd_resume "$@" ;;
	latency) cmd_latency "$@" ;;
	api) load_state; [ $# -ge 3 ] || die "usage: $0 api A|B METHOD PATH [curl args]"; api "$@"; echo ;;
	*) sed -n '2,/^set -euo/p' "$0" | grep '^#' | grep -v '^# shellcheck' | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = help ] || exit 2 ;;
	esac
}
main "$@"
