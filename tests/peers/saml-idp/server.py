"""A throwaway SAML 2.0 identity provider (PyPI pysaml2) for authchain's tests,
on 127.0.0.1 only.

    python server.py --dir DIR [--port PORT] [--owner-pid PID] [--xmlsec PATH]

DIR holds the key pairs made by tests/peers/saml-idp.sh: idp.key/idp.crt (the
IdP's signing key, published in its metadata) and rogue.key/rogue.crt (another
key, never published). PORT 0 (the default) picks a free port. Prints one line
`SAML_IDP_PORT=<port>` when ready and writes DIR/idp-metadata.xml. With
--owner-pid the server exits when that process is gone.

Entity id: http://127.0.0.1:PORT/metadata. Responses: Response and Assertion
signed (RSA-SHA256 with SHA-256 digests, exclusive c14n, the signing certificate in KeyInfo), NameID
format unspecified (the login name), attributes with URI names and FriendlyName
(uid, mail, displayName, isMemberOf), lifetime 5 minutes.

Users (password in brackets):
    alice [alice-password]  isMemberOf admins, staff   alice@example.org
    bob   [bob-password]    isMemberOf staff           bob@example.org
    admin@example.org.evil.test [mallory-password]     no group
    carol [carol-password]    isMemberOf staff           carol@example.org
                              and an attribute `return_to` (/steered/by/the/idp)

Endpoints:
    GET  /metadata             the IdP's metadata
    GET  /metadata/signed      the same, signed by the IdP's key (RSA-SHA256),
                               valid for one hour (validUntil)
    GET  /metadata/rogue       metadata of the same entity id naming the rogue
                               certificate (the IdP before a key rollover)
    POST /admin/sp             body: an SP's metadata XML; registers that SP
    GET  /sso/redirect         HTTP-Redirect AuthnRequest (its query signature is
                               checked against the SP's metadata when present,
                               and required when the SP says AuthnRequestsSigned)
                               -> a login form
    POST /sso/login            key, username, password -> the auto-submit form
                               with SAMLResponse and RelayState (InResponseTo set)
    GET  /slo/redirect         HTTP-Redirect single logout: an SP's LogoutRequest
                               (its query signature checked against the SP's
                               metadata, required when the SP has a signing
                               certificate) -> 303 to the SP's SingleLogoutService
                               with a LogoutResponse (status=<URI> in the query of
                               /slo/redirect is not read: see /admin/slo-status),
                               query-signed RSA-SHA256; or an SP's LogoutResponse to
                               /slo/initiate's request -> 200, recorded
    GET  /slo/initiate         sp=<entity id>, user=<login>, [session_index]
                               (default: the last one issued to user),
                               [relay_state], [signer=idp|rogue], [unsigned=1]:
                               an IdP-initiated LogoutRequest -> 303 to the SP
    GET  /slo/log              what the SLO endpoints received, as JSON
    POST /admin/slo-status     body: the status URI the next LogoutResponses carry
    GET  /unsolicited          sp=<entity id>, user=<login>, [relay_state],
                               [signer=idp|rogue], [sign_response=0|1],
                               [sign_assertion=0|1], [sha1=1] (RSA-SHA1 and
                               SHA-1 digests), [recipient=<url>] (the
                               assertion's Recipient, instead of the SP's ACS),
                               [encrypt=aes128-cbc|aes256-cbc|aes128-gcm|
                               aes256-gcm|tripledes-cbc] (an EncryptedAssertion,
                               for the SP's metadata encryption certificate),
                               [key_transport=oaep|rsa15], [encrypt_for=rogue]
                               (encrypted for the rogue certificate instead):
                               an IdP-initiated response (no InResponseTo) as
                               the auto-submit form

An SP whose metadata has an encryption certificate gets its SP-initiated logins'
assertions encrypted (AES-256-CBC, RSA-OAEP), as ADFS and Entra ID do.
"""

import argparse
import os
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import json
import re

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml, samlp
from saml2.s_utils import decode_base64_and_inflate
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.sigver import get_pem_wrapped_unwrapped, make_temp, pre_encryption_part, verify_redirect_signature

USERS = {
    "alice": {
        "password": "alice-password",
        "mail": "alice@example.org",
        "displayName": "Alice Liddell",
        "isMemberOf": ["admins", "staff"],
    },
    "bob": {
        "password": "bob-password",
        "mail": "bob@example.org",
        "displayName": "Bob Builder",
        "isMemberOf": ["staff"],
    },
    "carol": {
        "password": "carol-password",
        "mail": "carol@example.org",
        "displayName": "Carol Danvers",
        "isMemberOf": ["staff"],
        # Released as it is (no URI name): an attribute that must not steer the SP.
        "extra": {"return_to": ["/steered/by/the/idp"]},
    },
    "admin@example.org.evil.test": {
        "password": "mallory-password",
        "mail": "mallory@evil.test",
        "displayName": "Mallory",
        "isMemberOf": [],
    },
}

