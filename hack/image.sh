#!/usr/bin/env bash
# Builds the controller's image where no Docker engine runs, as the Dockerfile would: the static
# musl binary from exactly the Dockerfile's inputs (hack/image-inputs, copied alone into a clean
# directory, so a missing input fails here as it would in `docker build`), then a runtime image
# assembled with buildah from scratch holding what distroless's static:nonroot gives the
# Dockerfile's: user 65532 (nonroot) in /etc/passwd, the CA bundle the alert sinks need,
# /reloader as the entrypoint, port 9090. Written as an OCI archive.
#
#   hack/image.sh           build target/image/kube-reloader.oci.tar and check its config and size
#   hack/image.sh --run     also run it against the local control plane until it is ready and
#                           has reloaded one Deployment (podman; see below when it cannot run)
#
# Needs: the x86_64-unknown-linux-musl Rust target, musl-tools, buildah (and podman, runc for
# --run), ca-certificates; .ci/run installs them.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
run=false
[ "${1:-}" = "--run" ] && run=true

out=target/image
archive=$out/kube-reloader.oci.tar
target=x86_64-unknown-linux-musl
max_mb=40
mkdir -p "$out"

# 1. The inputs alone, as `COPY` puts them into the build stage.
src=$out/src
rm -rf "$src" && mkdir -p "$src"
mapfile -t inputs < <(grep -v '^\s*#' hack/image-inputs | grep -v '^\s*$')
for i in "${inputs[@]}"; do cp -r "$i" "$src/$i"; done
echo ">> image: building the static binary from ${inputs[*]}" >&2
start=$SECONDS
# The Dockerfile's command; the repository's target directory keeps the dependencies' builds.
(cd "$src" && cargo build --release --locked --target "$target" --bin reloader --target-dir "$repo/target")
bin=$repo/target/$target/release/reloader
echo ">> image: binary built in $((SECONDS - start)) s" >&2
# A scratch image has no dynamic loader: the binary must ask for none.
if readelf -l "$bin" | grep -q 'program interpreter'; then echo "the binary is not static: $bin" >&2; exit 1; fi

# 2. The runtime image, from scratch.
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
etc=$(mktemp -d)
trap 'rm -rf "$etc"' EXIT
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$etc/group"
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || { echo "no CA bundle at $ca (install ca-certificates)" >&2; exit 1; }
ctr=$(buildah from scratch)
buildah copy --chmod 0755 "$ctr" "$bin" /reloader > /dev/null
buildah copy --chmod 0644 "$ctr" "$ca" /etc/ssl/certs/ca-certificates.crt > /dev/null
buildah copy --chmod 0644 "$ctr" "$etc/passwd" /etc/passwd > /dev/null
buildah copy --chmod 0644 "$ctr" "$etc/group" /etc/group > /dev/null
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
buildah config --user 65532:65532 --port 9090/tcp --entrypoint '["/reloader"]' \
  --workingdir / --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.title=kube-reloader" "$ctr"
rm -f "$archive"
buildah commit --quiet "$ctr" "oci-archive:$archive:kube-reloader:$version" > /dev/null
buildah rm "$ctr" > /dev/null

# 3. What it is: config and size.
python3 - "$archive" "$max_mb" <<'PY'
import json, sys, tarfile
path, max_mb = sys.argv[1], int(sys.argv[2])
t = tarfile.open(path)
blob = lambda d: t.extractfile("blobs/" + d.replace(":", "/")).read()
index = json.loads(t.extractfile("index.json").read())
manifest = json.loads(blob(index["manifests"][0]["digest"]))
config = json.loads(blob(manifest["config"]["digest"]))["config"]
checks = {
    "User": (config.get("User"), "65532:65532"),
    "Entrypoint": (config.get("Entrypoint"), ["/reloader"]),
    "ExposedPorts": (sorted(config.get("ExposedPorts", {})), ["9090/tcp"]),
}
bad = {k: v for k, v in checks.items() if v[0] != v[1]}
size = sum(l["size"] for l in manifest["layers"])
print(f">> image: {path}: user {config.get('User')}, entrypoint {config.get('Entrypoint')}, "
      f"ports {sorted(config.get('ExposedPorts', {}))}, layers {size / 2**20:.1f} MiB", file=sys.stderr)
