"""Conformance check of ecr_bridge.py: pushes through `/v2/` with raw HTTP (basic auth, TLS) and
reads the ECR control plane with boto3, as ECR behaves. Ends with `N passed, M failed`.

  python check_ecr_bridge.py --bridge https://127.0.0.1:P --ca CA --user AWS --password TOKEN --moto URL
"""
import argparse, base64, hashlib, json, ssl, time, urllib.error, urllib.request

import boto3

p = argparse.ArgumentParser()
p.add_argument("--bridge", required=True)
p.add_argument("--ca", required=True)
p.add_argument("--user", required=True)
p.add_argument("--password", required=True)
p.add_argument("--moto", required=True)
p.add_argument("--region", default="eu-west-1")
args = p.parse_args()
CTX = ssl.create_default_context(cafile=args.ca)
AUTH = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
ECR = boto3.client("ecr", endpoint_url=args.moto, region_name=args.region,
                   aws_access_key_id="testing", aws_secret_access_key="testing")
OCI = "application/vnd.oci.image.manifest.v1+json"
results = []


def http(method, path, body=None, headers=None, auth=True):
    url = path if path.startswith("https://") else args.bridge + path
    h = dict(headers or {})
    if auth:
        h["Authorization"] = AUTH
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, context=CTX) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def blob(repo, data):
    status, h, _ = http("POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, status
    loc = h["Location"]
    assert loc.startswith(args.bridge) or loc.startswith("/"), f"Location {loc} does not point at the bridge"
    loc = loc if loc.startswith("https://") else args.bridge + loc
    sep = "&" if "?" in loc else "?"
    status, _, body = http("PUT", f"{loc}{sep}digest={sha(data)}", data,
                           {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
    assert status == 201, (status, body)
    return {"mediaType": "application/octet-stream", "digest": sha(data), "size": len(data)}


def image(repo, seed):
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    c = blob(repo, config)
    c["mediaType"] = "application/vnd.oci.image.config.v1+json"
    layer = blob(repo, f"layer {seed}".encode())
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
    return json.dumps({"schemaVersion": 2, "mediaType": OCI, "config": c, "layers": [layer]}).encode()


def put(repo, ref, manifest):
    return http("PUT", f"/v2/{repo}/manifests/{ref}", manifest, {"Content-Type": OCI})


def check(name):
    def wrap(f):
        try:
            f()
            results.append((name, None))
        except Exception as e:  # noqa: BLE001 - a failed check is reported, not raised
            results.append((name, repr(e)))
        return f
    return wrap


@check("no credentials: the registry's basic-auth challenge comes through the bridge")
def _():
    status, h, _ = http("GET", "/v2/", auth=False)
    h = {k.lower(): v for k, v in h.items()}
    assert status == 401 and h.get("www-authenticate", "").startswith("Basic"), (status, h)


@check("a manifest pushed by tag is registered in ECR with its real digest, media type and tag")
def _():
    m = image("check/one", "1")
    status, h, _ = put("check/one", "v1", m)
    assert status == 201 and h["Docker-Content-Digest"] == sha(m), (status, h)
    d = ECR.describe_images(repositoryName="check/one")["imageDetails"]
    assert [(i["imageDigest"], i.get("imageTags")) for i in d] == [(sha(m), ["v1"])], d
    got = ECR.batch_get_image(repositoryName="check/one", imageIds=[{"imageDigest": sha(m)}])["images"][0]
    assert got["imageManifest"] == m.decode() and got["imageManifestMediaType"] == OCI, got


@check("by digest first, then a tag: one image with the tag added")
def _():
    m = image("check/two", "2")
    assert put("check/two", sha(m), m)[0] == 201
    assert put("check/two", "abc", m)[0] == 201
    d = ECR.describe_images(repositoryName="check/two")["imageDetails"]
    assert [(i["imageDigest"], i.get("imageTags")) for i in d] == [(sha(m), ["abc"])], d


@check("the identical manifest re-pushed under the same tag succeeds (as ECR)")
def _():
    m = image("check/one", "1")
    assert put("check/one", "v1", m)[0] == 201


@check("IMMUTABLE: another manifest under an existing tag is refused 400 TAG_INVALID")
def _():
    ECR.create_repository(repositoryName="check/frozen", imageTagMutability="IMMUTABLE")
    a, b = image("check/frozen", "a"), image("check/frozen", "b")
    assert put("check/frozen", "1.0", a)[0] == 201
    status, _, body = put("check/frozen", "1.0", b)
    assert status == 400 and b"TAG_INVALID" in body, (status, body)
    assert put("check/frozen", "1.0", a)[0] == 201


@check("scan of a pushed image: moto's default result, one HIGH CVE-9999-9999")
def _():
    m = image("check/scan", "s")
    assert put("check/scan", "s", m)[0] == 201
    ECR.start_image_scan(repositoryName="check/scan", imageId={"imageDigest": sha(m)})
    f = ECR.describe_image_scan_findings(repositoryName="check/scan", imageId={"imageDigest": sha(m)})
    sev = [x["severity"] for x in f["imageScanFindings"]["findings"]]
    assert f["imageScanStatus"]["status"] == "COMPLETE" and sev == ["HIGH"], f


@check("an injected CRITICAL finding binds to the pushed image's real digest")
def _():
    m = image("check/crit", "c")
    assert put("check/crit", "c", m)[0] == 201
    body = {"region": args.region, "results": [{
        "registryId": "123456789012", "repositoryName": "check/crit", "imageId": {"imageDigest": sha(m)},
        "imageScanStatus": {"status": "COMPLETE", "description": "injected"},
        "imageScanFindings": {"findings": [{"name": "CVE-2024-0001", "severity": "CRITICAL", "uri": "https://x", "attributes": []}],
                              "findingSeverityCounts": {"CRITICAL": 1}}}]}
    req = urllib.request.Request(args.moto + "/moto-api/static/ecr/scan-finding-results", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    ECR.start_image_scan(repositoryName="check/crit", imageId={"imageDigest": sha(m)})
    f = ECR.describe_image_scan_findings(repositoryName="check/crit", imageId={"imageDigest": sha(m)})
    assert [x["name"] for x in f["imageScanFindings"]["findings"]] == ["CVE-2024-0001"], f


@check("the bridge's own record lists what it registered")
def _():
    with urllib.request.urlopen(args.bridge + "/__bridge/images", context=CTX) as r:
        regs = json.loads(r.read())
    assert {r["repository"] for r in regs} >= {"check/one", "check/two", "check/frozen", "check/scan"}, regs


failed = [r for r in results if r[1]]
for name, err in results:
    print(("ok   " if not err else "FAIL ") + name + (f": {err}" if err else ""))
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
raise SystemExit(1 if failed else 0)
