# Shared by the scripts in tests/peers/ (sourced, not run).

# stop_pid FILE: kills the process whose PID is in FILE, and nothing else; waits up
# to 5 s for it to exit (so its port is closed when this returns), then SIGKILL.
# FILE is removed.
stop_pid() {
  local file=$1 pid
  [ -s "$file" ] || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  rm -f "$file"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
}

# kill_hard_pid FILE: SIGKILLs the process whose PID is in FILE (as a crash would) and
# waits up to 5 s for it to go; FILE is kept (a test may resume the server).
kill_hard_pid() {
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  kill -9 "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
}

# write_certs DIR [SAN]: a test CA (DIR/ca.crt, .key), an unrelated "wrong" CA
# (DIR/wrong-ca.crt) and a server certificate signed by the first (DIR/server.crt,
# .key; CN localhost, subjectAltName SAN, default DNS:localhost, IP:127.0.0.1),
# P-256 keys, valid 7 days.
write_certs() {
  local dir=$1 san=${2:-DNS:localhost, IP:127.0.0.1}
  cat >"$dir/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
EOF
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  for ca in ca wrong-ca; do
    openssl req -x509 "${ec[@]}" -config "$dir/openssl.cnf" -extensions ca -days 7 \
      -subj "/CN=authchain test $ca" -keyout "$dir/$ca.key" -out "$dir/$ca.crt" 2>/dev/null
  done
  openssl req -new "${ec[@]}" -config "$dir/openssl.cnf" -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 7 -extfile "$dir/openssl.cnf" -extensions server -out "$dir/server.crt" 2>/dev/null
  chmod 600 "$dir"/*.key
}
