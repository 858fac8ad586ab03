#!/usr/bin/env bash
# A throwaway Active Directory domain controller (Debian's Samba AD DC) for the tests,
# on 127.0.0.1 only. Needs root and the packages samba-ad-dc and samba-ad-provision.
#
#   tests/peers/samba.sh start DIR [--owner-pid PID]
#   tests/peers/samba.sh stop DIR      stop the DC (by PID) and release the machine lock
#   tests/peers/samba.sh halt DIR      stop the DC (by PID), keep its data and the lock
#   tests/peers/samba.sh kill DIR      SIGKILL the DC, as a crash would; keep data and lock
#   tests/peers/samba.sh resume DIR    start the DC again on the same data (after halt/kill)
#
# The DC's ports are fixed (LDAP 389, LDAPS 636, Kerberos 88), so only one DC can run on
# the machine. `start` therefore first takes an exclusive flock on $SAMBA_LOCK (default
# /tmp/authchain-samba.lock), waiting up to $SAMBA_LOCK_WAIT seconds (default 600) while
# another user holds it. The lock is then held by a small holder process (its PID in
# DIR/lock-holder.pid) until `stop DIR`, or, with --owner-pid, until that process exits
# (the holder then stops the DC and removes DIR: test binaries cannot run destructors
# for statics). `halt`/`kill`/`resume` keep the lock, so a test can restart its DC
# without another user slipping in.
#
# `start` puts a fresh domain into DIR (realm EXAMPLE.TEST, NetBIOS domain EXAMPLE, host
# dc1, relaxed password policy, the fixture below; copied from a template provisioned and
# seeded once, see copy_template), writes a CA and a server certificate (SAN
# IP:127.0.0.1, DNS:localhost, DNS:<hostname>, DNS:dc1.example.test) plus an unrelated
# "wrong" CA, starts samba (-M single) and prints KEY=VALUE lines:
#
#   AD_LDAP_URL AD_LDAPS_URL AD_CA_FILE AD_WRONG_CA_FILE AD_BASE_DN AD_USERS_DN
#   AD_REALM AD_DOMAIN AD_UPN_SUFFIX AD_HOSTNAME AD_ADMIN_DN AD_ADMIN_UPN AD_ADMIN_PASSWORD
#   AD_SERVICE_DN AD_SERVICE_UPN AD_SERVICE_PASSWORD AD_SMB_CONF SAMBA_PID
#
# AD_SMB_CONF lets a test change the directory with samba-tool (`samba-tool user add ...
# -s $AD_SMB_CONF`) or over LDAP as the admin.
#
# Fixture (CN = sAMAccountName, all under CN=Users; passwords in brackets):
#   alice   [alice-password]  member of staff (so, nested, of engineers)  mail alice@example.test
#   bob     [bob-password]    member of engineers                         mail bob@example.test
#   carol   [carol-password]  disabled (userAccountControl ACCOUNTDISABLE; bind: data 533)
#   dave    [dave-password]   account expired (accountExpires in the past; bind: data 701)
#   erin    [erin-password]   must change password at next logon (pwdLastSet=0; data 773)
#   frank   [frank-password]  locked out (a PSO with lockout threshold 2 applies to frank
#                             alone; two wrong binds lock him: data 775)
#   gina    [gina-password]   logonHours all zero: no time of the week allowed (data 530)
#   svc-authchain [service-password]  a plain user for search-then-bind
#   groups: engineers (members bob and the group staff), staff (member alice) — nested
# The domain itself has no lockout threshold, so wrong passwords never lock other users.
set -euo pipefail

REALM=EXAMPLE.TEST
DOMAIN=EXAMPLE
HOST=dc1
BASE_DN="DC=example,DC=test"
USERS_DN="CN=Users,$BASE_DN"
ADMIN_PW='Passw0rd!Adm'
SERVICE_PW=service-password
LOCK=${SAMBA_LOCK:-/tmp/authchain-samba.lock}
LOCK_WAIT=${SAMBA_LOCK_WAIT:-600}
TEMPLATE_ROOT=${SAMBA_TEMPLATE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)/target/peers}

