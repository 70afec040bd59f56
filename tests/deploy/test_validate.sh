#!/usr/bin/env bash
# Proves scripts/validate-deploy.sh bites: the pristine deploy/ trees pass (with kubectl's
# renderer when installed and with the built-in one), and each deliberately broken copy fails
# at the check that should catch it.
#
#   tests/deploy/test_validate.sh          # prints "deploy: N passed, N failed" last
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VALIDATE=$ROOT/scripts/validate-deploy.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/     | /' "$WORK/out"; }

# expect_pass NAME [ENV=VAL...] -- ARGS...
expect_pass() {
    local name=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
    if env "${envs[@]}" "$VALIDATE" "$@" >"$WORK/out" 2>&1; then ok "$name"; else bad "$name (expected success)"; fi
}

# expect_fail NAME PATTERN [ENV=VAL...] -- ARGS...: must exit non-zero with PATTERN in a FAIL line.
expect_fail() {
    local name=$1 pattern=$2; shift 2
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
    if env "${envs[@]}" "$VALIDATE" "$@" >"$WORK/out" 2>&1; then
        bad "$name (expected failure, validator passed)"
    elif grep -A20 '^FAIL' "$WORK/out" | grep -Eq "$pattern"; then
        ok "$name"
    else
        bad "$name (failed, but not with /$pattern/)"
    fi
}

# fresh COPY: a copy of deploy/k8s to break.
fresh() { rm -rf "${WORK:?}/${1:?}"; cp -r "$ROOT/deploy/k8s" "$WORK/$1"; echo "$WORK/$1"; }

K8S=VALIDATE_PARTS=k8s

# 1. The pristine trees pass, every part, with the default renderer and the built-in one.
expect_pass "pristine deploy/ passes every check" VALIDATE_PARTS=k8s,terraform,dockerfile --
expect_pass "pristine deploy/k8s passes with the built-in renderer" $K8S RENDERER=python -- "$ROOT/deploy/k8s"

# 2. A field of the wrong type in the Deployment: schema validation fails.
d=$(fresh wrong-type)
sed -i 's/^  replicas: 3$/  replicas: "three"/' "$d/deployment.yaml"
grep -q 'replicas: "three"' "$d/deployment.yaml" || echo "setup: replicas line not found" >&2
expect_fail "Deployment replicas as a string fails kubernetes-validate" \
    "kubernetes-validate|replicas: 'three' is not of type" $K8S -- "$d"
expect_fail "... also with the built-in renderer" \
    "kubernetes-validate|replicas: 'three' is not of type" $K8S RENDERER=python -- "$d"

# 3. runAsNonRoot removed (pod and container level): the invariants fail. (checkov alone
#    accepts this, since runAsUser 10001 is non-zero: that is why the invariants exist.)
d=$(fresh no-nonroot)
sed -i '/runAsNonRoot: true/d' "$d/deployment.yaml"
expect_fail "Deployment without runAsNonRoot fails the invariants" \
    "runAsNonRoot must be true" $K8S -- "$d"

# 4. An unknown field (a typo) is rejected by the strict schemas.
d=$(fresh unknown-field)
sed -i 's/^      terminationGracePeriodSeconds: 40$/      terminationGracePeriodSecond: 40/' "$d/deployment.yaml"
expect_fail "unknown field terminationGracePeriodSecond fails strict validation" \
    "kubernetes-validate|terminationGracePeriodSecond" $K8S -- "$d"

# 5. A privilege escalation checkov knows about: allowPrivilegeEscalation true.
d=$(fresh escalation)
sed -i 's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/' "$d/deployment.yaml"
expect_fail "allowPrivilegeEscalation: true fails checkov" "CKV_K8S_20" $K8S -- "$d"

# 6. A Secret with data in the kustomization: secrets are referenced, never embedded.
d=$(fresh embedded-secret)
cat >"$d/secret.yaml" <<'EOF'
apiVersion: v1
kind: Secret
metadata:
  name: strongroom-database
stringData:
  url: postgres://strongroom:hunter2@db:5432/strongroom
EOF
echo "  - secret.yaml" >>"$d/kustomization.yaml"
expect_fail "an embedded Secret fails" "secrets are referenced" $K8S -- "$d"

# 7. A checkov skip without a reason fails.
d=$(fresh bare-skip)
sed -i 's/^\(    checkov.io\/skip1: CKV_K8S_21=\).*/\1ok/' "$d/service.yaml"
expect_fail "a checkov skip without a reason fails" "needs a real reason" $K8S -- "$d"

# 8. Broken YAML fails at rendering.
d=$(fresh broken-yaml)
printf '  replicas: [\n' >>"$d/hpa.yaml"
expect_fail "unparsable YAML fails" "k8s-render" $K8S -- "$d"

# 9. Terraform: unencrypted storage fails checkov; a misformatted file and an undocumented
#    variable fail fmt and the documentation check.
t=$WORK/tf-unencrypted; rm -rf "$t"; cp -r "$ROOT/deploy/terraform" "$t"
sed -i 's/^  storage_encrypted                   = true$/  storage_encrypted                   = false/' "$t/aurora.tf"
grep -q 'storage_encrypted *= false' "$t/aurora.tf" || echo "setup: storage_encrypted line not found" >&2
expect_fail "Aurora without storage encryption fails checkov" "CKV_AWS_96" VALIDATE_PARTS=terraform -- "$ROOT/deploy/k8s" "$t"

t=$WORK/tf-sloppy; rm -rf "$t"; cp -r "$ROOT/deploy/terraform" "$t"
printf 'variable "undocumented" {\ntype = string\n  default = "x"\n}\n' >>"$t/variables.tf"
expect_fail "an undocumented, misformatted variable fails" "has no description" VALIDATE_PARTS=terraform -- "$ROOT/deploy/k8s" "$t"
if command -v terraform >/dev/null 2>&1; then
    if grep -q '^FAIL terraform fmt -check' "$WORK/out"; then ok "... and terraform fmt -check catches the formatting"
    else bad "... terraform fmt -check did not catch the formatting"; fi
fi

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
