#!/usr/bin/env bash
# A throwaway OpenLDAP server for the tests, on 127.0.0.1 only.
#
#   tests/peers/slapd.sh start DIR [LDAP_PORT LDAPS_PORT] [--owner-pid PID]
#   tests/peers/slapd.sh stop DIR
#
# `start` creates DIR (a fresh temp dir is best), writes a CA, a server certificate
# (SAN DNS:localhost, IP:127.0.0.1) and an unrelated "wrong" CA, a slapd.conf with
# the memberof and syncprov overlays, starts slapd on ldap:// and ldaps:// (StartTLS
# is offered on ldap://), seeds users and groups through the server with ldapadd (so
# memberOf is computed), and prints KEY=VALUE lines:
#
#   LDAP_URL LDAPS_URL LDAP_CA_FILE LDAP_WRONG_CA_FILE LDAP_BASE_DN
#   LDAP_ADMIN_DN LDAP_ADMIN_PASSWORD LDAP_SERVICE_DN LDAP_SERVICE_PASSWORD
#   LDAP_LIMITED_DN LDAP_LIMITED_PASSWORD LDAP_LIMITED_SIZE SLAPD_PID
#
# Without ports, free ones are picked. With --owner-pid, a watcher stops slapd and
# removes DIR when that process exits (test binaries cannot run destructors for
# statics).
# `stop` kills the slapd whose PID is in DIR/slapd.pid, and nothing else.
# `kill DIR` kills it hard (SIGKILL), as a crash would.
# `resume DIR` starts slapd again on the same ports and data (after stop or kill)
# `freeze DIR` / `thaw DIR` suspend and continue slapd (SIGSTOP / SIGCONT): a hung
# server that still holds its port and accepts connections into its backlog
# and prints SLAPD_PID=...
#
# Seeded entries (passwords in brackets):
#   uid=alice  [alice-password]  groups admins, staff      mail alice@example.org
#   uid=bob    [bob-password]    group staff               mail bob@example.org, team@example.org
#   uid=carol  [carol-password]  no group                  mail carol@example.org, team@example.org
#   uid=smith\, john [smith-password]  group staff (a DN that needs RFC 4514 escaping)
#   cn=authchain,ou=service  [service-password]  the service account
#   cn=authchain-limited,ou=service  [limited-password]  a service account whose
#       searches slapd cuts off after LIMITED_SIZE (2) entries (sizeLimitExceeded),
#       for partial-answer tests
#   cn=admins, cn=staff (groupOfNames) under ou=groups; cn=all-staff holds cn=staff (nested)
set -euo pipefail

BASE_DN="dc=example,dc=org"
ADMIN_DN="cn=admin,$BASE_DN"
ADMIN_PW="admin-password"
SERVICE_DN="cn=authchain,ou=service,$BASE_DN"
SERVICE_PW="service-password"
LIMITED_DN="cn=authchain-limited,ou=service,$BASE_DN"
LIMITED_PW="limited-password"
LIMITED_SIZE=2
SLAPD=${SLAPD:-/usr/sbin/slapd}
MODULE_PATH=${SLAPD_MODULE_PATH:-/usr/lib/ldap}
SCHEMA_DIR=${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}

# shellcheck source=tests/peers/lib.sh
. "$(dirname "$0")/lib.sh"