SHA256 = ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256")
SHA1 = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1")

AUTHN = {"class_ref": saml.AUTHN_PASSWORD_PROTECTED, "authn_auth": "authchain-test-idp"}


def make_server(base, key, cert, xmlsec):
    config = {
        "entityid": f"{base}/metadata",
        "description": "authchain test IdP",
        "service": {
            "idp": {
                "name": "authchain test IdP",
                "endpoints": {
                    "single_sign_on_service": [(f"{base}/sso/redirect", BINDING_HTTP_REDIRECT)],
                    "single_logout_service": [(f"{base}/slo/redirect", BINDING_HTTP_REDIRECT)],
                },
                "policy": {
                    "default": {
                        "lifetime": {"minutes": 5},
                        "attribute_restrictions": None,
                        "name_form": NAME_FORMAT_URI,
                    },
                },
                "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
            },
        },
        "key_file": key,
        "cert_file": cert,
        "xmlsec_binary": xmlsec,
        "metadata": {},
        "accepted_time_diff": 60,
    }
    return InjectingServer(config=IdPConfig().load(config))


# The Recipient the next response made on this thread names, when a test asks for
# another one than the ACS (failure injection: a response whose Destination is the
# SP but whose assertion is for another endpoint).
RECIPIENT = threading.local()


# How the next response made on this thread is encrypted: content algorithm and key
# transport (pysaml2 itself always uses 3DES and RSA-OAEP).
ENCRYPTION = threading.local()
CONTENT = {
    "aes128-cbc": ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", "aes-128"),
    "aes256-cbc": ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", "aes-256"),
    "aes128-gcm": ("http://www.w3.org/2009/xmlenc11#aes128-gcm", "aes-128"),
    "aes256-gcm": ("http://www.w3.org/2009/xmlenc11#aes256-gcm", "aes-256"),
    "tripledes-cbc": ("http://www.w3.org/2001/04/xmlenc#tripledes-cbc", "des-192"),
}
TRANSPORT = {
    "oaep": "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "rsa15": "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
}


class InjectingServer(Server):
    def update_farg(self, in_response_to, consumer_url, farg=None):
        return Server.update_farg(in_response_to, getattr(RECIPIENT, "url", None) or consumer_url, farg)

    def _encrypt_assertion(self, encrypt_cert, sp_entity_id, response, node_xpath=None):
        msg_enc, session_key = CONTENT[getattr(ENCRYPTION, "content", None) or "aes256-cbc"]
        key_enc = TRANSPORT[getattr(ENCRYPTION, "transport", None) or "oaep"]
        if not encrypt_cert:
            encrypt_cert = self.metadata.certs(sp_entity_id, "any", "encryption")[0][1]
        wrapped, unwrapped = get_pem_wrapped_unwrapped(encrypt_cert)
        tmp = make_temp(wrapped.encode("ascii"), decode=False, delete_tmpfiles=self.config.delete_tmpfiles)
        template = pre_encryption_part(msg_enc=msg_enc, key_enc=key_enc, encrypt_cert=unwrapped)
        return self.sec.encrypt_assertion(response, tmp.name, template, key_type=session_key, node_xpath=node_xpath)


