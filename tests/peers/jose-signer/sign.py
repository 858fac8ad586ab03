"""Signs JWTs with jwcrypto (an independent JOSE implementation) for tests/signed_header.rs.

  sign.py jwks KEY.pem:KID ...            -> the JWKS of the keys' public halves
  sign.py sign ALG KEY.pem KID CLAIMS     -> a compact JWS (KID "" for none)
  sign.py hs256-public PUB.pem CLAIMS     -> HS256 keyed with a public key's PEM bytes
  sign.py none CLAIMS                     -> an unsigned token (alg: none)
"""
import base64, json, sys
from jwcrypto import jwk, jws
from jwcrypto.common import json_encode


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(args):
    cmd = args[0]
    if cmd == "jwks":
        keys = []
        for spec in args[1:]:
            path, kid = spec.rsplit(":", 1)
            with open(path, "rb") as f:
                key = jwk.JWK.from_pem(f.read())
            public = json.loads(key.export_public())
            public["kid"] = kid
            public["use"] = "sig"
            keys.append(public)
        print(json.dumps({"keys": keys}))
    elif cmd == "sign":
        alg, path, kid, claims = args[1:5]
        with open(path, "rb") as f:
            key = jwk.JWK.from_pem(f.read())
        header = {"alg": alg, "typ": "JWT"}
        if kid:
            header["kid"] = kid
        token = jws.JWS(claims.encode())
        token.add_signature(key, None, json_encode(header))
        print(token.serialize(compact=True))
    elif cmd == "hs256-public":
        path, claims = args[1:3]
        with open(path, "rb") as f:
            secret = f.read()
        key = jwk.JWK(kty="oct", k=b64(secret))
        token = jws.JWS(claims.encode())
        token.add_signature(key, None, json_encode({"alg": "HS256", "typ": "JWT"}))
        print(token.serialize(compact=True))
    elif cmd == "none":
        claims = args[1]
        print(b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(claims.encode()) + ".")
    else:
        sys.exit("unknown command " + cmd)


main(sys.argv[1:])