die() { echo "slapd.sh: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( (RANDOM << 1 | RANDOM & 1) % 30000 + 20000 ))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

hash_pw() { slappasswd -h '{SSHA}' -s "$1"; }


write_conf() {
  local dir=$1
  cat >"$dir/slapd.conf" <<EOF
include $SCHEMA_DIR/core.schema
include $SCHEMA_DIR/cosine.schema
include $SCHEMA_DIR/nis.schema
include $SCHEMA_DIR/inetorgperson.schema
# nsAccountLock as FreeIPA / 389-ds have it, so the tests can disable accounts the
# way those directories do (auxiliary class: OpenLDAP has no user-defined
# operational attributes).
attributetype ( 2.16.840.1.113730.3.1.610 NAME 'nsAccountLock'
  DESC 'Account inactivation' EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.1 NAME 'authchainLockable' SUP top AUXILIARY
  MAY nsAccountLock )
modulepath $MODULE_PATH
moduleload back_mdb
moduleload memberof
moduleload syncprov
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
loglevel 0
threads 8
TLSCACertificateFile $dir/ca.crt
TLSCertificateFile $dir/server.crt
TLSCertificateKeyFile $dir/server.key

database mdb
maxsize 104857600
suffix "$BASE_DN"
rootdn "$ADMIN_DN"
rootpw $(hash_pw "$ADMIN_PW")
directory $dir/data
index objectClass,entryCSN,entryUUID eq
index uid,mail,member,cn eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
limits dn.exact="$SERVICE_DN" size=unlimited time=unlimited
limits dn.exact="$LIMITED_DN" size=$LIMITED_SIZE time=unlimited
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 1000
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
EOF
}

write_seed() {
  local dir=$1
  cat >"$dir/seed.ldif" <<EOF
dn: $BASE_DN
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,$BASE_DN
objectClass: organizationalUnit
ou: people

dn: ou=groups,$BASE_DN
objectClass: organizationalUnit
ou: groups

dn: ou=service,$BASE_DN
objectClass: organizationalUnit
ou: service

dn: $SERVICE_DN
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: authchain
userPassword: $(hash_pw "$SERVICE_PW")

dn: $LIMITED_DN
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: authchain-limited
userPassword: $(hash_pw "$LIMITED_PW")

dn: uid=alice,ou=people,$BASE_DN
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
mail: alice@example.org
userPassword: $(hash_pw alice-password)

dn: uid=bob,ou=people,$BASE_DN
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@example.org
mail: team@example.org
userPassword: $(hash_pw bob-password)

dn: uid=carol,ou=people,$BASE_DN
objectClass: inetOrgPerson
uid: carol
cn: Carol Danvers
sn: Danvers
mail: carol@example.org
mail: team@example.org
userPassword: $(hash_pw carol-password)

dn: uid=smith\2C john,ou=people,$BASE_DN
objectClass: inetOrgPerson
uid: smith, john
cn: John Smith
sn: Smith
userPassword: $(hash_pw smith-password)

dn: cn=admins,ou=groups,$BASE_DN
objectClass: groupOfNames
cn: admins
member: uid=alice,ou=people,$BASE_DN

dn: cn=staff,ou=groups,$BASE_DN
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,$BASE_DN
member: uid=bob,ou=people,$BASE_DN
member: uid=smith\2C john,ou=people,$BASE_DN

dn: cn=all-staff,ou=groups,$BASE_DN
objectClass: groupOfNames
cn: all-staff
member: cn=staff,ou=groups,$BASE_DN
EOF
}

# Starts slapd on the URLs in DIR/urls, waits until it answers, prints its PID.
run_slapd() {
  local dir=$1 ldap_url ldaps_url
  read -r ldap_url ldaps_url <"$dir/urls"
  rm -f "$dir/slapd.pid"
  "$SLAPD" -f "$dir/slapd.conf" -h "$ldap_url/ $ldaps_url/" 2>"$dir/slapd.log" \
    || die "slapd failed to start: $(cat "$dir/slapd.log")"
  for _ in $(seq 1 100); do
    if [ -s "$dir/slapd.pid" ] && ldapsearch -x -H "$ldap_url" -b "" -s base >/dev/null 2>&1; then
      cat "$dir/slapd.pid"
      return 0
    fi
    sleep 0.05
  done
  die "slapd did not answer on $ldap_url: $(cat "$dir/slapd.log")"
}

resume() {
  local dir=${1:?usage: slapd.sh resume DIR}
  [ -s "$dir/urls" ] || die "$dir holds no slapd started by this script"
  echo "SLAPD_PID=$(run_slapd "$dir")"
}

start() {
  local dir=${1:?usage: slapd.sh start DIR [LDAP_PORT LDAPS_PORT] [--owner-pid PID]}
  shift
  local ldap_port="" ldaps_port="" owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --owner-pid) owner=${2:?}; shift 2 ;;
      *) if [ -z "$ldap_port" ]; then ldap_port=$1; else ldaps_port=$1; fi; shift ;;
    esac
  done
  [ -x "$SLAPD" ] || die "slapd not found at $SLAPD (apt-get install slapd ldap-utils)"
  command -v ldapadd >/dev/null || die "ldapadd not found (apt-get install ldap-utils)"
  [ -n "$ldap_port" ] || ldap_port=$(free_port)
  [ -n "$ldaps_port" ] || ldaps_port=$(free_port)
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  write_certs "$dir"
  write_conf "$dir"
  write_seed "$dir"
  local ldap_url="ldap://127.0.0.1:$ldap_port"
  local ldaps_url="ldaps://127.0.0.1:$ldaps_port"
  echo "$ldap_url $ldaps_url" >"$dir/urls"
  local pid
  pid=$(run_slapd "$dir")
  ldapadd -x -H "$ldap_url" -D "$ADMIN_DN" -w "$ADMIN_PW" -f "$dir/seed.ldif" >"$dir/seed.log" 2>&1 \
    || { kill "$pid"; die "seeding failed: $(cat "$dir/seed.log")"; }
  if [ -n "$owner" ]; then
    # Stop slapd once the owning process is gone; fully detached from our stdout.
    # Then remove DIR (the owner created it for this server alone).
    # Only the owner's exit ends the watch: a test may kill and resume slapd.
    nohup bash -c "while kill -0 $owner 2>/dev/null && [ -d '$dir' ]; do sleep 0.5; done
      p=\$(cat '$dir/slapd.pid' 2>/dev/null) && kill -CONT \$p 2>/dev/null; kill \$p 2>/dev/null
      for _ in \$(seq 1 100); do kill -0 \$p 2>/dev/null || break; sleep 0.05; done
      rm -rf '$dir'" >/dev/null 2>&1 </dev/null &
  fi
  cat <<EOF