class State:
    def __init__(self, base, directory, xmlsec):
        self.lock = threading.Lock()
        self.idp = make_server(base, f"{directory}/idp.key", f"{directory}/idp.crt", xmlsec)
        # Same entity id, another key: what an attacker without the IdP's key can sign.
        self.rogue = make_server(base, f"{directory}/rogue.key", f"{directory}/rogue.crt", xmlsec)
        self.metadata = create_metadata_string(None, config=self.idp.config).decode()
        self.signed_metadata = create_metadata_string(
            None, config=self.idp.config, valid=1, sign=True, sign_alg=SHA256[0], digest_alg=SHA256[1]
        )
        if isinstance(self.signed_metadata, bytes):
            self.signed_metadata = self.signed_metadata.decode()
        self.rogue_metadata = create_metadata_string(None, config=self.rogue.config).decode()
        self.pending = {}
        # Single logout: the last SessionIndex issued per user, what arrived, and the
        # status URI of the LogoutResponses sent.
        self.session_index = {}
        self.slo_log = []
        self.slo_status = None
        with open(f"{directory}/rogue.crt") as f:
            self.rogue_cert = f.read()

    def register_sp(self, xml):
        for server in (self.idp, self.rogue):
            server.metadata.load("inline", xml)

    def identity(self, user):
        info = USERS[user]
        identity = {
            "uid": [user],
            "mail": [info["mail"]],
            "displayName": [info["displayName"]],
            "isMemberOf": list(info["isMemberOf"]),
        }
        identity.update({name: list(values) for name, values in info.get("extra", {}).items()})
        return identity

    def response_form(
        self, server, user, relay_state, sign_response=True, sign_assertion=True, algorithms=SHA256, **args
    ):
        response = server.create_authn_response(
            self.identity(user),
            userid=user,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=user),
            authn=AUTHN,
            sign_response=sign_response,
            sign_assertion=sign_assertion,
            sign_alg=algorithms[0],
            digest_alg=algorithms[1],
            **args,
        )
        found = re.search(r'SessionIndex="([^"]+)"', str(response))
        if found:
            self.session_index[user] = found.group(1)
        http_args = server.apply_binding(
            BINDING_HTTP_POST, str(response), args["destination"], relay_state, response=True
        )
        return http_args["data"]

    def sp_certs(self, sp):
        return [c for _, c in self.idp.metadata.certs(sp, "any", "signing")]

    def sp_slo(self, sp):
        return self.idp.metadata.single_logout_service(sp, BINDING_HTTP_REDIRECT, "spsso")[0]["location"]

    def check_signature(self, params, sp):
        """None when the query signature is fine (or the SP has no certificate), else why not."""
        certs = self.sp_certs(sp)
        if "Signature" in params:
            if not any(verify_redirect_signature(params, self.idp.sec.sec_backend, c) for c in certs):
                return "the query signature does not verify"
            return None
        return "this SP signs, the message is not signed" if certs else None