# shellcheck source=tests/peers/lib.sh
. "$(dirname "$0")/lib.sh"

die() { echo "samba.sh: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Edits [global] of the provisioned smb.conf (provision's --option is silently dropped).
edit_conf() {
  local dir=$1 conf=$1/etc/smb.conf
  mkdir -p "$dir/run" "$dir/log"
  local extra
  extra=$(cat <<EOF
	interfaces = lo
	bind interfaces only = yes
	server services = ldap cldap kdc
	ldap server require strong auth = no
	pid directory = $dir/run
	ncalrpc dir = $dir/run/ncalrpc
	winbindd socket directory = $dir/run/winbindd
	ntp signd socket directory = $dir/run/ntp_signd
	lock directory = $dir/run/lock
	tls enabled = yes
	tls certfile = $dir/server.crt
	tls keyfile = $dir/server.key
	tls cafile = $dir/ca.crt
	log level = 1
EOF
)
  awk -v extra="$extra" '{ print } /^\[global\]/ { print extra }' "$conf" >"$conf.new"
  mv "$conf.new" "$conf"
}

tool() { samba-tool "$@" -s "$CONF" >>"$LOG" 2>&1 || die "samba-tool $1 $2 failed: $(tail -5 "$LOG")"; }

seed() {
  tool domain passwordsettings set --complexity=off --min-pwd-age=0 --max-pwd-age=0 \
    --history-length=0 --min-pwd-length=1 --account-lockout-threshold=0
  local u
  for u in alice bob carol dave erin frank gina; do
    tool user add "$u" "$u-password" --use-username-as-cn --given-name="${u^}" --surname=Test \
      --mail-address="$u@${REALM,,}" $([ $u = erin ] && echo --must-change-at-next-login)
  done
  tool user add svc-authchain "$SERVICE_PW" --use-username-as-cn
  tool group add engineers
  tool group add staff
  tool group addmembers staff alice
  tool group addmembers engineers bob,staff
  tool user disable carol
  # Lockout for frank alone: a fine-grained password policy (PSO).
  tool domain passwordsettings pso create frank-lockout 1 --complexity=off --min-pwd-length=1 \
    --history-length=0 --min-pwd-age=0 --max-pwd-age=0 --account-lockout-threshold=2 \
    --account-lockout-duration=600 --reset-account-lockout-after=600
  tool domain passwordsettings pso apply frank-lockout frank
}

# Provisioning and seeding take 20-40 s on a busy machine, so they are done once into
# a template (target/peers/samba-template-<hash of the code and values that make it>,
# rebuilt when they change), under the machine lock; each start copies it (only etc/smb.conf names the
# directory). Every DC from one template has the same objectGUIDs.
copy_template() {
  local dir=$1 key tmpl
  key=$( (declare -f seed copy_template tool; echo "$REALM $DOMAIN $HOST $ADMIN_PW $SERVICE_PW") \
    | sha256sum | cut -c1-12)
  tmpl=$TEMPLATE_ROOT/samba-template-$key
  if [ ! -s "$tmpl/etc/smb.conf" ]; then
    rm -rf "$TEMPLATE_ROOT"/samba-template-*
    mkdir -p "$tmpl.tmp"
    : >"$tmpl.tmp/empty.conf"
    LOG=$tmpl.tmp/provision.log
    samba-tool domain provision -s "$tmpl.tmp/empty.conf" --targetdir="$tmpl.tmp" --realm=$REALM \
      --domain=$DOMAIN --server-role=dc --dns-backend=NONE --adminpass="$ADMIN_PW" --use-rfc2307 \
      --host-name=$HOST --host-ip=127.0.0.1 >"$LOG" 2>&1 \
      || die "provisioning failed: $(tail -20 "$LOG")"
    CONF=$tmpl.tmp/etc/smb.conf
    seed
    sed -i "s#$tmpl.tmp#$tmpl#g" "$CONF"
    mv "$tmpl.tmp" "$tmpl"
  fi
  cp -a "$tmpl/." "$dir/"
  sed -i "s#$tmpl#$dir#g" "$dir/etc/smb.conf"
  LOG=$dir/seed.log
}

# Starts samba from DIR, waits until LDAP answers, prints its PID. A DC that could not
# bind a port (the previous DC's processes still letting go of it) is stopped and
# started again, up to 3 times.
run_samba() {
  local dir=$1 attempt
  for attempt in 1 2 3; do
    try_samba "$dir" && return 0
    [ -s "$dir/run/samba.pid" ] && stop_pid "$dir/run/samba.pid"
    grep -q ADDRESS_ALREADY_ASSOCIATED "$dir/log/log.samba" 2>/dev/null || break
    mv "$dir/log/log.samba" "$dir/log/log.samba.$attempt"
    sleep 2
  done
  die "samba did not answer on ldap://127.0.0.1: $(tail -20 "$dir/log/log.samba"* 2>/dev/null)"
}

# One start of samba: 0 once LDAP answers (its PID printed), 1 if it does not within
# 30 s or reports a port it could not bind.
try_samba() {
  local dir=$1
  rm -f "$dir/run/samba.pid"
  port_in_use 389 && die "port 389 is taken (another LDAP server or DC outside this lock?)"
  # fd 9 (the lock) is closed for samba: the holder alone keeps the lock.
  samba -s "$dir/etc/smb.conf" -D -M single -l "$dir/log" 9>&- >"$dir/log/start.log" 2>&1 \
    || die "samba failed to start: $(tail -20 "$dir/log/start.log")"
  for _ in $(seq 1 300); do
    if [ -s "$dir/run/samba.pid" ] && ldapsearch -x -H ldap://127.0.0.1 -D "$DOMAIN\\svc-authchain" \
      -w "$SERVICE_PW" -b "$BASE_DN" -s base dn >/dev/null 2>&1; then
      cat "$dir/run/samba.pid"
      return 0
    fi
    grep -q ADDRESS_ALREADY_ASSOCIATED "$dir/log/log.samba" 2>/dev/null && return 1
    sleep 0.1
  done
  return 1
}

# Changes made over LDAP as the admin, once the DC runs.
live_seed() {
  # dave: accountExpires in the past (1 Jan 2020, in 100 ns units since 1601); gina:
  # logonHours all zero (21 bytes), no hour of the week allowed.
  ldapmodify -x -H ldap://127.0.0.1 -D "CN=Administrator,$USERS_DN" -w "$ADMIN_PW" \
    >>"$LOG" 2>&1 <<EOF || die "expiring dave or restricting gina failed: $(tail -5 "$LOG")"
dn: CN=dave,$USERS_DN
changetype: modify
replace: accountExpires
accountExpires: 132223104000000000
-

dn: CN=gina,$USERS_DN
changetype: modify
replace: logonHours
logonHours:: AAAAAAAAAAAAAAAAAAAAAAAAAAAA
EOF
  # frank: two wrong binds reach his PSO's threshold; the third shows the lockout.
  local out
  for _ in 1 2; do
    ldapwhoami -x -H ldap://127.0.0.1 -D "frank@${REALM,,}" -w wrong >/dev/null 2>&1 || true
  done
  out=$(ldapwhoami -x -H ldap://127.0.0.1 -D "frank@${REALM,,}" -w frank-password 2>&1 || true)
  case $out in
    *"data 775"*) ;;
    *) die "frank is not locked out after two wrong binds: $out" ;;
  esac
}

