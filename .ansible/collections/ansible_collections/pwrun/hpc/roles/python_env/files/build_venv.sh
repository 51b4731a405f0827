# Make the Parsl venv, holding a lock on the site so that concurrent runs never build it at once.
# Arguments: ENV_PATH PYTHON MARKER PARSL_VERSION WHEELHOUSE PIP_INSTALL_ARGS...
# WHEELHOUSE is the directory to unpack WHEELHOUSE.tar into first ("" for a package index).
# Prints "unchanged" when another run finished the same env while this one waited.
set -eu
env_path=$1 python=$2 marker=$3 parsl_version=$4 wheelhouse=$5
shift 5
mkdir -p -- "$(dirname -- "$env_path")"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$env_path.lock"
  flock -w 1800 9 || { echo "another run has been building $env_path for 30 min" >&2; exit 1; }
fi
if [ "$(cat -- "$env_path/.pwrun-env.json" 2>/dev/null)" = "$marker" ]; then
  echo unchanged
  exit 0
fi
if [ -n "$wheelhouse" ] && [ ! -e "$wheelhouse/.pwrun-env.json" ]; then
  rm -rf -- "$wheelhouse.partial"
  mkdir -p -- "$wheelhouse.partial"
  tar -xf "$wheelhouse.tar" -C "$wheelhouse.partial"
  rm -rf -- "$wheelhouse"
  mv -- "$wheelhouse.partial" "$wheelhouse"
fi
"$python" -m venv --clear -- "$env_path"
"$env_path/bin/python" -m pip install --disable-pip-version-check -q "$@"
version=$("$env_path/bin/python" -c 'import parsl; print(parsl.__version__)')
if [ "$version" != "$parsl_version" ]; then
  echo "the env imports parsl $version, not $parsl_version" >&2
  exit 1
fi
printf '%s\n' "$marker" > "$env_path/.pwrun-env.json"
echo changed
