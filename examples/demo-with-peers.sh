#!/usr/bin/env bash
# The demo against the test suite's real identity providers, all on 127.0.0.1:
# the OpenID provider (tests/peers/oidc-provider.sh), the SAML IdP (saml-idp.sh) and
# the CAS server (cas-server.sh). Users: alice / alice-password, bob / bob-password,
# carol / carol-password at each of them.
#
#   bash examples/demo-with-peers.sh        # http://127.0.0.1:3000/auth/login
#
# Ctrl-C stops the demo and the three servers.
set -euo pipefail
cd "$(dirname "$0")/.."
app=http://127.0.0.1:3000
dir=$(mktemp -d)
demo=""
cleanup() {
  [ -n "$demo" ] && kill "$demo" 2>/dev/null || true
  for p in oidc-provider saml-idp cas-server; do bash tests/peers/$p.sh stop "$dir/$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
var() { grep "^$1=" "$dir/$2.env" | cut -d= -f2-; }
OIDC_EXTRA_REDIRECT_URIS=$app/auth/callback/oidc bash tests/peers/oidc-provider.sh start "$dir/oidc-provider" >"$dir/oidc-provider.env"
bash tests/peers/saml-idp.sh start "$dir/saml-idp" >"$dir/saml-idp.env"
bash tests/peers/cas-server.sh start "$dir/cas-server" >"$dir/cas-server.env"
cat >"$dir/demo.toml" <<TOML
chain = ["local", "oidc", "saml", "campus"]

[modules.local]
type = "local"
description = "Username and password"

[modules.oidc]
type = "oidc"
description = "OpenID provider"
issuer = "$(var OIDC_ISSUER oidc-provider)"
client_id = "authchain-confidential"
client_secret = "confidential-secret"
redirect_uri = "$app/auth/callback/oidc"
scopes = ["openid", "profile", "email", "groups"]
provisioning = "create"

[modules.saml]
type = "saml"
description = "SAML IdP"
sp_entity_id = "$app/saml"
acs_url = "$app/auth/callback/saml"
idp_metadata_file = "$(var SAML_IDP_METADATA saml-idp)"
provisioning = "create"

[modules.campus]
type = "cas"
description = "CAS server"
server_url = "$(var CAS_URL cas-server)"
service_url = "$app/auth/callback/campus"
provisioning = "create"
TOML
cargo build -q --example demo --features oidc,saml,cas
target/debug/examples/demo --addr 127.0.0.1:3000 --data-dir "$dir/data" --config "$dir/demo.toml" &
demo=$!
# The IdP learns the SP from the demo's metadata route.
for _ in $(seq 1 100); do curl -sf "$app/auth/metadata/saml" -o "$dir/sp.xml" && break; sleep 0.2; done
curl -sf -X POST --data-binary @"$dir/sp.xml" "$(var SAML_IDP_URL saml-idp)/admin/sp"
echo "demo with the OpenID provider, SAML IdP and CAS server: $app/auth/login"
wait "$demo"