start() {
  DIR=${1:?usage: samba.sh start DIR [--owner-pid PID]}
  shift
  local owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --owner-pid) owner=${2:?}; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  [ "$(id -u)" = 0 ] || die "needs root (the DC's ports are fixed: 389, 636, 88)"
  command -v samba >/dev/null || die "samba not found (apt-get install samba-ad-dc samba-ad-provision)"
  command -v ldapwhoami >/dev/null || die "ldapwhoami not found (apt-get install ldap-utils)"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  exec 9>>"$LOCK"
  flock -w "$LOCK_WAIT" 9 || die "another DC holds $LOCK for more than $LOCK_WAIT s"
  # The holder keeps fd 9 (and so the lock) until `stop` kills it or the owner exits.
  local watch="true"
  [ -n "$owner" ] && watch="kill -0 $owner 2>/dev/null"
  nohup bash -c "while $watch && [ -d '$DIR' ]; do sleep 0.3; done
    if [ -s '$DIR/run/samba.pid' ]; then p=\$(cat '$DIR/run/samba.pid'); kill \$p 2>/dev/null
      for _ in \$(seq 1 100); do kill -0 \$p 2>/dev/null || break; sleep 0.05; done
      kill -0 \$p 2>/dev/null && kill -9 \$p; fi
    [ -n '$owner' ] && rm -rf '$DIR'" >/dev/null 2>&1 </dev/null &
  echo $! >"$DIR/lock-holder.pid"
  exec 9>&-
  trap '[ $? = 0 ] || stop "$DIR"' EXIT
  copy_template "$DIR"
  CONF=$DIR/etc/smb.conf
  write_certs "$DIR" "IP:127.0.0.1, DNS:localhost, DNS:$(hostname), DNS:$HOST.${REALM,,}"
  edit_conf "$DIR"
  local pid
  pid=$(run_samba "$DIR")
  live_seed
  cat <<EOF
