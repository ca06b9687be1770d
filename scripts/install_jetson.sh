#!/usr/bin/env bash
# Install the Osprey edge agent on an NVIDIA Jetson with JetPack 6 (L4T r36, Python 3.10) and
# run it as a systemd service. Safe to rerun: it repairs or upgrades what is there and keeps a
# config you have edited. Every step says what it does; a failing step says why and what to do.
#
#   sudo scripts/install_jetson.sh --camera rtsp://user:pass@192.168.1.20/stream1 \
#       --broker broker.example.net:8883 --ca-file ca.crt \
#       --mqtt-user jetson-gate-01 --mqtt-password-file ./mqtt-password
#
#   scripts/install_jetson.sh --dry-run --assume-l4t 36.4 ...   # print every action, do nothing
#
# Details: docs/deployment.md.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=/opt/osprey/venv
CONSTRAINTS=/opt/osprey/constraints.txt
ETC=/etc/osprey
CACHE=/var/cache/osprey
UNIT=/etc/systemd/system/edge-agent.service
SERVICE_USER=osprey
# Jetson wheels of onnxruntime-gpu, by CUDA release: JetPack 6.0 has CUDA 12.2, 6.1 and 6.2
# have 12.6. The Jetson AI Lab index documents jp6/cu126 only; jp6/cu122 is tried on CUDA 12.2
# to 12.5 and, where it has no wheel, the CPU package is installed (TensorRT from JetPack still
# runs the model on the GPU). --ort-index or --ort-wheel overrides.
ORT_INDEX_BASE=https://pypi.jetson-ai-lab.io/jp6
ORT_INDEX=""
APT_PACKAGES=(python3-venv python3-dev python3-pip build-essential python3-libnvinfer
              nvidia-opencv)

DRY_RUN=0 ROOT="" BROKER="" DEVICE_ID="" MQTT_USER="" PASSWORD_FILE="" CA_FILE=""
PRECISION=int8 START=1 FORCE_CONFIG=0 ORT_WHEEL="" WAS_RUNNING=0 STOPPED=0
ASSUME_L4T="" ASSUME_PYTHON="" ASSUME_CUDA=""
CAMERAS=()
STEP=0 STEP_NAME="" FIX="" PROBLEMS=0