if bad:
    sys.exit(f"image config differs from the Dockerfile's: {bad}")
if size > max_mb * 2**20:
    sys.exit(f"image layers take {size / 2**20:.1f} MiB, more than {max_mb} MiB")
PY
$run || exit 0

# 4. Run it against the local control plane: ready, then one Deployment reloaded.
eval "$(hack/cluster.sh ensure | tail -1)"
kubectl="$(hack/tools.sh --check)/kubectl"
ns=image-check-$$
kube() { "$kubectl" "$@"; }
kube create namespace "$ns" > /dev/null
cleanup() { kube delete namespace "$ns" --wait=false > /dev/null 2>&1 || true; rm -rf "$etc"; }
trap cleanup EXIT
kube -n "$ns" create configmap cfg --from-literal=v=1 > /dev/null
kube -n "$ns" apply -f - > /dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {reloader.stakater.com/auto: "true"}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: example.com/app:1, envFrom: [{configMapRef: {name: cfg}}]}]}
YAML
# A kubeconfig with everything inline, readable by uid 65532.
kc=$etc/kubeconfig
kube config view --raw --flatten --minify > "$kc"
chmod 0644 "$kc" && chmod 0755 "$etc"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
args=(--namespaces="$ns" --metrics-addr="127.0.0.1:$port")
log=$out/run.log
# podman's defaults fail here (crun cannot set rlimits, hybrid cgroups): no default ulimits, runc,
# cgroupfs. If the container still cannot start, the image's own binary runs as uid 65532 instead.
conf=$etc/containers.conf
printf '[containers]\ndefault_ulimits = []\n' > "$conf"
how=container
CONTAINERS_CONF=$conf podman --runtime runc --cgroup-manager=cgroupfs run --rm --network host \
  --name "$ns" -v "$kc:/kubeconfig:ro" -e KUBECONFIG=/kubeconfig "oci-archive:$archive" "${args[@]}" > "$log" 2>&1 &
pid=$!
ready() { curl -fsS "http://127.0.0.1:$port/ready" > /dev/null 2>&1; }
for _ in $(seq 1 60); do ready && break; kill -0 $pid 2> /dev/null || break; sleep 0.5; done
if ! ready; then
  echo ">> image: podman could not run the container here:" >&2
  tail -5 "$log" >&2 || true
  kill $pid 2> /dev/null || true
  how="the image's binary as uid 65532 (setpriv), the container runtime being unavailable"
  root=$etc/rootfs && mkdir -p "$root"
  python3 - "$archive" "$root" <<'PY'
import io, json, sys, tarfile
path, root = sys.argv[1], sys.argv[2]
t = tarfile.open(path)
blob = lambda d: t.extractfile("blobs/" + d.replace(":", "/")).read()
manifest = json.loads(blob(json.loads(t.extractfile("index.json").read())["manifests"][0]["digest"]))
for layer in manifest["layers"]:
    tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))).extractall(root, filter="data")
PY
  KUBECONFIG=$kc SSL_CERT_FILE=$root/etc/ssl/certs/ca-certificates.crt \
    setpriv --reuid 65532 --regid 65532 --clear-groups "$root/reloader" "${args[@]}" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do ready && break; kill -0 $pid 2> /dev/null || break; sleep 0.5; done
fi
ready || { echo "the image never became ready:" >&2; cat "$log" >&2; kill $pid 2> /dev/null || true; exit 1; }
before=$(kube -n "$ns" get deployment web -o jsonpath='{.spec.template.metadata.annotations}')
kube -n "$ns" patch configmap cfg --type=merge -p '{"data":{"v":"2"}}' > /dev/null
reloaded=false
for _ in $(seq 1 40); do
  now=$(kube -n "$ns" get deployment web -o jsonpath='{.spec.template.metadata.annotations}')
  [ "$now" != "$before" ] && { reloaded=true; break; }
  sleep 0.25
done
if [ "$how" = container ]; then podman stop -t 5 "$ns" > /dev/null 2>&1 || true; fi
kill $pid 2> /dev/null || true
wait $pid 2> /dev/null || true
$reloaded || { echo "the image did not reload the Deployment:" >&2; cat "$log" >&2; exit 1; }
echo ">> image: ran as $how: ready, and reloaded deployment/web on a ConfigMap change" >&2