AD_LDAP_URL=ldap://127.0.0.1:389
AD_LDAPS_URL=ldaps://127.0.0.1:636
AD_CA_FILE=$DIR/ca.crt
AD_WRONG_CA_FILE=$DIR/wrong-ca.crt
AD_BASE_DN=$BASE_DN
AD_USERS_DN=$USERS_DN
AD_REALM=$REALM
AD_DOMAIN=$DOMAIN
AD_UPN_SUFFIX=${REALM,,}
AD_HOSTNAME=$(hostname)
AD_ADMIN_DN=CN=Administrator,$USERS_DN
AD_ADMIN_UPN=Administrator@${REALM,,}
AD_ADMIN_PASSWORD=$ADMIN_PW
AD_SERVICE_DN=CN=svc-authchain,$USERS_DN
AD_SERVICE_UPN=svc-authchain@${REALM,,}
AD_SERVICE_PASSWORD=$SERVICE_PW
AD_SMB_CONF=$CONF
SAMBA_PID=$pid
EOF
}

halt() {
  stop_pid "${1:?usage: samba.sh halt DIR}/run/samba.pid"
}

stop() {
  local dir=${1:?usage: samba.sh stop DIR}
  halt "$dir"
  # Releases the lock: the holder's fd is the only one left open on it.
  stop_pid "$dir/lock-holder.pid"
}

kill_hard() {
  kill_hard_pid "${1:?usage: samba.sh kill DIR}/run/samba.pid"
}

resume() {
  local dir=${1:?usage: samba.sh resume DIR}
  [ -s "$dir/etc/smb.conf" ] || die "$dir holds no DC provisioned by this script"
  [ -s "$dir/lock-holder.pid" ] && kill -0 "$(cat "$dir/lock-holder.pid")" 2>/dev/null \
    || die "$dir no longer holds the DC lock (stopped?): start a new DC instead"
  echo "SAMBA_PID=$(run_samba "$(cd "$dir" && pwd)")"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  halt) shift; halt "$@" ;;
  kill) shift; kill_hard "$@" ;;
  resume) shift; resume "$@" ;;
  *) die "usage: samba.sh start DIR [--owner-pid PID] | stop DIR | halt DIR | kill DIR | resume DIR" ;;
esac