usage() {
  cat <<EOF
usage: install_jetson.sh --camera URL [--camera URL ...] --broker HOST[:PORT] [options]

  --camera URL              a camera (rtsp://, http://, usb://0, /dev/video0, gst://..., a file);
                            repeat for more; named cam0, cam1, ... in the config
  --broker HOST[:PORT]      the MQTT broker (port 8883 with --ca-file, else 1883)
  --device-id ID            device id in every topic (default: this host's name)
  --mqtt-user NAME          broker username (the shipped broker accounts expect the device id)
  --mqtt-password-file F    file holding the broker password (copied to $ETC/mqtt-password)
  --ca-file F               CA certificate of the broker: enables TLS (copied to $ETC/ca.crt)
  --precision P             int8 (default), fp16 or fp32
  --ort-wheel FILE|URL      onnxruntime-gpu wheel to install (default: from the Jetson wheel index)
  --ort-index URL           index of Jetson wheels (default $ORT_INDEX_BASE/cu122 on CUDA
                            12.2 to 12.5, $ORT_INDEX_BASE/cu126 on 12.6 and later)
  --force-config            overwrite $ETC/edge.yaml even if it was changed
  --no-start                install and enable the service, but leave it as it was: it is
                            stopped while doctor opens the cameras, and started again
                            only if it was running
  --dry-run                 print every action, change nothing (works on any machine)
  --root DIR                write files under DIR (an image being prepared); users, apt and
                            services still act on this machine
  --assume-l4t X.Y          take this L4T release instead of /etc/nv_tegra_release (preview)
  --assume-python X.Y       take this Python version instead of python3's
  --assume-cuda X.Y         take this CUDA version instead of /usr/local/cuda's
  -h, --help                this text
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$1" >&2
  [ -n "${2:-}" ] && printf '  fix: %s\n' "$2" >&2
  exit 1
}
step() {
  STEP=$((STEP + 1)) STEP_NAME=$1 FIX=""
  printf '\n==> [%d] %s\n' "$STEP" "$1"
}
p() { printf '%s%s' "$ROOT" "$1"; }
redact() { sed -E 's#(://[^:/@ ]+):[^@/ ]+@#\1:***@#g'; }
# A command as a person would type it: plain words bare, anything else in single quotes.
shown() {
  local arg out=()
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=("$arg"); else out+=("'${arg//\'/\'\\\'\'}'"); fi
  done
  printf '%s\n' "${out[*]}" | redact
}

# Run a command, or only print it with --dry-run. A failure stops the install with the
# current step's FIX.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '  [dry-run] $ %s\n' "$(shown "$@")"
    return 0
  fi
  printf '  $ %s\n' "$(shown "$@")"
  local rc=0
  "$@" || rc=$?
  [ "$rc" = 0 ] || die "step [$STEP] $STEP_NAME: '$1' failed (exit code $rc)" "$FIX"
}

# Like run (never in a dry run), but a failure returns its exit code to the caller instead.
attempt() {
  printf '  $ %s\n' "$(shown "$@")"
  "$@"
}

# write_file PATH MODE OWNER:GROUP CONTENT: write CONTENT when it differs from PATH's.
write_file() {
  local path=$1 mode=$2 owner=$3 content=$4
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    say "  $path: unchanged"
    return 0
  fi
  if [ "$DRY_RUN" = 1 ]; then
    say "  [dry-run] write $path (mode $mode, $owner):"
    printf '%s\n' "$content" | redact | sed 's/^/    | /'
    return 0
  fi
  say "  write $path (mode $mode, $owner)"
  local tmp
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$path"
}

yaml_quote() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

parse_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --camera) CAMERAS+=("${2:?--camera needs a URL}"); shift ;;
      --broker) BROKER=${2:?--broker needs HOST[:PORT]}; shift ;;
      --device-id) DEVICE_ID=${2:?}; shift ;;
      --mqtt-user) MQTT_USER=${2:?}; shift ;;
      --mqtt-password-file) PASSWORD_FILE=${2:?}; shift ;;
      --ca-file) CA_FILE=${2:?}; shift ;;
      --precision) PRECISION=${2:?}; shift ;;
      --ort-wheel) ORT_WHEEL=${2:?}; shift ;;
      --ort-index) ORT_INDEX=${2:?}; shift ;;
      --force-config) FORCE_CONFIG=1 ;;
      --no-start) START=0 ;;
      --dry-run) DRY_RUN=1 ;;
      --root) ROOT=${2:?}; ROOT=${ROOT%/}; shift ;;
      --assume-l4t) ASSUME_L4T=${2:?}; shift ;;
      --assume-python) ASSUME_PYTHON=${2:?}; shift ;;
      --assume-cuda) ASSUME_CUDA=${2:?}; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" "see the usage above" ;;
    esac
    shift
  done
  [ ${#CAMERAS[@]} -gt 0 ] || die "no camera given" "add --camera URL (for example rtsp://user:pass@192.168.1.20/stream1)"
  [ -n "$BROKER" ] || die "no broker given" "add --broker HOST[:PORT]"
  case $PRECISION in int8|fp16|fp32) ;; *) die "--precision $PRECISION is not int8, fp16 or fp32" "pick one of them" ;; esac
  [ -z "$PASSWORD_FILE" ] || [ -f "$PASSWORD_FILE" ] || die "password file $PASSWORD_FILE not found" "give the path of a file that holds only the broker password"
  [ -z "$PASSWORD_FILE" ] || [ -n "$MQTT_USER" ] || die "--mqtt-password-file needs --mqtt-user" "add --mqtt-user (the device id, with the shipped broker accounts)"
  [ -z "$CA_FILE" ] || [ -f "$CA_FILE" ] || die "CA file $CA_FILE not found" "give the CA certificate (PEM) that signed the broker's certificate"
  if [ -z "$DEVICE_ID" ]; then
    DEVICE_ID=$(hostname | tr -c 'A-Za-z0-9_.\n-' '-')
  fi
  [[ $DEVICE_ID =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || die "device id '$DEVICE_ID' is not usable in MQTT topics" "give --device-id with letters, digits, '_', '.' or '-' (at most 64)"
  if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "this installs system packages, a user and a service: it must run as root" "sudo $0 ...  (or --dry-run to preview)"
  fi
}

l4t_release() {
  if [ -n "$ASSUME_L4T" ]; then printf '%s' "$ASSUME_L4T"; return; fi
  local file=/etc/nv_tegra_release
  [ -f "$file" ] || return 0
  sed -nE 's/^# R([0-9]+) \(release\), REVISION: ([0-9]+).*/\1.\2/p' "$file" | head -n 1
}

cuda_version() {
  if [ -n "$ASSUME_CUDA" ]; then printf '%s' "$ASSUME_CUDA"; return; fi
  local json=/usr/local/cuda/version.json
  if [ -f "$json" ]; then
    grep -A 2 '"cuda"' "$json" | sed -nE 's/.*"version" *: *"([0-9]+\.[0-9]+).*/\1/p' | head -n 1
  elif [ -x /usr/local/cuda/bin/nvcc ]; then
    /usr/local/cuda/bin/nvcc --version | sed -nE 's/.*release ([0-9]+\.[0-9]+).*/\1/p'
  fi
}

python_version() {
  if [ -n "$ASSUME_PYTHON" ]; then printf '%s' "$ASSUME_PYTHON"; return; fi
  command -v python3 >/dev/null || return 0
  python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

check_platform() {
  step "Check the platform: JetPack 6 (L4T r36), CUDA, Python 3.10+"
  local l4t major cuda py
  l4t=$(l4t_release)
  [ -n "$l4t" ] || die "this is not a Jetson: /etc/nv_tegra_release not found" \
    "run this on a Jetson with JetPack 6; elsewhere install with pip (README, 'Install'); to preview the steps anywhere: --dry-run --assume-l4t 36.4"
  major=${l4t%%.*}
  case $major in
    32) die "L4T r$l4t is JetPack 4 (Python 3.6, TensorRT 8.2 without the name-based API): not supported" \
          "Osprey needs JetPack 6 (Jetson Orin); Jetson Nano, TX2 and Xavier cannot run it" ;;
    34|35) die "L4T r$l4t is JetPack 5 (Python 3.8): not supported" \
          "flash JetPack 6 with NVIDIA SDK Manager (Jetson Orin); Xavier stops at JetPack 5" ;;
    36) say "  L4T r$l4t: JetPack 6, supported" ;;
    *) if [ "$major" -gt 36 ] 2>/dev/null; then
         warn "L4T r$l4t is newer than JetPack 6, which this script was written for: continuing"
       else
         die "L4T release '$l4t' is not JetPack 6" "Osprey needs JetPack 6 (L4T r36)"
       fi ;;
  esac
  if [ "$(uname -m)" != aarch64 ]; then
    [ -n "$ASSUME_L4T" ] || die "this machine is $(uname -m), not a Jetson (aarch64)" "run this on the Jetson"
    say "  (this machine is $(uname -m): a preview with --assume-l4t)"
  fi
  cuda=$(cuda_version)
  [ -n "$cuda" ] || die "CUDA not found in /usr/local/cuda (needed by TensorRT and pycuda)" \
    "sudo apt-get install nvidia-jetpack (CUDA, cuDNN, TensorRT, OpenCV), then rerun"
  local cmaj=${cuda%%.*} cmin=${cuda#*.}
  cmin=${cmin%%.*}
  [[ $cmaj =~ ^[0-9]+$ && $cmin =~ ^[0-9]+$ ]] || die "cannot read the CUDA version '$cuda'" \
    "check /usr/local/cuda/version.json, or give --assume-cuda X.Y"
  if [ "$cmaj" -lt 12 ] || { [ "$cmaj" = 12 ] && [ "$cmin" -lt 2 ]; }; then
    die "CUDA $cuda is older than JetPack 6's 12.2: a mixed or downgraded install" \
      "JetPack 6 ships CUDA 12.2 or later: sudo apt-get install nvidia-jetpack, or reflash JetPack 6"
  fi
  if [ -z "$ORT_INDEX" ]; then
    if [ "$cmaj" = 12 ] && [ "$cmin" -lt 6 ]; then ORT_INDEX=$ORT_INDEX_BASE/cu122; else ORT_INDEX=$ORT_INDEX_BASE/cu126; fi
  fi
  say "  CUDA $cuda (onnxruntime-gpu wheels from $ORT_INDEX)"
  py=$(python_version)
  [ -n "$py" ] || die "python3 not found" "sudo apt-get install python3"
  local pmaj=${py%%.*} pmin=${py#*.}
  if [ "$pmaj" -lt 3 ] || { [ "$pmaj" = 3 ] && [ "$pmin" -lt 10 ]; }; then
    die "Python $py is too old: Osprey needs 3.10 to 3.12 (JetPack 6 ships 3.10)" "use JetPack 6; its python3 is 3.10"
  fi
  if [ "$pmaj" -gt 3 ] || [ "$pmin" -gt 12 ]; then
    die "Python $py is newer than Osprey supports (3.10 to 3.12), and JetPack's TensorRT and OpenCV bindings are built for its own python3 (3.10)" \
      "run the script with JetPack 6's python3 (3.10): make sure 'python3' on PATH is /usr/bin/python3"
  fi
  say "  Python $py"
}

install_apt_packages() {
  step "System packages: venv and build tools (pycuda), JetPack's TensorRT Python bindings and OpenCV"
  FIX="check the network and NVIDIA's apt source (/etc/apt/sources.list.d/nvidia-l4t-apt-source.list); 'sudo apt-get install nvidia-jetpack' installs every JetPack component"
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "  all present: ${APT_PACKAGES[*]}"
    return
  fi
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

create_user() {
  step "Service user '$SERVICE_USER' (in the video and render groups: cameras and the GPU)"
  FIX="check /etc/passwd and /etc/group; 'sudo userdel $SERVICE_USER' and rerun if it is half made"
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    say "  user $SERVICE_USER exists"
  else
    run useradd --system --user-group --home-dir /var/lib/osprey --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  local group
  for group in video render; do
    getent group "$group" >/dev/null || continue
    if id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$group"; then
      say "  $SERVICE_USER is in $group"
    else
      run usermod -aG "$group" "$SERVICE_USER"
    fi
  done
}

make_venv() {
  step "Virtual environment $VENV that sees the system packages (JetPack's OpenCV, TensorRT)"
  FIX="sudo apt-get install python3-venv, then rerun"
  local venv cfg
  venv=$(p "$VENV") cfg=$(p "$VENV")/pyvenv.cfg
  if [ -x "$venv/bin/python" ]; then
    grep -qiE '^include-system-site-packages *= *true' "$cfg" || die \
      "$venv exists but does not see the system site packages: JetPack's OpenCV and TensorRT would be invisible to the agent" \
      "sudo rm -rf $venv and rerun"
    say "  $venv exists, with the system site packages"
  else
    run mkdir -p "$(dirname "$venv")"
    run python3 -m venv --system-site-packages "$venv"
  fi
  write_file "$(p "$CONSTRAINTS")" 0644 root:root "# pip constraints of the Osprey venv (scripts/install_jetson.sh)
# JetPack 6's OpenCV is built against numpy 1.x: numpy 2 would break 'import cv2'.
numpy<2"
}

# A session on the bundled model that really runs on CUDA (get_available_providers() lists
# what the wheel was built with, not what loads on this machine).
ORT_CUDA_CHECK="import onnxruntime as o; s = o.InferenceSession('$SRC_DIR/models/edge/osprey_edge_ssdlite.onnx', providers=['CUDAExecutionProvider']); assert s.get_providers()[0] == 'CUDAExecutionProvider'"

vpip() { run "$(p "$VENV")/bin/python" -m pip "$@" --constraint "$(p "$CONSTRAINTS")"; }

venv_has() {
  [ "$DRY_RUN" = 0 ] && "$(p "$VENV")/bin/python" -c "$1" >/dev/null 2>&1
}

pin_numpy() {
  step "numpy below 2, the ABI JetPack's OpenCV was built against"
  FIX="check the network; numpy 1.26 has aarch64 wheels for Python 3.10"
  vpip install "numpy>=1.23,<2"
}

install_pycuda() {
  step "pycuda (TensorRT's buffers), built against JetPack's CUDA"
  FIX="pycuda compiles against CUDA: sudo apt-get install nvidia-cuda-dev python3-dev build-essential (or nvidia-jetpack), then rerun"
  if venv_has "import pycuda.driver"; then
    say "  pycuda is installed"
    return
  fi
  run env CUDA_ROOT=/usr/local/cuda PATH="/usr/local/cuda/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$(p "$VENV")/bin/python" -m pip install --constraint "$(p "$CONSTRAINTS")" pycuda
}

install_onnxruntime() {
  step "ONNX Runtime: the Jetson onnxruntime-gpu wheel, else the CPU package"
  FIX="check the network; give a wheel with --ort-wheel (from the Jetson wheel index, or NVIDIA's Jetson downloads)"
  if venv_has "$ORT_CUDA_CHECK"; then
    say "  onnxruntime with CUDA is installed and runs the model on the GPU"
    return
  fi
  local python
  python=$(p "$VENV")/bin/python
  # A GPU wheel that does not run here (built for another CUDA) would only be "already
  # satisfied" by pip: it goes first.
  if [ "$DRY_RUN" = 0 ] && "$python" -m pip show onnxruntime-gpu >/dev/null 2>&1; then
    run "$python" -m pip uninstall -y onnxruntime-gpu
  fi
  # Both wheels provide the onnxruntime module: only one may be installed.
  if [ "$DRY_RUN" = 0 ] && "$python" -m pip show onnxruntime >/dev/null 2>&1; then
    run "$python" -m pip uninstall -y onnxruntime
  fi
  local gpu=(onnxruntime-gpu --extra-index-url "$ORT_INDEX")
  [ -z "$ORT_WHEEL" ] || gpu=("$ORT_WHEEL")
  if [ "$DRY_RUN" = 1 ]; then
    vpip install "${gpu[@]}"
    say "  [dry-run] and if no wheel fits this JetPack, the CPU package instead:"
    vpip install onnxruntime
    return
  fi
  if attempt "$python" -m pip install --constraint "$(p "$CONSTRAINTS")" "${gpu[@]}"; then
    venv_has "$ORT_CUDA_CHECK" && return
    warn "onnxruntime-gpu is installed but its CUDA provider does not load here (a wheel for another CUDA or JetPack?): the agent will run ONNX Runtime on the CPU. Fix: give the wheel that matches CUDA $(cuda_version) with --ort-wheel or --ort-index, and rerun"
    return
  fi
  local why=""
  if [ -z "$ORT_WHEEL" ] && [[ "$ORT_INDEX" == */cu122 ]]; then
    why=" (the Jetson AI Lab index documents wheels for JetPack 6.1/6.2, CUDA 12.6, only; this is JetPack 6.0's CUDA $(cuda_version). For ONNX Runtime on the GPU: upgrade to JetPack 6.2, or give a wheel built for CUDA 12.2 with --ort-wheel)"
  fi
  warn "no onnxruntime-gpu wheel for this JetPack from ${ORT_WHEEL:-$ORT_INDEX}${why}: installing the CPU package (TensorRT still runs the model; ONNX Runtime is its fallback)"
  vpip install onnxruntime
}

install_agent() {
  step "The agent: requirements/jetson.txt, then Osprey itself with --no-deps (no pip OpenCV)"
  FIX="check the network; the requirements are in $SRC_DIR/requirements/jetson.txt"
  vpip install --requirement "$SRC_DIR/requirements/jetson.txt"
  vpip install --no-deps --force-reinstall "$SRC_DIR"
  local python check
  python=$(p "$VENV")/bin/python
  check='import sys, cv2, numpy
info = cv2.getBuildInformation()
gst = any(l.strip().startswith("GStreamer:") and "YES" in l for l in info.splitlines())
print("  cv2", cv2.__version__, "from", cv2.__file__, "| GStreamer", "yes" if gst else "NO",
      "| numpy", numpy.__version__)
sys.exit(0 if gst and not cv2.__file__.startswith(sys.prefix) and numpy.__version__ < "2" else 1)'
  if [ "$DRY_RUN" = 1 ]; then
    say "  [dry-run] verify with $python: cv2 is JetPack's (outside the venv, GStreamer YES), numpy < 2"
    return
  fi
  "$python" -c "$check" || die \
    "the agent's Python does not see JetPack's OpenCV with GStreamer (a pip OpenCV in the venv, numpy 2, or nvidia-opencv missing)" \
    "$python -m pip uninstall -y opencv-python opencv-python-headless opencv-contrib-python; sudo apt-get install nvidia-opencv; rerun"
}

make_dirs() {
  step "Directories: $ETC (config, root:$SERVICE_USER 0750), $CACHE/engines (TensorRT engines)"
  FIX="check that / is writable and the user $SERVICE_USER exists"
  run install -d -m 0750 -o root -g "$SERVICE_USER" "$(p "$ETC")"
  run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$(p "$CACHE")" "$(p "$CACHE")/engines"
}

install_secrets() {
  step "Broker credentials and CA"
  FIX="check the files given with --mqtt-password-file and --ca-file"
  if [ -n "$PASSWORD_FILE" ]; then
    run install -m 0640 -o root -g "$SERVICE_USER" "$PASSWORD_FILE" "$(p "$ETC")/mqtt-password"
  else
    say "  no --mqtt-password-file: the agent connects without a password"
  fi
  if [ -n "$CA_FILE" ]; then
    run install -m 0644 "$CA_FILE" "$(p "$ETC")/ca.crt"
  else
    say "  no --ca-file: the connection to the broker is not encrypted (use TLS in production)"
  fi
}

render_config() {
  local host=$BROKER port cameras="" auth tls i=0 url
  if [[ $BROKER =~ ^(.+):([0-9]+)$ ]]; then
    host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
  elif [ -n "$CA_FILE" ]; then port=8883; else port=1883; fi
  for url in "${CAMERAS[@]}"; do
    cameras+="  - name: cam$i"$'\n'"    url: $(yaml_quote "$url")"$'\n'
    i=$((i + 1))
  done
  if [ -n "$MQTT_USER" ]; then
    auth="  username: $(yaml_quote "$MQTT_USER")"
    [ -z "$PASSWORD_FILE" ] || auth+=$'\n'"  password_file: $ETC/mqtt-password"
  else
    auth="  # username: $DEVICE_ID   # with password_file: $ETC/mqtt-password"
  fi
  if [ -n "$CA_FILE" ]; then
    tls="    enabled: true"$'\n'"    ca_file: $ETC/ca.crt"
  else
    tls="    enabled: false         # true with ca_file: $ETC/ca.crt in production"
  fi
  local text
  text=$(<"$SRC_DIR/deploy/templates/edge.yaml.in")
  text=${text//@DEVICE_ID@/"$DEVICE_ID"}
  text=${text//@CAMERAS@/"${cameras%$'\n'}"}
  text=${text//@PRECISION@/"$PRECISION"}
  text=${text//@MQTT_HOST@/"$(yaml_quote "$host")"}
  text=${text//@MQTT_PORT@/"$port"}
  text=${text//@MQTT_AUTH@/"$auth"}
  text=${text//@MQTT_TLS@/"$tls"}
  printf '%s' "$text"
}

write_config() {
  step "Config $ETC/edge.yaml from deploy/templates/edge.yaml.in"
  FIX="check the arguments; the template is $SRC_DIR/deploy/templates/edge.yaml.in"
  # The checksum of the file as last written tells a config edited by hand (kept) from one
  # this script wrote (replaced by the new template's).
  local target new stamp edited=0
  target=$(p "$ETC")/edge.yaml stamp=$(p "$ETC")/.edge.yaml.sha256
  new=$(render_config)
  if [ -f "$target" ] && [ "$(cat "$target")" != "$new" ] && [ "$FORCE_CONFIG" = 0 ] &&
      [ "$(sha256sum <"$target")" != "$(cat "$stamp" 2>/dev/null)" ]; then
    say "  $target was changed since it was written: kept; the new one goes to edge.yaml.new"
    say "  (compare: diff $target $target.new; --force-config overwrites)"
    target=$target.new edited=1
  fi
  write_file "$target" 0640 "root:$SERVICE_USER" "$new"
  [ "$edited" = 1 ] || write_file "$stamp" 0640 "root:$SERVICE_USER" \
    "$(printf '%s\n' "$new" | sha256sum)"
  if [ -n "$ROOT" ]; then
    say "  (--root: validated on the device, where its files are)"
  else
    run "$VENV/bin/edge-agent" validate-config "$target"
  fi
}

install_unit() {
  step "systemd unit edge-agent.service: installed and enabled (stopped while doctor checks)"
  FIX="journalctl -u edge-agent -n 50 says why the service does not start"
  command -v systemctl >/dev/null || die "systemctl not found: this script installs a systemd service" "use JetPack's Ubuntu, which runs systemd"
  write_file "$(p "$UNIT")" 0644 root:root "$(<"$SRC_DIR/deploy/systemd/edge-agent.service")"
  if [ -n "$ROOT" ]; then
    run systemctl --root="$ROOT" enable edge-agent.service
    say "  (--root: not reloading or starting services on this machine)"
    return
  fi
  run systemctl daemon-reload
  run systemctl enable edge-agent.service
  # doctor opens the cameras itself: a running agent would hold a USB or CSI camera. Stopped
  # whatever its state ("activating" while it waits to restart after a crash is one too);
  # if the install stops before the service is started again, the exit trap starts it.
  if [ "$DRY_RUN" = 0 ] && systemctl is-active --quiet edge-agent.service; then
    WAS_RUNNING=1
  fi
  run systemctl stop edge-agent.service
  [ "$DRY_RUN" = 1 ] || STOPPED=1
}

start_service() {
  if [ -n "$ROOT" ] || { [ "$START" = 0 ] && [ "$WAS_RUNNING" = 0 ]; }; then
    return 0
  fi
  step "Start edge-agent.service$([ "$START" = 0 ] && printf ' again (it was running)')"
  FIX="journalctl -u edge-agent -n 50 says why the service does not start"
  STOPPED=0
  run systemctl start edge-agent.service
}

# An install that stops (an error, Ctrl-C) after stopping a running service starts it again.
restore_service() {
  if [ "$STOPPED" = 1 ] && [ "$WAS_RUNNING" = 1 ]; then
    warn "the install stopped early: starting edge-agent.service again, as it was"
    systemctl start edge-agent.service || true
  fi
}

run_doctor() {
  step "Check everything: edge-agent doctor, as the service user"
  if [ -n "$ROOT" ]; then
    say "  (--root: skipped; run it on the device)"
    return 0
  fi
  local cmd=(runuser -u "$SERVICE_USER" -- "$VENV/bin/edge-agent" doctor --config "$ETC/edge.yaml")
  if [ "$DRY_RUN" = 1 ]; then
    run "${cmd[@]}"
    return 0
  fi
  printf '  $ %s\n' "$(shown "${cmd[@]}")"
  if "${cmd[@]}"; then
    return 0
  fi
  PROBLEMS=1
}

main() {
  trap restore_service EXIT
  parse_args "$@"
  [ "$DRY_RUN" = 0 ] || say "Dry run: printing every action; nothing is changed."
  check_platform
  install_apt_packages
  create_user
  make_venv
  pin_numpy
  install_pycuda
  install_onnxruntime
  install_agent
  make_dirs
  install_secrets
  write_config
  install_unit
  run_doctor
  start_service
  say ""
  if [ "$PROBLEMS" = 1 ]; then
    die "installed$([ "$START" = 1 ] && [ -z "$ROOT" ] && printf ' and started'), but doctor found problems (the FAIL lines above)" \
      "fix them, then: sudo systemctl restart edge-agent; journalctl -u edge-agent -f"
  fi
  say "Osprey edge agent installed as edge-agent.service (device $DEVICE_ID)."
  say "  logs:      journalctl -u edge-agent -f"
  say "  status:    systemctl status edge-agent"
  say "  subscribe: mosquitto_sub -h <broker> -t 'osprey/$DEVICE_ID/#' -v"
}

main "$@"