LDAP_URL=$ldap_url
LDAPS_URL=$ldaps_url
LDAP_CA_FILE=$dir/ca.crt
LDAP_WRONG_CA_FILE=$dir/wrong-ca.crt
LDAP_BASE_DN=$BASE_DN
LDAP_ADMIN_DN=$ADMIN_DN
LDAP_ADMIN_PASSWORD=$ADMIN_PW
LDAP_SERVICE_DN=$SERVICE_DN
LDAP_SERVICE_PASSWORD=$SERVICE_PW
LDAP_LIMITED_DN=$LIMITED_DN
LDAP_LIMITED_PASSWORD=$LIMITED_PW
LDAP_LIMITED_SIZE=$LIMITED_SIZE
SLAPD_PID=$pid
EOF
}

stop() {
  stop_pid "${1:?usage: slapd.sh stop DIR}/slapd.pid"
}

kill_hard() {
  kill_hard_pid "${1:?usage: slapd.sh kill DIR}/slapd.pid"
}

signal() {
  local dir=${2:?usage: slapd.sh freeze|thaw DIR}
  [ -s "$dir/slapd.pid" ] || die "$dir holds no running slapd"
  kill "-$1" "$(cat "$dir/slapd.pid")"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  kill) shift; kill_hard "$@" ;;
  resume) shift; resume "$@" ;;
  freeze) shift; signal STOP "$@" ;;
  thaw) shift; signal CONT "$@" ;;
  *) die "usage: slapd.sh start DIR [LDAP_PORT LDAPS_PORT] [--owner-pid PID] | stop DIR | kill DIR | resume DIR | freeze DIR | thaw DIR" ;;
esac