class Handler(BaseHTTPRequestHandler):
    state = None

    def log_message(self, fmt, *args):
        sys.stderr.write("saml-idp: " + (fmt % args) + "\n")

    def answer(self, status, body, content_type="text/html; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def query(self):
        parsed = urllib.parse.urlsplit(self.path)
        return parsed.path, dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode()

    def do_GET(self):
        path, params = self.query()
        try:
            with self.state.lock:
                if path == "/metadata":
                    return self.answer(200, self.state.metadata, "application/samlmetadata+xml")
                if path == "/metadata/signed":
                    return self.answer(200, self.state.signed_metadata, "application/samlmetadata+xml")
                if path == "/metadata/rogue":
                    return self.answer(200, self.state.rogue_metadata, "application/samlmetadata+xml")
                if path == "/sso/redirect":
                    return self.sso_redirect(params)
                if path == "/unsolicited":
                    return self.unsolicited(params)
                if path == "/slo/redirect":
                    return self.slo_redirect(params)
                if path == "/slo/initiate":
                    return self.slo_initiate(params)
                if path == "/slo/log":
                    return self.answer(200, json.dumps(self.state.slo_log), "application/json")
            self.answer(404, "not found")
        except Exception as e:  # the test reads the reason
            self.answer(400, f"{type(e).__name__}: {e}", "text/plain")

    def do_POST(self):
        path, _ = self.query()
        try:
            with self.state.lock:
                if path == "/admin/sp":
                    self.state.register_sp(self.body())
                    return self.answer(204, "")
                if path == "/admin/slo-status":
                    self.state.slo_status = self.body() or None
                    return self.answer(204, "")
                if path == "/sso/login":
                    form = dict(urllib.parse.parse_qsl(self.body(), keep_blank_values=True))
                    return self.sso_login(form)
            self.answer(404, "not found")
        except Exception as e:
            self.answer(400, f"{type(e).__name__}: {e}", "text/plain")

    def sso_redirect(self, params):
        idp = self.state.idp
        request = idp.parse_authn_request(params["SAMLRequest"], BINDING_HTTP_REDIRECT)
        message = request.message
        sp = message.issuer.text
        certs = [c for _, c in idp.metadata.certs(sp, "any", "signing")]
        if "Signature" in params:
            if not any(verify_redirect_signature(params, idp.sec.sec_backend, cert) for cert in certs):
                return self.answer(400, "the AuthnRequest signature does not verify", "text/plain")
        elif any(str(d.get("authn_requests_signed")).lower() == "true" for d in idp.metadata[sp]["spsso_descriptor"]):
            return self.answer(400, "this SP signs its AuthnRequests, this one is not signed", "text/plain")
        key = secrets.token_urlsafe(16)
        self.state.pending[key] = (message, params.get("RelayState", ""))
        self.answer(
            200,
            "<!doctype html><form method=post action=/sso/login>"
            f'<input type=hidden name=key value="{key}">'
            "<input name=username><input name=password type=password>"
            "<button>Sign in</button></form>",
        )

    def sso_login(self, form):
        entry = self.state.pending.pop(form.get("key", ""), None)
        if entry is None:
            return self.answer(400, "unknown or used login key", "text/plain")
        message, relay_state = entry
        user = form.get("username", "")
        if user not in USERS or USERS[user]["password"] != form.get("password"):
            return self.answer(401, "wrong user name or password", "text/plain")
        args = self.state.idp.response_args(message)
        if self.state.idp.has_encrypt_cert_in_metadata(message.issuer.text):
            args.update(encrypt_assertion=True, sp_entity_id=message.issuer.text)
        self.answer(200, self.state.response_form(self.state.idp, user, relay_state, **args))

    def redirect(self, location):
        self.send_response(303)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def slo_redirect(self, params):
        idp = self.state.idp
        if "SAMLResponse" in params:
            message = samlp.logout_response_from_string(decode_base64_and_inflate(params["SAMLResponse"]))
            sp = message.issuer.text
            self.state.slo_log.append({
                "kind": "LogoutResponse",
                "issuer": sp,
                "in_response_to": message.in_response_to,
                "status": message.status.status_code.value,
                "destination": message.destination,
                "relay_state": params.get("RelayState"),
                "signature": self.state.check_signature(params, sp) or "ok",
            })
            return self.answer(200, "logout response received", "text/plain")
        message = samlp.logout_request_from_string(decode_base64_and_inflate(params["SAMLRequest"]))
        sp = message.issuer.text
        problem = self.state.check_signature(params, sp)
        self.state.slo_log.append({
            "kind": "LogoutRequest",
            "issuer": sp,
            "name_id": message.name_id.text,
            "name_id_format": message.name_id.format,
            "session_indexes": [s.text for s in message.session_index],
            "destination": message.destination,
            "signature": problem or "ok",
        })
        if problem:
            return self.answer(400, problem, "text/plain")
        destination = self.state.sp_slo(sp)
        status = None
        if self.state.slo_status:
            status = samlp.Status(status_code=samlp.StatusCode(value=self.state.slo_status))
        response = idp._status_response(
            samlp.LogoutResponse, idp._issuer(), status, sign=False,
            in_response_to=message.id, destination=destination,
        )
        http_args = idp.apply_binding(
            BINDING_HTTP_REDIRECT, str(response), destination, params.get("RelayState", ""),
            response=True, sign=True, sigalg=SHA256[0],
        )
        return self.redirect(dict(http_args["headers"])["Location"])

    def slo_initiate(self, params):
        server = self.state.rogue if params.get("signer") == "rogue" else self.state.idp
        sp = params["sp"]
        user = params.get("user", "alice")
        index = params.get("session_index") or self.state.session_index.get(user)
        destination = self.state.sp_slo(sp)
        _, request = server.create_logout_request(
            destination,
            sp,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=user),
            session_indexes=[index] if index else None,
            sign=False,
        )
        http_args = server.apply_binding(
            BINDING_HTTP_REDIRECT, str(request), destination, params.get("relay_state", ""),
            sign=params.get("unsigned") != "1", sigalg=SHA256[0],
        )
        return self.redirect(dict(http_args["headers"])["Location"])

    def unsolicited(self, params):
        server = self.state.rogue if params.get("signer") == "rogue" else self.state.idp
        sp = params["sp"]
        destination = server.metadata.assertion_consumer_service(sp, BINDING_HTTP_POST)[0]["location"]
        RECIPIENT.url = params.get("recipient")
        ENCRYPTION.content = params.get("encrypt")
        ENCRYPTION.transport = params.get("key_transport")
        encryption = {}
        if params.get("encrypt"):
            encryption["encrypt_assertion"] = True
            if params.get("encrypt_for") == "rogue":
                encryption["encrypt_cert_assertion"] = self.state.rogue_cert
        try:
            form = self.state.response_form(
                server,
                params.get("user", "alice"),
                params.get("relay_state", ""),
                sign_response=params.get("sign_response", "1") == "1",
                sign_assertion=params.get("sign_assertion", "1") == "1",
                algorithms=SHA1 if params.get("sha1") == "1" else SHA256,
                in_response_to=None,
                destination=destination,
                sp_entity_id=sp,
                name_id_policy=None,
                **encryption,
            )
        finally:
            RECIPIENT.url = None
            ENCRYPTION.content = None
            ENCRYPTION.transport = None
        self.answer(200, form)


def watch_owner(pid):
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--owner-pid", type=int, default=0)
    parser.add_argument("--xmlsec", default="/usr/bin/xmlsec1")
    args = parser.parse_args()

    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = httpd.server_address[1]
    base = f"http://127.0.0.1:{port}"
    Handler.state = State(base, args.dir, args.xmlsec)
    with open(f"{args.dir}/idp-metadata.xml", "w") as f:
        f.write(Handler.state.metadata)
    if args.owner_pid:
        threading.Thread(target=watch_owner, args=(args.owner_pid,), daemon=True).start()
    print(f"SAML_IDP_PORT={port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
