"""An ECR stand-in that is one registry: docker-registry's `/v2/` API plus moto's ECR control plane.

Real ECR registers an image in its control plane (DescribeImages, StartImageScan,
DescribeImageScanFindings) the moment a manifest is pushed through `/v2/`. moto has no `/v2/`
and docker-registry has no ECR API, so this reverse proxy sits in front of docker-registry and,
on every successful `PUT /v2/<repo>/manifests/<ref>`, calls moto's ECR `PutImage` *before*
answering the client, with the manifest body, its media type, the tag (when <ref> is a tag) and
`imageDigest` = the registry's `Docker-Content-Digest`. So moto's image digest is the real
manifest sha256 and the scan gate asks ECR about exactly what was pushed.

Prints `LISTENING <port>`. Everything else is forwarded unchanged to --upstream with the Host
header kept (the registry's Location headers point back at the bridge); auth is the upstream's
(docker-registry with htpasswd: ECR's `AWS` / `<account>-auth-token`).

  --cert/--key          serve TLS (the same certificate as the registry: SAN IP:127.0.0.1)
  --upstream-ca         talk TLS to the upstream, trusting this CA (else plain HTTP)
  --moto URL            moto server; --region; --account (the ECR registry's account: when it is
                        not moto's default 123456789012 the bridge assumes a role there, which is
                        how moto picks the account's backend)
  --tag-mutability      for repositories the bridge creates (default MUTABLE)

ECR semantics kept: a repository is created on first push if missing (real ECR needs it to
exist; here creation is implicit so tests need no set-up); re-pushing the identical manifest
under the same tag succeeds (moto raises ImageAlreadyExistsException; real ECR accepts it);
pushing a *different* manifest under an existing tag of an IMMUTABLE repository answers 400
`TAG_INVALID` like ECR's registry API. If moto refuses, the client gets 500 and the body says why.

Control: GET /__bridge/images -> [{"repository", "digest", "tags", "mediaType"}, ...] (what was
registered in moto, in order).
"""
import argparse, http.client, json, re, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.exceptions

p = argparse.ArgumentParser()
p.add_argument("--upstream", required=True)  # host:port
p.add_argument("--upstream-ca")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--moto", required=True)
p.add_argument("--region", default="eu-west-1")
p.add_argument("--account", default="123456789012")
p.add_argument("--tag-mutability", default="MUTABLE", choices=["MUTABLE", "IMMUTABLE"])
args = p.parse_args()
UP_HOST, UP_PORT = args.upstream.rsplit(":", 1)
UP_CTX = ssl.create_default_context(cafile=args.upstream_ca) if args.upstream_ca else None
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/?]+)$")
DIGEST = re.compile(r"^[a-z0-9]+:[a-f0-9]{32,}$")
LOCK = threading.Lock()
REGISTERED = []


def ecr_client():
    base = dict(endpoint_url=args.moto, region_name=args.region,
                aws_access_key_id="testing", aws_secret_access_key="testing")
    if args.account == "123456789012":
        return boto3.client("ecr", **base)
    creds = boto3.client("sts", **base).assume_role(
        RoleArn=f"arn:aws:iam::{args.account}:role/ecr-bridge", RoleSessionName="ecr-bridge")["Credentials"]
    return boto3.client("ecr", endpoint_url=args.moto, region_name=args.region,
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


ECR = ecr_client()


def register(repo, ref, body, media_type, digest):
    """PutImage in moto; returns None or an error (status, code, message) for the client."""
    tag = None if DIGEST.match(ref) else ref
    with LOCK:
        try:
            ECR.describe_repositories(repositoryNames=[repo])
        except ECR.exceptions.RepositoryNotFoundException:
            ECR.create_repository(repositoryName=repo, imageTagMutability=args.tag_mutability)
        if tag is not None:
            # IMMUTABLE: a tag that names another digest is refused (the registry has already
            # stored the manifest, as a real ECR would not; the tag is what matters to clients).
            try:
                have = ECR.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": tag}])["images"]
            except botocore.exceptions.ClientError:
                have = []
            mutability = ECR.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageTagMutability"]
            if have and have[0]["imageId"]["imageDigest"] != digest and mutability == "IMMUTABLE":
                return 400, "TAG_INVALID", f"The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
        kwargs = dict(repositoryName=repo, imageManifest=body.decode("utf-8"), imageDigest=digest)
        if media_type:
            kwargs["imageManifestMediaType"] = media_type
        if tag is not None:
            kwargs["imageTag"] = tag
        try:
            ECR.put_image(**kwargs)
        except ECR.exceptions.ImageAlreadyExistsException:
            pass  # identical manifest under the same tag: real ECR accepts it
        except botocore.exceptions.ClientError as e:
            return 500, "UNKNOWN", f"ECR PutImage failed: {e}"
        for r in REGISTERED:
            if r["repository"] == repo and r["digest"] == digest:
                if tag and tag not in r["tags"]:
                    r["tags"].append(tag)
                break
        else:
            REGISTERED.append({"repository": repo, "digest": digest, "tags": [tag] if tag else [], "mediaType": media_type})
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self):
        if self.path == "/__bridge/images":
            with LOCK:
                return self.reply(200, json.dumps(REGISTERED).encode())
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if UP_CTX:
            up = http.client.HTTPSConnection(UP_HOST, int(UP_PORT), timeout=120, context=UP_CTX)
        else:
            up = http.client.HTTPConnection(UP_HOST, int(UP_PORT), timeout=120)
        up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP:
                up.putheader(k, v)
        up.endheaders()
        if body:
            up.send(body)
        resp = up.getresponse()
        data = resp.read()
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP and k.lower() != "content-length"]
        up.close()
        m = MANIFEST.match(self.path.split("?")[0])
        if self.command == "PUT" and m and resp.status == 201:
            digest = resp.getheader("Docker-Content-Digest")
            err = register(m["repo"], m["ref"], body, self.headers.get("Content-Type"), digest)
            if err:
                status, code, message = err
                sys.stderr.write(f"ecr_bridge: {self.path}: {message}\n")
                return self.reply(status, json.dumps({"errors": [{"code": code, "message": message}]}).encode())
        self.send_response(resp.status)
        for k, v in headers:
            self.send_header(k, v)
        length = resp.getheader("Content-Length")
        self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
if args.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(f"LISTENING {server.server_address[1]}", flush=True)
server.serve_forever()
